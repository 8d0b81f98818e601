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
    /// A blob in an object store: the body of one ranged GET, read as it arrives, a chunk at
    /// a time (never the whole object in memory).
    Remote(RemoteBody),
}

/// The streamed body of an object GET, and the part of its last chunk not yet read.
pub struct RemoteBody {
    body: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
    pending: Bytes,
}

impl RemoteBody {
    pub(super) fn new(
        body: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
    ) -> Self {
        RemoteBody {
            body,
            pending: Bytes::new(),
        }
    }

    /// Up to `want` bytes; empty only at the end of the body.
    async fn read(&mut self, want: usize) -> std::io::Result<Bytes> {
        use futures_util::StreamExt as _;
        while self.pending.is_empty() {
            match self.body.next().await {
                Some(Ok(chunk)) => self.pending = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(Bytes::new()),
            }
        }
        let n = want.min(self.pending.len());
        Ok(self.pending.split_to(n))
    }
}

impl std::fmt::Debug for RemoteBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBody")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl BlobFile {
    /// Up to `want` bytes from the current position (fewer at the end, and from a remote
    /// body when its chunk ends; empty only at the end), into uninitialised capacity: no
    /// zero-filling of every chunk.
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
            BlobFile::Remote(body) => body.read(want).await,
        }
    }
}

/// Opens `path` and seeks to `offset`: one blocking step, so one trip to the blocking pool.
pub(super) fn open_at(path: &std::path::Path, offset: u64) -> std::io::Result<std::fs::File> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    Ok(f)
}
