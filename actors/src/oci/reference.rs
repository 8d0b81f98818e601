//! Repository names, tags, and which upstream registry a request is for.
//!
//! Clients name the upstream in one of three ways: containerd's mirror support appends
//! `?ns=<registry>`; docker, podman and skopeo users put it in the path
//! (`ourhost:8080/registry.k8s.io/pause:3.8`); anything else falls back to the configured
//! default upstream. [`ImageRef::route`] applies those rules in that order, so a request is
//! resolved the same way wherever it comes from.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

use super::{Digest, OciError};

/// The registry clients call `docker.io`. Its API lives at [`DOCKER_HUB_ENDPOINT_HOST`] and its
/// one-segment names live under `library/`.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_ENDPOINT_HOST: &str = "registry-1.docker.io";

/// Names Docker Hub is also known by; all of them are cached under [`DOCKER_HUB`].
const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// The distribution spec bounds a repository name (with its registry) to 255 characters.
const MAX_NAME_LEN: usize = 255;

fn name_component() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$").expect("static regex compiles")
    })
}

fn tag_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$").expect("static regex"))
}

fn host_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?$")
            .expect("static regex compiles")
    })
}

/// Compiles the name, tag and host patterns now, so the first request does not wait for it
/// (a few hundred microseconds).
pub fn compile_patterns() {
    let _ = (name_component(), tag_re(), host_re());
}

/// Whether `s` is a registry host as it may appear in `ns=` or a config file: a DNS name or
/// IPv4 address with an optional port.
pub fn is_registry_host(s: &str) -> bool {
    s.len() <= 253 + 6 && host_re().is_match(s)
}

/// A repository path within a registry (`library/nginx`, `kube-scheduler`), validated against
/// the distribution spec's grammar, so it is safe in URLs and log lines.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, OciError> {
        if s.is_empty() {
            return Err(OciError::NameInvalid("empty repository name".into()));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(OciError::NameInvalid(format!(
                "repository name is {} characters long; the limit is {MAX_NAME_LEN}",
                s.len()
            )));
        }
        for component in s.split('/') {
            if !name_component().is_match(component) {
                return Err(OciError::NameInvalid(format!(
                    "{s:?}: path component {component:?} must be lowercase letters and digits \
                     separated by '.', '_', '__' or '-'"
                )));
            }
        }
        Ok(RepoName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// What a manifest request asks for: a tag or a digest.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, OciError> {
        if s.contains(':') {
            return Digest::parse(s).map(Reference::Digest);
        }
        if tag_re().is_match(s) {
            Ok(Reference::Tag(s.to_string()))
        } else {
            Err(OciError::ReferenceInvalid(format!(
                "{s:?} is neither a digest nor a tag (letters, digits, '_', '.', '-'; at most 128)"
            )))
        }
    }

    /// Whether `s` is a tag: what an upstream's tag list may hold. A hostile upstream's list
    /// may hold anything, and a tag goes into our `Link` header and into cache keys.
    pub fn is_tag(s: &str) -> bool {
        !s.contains(':') && tag_re().is_match(s)
    }

    pub fn tag(&self) -> Option<&str> {
        match self {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// A fully resolved image: which registry, which repository, which tag or digest. Its
/// `Display` (`quay.io/a/b:1.0`, `quay.io/a/b@sha256:...`) is the Go server's `imageUrl`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ImageRef {
    pub registry: String,
    pub repo: RepoName,
    pub reference: Reference,
}

impl ImageRef {
    /// Decides which upstream and repository a `/v2/<path_name>/...` request is for.
    ///
    /// Order: `ns` (containerd), then a host-like first path segment (in-path form), then
    /// `default_ns`. Docker Hub names are normalised so `docker.io/nginx`,
    /// `index.docker.io/library/nginx` and `?ns=docker.io` + `nginx` share one cache entry.
    pub fn route(
        path_name: &str,
        ns: Option<&str>,
        default_ns: Option<&str>,
    ) -> Result<(String, RepoName), OciError> {
        let (registry, repo) = match ns.filter(|n| !n.is_empty()) {
            Some(ns) => (ns, path_name),
            None => match path_name.split_once('/') {
                Some((first, rest)) if looks_like_host(first) => (first, rest),
                _ => match default_ns {
                    Some(d) => (d, path_name),
                    None => {
                        return Err(OciError::NameInvalid(format!(
                            "{path_name:?} names no upstream registry: add ?ns=<registry>, put the \
                             registry first in the path (host/{path_name}), or configure a \
                             default upstream"
                        )))
                    }
                },
            },
        };
        if !is_registry_host(registry) {
            return Err(OciError::NameInvalid(format!(
                "{registry:?} is not a registry host name"
            )));
        }
        let mut registry = registry.to_ascii_lowercase();
        let mut repo = repo.to_string();
        if DOCKER_HUB_ALIASES.contains(&registry.as_str()) {
            registry = DOCKER_HUB.to_string();
            if !repo.contains('/') {
                repo = format!("library/{repo}");
            }
        }
        Ok((registry, RepoName::parse(&repo)?))
    }

    /// Parses a full reference as an operator writes it (`registry.k8s.io/pause:3.8`,
    /// `nginx@sha256:...`); a name without a registry is a Docker Hub name.
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let (name, reference) = if let Some((n, d)) = s.split_once('@') {
            (n, Reference::Digest(Digest::parse(d)?))
        } else {
            match s.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n, Reference::parse(t)?),
                _ => (s, Reference::Tag("latest".to_string())),
            }
        };
        let (registry, repo) = ImageRef::route(name, None, Some(DOCKER_HUB))?;
        Ok(ImageRef {
            registry,
            repo,
            reference,
        })
    }

    /// The same repository with another reference.
    pub fn with_reference(&self, reference: Reference) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repo: self.repo.clone(),
            reference,
        }
    }
}

