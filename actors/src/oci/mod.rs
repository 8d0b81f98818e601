//! The OCI vocabulary: digests, repository names and references, media types, manifests, and
//! the rules that turn a request into an upstream registry and repository.

mod digest;

pub use digest::Digest;

/// Malformed input, caught where it enters the engine. Each variant is one OCI error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("invalid digest: {0}")]
    DigestInvalid(String),
    #[error("invalid tag or reference: {0}")]
    ReferenceInvalid(String),
    #[error("invalid manifest: {0}")]
    ManifestInvalid(String),
}
