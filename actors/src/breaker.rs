//! A circuit breaker per upstream: once an upstream is found unreachable, stop asking it for a
//! while, so that pulls are answered from the cache (or fail) at once instead of each waiting
//! out `pullTimeout` again.
//!
//! At the edge, links flap for hours and a link that silently drops packets makes every request
//! wait its full timeout. The breaker notices once: a connection failure or a timeout opens it;
//! while it is open no client request is sent to the upstream. A client never waits for the
//! breaker's test either: when the wait is over, one probe (a `GET /v2/`, sent by the puller
//! pool itself) tests the upstream; its answer closes the breaker, its failure opens it again
//! for twice as long, up to a cap, with jitter so a fleet of caches does not probe in step. A
//! rate limit (429 or 503 with `Retry-After`) holds the breaker for as long as the upstream
//! asked.
//!
//! Pure state: the caller passes the time in, sends the probes, and logs and counts the
//! [`Change`]s.

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

/// No: the breaker is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// When the upstream may be asked again at the earliest (what clients are told in
    /// `Retry-After`).
    pub retry_after: Duration,
    /// Why it opened.
    pub why: String,
}

/// A change of state, for the log and the metrics; an opened breaker needs a probe after
/// `wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Opened { wait: Duration, why: String },
    Closed,
}

#[derive(Debug, Clone)]
enum State {
    Closed,
    /// Nothing goes until `until`, then a probe; after a failed probe the wait is twice
    /// `wait`.
    Open {
        until: Instant,
        wait: Duration,
        why: String,
    },
    /// The probe is out.
    Probing {
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
    /// Whether a client's request may go to `upstream` at `now`.
    pub fn admit(&self, upstream: &str, now: Instant) -> Result<(), Refused> {
        match self.states.get(upstream) {
            None | Some(State::Closed) => Ok(()),
            Some(State::Open { until, why, .. }) => Err(Refused {
                retry_after: until
                    .saturating_duration_since(now)
                    .max(Duration::from_secs(1)),
                why: why.clone(),
            }),
            Some(State::Probing { why, .. }) => Err(Refused {
                retry_after: FIRST_WAIT,
                why: why.clone(),
            }),
        }
    }

    /// Records what a client's request to `upstream` taught, and says whether the breaker
    /// changed. A late failure of a request sent before the breaker opened changes nothing:
    /// only probes lengthen the wait. Any answer closes it.
    pub fn record(&mut self, upstream: &str, outcome: Outcome, now: Instant) -> Option<Change> {
        let closed = matches!(self.states.get(upstream), None | Some(State::Closed));
        match outcome {
            Outcome::Answered => {
                self.states.insert(upstream.to_string(), State::Closed);
                (!closed).then_some(Change::Closed)
            }
            Outcome::Unreachable(why) if closed => Some(self.open(upstream, FIRST_WAIT, why, now)),
            Outcome::Unreachable(_) => None,
            Outcome::Wait(wait, why) => Some(self.hold(upstream, wait, why, now)),
        }
    }

    /// Whether `upstream` is due a probe at `now`; if so it is now probing, and the caller
    /// sends one and reports it with [`Breakers::probed`].
    pub fn probe_due(&mut self, upstream: &str, now: Instant) -> bool {
        match self.states.get(upstream) {
            Some(State::Open { until, wait, why }) if now >= *until => {
                let (wait, why) = (*wait, why.clone());
                self.states
                    .insert(upstream.to_string(), State::Probing { wait, why });
                true
            }
            _ => false,
        }
    }

    /// Records a probe's outcome: an answer closes the breaker, a failure opens it for twice
    /// as long as before (up to [`LONGEST_WAIT`]).
    pub fn probed(&mut self, upstream: &str, outcome: Outcome, now: Instant) -> Option<Change> {
        let previous = match self.states.get(upstream) {
            Some(State::Probing { wait, .. }) | Some(State::Open { wait, .. }) => *wait,
            None | Some(State::Closed) => FIRST_WAIT / 2,
        };
        match outcome {
            Outcome::Answered => self.record(upstream, Outcome::Answered, now),
            Outcome::Unreachable(why) => {
                Some(self.open(upstream, (previous * 2).min(LONGEST_WAIT), why, now))
            }
            Outcome::Wait(wait, why) => Some(self.hold(upstream, wait, why, now)),
        }
    }

    fn open(&mut self, upstream: &str, wait: Duration, why: String, now: Instant) -> Change {
        let jittered = jittered(&self.jitter, wait, now);
        self.states.insert(
            upstream.to_string(),
            State::Open {
                until: now + jittered,
                wait,
                why: why.clone(),
            },
        );
        Change::Opened {
            wait: jittered,
            why,
        }
    }

    /// Holds the breaker as long as the upstream asked (`RetryAfter` has capped that at an
    /// hour, as it is passed on to clients).
    fn hold(&mut self, upstream: &str, wait: Duration, why: String, now: Instant) -> Change {
        self.states.insert(
            upstream.to_string(),
            State::Open {
                until: now + wait,
                wait: FIRST_WAIT,
                why: why.clone(),
            },
        );
        Change::Opened { wait, why }
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
        assert_eq!(b.admit(UP, now), Ok(()));
        assert_eq!(b.record(UP, Outcome::Answered, now), None);
        assert_eq!(b.admit(UP, now), Ok(()));
        assert!(!b.probe_due(UP, now), "a closed breaker needs no probe");
    }

    #[test]
    fn a_failure_opens_the_breaker_and_refuses_clients_until_a_probe_answers() {
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
        assert!(refused.retry_after >= Duration::from_secs(1));
        assert_eq!(b.admit("other.test", t0), Ok(()), "per upstream");
        assert!(!b.probe_due(UP, t0), "probed before the wait was over");
        let later = t0 + wait;
        assert!(b.probe_due(UP, later));
        assert!(!b.probe_due(UP, later), "a second probe went out");
        assert!(
            b.admit(UP, later).is_err(),
            "a client went through during the probe"
        );
        assert_eq!(b.probed(UP, Outcome::Answered, later), Some(Change::Closed));
        assert_eq!(b.admit(UP, later), Ok(()));
    }

    #[test]
    fn failed_probes_double_the_wait_up_to_the_cap() {
        let mut b = Breakers::default();
        let mut now = Instant::now();
        b.record(UP, unreachable(), now);
        let mut waits = Vec::new();
        for _ in 0..10 {
            now += LONGEST_WAIT * 2;
            assert!(b.probe_due(UP, now));
            match b.probed(UP, unreachable(), now) {
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
    fn a_late_failure_of_an_earlier_request_changes_nothing_and_an_answer_closes() {
        let mut b = Breakers::default();
        let t0 = Instant::now();
        b.record(UP, unreachable(), t0);
        assert_eq!(b.record(UP, unreachable(), t0), None);
        assert_eq!(b.record(UP, Outcome::Answered, t0), Some(Change::Closed));
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
        assert!(!b.probe_due(UP, t0 + asked / 2));
        assert!(b.probe_due(UP, t0 + asked));
    }
}
