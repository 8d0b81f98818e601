//! Which upstream registries clients may make us contact.
//!
//! Clients choose the upstream (`?ns=`, or a host as the first path segment), so without a
//! limit the server connects wherever a client says. An [`Allowlist`] holds the patterns an
//! operator permits: an exact registry (`quay.io`, `myreg:5000`) or a wildcard over its
//! subdomains (`*.k8s.io`), each with an optional port. Matching is case-insensitive, and a
//! pattern without a port matches only names without one, so allowing a host never opens its
//! other ports.

use std::fmt;

/// One allowed registry or family of registries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamPattern {
    /// `true` for `*.suffix`: any name ending in `.suffix` (not `suffix` itself).
    wildcard: bool,
    /// Lowercase host, without the `*.` of a wildcard.
    host: String,
    port: Option<u16>,
}

impl UpstreamPattern {
    /// Parses `host`, `host:port`, `*.domain` or `*.domain:port`.
    pub fn parse(text: &str) -> Result<UpstreamPattern, String> {
        let bad = |why: &str| {
            Err(format!(
                "\"{text}\" is not an upstream pattern: {why}; expected a registry host with an \
                 optional port (quay.io, myreg:5000) or *.domain (*.k8s.io)"
            ))
        };
        let lower = text.trim().to_ascii_lowercase();
        if lower.is_empty() {
            return bad("it is empty");
        }
        if lower.contains("://") || lower.contains('/') {
            return bad("write only the host, without scheme or path");
        }
        let (host, port) = match lower.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(n) if n > 0 => (h.to_string(), Some(n)),
                _ => return bad("the port must be a number from 1 to 65535"),
            },
            None => (lower.clone(), None),
        };
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, host),
        };
        if host.contains('*') {
            return bad("'*' is only allowed as the whole first label, as in *.example.com");
        }
        let valid = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return bad("the host may only contain letters, digits, '.' and '-'");
        }
        Ok(UpstreamPattern {
            wildcard,
            host,
            port,
        })
    }

    /// Whether `registry` (`host` or `host:port`, as clients name it) matches.
    pub fn matches(&self, registry: &str) -> bool {
        let registry = registry.to_ascii_lowercase();
        let (host, port) = match registry.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(n) => (h, Some(n)),
                Err(_) => return false,
            },
            None => (registry.as_str(), None),
        };
        if port != self.port {
            return false;
        }
        if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

impl fmt::Display for UpstreamPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// The upstreams clients may name; anything else is refused before any connection is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowlist {
    patterns: Vec<UpstreamPattern>,
}

impl Allowlist {
    pub fn new(patterns: Vec<UpstreamPattern>) -> Self {
        Allowlist { patterns }
    }

    /// Parses every pattern; the error names the first bad one.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Allowlist, String> {
        items
            .iter()
            .map(|s| UpstreamPattern::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Allowlist::new)
    }

    pub fn allows(&self, registry: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(registry))
    }

    pub fn patterns(&self) -> &[UpstreamPattern] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Allowlist {
        Allowlist::parse(items).unwrap()
    }

    #[test]
    fn exact_hosts_match_case_insensitively_and_nothing_else() {
        let a = list(&["quay.io", "Registry-1.Docker.io"]);
        assert!(a.allows("quay.io"));
        assert!(a.allows("QUAY.IO"));
        assert!(a.allows("registry-1.docker.io"));
        assert!(!a.allows("quay.io.evil.example"));
        assert!(!a.allows("xquay.io"));
        assert!(!a.allows("sub.quay.io"));
        assert!(!a.allows("127.0.0.1"));
    }

    #[test]
    fn ports_must_match_exactly() {
        let a = list(&["quay.io", "myreg:5000"]);
        assert!(!a.allows("quay.io:443"));
        assert!(!a.allows("quay.io:22"));
        assert!(a.allows("myreg:5000"));
        assert!(!a.allows("myreg"));
        assert!(!a.allows("myreg:5001"));
        assert!(!a.allows("myreg:x"));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let a = list(&["*.k8s.io", "*.example.com:8443"]);
        assert!(a.allows("registry.k8s.io"));
        assert!(a.allows("a.b.k8s.io"));
        assert!(!a.allows("k8s.io"));
        assert!(!a.allows("evilk8s.io"));
        assert!(!a.allows("registry.k8s.io:5000"));
        assert!(a.allows("r.example.com:8443"));
        assert!(!a.allows("r.example.com"));
    }

    #[test]
    fn bad_patterns_are_rejected_with_the_reason() {
        for bad in [
            "",
            "https://quay.io",
            "quay.io/x",
            "*",
            "*quay.io",
            "a.*.io",
            "quay.io:0",
            "quay.io:http",
            "a b",
            "-a.io",
        ] {
            let e = UpstreamPattern::parse(bad).unwrap_err();
            assert!(e.contains("not an upstream pattern"), "{bad}: {e}");
        }
        let e = Allowlist::parse(&["quay.io", "a..b"]).unwrap_err();
        assert!(e.contains("a..b"), "{e}");
    }

    #[test]
    fn patterns_display_as_written() {
        for p in ["quay.io", "myreg:5000", "*.k8s.io", "*.example.com:8443"] {
            assert_eq!(UpstreamPattern::parse(p).unwrap().to_string(), p);
        }
    }
}
