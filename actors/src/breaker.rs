//! A circuit breaker per upstream: once an upstream is found unreachable, stop asking it for a
//! while, so that pulls are answered from the cache (or fail) at once instead of each waiting
//! out `pullTimeout` again.
//!
//! At the edge, links flap for hours and a link that silently drops packets makes every request
//! wait its full timeout. The breaker notices once: a connection failure or a timeout opens it;
//! while it is open nothing is sent to the upstream. When the wait is over, exactly one request
//! goes through as a probe (the others are still refused); its success closes the breaker, its
//! failure opens it again for twice as long, up to a cap, with jitter so a fleet of caches does
//! not probe in step. A rate limit (429 or 503 with `Retry-After`) holds the breaker for as long
//! as the upstream asked.
//!
//! Pure state: the caller passes the time in, and logs and counts the [`Change`]s.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use actix::Message;

/// What one upstream request taught about `upstream`: sent to the puller pool, which owns the
/// breakers, by every task that asked an upstream.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reached {
    pub upstream: String,
    pub outcome: Outcome,
}

/// The first wait after an upstream is found unreachable.
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between probes.
pub const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// What an upstream request taught about its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (any answer, even an error status: it is reachable).
    Answered,
    /// It could not be reached, or did not answer in time.
    Unreachable(String),
    /// It asked us to wait this long (a 429 or 503 with `Retry-After`).
    Wait(Duration, String),
}

/// May a request go to the upstream now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes, the breaker is closed.
    Go,
    /// Yes, as the one probe of an open breaker: its outcome decides.
    Probe,
}

/// No: the breaker is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// When the next probe may go (what clients are told in `Retry-After`).
    pub retry_after: Duration,
    /// Why it opened.
    pub why: String,
}

/// A change of state, for the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Opened { wait: Duration, why: String },
    Closed,
}

#[derive(Debug, Clone)]
enum State {
    Closed,
    /// Nothing goes until `until`; the next wait after a failed probe is twice `wait`.
    Open {
        until: Instant,
        wait: Duration,
        why: String,
    },
    /// The probe went out at `since`; everything else waits for its outcome (or, should it
    /// never report, until [`LONGEST_WAIT`] has passed, when another probe may go).
    Probing {
        since: Instant,
        wait: Duration,
        why: String,
    },
}

/// The breakers of every upstream.
#[derive(Debug)]
pub struct Breakers {
    states: HashMap<String, State>,
    /// Seeded once per process: jitter that differs between processes.
    jitter: RandomState,
}

impl Default for Breakers {
    fn default() -> Self {
        Breakers {
            states: HashMap::new(),
            jitter: RandomState::new(),
        }
    }
}

impl Breakers {
    /// Whether a request may go to `upstream` at `now`.
    pub fn admit(&mut self, upstream: &str, now: Instant) -> Result<Admission, Refused> {
        let Some(state) = self.states.get_mut(upstream) else {
            return Ok(Admission::Go);
        };
        match state {
            State::Closed => Ok(Admission::Go),
            State::Open { until, wait, why } if now >= *until => {
                *state = State::Probing {
                    since: now,
                    wait: *wait,
                    why: why.clone(),
                };
                Ok(Admission::Probe)
            }
            State::Probing { since, .. } if now >= *since + LONGEST_WAIT => {
                *since = now;
                Ok(Admission::Probe)
            }
            State::Open { until, why, .. } => Err(Refused {
                retry_after: until.saturating_duration_since(now),
                why: why.clone(),
            }),
            State::Probing { why, .. } => Err(Refused {
                retry_after: FIRST_WAIT,
                why: why.clone(),
            }),
        }
    }

    /// Records what a request to `upstream` taught, and says whether the breaker changed.
    pub fn record(&mut self, upstream: &str, outcome: Outcome, now: Instant) -> Option<Change> {
        let jitter = self.jitter.clone();
        let state = self
            .states
            .entry(upstream.to_string())
            .or_insert(State::Closed);
        let was_open = !matches!(state, State::Closed);
        let previous_wait = match state {
            State::Open { wait, .. } | State::Probing { wait, .. } => Some(*wait),
            State::Closed => None,
        };
        match outcome {
            Outcome::Answered => {
                *state = State::Closed;
                was_open.then_some(Change::Closed)
            }
            Outcome::Wait(wait, why) => {
                let wait = wait.min(Duration::from_secs(3600));
                *state = State::Open {
                    until: now + wait,
                    wait: previous_wait.unwrap_or(FIRST_WAIT),
                    why: why.clone(),
                };
                Some(Change::Opened { wait, why })
            }
            Outcome::Unreachable(why) => {
                // A late failure of a request sent before the breaker opened changes nothing:
                // only the probe's failure lengthens the wait.
                if let State::Open { .. } = state {
                    return None;
                }
                let wait = match previous_wait {
                    Some(w) => (w * 2).min(LONGEST_WAIT),
                    None => FIRST_WAIT,
                };
                let jittered = jittered(&jitter, wait, now);
                *state = State::Open {
                    until: now + jittered,
                    wait,
                    why: why.clone(),
                };
                Some(Change::Opened {
                    wait: jittered,
                    why,
                })
            }
        }
    }

