//! The reader half of the blob proxy: serve a stored blob from an offset, or follow a download
//! as it lands.
//!
//! A reader of a download reads the staging file up to the byte count the download publishes,
//! then waits for the next update. When the download is moved into place the open file stays
//! valid, so no reader ever restarts or waits for the end. The last byte waits for the digest
//! check ([`Progress::Verified`]), so a body that fails it never reaches a client complete: its
//! stream ends with an error instead.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use actix::Recipient;
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::watch;

use crate::blob::{BlobSource, BlobStatus, Progress, Vanished};
use crate::error::EngineError;
use crate::oci::Digest;
use crate::store::{BlobFile, Store};

/// Bytes per read, chosen by measurement (BENCHMARKS.md): every chunk is copied once more into
/// the HTTP library's write buffer, and 64 KiB chunks stay in the CPU's cache between the two
/// copies. Served from memory, 64 KiB took the least CPU per GB, then 32 KiB (+8 %), 128 KiB
/// (+15 %), 256 KiB (+30 %), 1 MiB (+55 %), with throughput in the same order.
const CHUNK: usize = 64 * 1024;

/// A blob ready to be read: stored, or on its way with its response head in (so an upstream
/// error has already become the caller's error).
#[derive(Debug)]
pub struct BlobReader {
    store: Arc<dyn Store>,
    digest: Digest,
    /// Where the bytes are. A stored blob is the degenerate case of a download: `Done`, with
    /// nothing more to come.
    progress: watch::Receiver<Progress>,
    size: Option<u64>,
    /// Bytes were seen arriving from the upstream. A blob found in the store at start is
    /// checked before its first use: it ends `Done` without ever `Receiving`, and is no
    /// download.
    downloaded: bool,
    /// Where to report the blob gone from the store, once.
    refetch: Option<Refetch>,
}

/// How a reader of a stored blob gets the blob back when the store no longer has it.
#[derive(Debug)]
pub(crate) struct Refetch {
    pub table: Arc<Recipient<Vanished>>,
    /// `None`: nothing to fetch it from (air-gapped, or another replica asking).
    pub source: Option<BlobSource>,
    /// When the table said the blob is stored.
    pub seen: Instant,
}

/// Waits on a download until its response head is in: the size it announced (if any) and
/// whether bytes are coming from the upstream, or its failure.
async fn head(
    rx: &mut watch::Receiver<Progress>,
    digest: &Digest,
) -> Result<(Option<u64>, bool), EngineError> {
    loop {
        let state = rx.borrow_and_update().clone();
        match state {
            Progress::Queued => {
                if rx.changed().await.is_err() {
                    return Err(EngineError::Unavailable(format!(
                        "the download of {digest} was abandoned"
                    )));
                }
            }
            Progress::Receiving { total, .. } => return Ok((total, true)),
            Progress::Verified { size, .. } => return Ok((Some(size), true)),
            Progress::Done { size } => return Ok((Some(size), false)),
            Progress::Failed(e) => return Err(e),
        }
    }
}

impl BlobReader {
    /// Waits for a download's response head (the size, or the failure); a stored blob is
    /// ready at once. `None` for a blob that is neither stored nor being fetched.
    pub(crate) async fn open(
        store: Arc<dyn Store>,
        digest: Digest,
        status: BlobStatus,
    ) -> Result<Option<BlobReader>, EngineError> {
        let (progress, size, downloaded) = match status {
            BlobStatus::Absent => return Ok(None),
            BlobStatus::Present { size } => {
                let (tx, rx) = watch::channel(Progress::Done { size });
                drop(tx);
                (rx, Some(size), false)
            }
            BlobStatus::Fetching(mut rx) => {
                let (size, downloaded) = head(&mut rx, &digest).await?;
                (rx, size, downloaded)
            }
        };
        Ok(Some(BlobReader {
            store,
            digest,
            progress,
            size,
            downloaded,
            refetch: None,
        }))
    }

    /// Lets the reader of a stored blob that is no longer in the store ask `refetch.table`
    /// for it again (see [`BlobReader::stream`]); without it, such a reader fails.
    pub(crate) fn refetching(mut self, refetch: Refetch) -> Self {
        self.refetch = Some(refetch);
        self
    }

    /// The blob's size, when known: a download whose upstream sent no `Content-Length` (and
    /// whose manifests state none) has no size until its end.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Waits until the blob is stored (a verified download is not, until it is moved into
    /// place); its size, and whether bytes had to come from the upstream.
    pub async fn landed(self) -> Result<(u64, bool), EngineError> {
        self.landed_reporting(|_| {}).await
    }

