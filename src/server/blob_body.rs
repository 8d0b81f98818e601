//! Blob bodies: a cached file, or a download followed while it lands.
//!
//! A reader of a download reads the temp file up to the byte count the downloader publishes,
//! then waits for the next update; when the download is renamed into place the open file stays
//! valid, so no reader ever restarts or waits for the end.

use std::io::{Seek, SeekFrom};
use std::path::PathBuf;

use actix_web::error::ErrorInternalServerError;
use actors::blob::Progress;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::fs::File;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// Bytes per read: large enough that big blobs stream at disk speed.
const CHUNK: usize = 256 * 1024;

/// A satisfiable byte range, `start..end` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send everything (also for multi-range requests, which RFC 9110 lets a
    /// server answer in full).
    Full,
    Partial(ByteRange),
    Unsatisfiable,
}

pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(h) = header else {
        return RangeRequest::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let range = match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(b) {
            Some(0) | None => return RangeRequest::Unsatisfiable,
            Some(n) => ByteRange {
                start: size.saturating_sub(n),
                end: size,
            },
        },
        (false, true) => match parse(a) {
            Some(s) => ByteRange {
                start: s,
                end: size,
            },
            None => return RangeRequest::Unsatisfiable,
        },
        (false, false) => match (parse(a), parse(b)) {
            (Some(s), Some(e)) if s <= e => ByteRange {
                start: s,
                end: e.saturating_add(1).min(size),
            },
            _ => return RangeRequest::Unsatisfiable,
        },
        (true, true) => return RangeRequest::Unsatisfiable,
    };
    if range.start >= size || range.start >= range.end {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial(range)
    }
}

/// `start..end` of a file that is complete on disk.
pub fn file_stream(
    path: PathBuf,
    range: ByteRange,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let (tx, rx) = watch::channel(Progress::Done { size: range.end });
    // A finished file is the degenerate case of a download: nothing more will arrive.
    drop(tx);
    follow_stream(rx, path, range.start, Some(range.end))
}

/// The open blob file, read where its bytes are likely to be.
enum Opened {
    /// A file in `blobs/`, read on the blocking pool: it may be cold on a slow disk, and a
    /// read must not stall every other connection of the worker.
    Cached(File),
    /// The temp file of a download under way, read on the worker itself: its bytes were
    /// written moments ago and are in the page cache, so a read is a memory copy. A trip to the
    /// blocking pool would cost more than the copy and, when the pool has to start a thread,
    /// milliseconds before the first byte.
    Landing(std::fs::File),
}

struct Follow {
    progress: watch::Receiver<Progress>,
    final_path: PathBuf,
    file: Option<Opened>,
    pos: u64,
    end: Option<u64>,
}

/// Follows a download (or a finished file) from byte `start` to `end` (the blob's end when
/// `None`).
pub fn follow_stream(
    progress: watch::Receiver<Progress>,
    final_path: PathBuf,
    start: u64,
    end: Option<u64>,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let state = Follow {
        progress,
        final_path,
        file: None,
        pos: start,
        end,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        match st.next_chunk().await {
            Ok(Some(b)) => Some((Ok(b), st)),
            Ok(None) => None,
            Err(e) => {
                log::warn!("streaming {}: {e}", st.final_path.display());
                Some((Err(ErrorInternalServerError(e)), st.finished()))
            }
        }
    })
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
            let (available, done, temp) = match &*self.progress.borrow() {
                Progress::Queued => (0, false, None),
                Progress::Receiving { temp, written, .. } => (*written, false, Some(temp.clone())),
                Progress::Verified { temp, size } => (*size, true, Some(temp.clone())),
                Progress::Done { size } => (*size, true, None),
                Progress::Failed(e) => return Err(format!("download failed: {e}")),
            };
            // Opened as soon as the temp file exists, so the first bytes need only a read.
            if self.file.is_none() && (temp.is_some() || available > self.pos || done) {
                let opened = match &temp {
                    Some(t) => open_at_now(t, self.pos).map(Opened::Landing),
                    None => open_at(self.final_path.clone(), self.pos)
                        .await
                        .map(Opened::Cached),
                };
                match opened {
                    Ok(f) => self.file = Some(f),
                    // Renamed between our look at the progress and the open: look again.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && temp.is_some() => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Err(e) => return Err(format!("opening blob: {e}")),
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
                let want = (limit - self.pos).min(CHUNK as u64);
                let file = self.file.as_mut().ok_or("blob file not open")?;
                let buf = read_chunk(file, want).await.map_err(|e| e.to_string())?;
                let n = buf.len();
                if n == 0 {
                    return Err(format!("blob file ended early at byte {}", self.pos));
                }
                self.pos += n as u64;
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
                // The downloader is gone; its last word decides.
                let last_done = matches!(&*self.progress.borrow(), Progress::Done { .. });
                if !last_done {
                    return Err("download ended without completing".into());
                }
            }
        }
    }
}

/// Opens `path` and seeks to `pos` in one trip to the blocking pool rather than two: the
/// first byte of every blob response waits for it.
async fn open_at(path: PathBuf, pos: u64) -> std::io::Result<File> {
    let opened = tokio::task::spawn_blocking(move || open_at_now(&path, pos))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    opened.map(File::from_std)
}

fn open_at_now(path: &std::path::Path, pos: u64) -> std::io::Result<std::fs::File> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(pos))?;
    Ok(f)
}