/// The in-path rule shared with docker's reference grammar: a first segment is a registry when
/// it has a dot or a port, or is `localhost`.
fn looks_like_host(segment: &str) -> bool {
    segment.contains('.') || segment.contains(':') || segment == "localhost"
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Reference::Tag(t) => write!(f, "{}/{}:{}", self.registry, self.repo, t),
            Reference::Digest(d) => write!(f, "{}/{}@{}", self.registry, self.repo, d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tags_are_tags() {
        for good in ["v1", "latest", "1.2.3-rc_1", &"a".repeat(128)] {
            assert!(Reference::is_tag(good), "{good}");
        }
        for bad in [
            "",
            "-v1",
            ".v1",
            "a b",
            "v1\r\nX: y",
            "a&last=b",
            "sha256:abc",
            &"a".repeat(129),
        ] {
            assert!(!Reference::is_tag(bad), "{bad:?}");
        }
    }

    fn route(p: &str, ns: Option<&str>, def: Option<&str>) -> Result<(String, String), OciError> {
        ImageRef::route(p, ns, def).map(|(r, n)| (r, n.to_string()))
    }

    #[test]
    fn ns_parameter_wins_over_a_host_in_the_path() {
        assert_eq!(
            route("quay.io/a/b", Some("registry.k8s.io"), None).unwrap(),
            ("registry.k8s.io".into(), "quay.io/a/b".into())
        );
    }

    #[test]
    fn in_path_host_is_recognised_by_dot_port_or_localhost() {
        assert_eq!(
            route("registry.k8s.io/pause", None, None).unwrap().0,
            "registry.k8s.io"
        );
        assert_eq!(
            route("myreg:5000/x/y", None, None).unwrap(),
            ("myreg:5000".into(), "x/y".into())
        );
        assert_eq!(route("localhost/x", None, None).unwrap().0, "localhost");
    }

    #[test]
    fn default_ns_applies_only_when_nothing_names_an_upstream() {
        assert_eq!(
            route("calico/node", None, Some("docker.io")).unwrap(),
            ("docker.io".into(), "calico/node".into())
        );
        assert!(matches!(
            route("calico/node", None, None),
            Err(OciError::NameInvalid(_))
        ));
    }

    #[test]
    fn docker_hub_one_segment_names_get_library() {
        assert_eq!(
            route("nginx", Some("docker.io"), None).unwrap().1,
            "library/nginx"
        );
        assert_eq!(
            route("index.docker.io/nginx", None, None).unwrap(),
            ("docker.io".into(), "library/nginx".into())
        );
        assert_eq!(
            route("nginx", None, Some("docker.io")).unwrap().1,
            "library/nginx"
        );
        assert_eq!(route("nginx", Some("quay.io"), None).unwrap().1, "nginx");
    }

    #[test]
    fn malformed_names_are_name_invalid() {
        let long = "a".repeat(300);
        for bad in [
            "Upper/case",
            "a/../b",
            "a//b",
            "a/",
            "-a",
            "a b",
            "a/.",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    route(bad, Some("quay.io"), None),
                    Err(OciError::NameInvalid(_))
                ),
                "{bad:?} accepted"
            );
        }
        assert!(route("x", Some("bad host/"), None).is_err());
        assert!(route("x", Some("http://quay.io"), None).is_err());
    }

    #[test]
    fn references_parse_tags_and_digests() {
        assert_eq!(
            Reference::parse("v1.29.1").unwrap(),
            Reference::Tag("v1.29.1".into())
        );
        assert!(matches!(
            Reference::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            Reference::Digest(_)
        ));
        for bad in [
            "",
            ".x",
            "has space",
            &"t".repeat(129),
            "sha256:xyz",
            "../x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn image_ref_parse_and_display_round_trip() {
        let r = ImageRef::parse("registry.k8s.io/pause:3.8").unwrap();
        assert_eq!(r.to_string(), "registry.k8s.io/pause:3.8");
        assert_eq!(
            ImageRef::parse("nginx").unwrap().to_string(),
            "docker.io/library/nginx:latest"
        );
        let d = format!("sha256:{}", "b".repeat(64));
        let r = ImageRef::parse(&format!("myreg:5000/a/b@{d}")).unwrap();
        assert_eq!(r.to_string(), format!("myreg:5000/a/b@{d}"));
    }
}
