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
    /// The upstream was found unreachable a moment ago and is not asked again until
    /// `retry_after_secs` have passed (its breaker is open): the request fails at once rather
    /// than waiting out a timeout.
    #[error(
        "upstream {upstream} is unreachable ({why}); not asking it again for {retry_after_secs} s"
    )]
    UpstreamUnreachable {
        upstream: String,
        why: String,
        retry_after_secs: u32,
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
    /// The operation is not available on this kind of store (pruning a shared bucket).
    #[error("{0}")]
    NotSupported(String),
    /// Another replica of the shared store runs a task one replica at a time may run.
    #[error("{0}")]
    Busy(String),
    /// Another replica of the shared store fetches it and has not finished.
    #[error("{0}")]
    FetchedElsewhere(String),
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

    /// How an upstream request's result reads for the upstream's breaker; `None` when no
    /// upstream was asked.
    pub fn breaker_outcome(
        result: &Result<impl Sized, EngineError>,
    ) -> Option<crate::breaker::Outcome> {
        use crate::breaker::Outcome;
        let e = match result {
            Ok(_) => return Some(Outcome::Answered),
            Err(e) => e,
        };
        match e {
            EngineError::PullTimeout { .. } => Some(Outcome::Unreachable(e.to_string())),
            EngineError::Upstream { source, .. } => Some(match source {
                UpstreamError::Connect(_) | UpstreamError::Timeout(_) => {
                    Outcome::Unreachable(source.to_string())
                }
                UpstreamError::TooManyRequests {
                    retry_after: Some(r),
                    ..
                }
                | UpstreamError::Unavailable {
                    retry_after: Some(r),
                    ..
                } => Outcome::Wait(
                    std::time::Duration::from_secs(u64::from(r.seconds())),
                    source.to_string(),
                ),
                _ => Outcome::Answered,
            }),
            // The upstream answered; what it sent was wrong.
            EngineError::DigestMismatch { .. }
            | EngineError::SizeMismatch { .. }
            | EngineError::BlobTooLarge { .. } => Some(Outcome::Answered),
            _ => None,
        }
    }

    /// How loudly a failure that the cache answers for (stale copy, kept list) is logged: an
    /// open breaker was logged once when it opened, and refused credentials once per upstream,
    /// so neither is repeated per request.
    pub fn fallback_log_level(&self) -> log::Level {
        match self {
            EngineError::UpstreamUnreachable { .. } => log::Level::Debug,
            e if e.is_upstream_denied() => log::Level::Debug,
            _ => log::Level::Warn,
        }
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
