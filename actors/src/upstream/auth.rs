//! Upstream authentication: basic credentials, and the bearer-token challenge that Docker Hub,
//! ghcr.io and quay.io answer anonymous requests with.
//!
//! A registry says how to get a token in `WWW-Authenticate: Bearer realm="...",service="...",
//! scope="..."`. We ask the realm (GET, with basic credentials when configured; the OAuth2
//! password grant by POST when the GET with credentials is refused), cache the token per scope
//! until it expires, and retry the request once with it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::config::Credentials;

/// The OAuth2 `client_id` sent with password grants.
pub const CLIENT_ID: &str = "ociregistry";

/// Tokens are small; anything larger is not a token response.
pub const MAX_TOKEN_RESPONSE: usize = 256 * 1024;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

impl Challenge {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

/// Parses one or more challenges from a `WWW-Authenticate` value. Quoted values may contain
/// commas (`scope="repository:a:pull,push"`) and escaped quotes.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut chars = header.trim().chars().peekable();
    loop {
        // Skip separators.
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        // Read a token (scheme or param name).
        let mut token = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == ',' {
                break;
            }
            token.push(c);
            chars.next();
        }
        if token.is_empty() {
            break;
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&'=') {
            chars.next();
            while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
                chars.next();
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n)
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' || c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            if let Some(ch) = out.last_mut() {
                ch.params.insert(token.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: HashMap::new(),
            });
        }
    }
    out
}

/// The `Authorization` value for basic credentials.
pub fn basic_header(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.user, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[derive(Deserialize)]
pub struct TokenResponse {
    pub token: Option<String>,
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
}

/// Bearer tokens by scope, valid until their expiry (less a margin, so a token never expires
/// between our check and the upstream's).
#[derive(Default)]
pub struct TokenCache {
    tokens: HashMap<String, (String, Instant)>,
}

impl TokenCache {
    pub fn get(&self, scope: &str) -> Option<&str> {
        self.tokens
            .get(scope)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.as_str())
    }

    pub fn put(&mut self, scope: &str, token: String, expires_in: Option<u64>) {
        let until = Instant::now() + Self::lifetime(expires_in);
        self.tokens.insert(scope.to_string(), (token, until));
    }

    /// How long a token is used: its `expires_in` (60 s, the distribution spec's default, when
    /// the server names none), less a tenth of it, at most 5 s, so it is not sent just as it
    /// expires. Short-lived tokens are honoured as they are.
    fn lifetime(expires_in: Option<u64>) -> Duration {
        let secs = expires_in.filter(|s| *s > 0).unwrap_or(60);
        let margin = (secs / 10).min(5);
        Duration::from_secs(secs - margin)
    }

    pub fn forget(&mut self, scope: &str) {
        self.tokens.remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_commas_inside_quoted_scope() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn several_challenges_and_unquoted_values() {
        let c = parse_challenges(r#"Basic realm="x", Bearer realm=https://t/tok, service=s"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[1].param("realm"), Some("https://t/tok"));
        assert_eq!(c[1].param("service"), Some("s"));
    }

    #[test]
    fn escaped_quotes_survive_and_garbage_does_not_panic() {
        let c = parse_challenges(r#"Bearer realm="a\"b""#);
        assert_eq!(c[0].param("realm"), Some("a\"b"));
        for junk in [
            "",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            ",,,",
            "Bearer ===",
        ] {
            let _ = parse_challenges(junk);
        }
    }

    #[test]
    fn token_lifetimes_follow_expires_in() {
        assert_eq!(TokenCache::lifetime(None), Duration::from_secs(55));
        assert_eq!(TokenCache::lifetime(Some(0)), Duration::from_secs(55));
        assert_eq!(TokenCache::lifetime(Some(300)), Duration::from_secs(295));
        assert_eq!(TokenCache::lifetime(Some(20)), Duration::from_secs(18));
        assert_eq!(TokenCache::lifetime(Some(3)), Duration::from_secs(3));
    }

    #[test]
    fn tokens_are_cached_per_scope_and_forgotten_on_demand() {
        let mut cache = TokenCache::default();
        cache.put("repository:a:pull", "ta".into(), Some(60));
        cache.put("repository:b:pull", "tb".into(), Some(60));
        assert_eq!(cache.get("repository:a:pull"), Some("ta"));
        assert_eq!(cache.get("repository:b:pull"), Some("tb"));
        assert_eq!(cache.get("repository:c:pull"), None);
        cache.forget("repository:a:pull");
        assert_eq!(cache.get("repository:a:pull"), None);
        assert_eq!(cache.get("repository:b:pull"), Some("tb"));
        cache.put("repository:b:pull", "tb2".into(), Some(60));
        assert_eq!(cache.get("repository:b:pull"), Some("tb2"));
    }

    #[test]
    fn expired_tokens_are_not_returned() {
        let mut cache = TokenCache::default();
        cache.put("s", "t".into(), Some(3600));
        assert_eq!(cache.get("s"), Some("t"));
        cache
            .tokens
            .insert("old".into(), ("x".into(), Instant::now()));
        assert_eq!(cache.get("old"), None);
    }
}
