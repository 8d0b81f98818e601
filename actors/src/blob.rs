//! What the cache says about blobs, shared by the actors that track them, the download that
//! fetches them and the reader that serves them: below all three, so none imports another for
//! a type.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::watch;

use crate::error::EngineError;
use crate::oci::{Digest, RepoName};
use crate::store::Staged;

/// How far a download has got; published on a `watch` channel that readers follow.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Waiting for a free upstream connection or the response head.
    Queued,
    /// Bytes are landing in `staged`; `written` of them are in it.
    Receiving {
        staged: Staged,
        written: u64,
        total: Option<u64>,
    },
    /// Every byte is in `staged` and hashes to the digest: readers may send the last byte. The
    /// fsync and the rename into `blobs/` (which make it durable) are still under way; a
    /// client need not wait for them, since nothing it gets can be wrong any more.
    Verified {
        staged: Staged,
        size: u64,
    },
    /// Verified and renamed into `blobs/`.
    Done {
        size: u64,
    },
    Failed(EngineError),
}

/// A blob as an image manifest names it: its digest and the size its descriptor states
/// ([`crate::oci::Descriptor::stated_size`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedBlob {
    pub digest: Digest,
    pub size: Option<u64>,
}

impl From<&crate::oci::Descriptor> for NamedBlob {
    fn from(d: &crate::oci::Descriptor) -> Self {
        NamedBlob {
            digest: d.digest.clone(),
            size: d.stated_size(),
        }
    }
}

/// The sizes that the cached image manifests naming a blob state for it: one, unless they
/// disagree. Then one of them is wrong, and which is not for the cache to guess: a body of any
/// of the sizes is accepted (its digest decides), and the largest bounds how much is read. So a
/// manifest stating a wrong size for a digest (another upstream's, say) cannot fail the
/// download for the manifests that state it right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatedSizes(Vec<u64>);

impl StatedSizes {
    pub fn new(size: u64) -> Self {
        StatedSizes(vec![size])
    }

    pub(crate) fn add(&mut self, size: u64) {
        if let Err(at) = self.0.binary_search(&size) {
            self.0.insert(at, size);
        }
    }

    /// Whether a body of `size` bytes matches a statement.
    pub fn allows(&self, size: u64) -> bool {
        self.0.binary_search(&size).is_ok()
    }

    /// The most bytes a body may have.
    pub fn max(&self) -> u64 {
        self.0.last().copied().unwrap_or(0)
    }

    /// The size, when every statement agrees.
    pub fn agreed(&self) -> Option<u64> {
        match self.0[..] {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl std::fmt::Display for StatedSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, size) in self.0.iter().enumerate() {
            match i {
                0 => {}
                _ if i + 1 == self.0.len() => f.write_str(" or ")?,
                _ => f.write_str(", ")?,
            }
            write!(f, "{size}")?;
        }
        Ok(())
    }
}

/// Where to fetch a blob from when it is not cached.
#[derive(Debug, Clone)]
pub struct BlobSource {
    pub registry: String,
    pub repo: RepoName,
}

/// The answer to [`Open`](crate::blob_table::Open).
#[derive(Debug)]
pub enum BlobStatus {
    Present {
        size: u64,
    },
    Fetching(watch::Receiver<Progress>),
    /// Not cached, and no source to fetch it from.
    Absent,
}

/// A blob the table counts as stored is not in the store: a file removed by hand, or an
/// object another replica of a shared store pruned. Answered like
/// [`Open`](crate::blob_table::Open) once the table has forgotten the blob, so a reader that
/// found it gone follows a new download of the same bytes (the digest names them) instead of
/// failing every request until a restart.
#[derive(Message, Debug)]
#[rtype(result = "BlobStatus")]
pub struct Vanished {
    pub digest: Digest,
    /// `None` in air-gapped mode (or for another replica's request): forget, fetch nothing.
    pub source: Option<BlobSource>,
    /// When the reader was told the blob is stored: one stored again after that is another
    /// file, and stays.
    pub seen: Instant,
}

/// The blobs a request may serve without asking the blob table: stored and verified, with
/// their sizes. The table is the one writer, and changes it in the same turn as a blob's
/// state, so a blob it marks for removal, or no longer trusts, leaves here before anything
/// else can happen to it. A hit then costs a read lock instead of a round trip through the
/// table's mailbox; a reader that finds the file gone after all reports it
/// ([`Vanished`]) like any other.
///
/// Keyed by the digest's 32 bytes, not its text: on a shared bucket every blob of the fleet is
/// here from the start, beside the table's own entry, and a key without a heap allocation keeps
/// that under 50 bytes a blob.
#[derive(Debug, Clone, Default)]
pub struct StoredBlobs(Arc<RwLock<HashMap<[u8; 32], u64>>>);

impl StoredBlobs {
    /// The size of `digest` when it is stored and verified.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        let key = Self::key(digest)?;
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.get(&key).copied()
    }

    pub(crate) fn set(&self, digest: &Digest, size: Option<u64>) {
        // Every `Digest` is 64 hex characters: never `None`.
        let Some(key) = Self::key(digest) else {
            return;
        };
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match size {
            Some(size) => {
                map.insert(key, size);
            }
            None => {
                map.remove(&key);
            }
        }
    }

    fn key(digest: &Digest) -> Option<[u8; 32]> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(digest.hex(), &mut key).ok()?;
        Some(key)
    }
}

/// A blob as the listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    /// `None` while it is being fetched.
    pub size: Option<u64>,
    pub refs: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disagreeing_statements_accept_each_stated_size_and_bound_by_the_largest() {
        let mut sizes = StatedSizes::new(600);
        assert_eq!((sizes.agreed(), sizes.max()), (Some(600), 600));
        sizes.add(600);
        assert_eq!(sizes.agreed(), Some(600), "a repeated statement is one");
        sizes.add(590);
        sizes.add(10_000);
        assert_eq!((sizes.agreed(), sizes.max()), (None, 10_000));
        assert!(sizes.allows(590) && sizes.allows(600) && sizes.allows(10_000));
        assert!(!sizes.allows(599) && !sizes.allows(10_001));
        assert_eq!(sizes.to_string(), "590, 600 or 10000");
        assert_eq!(StatedSizes::new(7).to_string(), "7");
    }
}