    /// Whether the breaker of `upstream` is open (or probing).
    pub fn is_open(&self, upstream: &str) -> bool {
        !matches!(self.states.get(upstream), None | Some(State::Closed))
    }
}

/// `wait` give or take a fifth, so that caches that lost one upstream together do not all
/// probe it at the same moment.
fn jittered(seed: &RandomState, wait: Duration, now: Instant) -> Duration {
    let spread = wait.as_millis() as u64 / 5;
    if spread == 0 {
        return wait;
    }
    let r = seed.hash_one(now) % (2 * spread + 1);
    (wait + Duration::from_millis(r)).saturating_sub(Duration::from_millis(spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: &str = "up.test";

    fn unreachable() -> Outcome {
        Outcome::Unreachable("timed out".into())
    }

    #[test]
    fn an_unknown_or_answering_upstream_is_asked() {
        let mut b = Breakers::default();
        let now = Instant::now();
        assert_eq!(b.admit(UP, now), Ok(Admission::Go));
        assert_eq!(b.record(UP, Outcome::Answered, now), None);
        assert_eq!(b.admit(UP, now), Ok(Admission::Go));
        assert!(!b.is_open(UP));
    }

    #[test]
    fn a_failure_opens_the_breaker_and_refuses_until_one_probe_may_go() {
        let mut b = Breakers::default();
        let t0 = Instant::now();
        let Some(Change::Opened { wait, why }) = b.record(UP, unreachable(), t0) else {
            panic!("did not open");
        };
        assert!(
            wait >= FIRST_WAIT * 4 / 5 && wait <= FIRST_WAIT * 6 / 5,
            "{wait:?}"
        );
        assert_eq!(why, "timed out");
        let refused = b.admit(UP, t0).unwrap_err();
        assert!(refused.retry_after <= wait && refused.retry_after > Duration::ZERO);
        assert_eq!(b.admit("other.test", t0), Ok(Admission::Go), "per upstream");
        let later = t0 + wait;
        assert_eq!(b.admit(UP, later), Ok(Admission::Probe));
        assert!(b.admit(UP, later).is_err(), "a second probe went out");
        assert_eq!(b.record(UP, Outcome::Answered, later), Some(Change::Closed));
        assert_eq!(b.admit(UP, later), Ok(Admission::Go));
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_the_longest_wait() {
        let mut b = Breakers::default();
        let t0 = Instant::now();
        b.record(UP, unreachable(), t0);
        let probe_at = t0 + FIRST_WAIT * 2;
        assert_eq!(b.admit(UP, probe_at), Ok(Admission::Probe));
        assert!(b.admit(UP, probe_at + LONGEST_WAIT / 2).is_err());
        assert_eq!(b.admit(UP, probe_at + LONGEST_WAIT), Ok(Admission::Probe));
    }

    #[test]
    fn failed_probes_double_the_wait_up_to_the_cap() {
        let mut b = Breakers::default();
        let mut now = Instant::now();
        b.record(UP, unreachable(), now);
        let mut waits = Vec::new();
        for _ in 0..10 {
            now += LONGEST_WAIT * 2;
            assert_eq!(b.admit(UP, now), Ok(Admission::Probe));
            match b.record(UP, unreachable(), now) {
                Some(Change::Opened { wait, .. }) => waits.push(wait),
                other => panic!("{other:?}"),
            }
        }
        assert!(waits[0] >= Duration::from_millis(1600), "{waits:?}");
        assert!(waits[1] >= Duration::from_millis(3200), "{waits:?}");
        assert!(
            waits.iter().all(|w| *w <= LONGEST_WAIT * 6 / 5),
            "{waits:?}"
        );
        assert!(*waits.last().unwrap() >= LONGEST_WAIT * 4 / 5, "{waits:?}");
    }

    #[test]
    fn a_late_failure_of_an_earlier_request_does_not_lengthen_the_wait() {
        let mut b = Breakers::default();
        let t0 = Instant::now();
        b.record(UP, unreachable(), t0);
        assert_eq!(b.record(UP, unreachable(), t0), None);
    }

    #[test]
    fn a_rate_limit_holds_the_breaker_as_long_as_asked() {
        let mut b = Breakers::default();
        let t0 = Instant::now();
        let asked = Duration::from_secs(30);
        assert_eq!(
            b.record(UP, Outcome::Wait(asked, "429".into()), t0),
            Some(Change::Opened {
                wait: asked,
                why: "429".into()
            })
        );
        assert_eq!(
            b.admit(UP, t0 + asked / 2).unwrap_err().retry_after,
            asked / 2
        );
        assert_eq!(b.admit(UP, t0 + asked), Ok(Admission::Probe));
    }
}
