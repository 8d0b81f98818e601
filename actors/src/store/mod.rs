//! Storage: what the cache asks of the place its blobs and manifests live, and the filesystem
//! that answers today.
//!
//! The engine holds an `Arc<dyn Store>` and never learns a path or a key: it names blobs by
//! digest and manifests by their [`ManifestHolder`]. Every method returns a future, so a store
//! whose work blocks (the filesystem) does it on the blocking pool and one that is remote (an
//! object store) awaits its client; either way an actor that awaits it never stalls its
//! mailbox.
//!
//! A blob enters in three steps so that nothing unverified is ever visible: [`Store::create_blob`]
//! gives a [`BlobWriter`] that streams into a staging place while hashing; its
//! [`verify`](BlobWriter::verify) checks the digest (readers may then finish); the
//! [`VerifiedBlob::persist`] makes it durable and visible under its digest. Readers of a
//! download in progress open its [`Staged`] handle; readers of a stored blob open it with
//! [`Store::open_blob`]. Both give a [`BlobFile`].
//!
//! # Layout
//! - `fs.rs`: [`FsStore`], the on-disk cache in the Go server's layout (documented there).
//! - `blob_writer.rs`: streaming a blob in; `blob_file.rs`: reading one out.
//! - `holder.rs`: the manifest file format ([`ManifestHolder`]) and its times.
//! - `lock.rs`: the [`CacheLock`] that keeps two writers off one directory.
//! - `s3/`: [`S3Store`], the cache in an S3-compatible bucket shared by several replicas.
//! - `lease.rs`: [`Claim`] and [`Lease`], how processes sharing a store agree on who fetches.

mod blob_file;
mod blob_writer;
mod fs;
mod holder;
mod lease;
mod lock;
mod s3;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub use blob_file::{BlobFile, Staged};
pub use blob_writer::{BlobWriter, VerifiedBlob};
pub use fs::{FsStore, BLOBS_DIR, FAT_DIR, IMG_DIR, LTS_DIR, REFERRERS_DIR, TMP_DIR};
pub use holder::{
    format_time, now_local, parse_time, tag_of_image_url, to_local, ManifestHolder, ManifestKind,
};
pub use lease::{Claim, Lease};
pub use lock::{CacheLock, LockError, LOCK_FILE};
pub use s3::S3Store;

use crate::oci::Digest;

/// What a [`Store`] method's future resolves to.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// What the cache needs from storage. One implementation per kind of storage; the engine holds
/// it as `Arc<dyn Store>`.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Where the cache lives, for log lines (a directory, a bucket).
    fn location(&self) -> String;

    /// Every manifest kept, with the ones that could not be read reported, not fatal.
    fn load_manifests(&self) -> StoreFuture<'_, LoadedCache>;

    /// Writes (or replaces) manifests, in order, each atomically: a crash leaves the old or the
    /// new version of each. Refuses a holder whose bytes do not hash to its digest.
    fn write_manifests(&self, holders: Vec<ManifestHolder>) -> StoreFuture<'_, ()>;

    /// Removes a manifest; `false` when there was none.
    fn remove_manifest(&self, digest: Digest) -> StoreFuture<'_, bool>;

    /// Keeps the referrers list of `subject` (an OCI image index), for the air gap.
    fn write_referrers(&self, subject: Digest, index: Vec<u8>) -> StoreFuture<'_, ()>;

    /// The kept referrers list of `subject`, if any.
    fn read_referrers(&self, subject: Digest) -> StoreFuture<'_, Option<Vec<u8>>>;

    /// Every stored blob with its size.
    fn list_blobs(&self) -> StoreFuture<'_, Vec<(Digest, u64)>>;

    /// Starts putting a blob: bytes go to a staging place, hashed on the way.
    fn create_blob(&self) -> StoreFuture<'_, BlobWriter>;

    /// A stored blob, positioned at `offset`, for reading.
    fn open_blob(&self, digest: Digest, offset: u64) -> StoreFuture<'_, BlobFile>;

    /// The digest and length of what is stored under `digest` (`None`: nothing readable
    /// there). Hashes every byte: for blobs whose content is not yet trusted.
    fn check_blob(&self, digest: Digest) -> StoreFuture<'_, Option<(Digest, u64)>>;

    /// Removes a blob; `false` when there was none. A reader that has it open keeps reading.
    fn remove_blob(&self, digest: Digest) -> StoreFuture<'_, bool>;

    /// How much room is left, for the free-space floor; `None` for storage without a notion of
    /// it.
    fn space(&self) -> StoreFuture<'_, Option<Space>>;

    /// Whether other processes write to this store at the same time (replicas on one bucket):
    /// then the engine looks in the store before the upstream, and picks up what the others
    /// wrote ([`Store::changed_manifests`]).
    fn is_shared(&self) -> bool {
        false
    }

    /// Whether a blob found in the store can be served without hashing it first. A file on
    /// disk cannot (a power cut, or a cache written without fsync, leaves damaged files); an
    /// object store makes an object visible only whole, and this cache uploads only verified
    /// blobs.
    fn trusts_stored_blobs(&self) -> bool {
        false
    }

    /// Who fetches `digest` (see [`Claim`]). A store of one process: always this one.
    fn claim_blob(&self, digest: Digest) -> StoreFuture<'_, Claim> {
        let _ = digest;
        Box::pin(async { Ok(Claim::Fetch(None)) })
    }

    /// The manifests other processes wrote or changed since the last call (the first call:
    /// since [`Store::load_manifests`]), and in [`LoadedCache::removed`] the ones they
    /// removed. A store of one process: none.
    fn changed_manifests(&self) -> StoreFuture<'_, LoadedCache> {
        Box::pin(async { Ok(LoadedCache::default()) })
    }

    /// Who fetches the manifest `digest` from the upstream (see [`Claim`]; `Stored` when the
    /// store holds it already). A store of one process: always this one, without a lease.
    fn claim_manifest(&self, digest: Digest) -> StoreFuture<'_, Claim> {
        let _ = digest;
        Box::pin(async { Ok(Claim::Fetch(None)) })
    }

    /// Who runs a task that one process of the store at a time may run (`prune`): a lease, as
    /// for a blob's download ([`Claim::Fetch`]), or the holder's name ([`Claim::Elsewhere`]).
    /// A store of one process: always this one, without a lease.
    fn claim_task(&self, task: &'static str) -> StoreFuture<'_, Claim> {
        let _ = task;
        Box::pin(async { Ok(Claim::Fetch(None)) })
    }

    /// Every stored blob with its size and how long ago it was stored, for a prune that
    /// decides over the whole store rather than what this process saw. A store that does not
    /// know when answers `Duration::MAX`: older than any grace.
    fn list_blobs_with_age(&self) -> StoreFuture<'_, Vec<(Digest, u64, Duration)>> {
        Box::pin(async move {
            let listed = self.list_blobs().await?;
            Ok(listed
                .into_iter()
                .map(|(d, size)| (d, size, Duration::MAX))
                .collect())
        })
    }
}