/// Up to `want` bytes from the file's position (fewer only at its end), into uninitialised
/// capacity: no zero-filling of every chunk.
async fn read_chunk(file: &mut Opened, want: u64) -> std::io::Result<Bytes> {
    match file {
        Opened::Cached(f) => {
            let mut buf = BytesMut::with_capacity(want as usize);
            f.take(want).read_buf(&mut buf).await?;
            Ok(buf.freeze())
        }
        Opened::Landing(f) => {
            let mut buf = Vec::with_capacity(want as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(&mut *f, want), &mut buf)?;
            Ok(Bytes::from(buf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::sync::Arc;

    fn r(s: u64, e: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start: s, end: e })
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range(None, 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), r(0, 10));
        assert_eq!(parse_range(Some("bytes=90-"), 100), r(90, 100));
        assert_eq!(parse_range(Some("bytes=-10"), 100), r(90, 100));
        assert_eq!(parse_range(Some("bytes=-500"), 100), r(0, 100));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), r(50, 100));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeRequest::Full);
        for bad in [
            "bytes=10-5",
            "bytes=100-",
            "bytes=999999999-",
            "bytes=x-y",
            "bytes=-0",
            "bytes=-",
        ] {
            assert_eq!(
                parse_range(Some(bad), 100),
                RangeRequest::Unsatisfiable,
                "{bad}"
            );
        }
    }

    async fn collect(
        s: impl Stream<Item = Result<Bytes, actix_web::Error>>,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut s = Box::pin(s);
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    #[actix_web::test]
    async fn file_stream_serves_exactly_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        std::fs::write(&p, b"0123456789").unwrap();
        let got = collect(file_stream(p, ByteRange { start: 2, end: 5 }))
            .await
            .unwrap();
        assert_eq!(got, b"234");
    }

    #[actix_web::test]
    async fn a_follower_gets_bytes_as_they_land_and_survives_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join("tmp");
        let fin = dir.path().join("final");
        std::fs::write(&temp, b"").unwrap();
        let (tx, rx) = watch::channel(Progress::Queued);
        let mut s = Box::pin(follow_stream(rx, fin.clone(), 0, Some(6)));
        let t = Arc::new(temp.clone());
        std::fs::write(&temp, b"abc").unwrap();
        tx.send_replace(Progress::Receiving {
            temp: t.clone(),
            written: 3,
            total: Some(6),
        });
        let first = s.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"abc", "bytes arrive before the download ends");
        std::fs::write(&temp, b"abcdef").unwrap();
        std::fs::rename(&temp, &fin).unwrap();
        tx.send_replace(Progress::Done { size: 6 });
        drop(tx);
        let rest = s.next().await.unwrap().unwrap();
        assert_eq!(&rest[..], b"def");
        assert!(s.next().await.is_none());
    }

    #[actix_web::test]
    async fn the_last_byte_waits_until_the_download_is_verified() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join("tmp");
        std::fs::write(&temp, b"abcdef").unwrap();
        let (tx, rx) = watch::channel(Progress::Receiving {
            temp: Arc::new(temp),
            written: 6,
            total: Some(6),
        });
        let mut s = Box::pin(follow_stream(rx, dir.path().join("final"), 0, Some(6)));
        let first = s.next().await.unwrap().unwrap();
        assert_eq!(
            &first[..],
            b"abcde",
            "everything but the last byte streams at once"
        );
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), s.next()).await;
        assert!(
            waited.is_err(),
            "the last byte went out before verification"
        );
        tx.send_replace(Progress::Failed(actors::EngineError::Store(
            "digest mismatch".into(),
        )));
        assert!(
            s.next().await.unwrap().is_err(),
            "a failed verification cuts the body short"
        );
        assert!(s.next().await.is_none());
    }

    #[actix_web::test]
    async fn the_last_byte_goes_out_once_verified_without_waiting_for_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let temp = Arc::new(dir.path().join("tmp"));
        std::fs::write(temp.as_path(), b"abcdef").unwrap();
        let (tx, rx) = watch::channel(Progress::Receiving {
            temp: temp.clone(),
            written: 6,
            total: Some(6),
        });
        let mut s = Box::pin(follow_stream(rx, dir.path().join("final"), 0, Some(6)));
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"abcde");
        tx.send_replace(Progress::Verified { temp, size: 6 });
        let last = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
            .await
            .expect("the last byte waited for more than verification");
        assert_eq!(&last.unwrap().unwrap()[..], b"f");
        assert!(s.next().await.is_none(), "the body ends before Done");
        drop(tx);
    }

    #[actix_web::test]
    async fn a_reader_arriving_after_verification_reads_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let temp = Arc::new(dir.path().join("tmp"));
        std::fs::write(temp.as_path(), b"abcdef").unwrap();
        let (_tx, rx) = watch::channel(Progress::Verified { temp, size: 6 });
        let got = collect(follow_stream(rx, dir.path().join("final"), 2, Some(6)))
            .await
            .unwrap();
        assert_eq!(got, b"cdef");
    }

    #[actix_web::test]
    async fn a_failed_download_ends_the_stream_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = watch::channel(Progress::Queued);
        let s = follow_stream(rx, dir.path().join("x"), 0, None);
        tx.send_replace(Progress::Failed(actors::EngineError::Store(
            "disk full".into(),
        )));
        assert!(collect(s).await.is_err());
    }
}
