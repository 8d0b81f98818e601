//! Reading a blob out: a stored one, or one still landing in its staging file.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use super::StoreError;

/// The staging file of a blob being written, as readers of the download see it: they may open
/// it and read the bytes written so far, while it grows, and go on reading after it has been
/// moved into place (an open file stays valid across the rename).
#[derive(Clone, Debug)]
pub struct Staged(Arc<PathBuf>);

impl Staged {
    pub(super) fn new(path: PathBuf) -> Self {
        Staged(Arc::new(path))
    }

    /// Opens the staging file at `offset`. It does not block for long: the file was created
    /// moments ago and its bytes are in the page cache, so this runs on the caller's thread.
    /// `Ok(None)`: it is gone (moved into place, or removed after a failure).
    pub fn open_now(&self, offset: u64) -> Result<Option<BlobFile>, StoreError> {
        match open_at(&self.0, offset) {
            Ok(f) => Ok(Some(BlobFile::Warm(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&self.0, e)),
        }
    }
}

impl std::fmt::Display for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// An open blob, positioned where the reader asked, read where its bytes are likely to be.
#[derive(Debug)]
pub enum BlobFile {
    /// A stored blob, read on the blocking pool: it may be cold on a slow disk, and a read
    /// must not stall every other connection of the worker.
    Cold(tokio::fs::File),
    /// The staging file of a download under way, read on the caller's thread: its bytes were
    /// written moments ago and are in the page cache, so a read is a memory copy. A trip to
    /// the blocking pool would cost more than the copy and, when the pool has to start a
    /// thread, milliseconds before the first byte.
    Warm(std::fs::File),
}

impl BlobFile {
    /// Up to `want` bytes from the current position (fewer only at the end), into
    /// uninitialised capacity: no zero-filling of every chunk.
    pub async fn read(&mut self, want: usize) -> std::io::Result<Bytes> {
        match self {
            BlobFile::Cold(f) => {
                let mut buf = BytesMut::with_capacity(want);
                f.take(want as u64).read_buf(&mut buf).await?;
                Ok(buf.freeze())
            }
            BlobFile::Warm(f) => {
                let mut buf = Vec::with_capacity(want);
                Read::read_to_end(&mut Read::take(&mut *f, want as u64), &mut buf)?;
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// Opens `path` and seeks to `offset`: one blocking step, so one trip to the blocking pool.
pub(super) fn open_at(path: &std::path::Path, offset: u64) -> std::io::Result<std::fs::File> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    Ok(f)
}
