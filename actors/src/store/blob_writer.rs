//! Streaming a blob into the cache: bytes go to a temp file as they arrive, are hashed on the
//! way, and only a verified file is made visible: fsynced and renamed into `blobs/`, or
//! uploaded to the object store.
//!
//! A write and the hashing of its bytes run together on the blocking pool, one write at a
//! time, from the chunks as they came off the network (no copy into a buffer first). The
//! writer may start a write and land it later ([`BlobWriter::begin`], [`BlobWriter::land`]), so
//! a download goes on receiving while the previous batch is written: the two overlap instead
//! of taking turns.

use std::io::{IoSlice, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::fs::File;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

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
    /// `None` while a write has it (see `landing`), and after a failed one.
    sink: Option<Sink>,
    /// The write on the blocking pool, and how many bytes it writes.
    landing: Option<(u64, JoinHandle<Landed>)>,
    temp_path: PathBuf,
    dest: Destination,
    /// Bytes in the file: landed writes only.
    written: u64,
    finished: bool,
}

/// The temp file and the hash of what is in it, handed to the blocking pool for each write.
#[derive(Debug)]
struct Sink {
    file: std::fs::File,
    hasher: Sha256,
}

/// What a write gives back: the sink, for the next one, and whether all its bytes were written.
type Landed = (Sink, std::io::Result<()>);

impl BlobWriter {
    pub(super) fn new(file: std::fs::File, temp_path: PathBuf, dest: Destination) -> Self {
        BlobWriter {
            sink: Some(Sink {
                file,
                hasher: Sha256::new(),
            }),
            landing: None,
            temp_path,
            dest,
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
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        self.begin(vec![chunk]).await?;
        self.land().await.map(|_| ())
    }

    /// Starts appending `chunks`, in order, on the blocking pool, and returns without waiting
    /// for it; [`land`](Self::land) waits. A write still on its way is landed first: one write
    /// at a time, so the file grows in order.
    pub async fn begin(&mut self, chunks: Vec<Bytes>) -> Result<(), StoreError> {
        self.land().await?;
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if len == 0 {
            return Ok(());
        }
        let mut sink = self.sink.take().ok_or_else(|| self.broken())?;
        let write = tokio::task::spawn_blocking(move || {
            let written = write_all(&mut sink.file, &chunks);
            if written.is_ok() {
                for c in &chunks {
                    sink.hasher.update(c);
                }
            }
            (sink, written)
        });
        self.landing = Some((len, write));
        Ok(())
    }

    /// Whether a write is on its way.
    pub fn writing(&self) -> bool {
        self.landing.is_some()
    }

    /// Waits for the write on its way, if any; then the bytes written so far. Safe to cancel:
    /// dropped while it waits, the write stays on its way and a later call lands it.
    pub async fn land(&mut self) -> Result<u64, StoreError> {
        let Some((len, write)) = self.landing.as_mut() else {
            return Ok(self.written);
        };
        let len = *len;
        let landed = write.await;
        self.landing = None;
        let (sink, result) = landed.map_err(|e| StoreError::io(&self.temp_path, e.into()))?;
        result.map_err(|e| StoreError::io(&self.temp_path, e))?;
        self.sink = Some(sink);
        self.written += len;
        Ok(self.written)
    }

    /// A write failed before: the file's end is unknown, nothing more may go into it.
    fn broken(&self) -> StoreError {
        StoreError::io(&self.temp_path, std::io::ErrorKind::BrokenPipe.into())
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
        self.land().await?;
        // Dropping `self` from here on removes the temp file, as for any abandoned write.
        let Sink { file, hasher } = self.sink.take().ok_or_else(|| self.broken())?;
        let actual = Digest::from_hasher(hasher);
        if &actual != expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        Ok(VerifiedBlob {
            writer: self,
            file: File::from_std(file),
            digest: expected.clone(),
        })
    }
}

/// Writes every byte of `chunks` to `file`, as few calls as the kernel allows.
fn write_all(file: &mut std::fs::File, chunks: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
            // A write still on its way holds its own handle; removing the name is enough.
            self.sink.take();
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
