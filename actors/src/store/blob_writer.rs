//! Streaming a blob into the cache: bytes go to a temp file as they arrive, are hashed on the
//! way, and only a verified file is made visible: fsynced and renamed into `blobs/`, or
//! uploaded to the object store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tokio::fs::File;
use tokio::io::AsyncWriteExt;

use super::{Staged, StoreError, StoreFuture};
use crate::oci::Digest;

/// Where a verified blob goes.
#[derive(Debug, Clone)]
pub(super) enum Destination {
    /// Renamed into this directory (`blobs/`), on the same filesystem as the temp file.
    Dir(PathBuf),
    /// Handed to a remote store; the temp file is removed once it is there.
    Remote(Arc<dyn Upload>),
}

/// A store that takes a verified staging file and makes it visible under its digest, whole
/// or not at all.
pub(super) trait Upload: Send + Sync + std::fmt::Debug {
    fn upload<'a>(&'a self, file: &'a Path, digest: &'a Digest, size: u64) -> StoreFuture<'a, ()>;
}

/// An in-progress blob download. Create it with [`super::FsStore::create_blob_writer`].
///
/// Dropping a writer that was not committed removes its temp file (best effort; whatever is
/// left is swept the next time the store is opened).
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<File>,
    temp_path: PathBuf,
    dest: Destination,
    hasher: Sha256,
    written: u64,
    finished: bool,
}

impl BlobWriter {
    pub(super) fn new(file: File, temp_path: PathBuf, dest: Destination) -> Self {
        BlobWriter {
            file: Some(file),
            temp_path,
            dest,
            hasher: Sha256::new(),
            written: 0,
            finished: false,
        }
    }

    /// Sends the verified blob to `dest` instead of where its store would put it.
    pub(super) fn with_destination(mut self, dest: Destination) -> Self {
        self.dest = dest;
        self
    }

    /// Where the blob is being written. Only the store's own tests look at the path.
    #[cfg(test)]
    pub(super) fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// The staging file, for readers: they may follow it while it grows; the first
    /// [`written`](Self::written) bytes of it are always readable.
    pub fn staged(&self) -> Staged {
        Staged::new(self.temp_path.clone())
    }

    /// Appends a chunk. When this returns, the chunk has reached the file (not necessarily
    /// the disk) and is counted in [`written`](Self::written).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let path = &self.temp_path;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| StoreError::io(path, std::io::ErrorKind::BrokenPipe.into()))?;
        file.write_all(chunk)
            .await
            .map_err(|e| StoreError::io(path, e))?;
        // tokio hands writes to a blocking thread; flushing waits for it, so the bytes are
        // in the file before `written` says so.
        file.flush().await.map_err(|e| StoreError::io(path, e))?;
        self.hasher.update(chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verifies the content against `expected`, makes it durable and moves it to
    /// `blobs/<hex>`. Returns the blob size. On a digest mismatch the temp file is deleted
    /// and nothing appears in `blobs/`.
    pub async fn commit(self, expected: &Digest) -> Result<u64, StoreError> {
        self.verify(expected).await?.persist().await
    }

    /// Checks the content against `expected`: the bytes in the temp file are then known to
    /// be right, though not yet durable nor in `blobs/` ([`VerifiedBlob::persist`]). On a
    /// mismatch the temp file is deleted.
    pub async fn verify(mut self, expected: &Digest) -> Result<VerifiedBlob, StoreError> {
        let path = self.temp_path.clone();
        let mut file = self
            .file
            .take()
            .ok_or_else(|| StoreError::io(&path, std::io::ErrorKind::BrokenPipe.into()))?;
        // Dropping `self` from here on removes the temp file, as for any abandoned write.
        file.flush().await.map_err(|e| StoreError::io(&path, e))?;
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if &actual != expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        Ok(VerifiedBlob {
            writer: self,
            file,
            digest: expected.clone(),
        })
    }
}

/// A blob whose temp file holds exactly the bytes of its digest; [`persist`](Self::persist)
/// moves it into the cache. Dropped instead, it removes the temp file.
pub struct VerifiedBlob {
    writer: BlobWriter,
    file: File,
    digest: Digest,
}

impl VerifiedBlob {
    /// The temp file, still readable until `persist` renames it (an open handle stays valid).
    #[cfg(test)]
    pub(super) fn temp_path(&self) -> &Path {
        &self.writer.temp_path
    }

    /// Makes the content durable and visible under its digest: fsync, rename into `blobs/`,
    /// fsync of the directory; or, for a remote store, the upload (visible only once whole),
    /// then the temp file removed. A crash leaves either no blob or a complete one. Returns
    /// the blob size.
    pub async fn persist(mut self) -> Result<u64, StoreError> {
        self.writer.finished = true;
        let result = self.finish().await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&self.writer.temp_path).await;
        }
        result
    }

    async fn finish(&mut self) -> Result<u64, StoreError> {
        let path = self.writer.temp_path.clone();
        let blobs_dir = match &self.writer.dest {
            Destination::Dir(dir) => dir.clone(),
            Destination::Remote(store) => {
                self.file
                    .flush()
                    .await
                    .map_err(|e| StoreError::io(&path, e))?;
                store
                    .upload(&path, &self.digest, self.writer.written)
                    .await?;
                let _ = tokio::fs::remove_file(&path).await;
                return Ok(self.writer.written);
            }
        };
        self.file
            .sync_all()
            .await
            .map_err(|e| StoreError::io(&path, e))?;
        let dest = blobs_dir.join(self.digest.hex());
        tokio::fs::rename(&path, &dest)
            .await
            .map_err(|e| StoreError::io(&dest, e))?;
        let dir = File::open(&blobs_dir)
            .await
            .map_err(|e| StoreError::io(&blobs_dir, e))?;
        dir.sync_all()
            .await
            .map_err(|e| StoreError::io(&blobs_dir, e))?;
        Ok(self.writer.written)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.file.take();
            if let Err(e) = std::fs::remove_file(&self.temp_path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!(
                        "could not remove abandoned temp file {}: {e}",
                        self.temp_path.display()
                    );
                }
            }
        }
    }
}
