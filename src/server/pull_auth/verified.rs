//! Credentials that passed bcrypt recently. A pull is dozens of requests (a manifest list, a
//! manifest per platform, every layer), each carrying the same Basic credentials; bcrypt costs
//! ~50-100 ms of CPU each time, by design. So a success is remembered for a few minutes and the
//! next requests with the same user and password skip it.
//!
//! The key is the user and the sha256 of the password, so the table holds no password. The
//! htpasswd file is read once at start, so nothing can make a remembered success stale before
//! it expires. Bounded: when full, expired entries go, then the one expiring soonest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// How long a verified user and password are taken on trust: a pull's worth of requests, and
/// short enough that a client that stops pulling is checked again when it comes back.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Distinct credentials remembered at once: far more users than a pull cache has.
pub const DEFAULT_CAPACITY: usize = 1024;

type Key = (String, [u8; 32]);

pub struct VerifiedCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<Key, Instant>>,
}

impl VerifiedCache {
    pub fn new(ttl: Duration, capacity: usize) -> VerifiedCache {
        VerifiedCache {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `user` and `password` passed bcrypt within the TTL.
    pub fn contains(&self, user: &str, password: &str, now: Instant) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&key(user, password))
            .is_some_and(|expiry| *expiry > now)
    }

    /// Remembers a success.
    pub fn insert(&self, user: &str, password: &str, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(user, password);
        if !entries.contains_key(&k) && entries.len() >= self.capacity {
            entries.retain(|_, expiry| *expiry > now);
            while entries.len() >= self.capacity {
                let Some(soonest) = entries
                    .iter()
                    .min_by_key(|(_, expiry)| **expiry)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                entries.remove(&soonest);
            }
        }
        entries.insert(k, now + self.ttl);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key(user: &str, password: &str) -> Key {
    (user.to_string(), Sha256::digest(password.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_is_remembered_until_it_expires_and_only_for_that_password() {
        let c = VerifiedCache::new(Duration::from_secs(300), 8);
        let t = Instant::now();
        assert!(!c.contains("alice", "right", t));
        c.insert("alice", "right", t);
        assert!(c.contains("alice", "right", t + Duration::from_secs(299)));
        assert!(!c.contains("alice", "wrong", t));
        assert!(!c.contains("bob", "right", t), "keyed by user too");
        assert!(!c.contains("alice", "right", t + Duration::from_secs(300)));
    }

    #[test]
    fn the_table_is_bounded() {
        let c = VerifiedCache::new(Duration::from_secs(300), 3);
        let t = Instant::now();
        for i in 0..20u64 {
            c.insert(&format!("user{i}"), "pw", t + Duration::from_secs(i));
            assert!(c.len() <= 3);
        }
        let end = t + Duration::from_secs(19);
        assert!(c.contains("user19", "pw", end), "the newest is kept");
        assert!(!c.contains("user0", "pw", end), "the oldest went");
    }
}