/// The room on a store's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes this process may still write.
    pub available: u64,
    /// The filesystem's size.
    pub total: u64,
}

/// Failures of a store. Each names the file (or object) it concerns. Cloneable, since one
/// failed download is reported to every reader that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("blob digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("refusing to write manifest {}: its bytes hash to {actual}", path.display())]
    ManifestDigestMismatch { path: PathBuf, actual: Digest },
    #[error("{}: cannot serialize manifest: {source}", path.display())]
    Serialize {
        path: PathBuf,
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// An object store request failed (after the client's own retries).
    #[error("object store, {key}: {source}")]
    Object {
        key: String,
        #[source]
        source: Arc<object_store::Error>,
    },
    /// The object store cannot be used at all (checked at start).
    #[error("{0}")]
    Setup(String),
    /// The blocking task doing the work was lost (only when the runtime shuts down).
    #[error("storage task failed: {0}")]
    Task(String),
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn object(key: &object_store::path::Path, source: object_store::Error) -> Self {
        StoreError::Object {
            key: key.to_string(),
            source: Arc::new(source),
        }
    }

    /// Whether the storage could not be reached or answered with a failure of its own (not
    /// a missing object): the request may succeed later, so clients are told to retry.
    pub fn is_unavailable(&self) -> bool {
        use object_store::Error as E;
        match self {
            StoreError::Object { source, .. } => !matches!(
                **source,
                E::NotFound { .. } | E::AlreadyExists { .. } | E::InvalidPath { .. }
            ),
            _ => false,
        }
    }

    /// Whether the object (or file) asked for is not there.
    pub fn is_not_found(&self) -> bool {
        match self {
            StoreError::Object { source, .. } => {
                matches!(**source, object_store::Error::NotFound { .. })
            }
            StoreError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// Whether the storage is out of space (the disk is full, or a quota is reached).
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
    }
}

/// Two failures are the same when they say the same: the I/O errors inside cannot be compared.
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for StoreError {}

/// A manifest that could not be loaded, and why. Never fatal to the load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadProblem {
    /// The file (or object) it was read from.
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Everything [`Store::load_manifests`] found.
#[derive(Debug, Default)]
pub struct LoadedCache {
    /// One holder per manifest digest. A digest found in more than one place is merged:
    /// tags united, earliest `created`, latest `pulled`.
    pub holders: Vec<ManifestHolder>,
    /// Files skipped, with the reason.
    pub problems: Vec<LoadProblem>,
    /// Manifests another process removed ([`Store::changed_manifests`] only).
    pub removed: Vec<Digest>,
}