    /// [`BlobReader::landed`], telling `written` how many bytes of a download have landed each
    /// time that changes, so that a long download shows it is moving.
    pub async fn landed_reporting(
        mut self,
        mut written: impl FnMut(u64),
    ) -> Result<(u64, bool), EngineError> {
        loop {
            match &*self.progress.borrow_and_update() {
                Progress::Done { size } => return Ok((*size, self.downloaded)),
                Progress::Failed(e) => return Err(e.clone()),
                Progress::Receiving { written: n, .. } => {
                    self.downloaded = true;
                    written(*n);
                }
                Progress::Verified { size, .. } => {
                    self.downloaded = true;
                    written(*size);
                }
                Progress::Queued => {}
            }
            if self.progress.changed().await.is_err() {
                return match &*self.progress.borrow() {
                    Progress::Done { size } => Ok((*size, self.downloaded)),
                    Progress::Failed(e) => Err(e.clone()),
                    _ => Err(EngineError::Unavailable(format!(
                        "the download of {} ended without an outcome",
                        self.digest
                    ))),
                };
            }
        }
    }

    /// The bytes `start..end` (to the blob's end when `end` is `None`). An error ends the
    /// stream: the client must see a broken body, never a short one that looks complete.
    ///
    /// A stored blob's file is opened here, before the caller answers: a blob gone from the
    /// store (removed by hand, or pruned by another replica) is then this call's error, or,
    /// with [`BlobReader::refetching`], fetched again and followed like any download.
    pub async fn stream(
        mut self,
        start: u64,
        end: Option<u64>,
    ) -> Result<impl Stream<Item = io::Result<Bytes>>, EngineError> {
        let file = self.open_stored(start).await?;
        let follow = Follow {
            store: self.store,
            digest: self.digest,
            progress: self.progress,
            file,
            pos: start,
            end,
        };
        Ok(futures_util::stream::unfold(follow, |mut st| async move {
            match st.next_chunk().await {
                Ok(Some(b)) => Some((Ok(b), st)),
                Ok(None) => None,
                Err(e) => {
                    log::warn!("streaming blob {}: {e}", st.digest);
                    Some((Err(io::Error::other(e)), st.finished()))
                }
            }
        }))
    }

    /// The stored blob's file at `at`; `None` while the blob is still on its way (its reader
    /// opens the staging file as it appears). A file the store no longer has is reported to
    /// the table once, and the download it answers with is followed from its head on.
    async fn open_stored(&mut self, at: u64) -> Result<Option<BlobFile>, EngineError> {
        if !matches!(*self.progress.borrow(), Progress::Done { .. }) {
            return Ok(None);
        }
        let gone = match self.store.open_blob(self.digest.clone(), at).await {
            Ok(file) => return Ok(Some(file)),
            Err(e) if e.is_not_found() => e,
            Err(e) => return Err(e.into()),
        };
        // Said only when nothing may fetch it again: air-gapped, or a reader without a table.
        let not_cached = || EngineError::NotCached(format!("blob {}", self.digest));
        let Some(refetch) = self.refetch.take() else {
            log::warn!("cache: blob {}: {gone}", self.digest);
            return Err(not_cached());
        };
        let status = refetch
            .table
            .send(Vanished {
                digest: self.digest.clone(),
                source: refetch.source,
                seen: refetch.seen,
            })
            .await?;
        match status {
            BlobStatus::Absent => Err(not_cached()),
            BlobStatus::Present { .. } => match self.store.open_blob(self.digest.clone(), at).await
            {
                Ok(file) => Ok(Some(file)),
                Err(e) if e.is_not_found() => Err(not_cached()),
                Err(e) => Err(e.into()),
            },
            BlobStatus::Fetching(mut rx) => {
                head(&mut rx, &self.digest).await?;
                self.progress = rx;
                Ok(None)
            }
        }
    }
}

struct Follow {
    store: Arc<dyn Store>,
    digest: Digest,
    progress: watch::Receiver<Progress>,
    file: Option<BlobFile>,
    pos: u64,
    end: Option<u64>,
}

