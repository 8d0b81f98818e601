//! The pull API's paths, split by hand.
//!
//! A repository name may hold any number of slashes, so what a path under `/v2/` asks for is
//! read from its end: `<name>/manifests/<reference>`, `<name>/blobs/<digest>`,
//! `<name>/referrers/<digest>` and `<name>/tags/list`. actix-web's router would match these as
//! `{name:.+}` patterns, which it does with a regex capture on every request: on cache hits
//! that was the router's largest cost (BENCHMARKS.md). Splitting at the last two slashes gives
//! the very answers those patterns gave: the name is everything before the last two segments
//! and is not empty, and the last segment is not empty. What the parts may hold is for
//! `RepoName`, `Reference` and `Digest` to say.

use actors::oci::{Digest, Reference};

/// What a path under `/v2` asks for. The parts are slices of the path, still to be validated
/// (`RepoName`, `Reference`, `Digest`) by whoever reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPath<'a> {
    /// `/v2` or `/v2/`: the API version check.
    Version,
    Manifest {
        name: &'a str,
        reference: &'a str,
    },
    Blob {
        name: &'a str,
        digest: &'a str,
    },
    Referrers {
        name: &'a str,
        digest: &'a str,
    },
    Tags {
        name: &'a str,
    },
}

impl<'a> PullPath<'a> {
    /// `path` is the request's whole path, `/v2/...`; `None` for every path the pull API does
    /// not serve.
    pub fn parse(path: &'a str) -> Option<PullPath<'a>> {
        if path == "/v2" || path == "/v2/" {
            return Some(PullPath::Version);
        }
        let (head, last) = path.strip_prefix("/v2/")?.rsplit_once('/')?;
        let (name, kind) = head.rsplit_once('/')?;
        if name.is_empty() || last.is_empty() {
            return None;
        }
        match kind {
            "manifests" => Some(PullPath::Manifest {
                name,
                reference: last,
            }),
            "blobs" => Some(PullPath::Blob { name, digest: last }),
            "referrers" => Some(PullPath::Referrers { name, digest: last }),
            "tags" if last == "list" => Some(PullPath::Tags { name }),
            _ => None,
        }
    }

    /// The repository name the path names; `None` for the version check.
    pub fn name(self) -> Option<&'a str> {
        match self {
            PullPath::Version => None,
            PullPath::Manifest { name, .. }
            | PullPath::Blob { name, .. }
            | PullPath::Referrers { name, .. }
            | PullPath::Tags { name } => Some(name),
        }
    }

    /// The digest the path addresses (a blob, a manifest by digest, a referrers subject), if
    /// it names a valid one.
    pub fn digest(self) -> Option<Digest> {
        match self {
            PullPath::Blob { digest, .. } | PullPath::Referrers { digest, .. } => {
                Digest::parse(digest).ok()
            }
            PullPath::Manifest { reference, .. } => match Reference::parse(reference) {
                Ok(Reference::Digest(d)) => Some(d),
                _ => None,
            },
            PullPath::Version | PullPath::Tags { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::dev::{Path, ResourceDef};

    use super::PullPath;

    /// The patterns the pull API was routed by, in the order they were tried.
    const PATTERNS: [&str; 4] = [
        "/v2/{name:.+}/manifests/{reference}",
        "/v2/{name:.+}/referrers/{digest}",
        "/v2/{name:.+}/tags/list",
        "/v2/{name:.+}/blobs/{digest}",
    ];

    /// What actix-web's router makes of `path`, as a `PullPath`.
    fn routed(path: &str) -> Option<PullPath<'_>> {
        if path == "/v2" || path == "/v2/" {
            return Some(PullPath::Version);
        }
        for (i, pattern) in PATTERNS.iter().enumerate() {
            let def = ResourceDef::new(*pattern);
            let mut p = Path::new(path);
            if !def.capture_match_info(&mut p) {
                continue;
            }
            let at = |key: &str| {
                let v = p.get(key)?;
                let start = v.as_ptr() as usize - path.as_ptr() as usize;
                path.get(start..start + v.len())
            };
            let name = at("name")?;
            return Some(match i {
                0 => PullPath::Manifest {
                    name,
                    reference: at("reference")?,
                },
                1 => PullPath::Referrers {
                    name,
                    digest: at("digest")?,
                },
                2 => PullPath::Tags { name },
                _ => PullPath::Blob {
                    name,
                    digest: at("digest")?,
                },
            });
        }
        None
    }

    #[test]
    fn splits_as_the_routers_patterns_did() {
        let paths = [
            "/v2",
            "/v2/",
            "/v2//",
            "/v2/a",
            "/v2/a/",
            "/v2/library/hello-world/manifests/latest",
            "/v2/registry.k8s.io/pause/manifests/3.8",
            "/v2/a/manifests/sha256:0123",
            "/v2/a/manifests/",
            "/v2/manifests/latest",
            "/v2//manifests/latest",
            "/v2/a//manifests/latest",
            "/v2/a/manifests/x/blobs/y",
            "/v2/a/blobs/manifests/x",
            "/v2/a/blobs/sha256:abc",
            "/v2/a/blobs/uploads/",
            "/v2/a/blobs/uploads/uuid",
            "/v2/a/tags/list",
            "/v2/a/tags/list/",
            "/v2/a/tags/lists",
            "/v2/tags/list",
            "/v2/a/b/c/referrers/sha256:abc",
            "/v2/a/referrers/",
            "/v2/a\n/manifests/latest",
            "/v2/a/manifests/lat\nest",
            "/v2/a/manifests/latest\n",
            "/v2/token",
            "/v2/a/b/c/d/e/f/manifests/tag",
            "/v2/%2e%2e/manifests/x",
            "/v2/a/manifests/x?y",
            "/v3/a/manifests/x",
            "/v2a/manifests/x",
            "/",
            "",
        ];
        for path in paths {
            assert_eq!(PullPath::parse(path), routed(path), "{path:?}");
        }
    }

    #[test]
    fn a_manifest_by_digest_and_a_blob_address_content() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for path in [
            format!("/v2/a/manifests/{digest}"),
            format!("/v2/a/blobs/{digest}"),
            format!("/v2/a/referrers/{digest}"),
        ] {
            let found = PullPath::parse(&path).and_then(PullPath::digest);
            assert_eq!(found.map(|d| d.to_string()), Some(digest.clone()), "{path}");
        }
        for path in [
            "/v2/a/manifests/latest",
            "/v2/a/tags/list",
            "/v2/",
            "/v2/a/blobs/x",
        ] {
            assert_eq!(
                PullPath::parse(path).and_then(PullPath::digest),
                None,
                "{path}"
            );
        }
    }

    #[test]
    fn the_name_is_everything_before_the_last_two_segments() {
        assert_eq!(
            PullPath::parse("/v2/registry.k8s.io/a/b/blobs/sha256:x").and_then(PullPath::name),
            Some("registry.k8s.io/a/b")
        );
        assert_eq!(PullPath::parse("/v2/").and_then(PullPath::name), None);
    }
}
