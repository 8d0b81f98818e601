//! The OCI vocabulary: digests, repository names and references, media types, manifests, and
//! the rules that turn a request into an upstream registry and repository.

mod digest;
mod manifest;
mod platform;
mod reference;

pub use digest::Digest;
pub use manifest::{
    accepted_types, Descriptor, Manifest, ManifestKind, Platform, DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST,
};
pub use platform::{host_arch, host_os, PlatformSpec, Platforms};
pub use reference::{
    compile_patterns, is_registry_host, ImageRef, Reference, RepoName, DOCKER_HUB,
    DOCKER_HUB_ENDPOINT_HOST,
};

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