impl Follow {
    /// After an error the stream must end: a state that yields nothing more.
    fn finished(mut self) -> Self {
        self.end = Some(self.pos);
        self
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if matches!(self.end, Some(e) if self.pos >= e) {
                return Ok(None);
            }
            let (available, done, staged) = match &*self.progress.borrow() {
                Progress::Queued => (0, false, None),
                Progress::Receiving {
                    staged, written, ..
                } => (*written, false, Some(staged.clone())),
                Progress::Verified { staged, size } => (*size, true, Some(staged.clone())),
                Progress::Done { size } => (*size, true, None),
                Progress::Failed(e) => return Err(format!("download failed: {e}")),
            };
            // Opened as soon as the staging file exists, so the first bytes need only a read.
            if self.file.is_none() && (staged.is_some() || available > self.pos || done) {
                match &staged {
                    Some(s) => match s.open_now(self.pos) {
                        Ok(Some(f)) => self.file = Some(f),
                        // Moved into place between our look at the progress and the open:
                        // look again.
                        Ok(None) => {
                            tokio::task::yield_now().await;
                            continue;
                        }
                        Err(e) => return Err(format!("opening blob: {e}")),
                    },
                    None => {
                        let opened = self.store.open_blob(self.digest.clone(), self.pos).await;
                        self.file = Some(opened.map_err(|e| format!("opening blob: {e}"))?);
                    }
                }
            }
            let mut limit = self.end.map_or(available, |e| e.min(available));
            if !done {
                // The last byte waits for the download to be verified: a body whose digest
                // turns out wrong never reaches a client complete, its connection is cut.
                if let Some(e) = self.end {
                    limit = limit.min(e - 1);
                }
            }
            if self.pos < limit {
                let want = (limit - self.pos).min(CHUNK as u64) as usize;
                let file = self.file.as_mut().ok_or("blob file not open")?;
                let buf = file.read(want).await.map_err(|e| e.to_string())?;
                if buf.is_empty() {
                    return Err(format!("blob file ended early at byte {}", self.pos));
                }
                self.pos += buf.len() as u64;
                return Ok(Some(buf));
            }
            if done {
                return match self.end {
                    Some(e) if self.pos < e => {
                        Err(format!("blob has {available} bytes, {e} expected"))
                    }
                    _ => Ok(None),
                };
            }
            if self.progress.changed().await.is_err() {
                // The download is gone; its last word decides.
                let last_done = matches!(&*self.progress.borrow(), Progress::Done { .. });
                if !last_done {
                    return Err("download ended without completing".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;
    use crate::store::FsStore;

    /// A store in a temp dir, and a staged blob of `content` in it (written, not verified).
    async fn staged(content: &[u8]) -> (tempfile::TempDir, Arc<dyn Store>, crate::store::Staged) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FsStore::open(dir.path()).unwrap());
        let mut w = store.create_blob().await.unwrap();
        w.write(Bytes::copy_from_slice(content)).await.unwrap();
        let s = w.staged();
        // Keep the staging file: the writer would remove it when dropped unverified.
        std::mem::forget(w);
        (dir, store, s)
    }

    fn reader(store: Arc<dyn Store>, rx: watch::Receiver<Progress>, size: u64) -> BlobReader {
        BlobReader {
            store,
            digest: Digest::of(b"abcdef"),
            progress: rx,
            size: Some(size),
            downloaded: true,
            refetch: None,
        }
    }

    async fn collect(s: impl Stream<Item = io::Result<Bytes>>) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut s = Box::pin(s);
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    #[actix_rt::test]
    async fn a_stored_blob_serves_exactly_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FsStore::open(dir.path()).unwrap();
        let d = Digest::of(b"0123456789");
        fs.write_blob(&d, b"0123456789").unwrap();
        let store: Arc<dyn Store> = Arc::new(fs);
        let status = BlobStatus::Present { size: 10 };
        let r = BlobReader::open(store, d, status).await.unwrap().unwrap();
        assert_eq!((r.size(), r.downloaded), (Some(10), false));
        assert_eq!(
            collect(r.stream(2, Some(5)).await.unwrap()).await.unwrap(),
            b"234"
        );
    }

    #[actix_rt::test]
    async fn a_follower_gets_bytes_as_they_land_and_survives_the_move_into_place() {
        let (_dir, store, s) = staged(b"abc").await;
        let (tx, rx) = watch::channel(Progress::Receiving {
            staged: s.clone(),
            written: 3,
            total: Some(6),
        });
        let mut body = Box::pin(reader(store, rx, 6).stream(0, Some(6)).await.unwrap());
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"abc", "bytes arrive before the download ends");
        let path = s.to_string();
        std::fs::write(&path, b"abcdef").unwrap();
        std::fs::rename(&path, format!("{path}.moved")).unwrap();
        tx.send_replace(Progress::Done { size: 6 });
        drop(tx);
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"def");
        assert!(body.next().await.is_none());
    }

    #[actix_rt::test]
    async fn the_last_byte_waits_until_the_download_is_verified_and_a_failure_cuts_the_body() {
        let (_dir, store, s) = staged(b"abcdef").await;
        let (tx, rx) = watch::channel(Progress::Receiving {
            staged: s,
            written: 6,
            total: Some(6),
        });
        let mut body = Box::pin(reader(store, rx, 6).stream(0, Some(6)).await.unwrap());
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"abcde");
        let waited = tokio::time::timeout(Duration::from_millis(100), body.next()).await;
        assert!(
            waited.is_err(),
            "the last byte went out before verification"
        );
        tx.send_replace(Progress::Failed(EngineError::Unavailable("digest".into())));
        assert!(
            body.next().await.unwrap().is_err(),
            "a failure ends the body with an error"
        );
        assert!(body.next().await.is_none());
    }

    #[actix_rt::test]
    async fn the_last_byte_goes_out_once_verified_without_waiting_for_the_commit() {
        let (_dir, store, s) = staged(b"abcdef").await;
        let (tx, rx) = watch::channel(Progress::Receiving {
            staged: s.clone(),
            written: 6,
            total: Some(6),
        });
        let mut body = Box::pin(reader(store, rx, 6).stream(0, Some(6)).await.unwrap());
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"abcde");
        tx.send_replace(Progress::Verified { staged: s, size: 6 });
        let last = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("the last byte waited for more than verification");
        assert_eq!(&last.unwrap().unwrap()[..], b"f");
        assert!(body.next().await.is_none(), "the body ends before Done");
    }

    #[actix_rt::test]
    async fn a_download_failing_before_its_head_is_the_callers_error() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FsStore::open(dir.path()).unwrap());
        let (tx, rx) = watch::channel(Progress::Queued);
        tx.send_replace(Progress::Failed(EngineError::NotCached("x".into())));
        let opened = BlobReader::open(store, Digest::of(b"x"), BlobStatus::Fetching(rx)).await;
        assert_eq!(opened.unwrap_err(), EngineError::NotCached("x".into()));
    }

    /// A table that answers every [`Vanished`] with the download it was given, and counts
    /// the reports.
    struct Table {
        reports: Arc<std::sync::Mutex<Vec<Vanished>>>,
        answer: Option<watch::Receiver<Progress>>,
    }

    impl actix::Actor for Table {
        type Context = actix::Context<Self>;
    }

    impl actix::Handler<Vanished> for Table {
        type Result = actix::MessageResult<Vanished>;

        fn handle(&mut self, msg: Vanished, _: &mut Self::Context) -> Self::Result {
            self.reports.lock().unwrap().push(msg);
            actix::MessageResult(match &self.answer {
                Some(rx) => BlobStatus::Fetching(rx.clone()),
                None => BlobStatus::Absent,
            })
        }
    }

    /// A reader of `digest` as stored in an empty store, reporting to a [`Table`] answering
    /// with `answer`.
    async fn reader_of_vanished(
        store: Arc<dyn Store>,
        digest: Digest,
        answer: Option<watch::Receiver<Progress>>,
    ) -> (BlobReader, Arc<std::sync::Mutex<Vec<Vanished>>>) {
        use actix::Actor as _;
        let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
        let table = Table {
            reports: reports.clone(),
            answer,
        }
        .start();
        let status = BlobStatus::Present { size: 6 };
        let r = BlobReader::open(store, digest, status)
            .await
            .unwrap()
            .unwrap();
        let source = BlobSource {
            registry: "up.test".into(),
            repo: crate::oci::RepoName::parse("a/b").unwrap(),
        };
        let r = r.refetching(Refetch {
            table: Arc::new(table.recipient()),
            source: Some(source),
            seen: Instant::now(),
        });
        (r, reports)
    }

    #[actix_rt::test]
    async fn a_stored_blob_gone_from_the_store_is_not_cached_before_any_byte_is_promised() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FsStore::open(dir.path()).unwrap());
        let status = BlobStatus::Present { size: 6 };
        let r = BlobReader::open(store.clone(), Digest::of(b"abcdef"), status)
            .await
            .unwrap()
            .unwrap();
        let not_cached = |err: Option<EngineError>| {
            let err = err.expect("a missing file streamed");
            assert!(matches!(err, EngineError::NotCached(_)), "{err}");
        };
        not_cached(r.stream(0, Some(6)).await.err());

        let (r, reports) = reader_of_vanished(store, Digest::of(b"abcdef"), None).await;
        not_cached(r.stream(0, Some(6)).await.err());
        assert_eq!(reports.lock().unwrap().len(), 1, "the table was not told");
    }

    #[actix_rt::test]
    async fn a_stored_blob_gone_from_the_store_is_reported_once_and_its_new_download_followed() {
        let (_dir, store, s) = staged(b"abcdef").await;
        let (tx, rx) = watch::channel(Progress::Queued);
        let digest = Digest::of(b"abcdef");
        let (r, reports) = reader_of_vanished(store, digest.clone(), Some(rx)).await;
        let pending = actix_rt::spawn(r.stream(2, Some(6)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !pending.is_finished(),
            "answered before the download's head"
        );
        tx.send_replace(Progress::Verified { staged: s, size: 6 });
        let body = pending
            .await
            .unwrap()
            .expect("the new download was not followed");
        assert_eq!(
            collect(body).await.unwrap(),
            b"cdef",
            "from the asked offset"
        );
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].digest, digest);
        assert_eq!(
            reports[0].source.as_ref().map(|s| s.registry.as_str()),
            Some("up.test")
        );
    }
}
