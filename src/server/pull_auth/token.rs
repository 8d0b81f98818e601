//! Bearer tokens for pull clients. Docker sends credentials only after a challenge on `/v2/`,
//! and after a Basic challenge it refuses to go on without credentials at all; after a Bearer
//! challenge it asks the token endpoint, anonymously when it holds no credentials, and
//! presents what it gets. So tokens are what let one server ask `docker login` users for
//! their password and still serve open upstreams to anonymous Docker clients.
//!
//! A token says who it was issued to (a user, or nobody) and until when, signed with
//! HMAC-SHA256 under a key made at start: nothing to store, nothing to revoke but by
//! restarting (which invalidates every token; clients fetch new ones on the 401). It grants
//! no more than the credentials it was issued for did: scopes are not needed, since every user
//! may pull everything.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use ring::rand::SystemRandom;

/// How long a token is good for: a pull's worth, as registries commonly issue (Docker treats
/// anything under a minute as a minute).
pub const TOKEN_TTL: Duration = Duration::from_secs(300);

/// Who a valid token was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    User(String),
    Anonymous,
}

pub struct TokenSigner {
    key: hmac::Key,
}

impl TokenSigner {
    /// A fresh random key. Failing to get randomness from the OS is not recoverable: without
    /// it no token could be trusted.
    pub fn new() -> Result<TokenSigner, String> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| "the operating system gave no randomness for the token key".to_string())?;
        Ok(TokenSigner { key })
    }

    /// `payload.signature`, both base64url; the payload is `<expiry seconds>:<user>` (empty
    /// for anonymous).
    pub fn issue(&self, holder: &Holder, now: SystemTime) -> String {
        let expiry = seconds(now) + TOKEN_TTL.as_secs();
        let user = match holder {
            Holder::User(u) => u.as_str(),
            Holder::Anonymous => "",
        };
        let payload = format!("{expiry}:{user}");
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The holder of a token this key signed and that has not expired.
    pub fn verify(&self, token: &str, now: SystemTime) -> Option<Holder> {
        let (payload, tag) = token.trim().split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, &payload, &tag).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let (expiry, user) = payload.split_once(':')?;
        if expiry.parse::<u64>().ok()? <= seconds(now) {
            return None;
        }
        Some(match user {
            "" => Holder::Anonymous,
            u => Holder::User(u.to_string()),
        })
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_holder_until_it_expires() {
        let signer = TokenSigner::new().expect("key");
        let now = SystemTime::now();
        let alice = Holder::User("alice".into());
        let t = signer.issue(&alice, now);
        assert_eq!(signer.verify(&t, now), Some(alice));
        assert_eq!(
            signer.verify(&t, now + TOKEN_TTL - Duration::from_secs(1)),
            Some(Holder::User("alice".into()))
        );
        assert_eq!(signer.verify(&t, now + TOKEN_TTL), None, "expired");
        let anon = signer.issue(&Holder::Anonymous, now);
        assert_eq!(signer.verify(&anon, now), Some(Holder::Anonymous));
    }

    #[test]
    fn forged_tampered_and_foreign_tokens_are_refused() {
        let signer = TokenSigner::new().expect("key");
        let other = TokenSigner::new().expect("another key");
        let now = SystemTime::now();
        let t = signer.issue(&Holder::Anonymous, now);
        assert_eq!(other.verify(&t, now), None, "another server's key");
        let (_, tag) = t.split_once('.').expect("two parts");
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("99999999999:alice"));
        assert_eq!(signer.verify(&forged, now), None, "payload changed");
        for garbage in ["", ".", "abc", "a.b", "!!.??"] {
            assert_eq!(signer.verify(garbage, now), None, "{garbage:?}");
        }
    }
}
