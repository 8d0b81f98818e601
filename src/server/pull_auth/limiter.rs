//! Per-address limit on credential checks: bcrypt makes each guess cost the server ~50-100 ms
//! of CPU, so without a limit a password guesser is also a denial of service.
//!
//! An attempt is counted when its check starts, not when it fails, so a client cannot run more
//! than `max_failures` bcrypt checks at once by sending them in parallel; a check that succeeds
//! takes its count back. A success does not clear the others: knowing one good account must not
//! reset the count of guesses at another. Once an address has used up its attempts within the
//! window, its credentials are refused unchecked until the lockout ends.
//!
//! IPv6 clients are counted per /64, the block a single host usually holds, so that walking
//! through its addresses does not buy more guesses. The table is bounded: when it is full,
//! entries that no longer matter are dropped, then the one that ends soonest.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many attempts, over how long, and what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Credential checks an address may start within `window` without succeeding.
    pub max_failures: u32,
    pub window: Duration,
    /// How long an address that went over is refused.
    pub lockout: Duration,
    /// Addresses remembered at once.
    pub max_addresses: usize,
}

/// 10 failures a minute are more than a person mistyping and a client retrying will make, and
/// few enough that guessing a real password is hopeless; five minutes of lockout make a
/// guesser's rate 10 per 6 minutes.
pub const DEFAULT_POLICY: Policy = Policy {
    max_failures: 10,
    window: Duration::from_secs(60),
    lockout: Duration::from_secs(300),
    max_addresses: 10_000,
};

/// The answer for an address that may not try now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub retry_after: Duration,
    /// This attempt started the lockout (worth one log line; the ones after are not).
    pub started: bool,
}

impl Blocked {
    /// Whole seconds for `Retry-After`, rounded up so a client never comes back early.
    pub fn retry_after_secs(&self) -> u32 {
        let d = self.retry_after;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    attempts: u32,
    blocked_until: Option<Instant>,
}

impl Entry {
    /// When forgetting the entry changes nothing.
    fn expires(&self, window: Duration) -> Instant {
        self.blocked_until.unwrap_or(self.window_start + window)
    }
}

pub struct AttemptLimiter {
    policy: Policy,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl AttemptLimiter {
    pub fn new(policy: Policy) -> AttemptLimiter {
        AttemptLimiter {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Counts a credential check about to start for `ip`, or refuses it.
    pub fn begin(&self, ip: IpAddr, now: Instant) -> Result<(), Blocked> {
        let key = bucket(ip);
        let p = self.policy;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.get_mut(&key) {
            match e.blocked_until {
                Some(until) if until > now => {
                    return Err(Blocked {
                        retry_after: until - now,
                        started: false,
                    })
                }
                Some(_) => *e = fresh(now),
                None if now.duration_since(e.window_start) >= p.window => *e = fresh(now),
                None => {}
            }
            if e.attempts >= p.max_failures {
                e.blocked_until = Some(now + p.lockout);
                return Err(Blocked {
                    retry_after: p.lockout,
                    started: true,
                });
            }
            e.attempts += 1;
            return Ok(());
        }
        if p.max_failures == 0 {
            return Err(Blocked {
                retry_after: p.lockout,
                started: false,
            });
        }
        make_room(&mut entries, p, now);
        entries.insert(
            key,
            Entry {
                attempts: 1,
                ..fresh(now)
            },
        );
        Ok(())
    }

    /// The check `begin` counted succeeded: it takes its count back.
    pub fn succeeded(&self, ip: IpAddr) {
        let key = bucket(ip);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.get_mut(&key) {
            e.attempts = e.attempts.saturating_sub(1);
            if e.attempts == 0 && e.blocked_until.is_none() {
                entries.remove(&key);
            }
        }
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn fresh(now: Instant) -> Entry {
    Entry {
        window_start: now,
        attempts: 0,
        blocked_until: None,
    }
}

/// Makes room for one more entry: drops what no longer matters, then, if the table is still
/// full (many addresses failing at once), the entry that would end soonest.
fn make_room(entries: &mut HashMap<IpAddr, Entry>, p: Policy, now: Instant) {
    if entries.len() < p.max_addresses {
        return;
    }
    entries.retain(|_, e| e.expires(p.window) > now);
    while entries.len() >= p.max_addresses.max(1) {
        let Some(first) = entries
            .iter()
            .min_by_key(|(_, e)| e.expires(p.window))
            .map(|(k, _)| *k)
        else {
            return;
        };
        entries.remove(&first);
    }
}

/// The unit a client is counted by: its IPv4 address, or its IPv6 /64.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn small(max_addresses: usize) -> AttemptLimiter {
        AttemptLimiter::new(Policy {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            max_addresses,
        })
    }

    #[test]
    fn an_address_that_fails_too_often_is_refused_for_the_lockout() {
        let l = small(100);
        let t = Instant::now();
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            assert_eq!(l.begin(a, t), Ok(()));
        }
        let first = l.begin(a, t).expect_err("fourth attempt");
        assert!(first.started);
        assert_eq!(first.retry_after_secs(), 300);
        let later = l
            .begin(a, t + Duration::from_millis(100_500))
            .expect_err("still locked out");
        assert!(!later.started);
        assert_eq!(later.retry_after_secs(), 200, "rounded up");
        // Other addresses are not affected.
        assert_eq!(l.begin(ip("10.0.0.2"), t), Ok(()));
        // After the lockout, a fresh window.
        let after = t + Duration::from_secs(301);
        assert_eq!(l.begin(a, after), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let l = small(100);
        let t = Instant::now();
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            l.begin(a, t).expect("within the limit");
        }
        let next_window = t + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.begin(a, next_window), Ok(()));
        }
        assert!(l.begin(a, next_window).is_err());
    }

    #[test]
    fn a_success_takes_back_only_its_own_attempt() {
        let l = small(100);
        let t = Instant::now();
        let a = ip("192.0.2.7");
        // Two wrong guesses, then a good login: one guess later the address is at the limit.
        l.begin(a, t).expect("1");
        l.begin(a, t).expect("2");
        l.begin(a, t).expect("3: the good one");
        l.succeeded(a);
        l.begin(a, t).expect("4: counted as the third");
        assert!(l.begin(a, t).is_err());
        // A lone success leaves nothing behind.
        let b = ip("192.0.2.8");
        l.begin(b, t).expect("b");
        l.succeeded(b);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let l = small(100);
        let t = Instant::now();
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
            l.begin(ip(host), t).expect("within the /64's limit");
        }
        assert!(l.begin(ip("2001:db8:1:2::99"), t).is_err(), "same /64");
        assert_eq!(l.begin(ip("2001:db8:1:3::1"), t), Ok(()), "another /64");
        assert_eq!(bucket(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_lockouts_longest() {
        let l = small(4);
        let t = Instant::now();
        let locked = ip("10.9.9.9");
        for _ in 0..3 {
            l.begin(locked, t).expect("attempt");
        }
        assert!(l.begin(locked, t).is_err());
        for i in 0..50u8 {
            let now = t + Duration::from_millis(u64::from(i));
            l.begin(IpAddr::from([10, 0, 0, i]), now)
                .expect("room is made");
            assert!(l.len() <= 4, "{} entries", l.len());
        }
        assert!(
            l.begin(locked, t + Duration::from_secs(1)).is_err(),
            "the lockout ends last, so it was kept"
        );
    }
}
