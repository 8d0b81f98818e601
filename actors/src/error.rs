//! The engine's one error type. The HTTP edge maps each variant to an OCI error body once.

use crate::oci::OciError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// Why the engine could not produce what was asked. Cloneable so that one failed fetch can be
/// reported to every request that waited on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Invalid(#[from] OciError),
    /// The upstream failed; `upstream` names it so operators know where to look.
    #[error("upstream {upstream}: {source}")]
    Upstream {
        upstream: String,
        source: UpstreamError,
    },
    /// The upstream did not deliver a manifest within `pullTimeout`.
    #[error("upstream {upstream} did not deliver {what} within {millis} ms")]
    PullTimeout {
        upstream: String,
        what: String,
        millis: u128,
    },
    /// The client named an upstream that `allowedUpstreams` does not list; nothing was sent.
    #[error("upstream {0} is not in the server's list of allowed upstreams")]
    UpstreamNotAllowed(String),
    /// Air-gapped mode, or no upstream to ask: the cache is all there is.
    #[error("{0} is not in the cache and the server is air-gapped")]
    NotCached(String),
    /// The upstream sent content that does not match its digest.
    #[error("upstream {upstream} sent {what} whose digest is {actual}, expected {expected}")]
    DigestMismatch {
        upstream: String,
        what: String,
        expected: String,
        actual: String,
    },
    /// The upstream sent a blob whose size is not the one the cached image manifests naming it
    /// state. Either may be wrong (both came from the upstream); the blob is not cached.
    #[error(
        "upstream {upstream} sent blob {digest} {sent}, but the cached manifests naming it \
         state {stated} bytes"
    )]
    SizeMismatch {
        upstream: String,
        digest: String,
        /// The stated size ("N", or "N or M" when manifests disagree).
        stated: String,
        /// What arrived: "with Content-Length N", "of at least N bytes", "of N bytes".
        sent: String,
    },
    /// The blob is larger than `maxBlobSize` allows (by its `Content-Length`, or by what
    /// arrived): refused before a byte past the limit is written.
    #[error("upstream {upstream} sent blob {digest} {sent}, over the server's maxBlobSize of {limit} bytes")]
    BlobTooLarge {
        upstream: String,
        digest: String,
        /// "with Content-Length N", "of more than N bytes".
        sent: String,
        limit: u64,
    },
    /// The cache's storage is at its free-space floor (`minFreeSpace`) or full: new downloads
    /// are refused, cached content is still served.
    #[error("cache storage is full: {0}")]
    InsufficientStorage(String),
    #[error("cache storage: {0}")]
    Store(#[from] StoreError),
    /// An actor went away (only during shutdown).
    #[error("server is shutting down: {0}")]
    Unavailable(String),
}

impl EngineError {
    pub fn upstream(upstream: &str, source: UpstreamError) -> Self {
        EngineError::Upstream {
            upstream: upstream.to_string(),
            source,
        }
    }

    /// Whether the upstream refused our credentials (logged once per upstream by its client,
    /// so callers need not log it per request).
    pub fn is_upstream_denied(&self) -> bool {
        matches!(
            self,
            EngineError::Upstream {
                source: UpstreamError::Denied(_),
                ..
            }
        )
    }

    /// Whether the upstream (or the air gap) says the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            EngineError::NotCached(_)
                | EngineError::Upstream {
                    source: UpstreamError::NotFound,
                    ..
                }
        )
    }
}

impl From<actix::MailboxError> for EngineError {
    fn from(e: actix::MailboxError) -> Self {
        EngineError::Unavailable(e.to_string())
    }
}
