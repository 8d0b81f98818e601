//! Reading a blob out: a stored one, or one still landing in its staging file.
//!
//! Every read first asks the kernel for bytes already in the page cache without waiting for
//! the disk (`preadv2` with `RWF_NOWAIT`), on the caller's thread, straight into the buffer that
//! becomes the response chunk: a cache hit is then one copy and no thread hop. Only the pages
//! not in memory go to the blocking pool, one read each time, so a cold disk never stalls the
//! worker's other connections. Where the kernel or the filesystem cannot read without waiting
//! (other systems, old kernels, some filesystems), every read goes to the blocking pool.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

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
    /// moments ago and its inode is in memory, so this runs on the caller's thread.
    /// `Ok(None)`: it is gone (moved into place, or removed after a failure).
    pub fn open_now(&self, offset: u64) -> Result<Option<BlobFile>, StoreError> {
        match std::fs::File::open(&*self.0) {
            Ok(f) => Ok(Some(BlobFile::new(f, offset))),
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

/// An open blob, positioned where the reader asked.
#[derive(Debug)]
pub enum BlobFile {
    /// A file on this machine (a stored blob, or the staging file of a download).
    Local(LocalFile),
    /// A blob in an object store: the body of one ranged GET, read as it arrives, a chunk at
    /// a time (never the whole object in memory).
    Remote(RemoteBody),
}

impl BlobFile {
    pub(super) fn new(file: std::fs::File, offset: u64) -> Self {
        BlobFile::Local(LocalFile {
            file: Arc::new(file),
            pos: offset,
            nowait: cfg!(target_os = "linux"),
            blocking_reads: 0,
        })
    }

    /// Up to `want` bytes from the current position (fewer at the end of a file, and from a
    /// remote body when its chunk ends; empty only at the end).
    pub async fn read(&mut self, want: usize) -> std::io::Result<Bytes> {
        match self {
            BlobFile::Local(f) => f.read(want).await,
            BlobFile::Remote(body) => body.read(want).await,
        }
    }

    /// How many reads of this file had to wait on the blocking pool (none for a remote body).
    pub fn blocking_reads(&self) -> u64 {
        match self {
            BlobFile::Local(f) => f.blocking_reads,
            BlobFile::Remote(_) => 0,
        }
    }
}

/// An open file and the position of the next read. Reads go by offset (`pread`), so the file
/// can be shared with a blocking-pool read without a seek.
#[derive(Debug)]
pub struct LocalFile {
    file: Arc<std::fs::File>,
    pos: u64,
    /// Reads of cached pages without waiting work on this file; cleared when the kernel or the
    /// filesystem says they do not, so the question is asked once per file.
    nowait: bool,
    /// Reads that went to the blocking pool: pages that were not in memory.
    blocking_reads: u64,
}

impl LocalFile {
    /// Up to `want` bytes from the current position (fewer only at the end of the file), into
    /// uninitialised capacity: no zero-filling of every chunk.
    async fn read(&mut self, want: usize) -> std::io::Result<Bytes> {
        let mut buf = BytesMut::with_capacity(want);
        if self.nowait {
            match nowait::read(&self.file, &mut buf, self.pos, want) {
                Ok(()) => {}
                Err(nowait::Miss::NotCached) => {}
                Err(nowait::Miss::Unsupported) => self.nowait = false,
                Err(nowait::Miss::Failed(e)) => return Err(e),
            }
        }
        if buf.len() < want {
            // Pages not in memory (or no way to ask): the rest of the chunk in one read that may
            // wait for the disk, off this thread.
            self.blocking_reads += 1;
            crate::metrics::metrics().blob_reads_from_disk.inc();
            let file = self.file.clone();
            let at = self.pos;
            buf = tokio::task::spawn_blocking(move || read_rest(&file, buf, at, want))
                .await
                .map_err(std::io::Error::other)??;
        }
        self.pos += buf.len() as u64;
        Ok(buf.freeze())
    }
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

/// Fills `buf` up to `want` bytes from `file` at `at + buf.len()`, waiting for the disk if it
/// must; stops early only at the end of the file. Runs on the blocking pool.
fn read_rest(
    file: &std::fs::File,
    mut buf: BytesMut,
    at: u64,
    want: usize,
) -> std::io::Result<BytesMut> {
    use std::os::unix::fs::FileExt;
    let have = buf.len();
    // Zero-filled: this path waits for a disk anyway, the fill costs nothing beside it.
    buf.resize(want, 0);
    let mut filled = have;
    while filled < want {
        match file.read_at(&mut buf[filled..], at + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(target_os = "linux")]
mod nowait {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    use bytes::BytesMut;

    /// Why a read without waiting gave less than asked.
    pub(super) enum Miss {
        /// Some or all of the pages are not in memory (or the file ends early).
        NotCached,
        /// This kernel or filesystem cannot read without waiting.
        Unsupported,
        Failed(std::io::Error),
    }

    /// Appends to `buf` the bytes of `file` at `at` that are in the page cache, up to `want`;
    /// `Ok` when all of them were.
    pub(super) fn read(
        file: &std::fs::File,
        buf: &mut BytesMut,
        at: u64,
        want: usize,
    ) -> Result<(), Miss> {
        let Ok(offset) = libc::off_t::try_from(at) else {
            return Err(Miss::Failed(std::io::Error::from(
                std::io::ErrorKind::InvalidInput,
            )));
        };
        let spare = buf.spare_capacity_mut();
        let len = want.min(spare.len());
        // The kernel writes into the buffer's uninitialised capacity: rustix's `preadv2` only
        // takes initialised slices, and zero-filling each chunk first would cost a second pass
        // over every byte served.
        let iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: len,
        };
        // SAFETY: `iov` describes `len` bytes of `buf`'s spare capacity, which `buf` owns and
        // nothing else touches during the call; the kernel writes at most `len` bytes there.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Miss::NotCached,
                // No RWF_NOWAIT for this file (EOPNOTSUPP), no preadv2 (ENOSYS), or a kernel
                // older than the flag (EINVAL).
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => {
                    Miss::Unsupported
                }
                _ => Miss::Failed(e),
            });
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the first `n` (<= `len`) bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        if n < want {
            return Err(Miss::NotCached);
        }
        Ok(())
    }

    /// Cleared the first time the kernel says it has no `openat2` or no `RESOLVE_CACHED`, so
    /// the question is not asked again.
    static OPENAT2: AtomicBool = AtomicBool::new(true);

    pub(super) fn open(path: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
        use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
        use rustix::io::Errno;
        if !OPENAT2.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        match rustix::fs::openat2(CWD, path, flags, Mode::empty(), ResolveFlags::CACHED) {
            Ok(fd) => Ok(Some(std::fs::File::from(fd))),
            Err(Errno::AGAIN) => Ok(None),
            // No openat2 (ENOSYS, or a filter answering EPERM), or no RESOLVE_CACHED (EINVAL).
            Err(Errno::NOSYS) | Err(Errno::INVAL) | Err(Errno::PERM) => {
                OPENAT2.store(false, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Opens `path` for reading when the kernel can do so without waiting for the disk: every
/// component of the path in its lookup cache, as for a blob served a moment ago (`openat2` with
/// `RESOLVE_CACHED`). `Ok(None)`: it cannot say without the disk, or cannot do this at all
/// (another system, a kernel before 5.12); the caller opens it on the blocking pool. A missing
/// file is an error here like anywhere else.
pub(super) fn open_without_waiting(
    path: &std::path::Path,
) -> std::io::Result<Option<std::fs::File>> {
    nowait::open(path)
}

#[cfg(not(target_os = "linux"))]
mod nowait {
    use bytes::BytesMut;

    pub(super) enum Miss {
        Unsupported,
        // Never built elsewhere, but matched on.
        #[allow(dead_code)]
        NotCached,
        #[allow(dead_code)]
        Failed(std::io::Error),
    }

    pub(super) fn read(_: &std::fs::File, _: &mut BytesMut, _: u64, _: usize) -> Result<(), Miss> {
        Err(Miss::Unsupported)
    }

    pub(super) fn open(_: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Bytes whose every position is distinguishable: a misplaced offset shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
            .collect()
    }

    fn file_with(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(content).unwrap();
        f.sync_all().unwrap();
        (dir, path)
    }

    /// How many pages of the first `len` bytes of `file` are in the page cache (`mincore` over
    /// a read-only mapping, which reads nothing).
    #[cfg(target_os = "linux")]
    fn cached_pages(file: &std::fs::File, len: usize) -> usize {
        use std::os::fd::AsRawFd;
        // SAFETY: a private read-only mapping of a file this test owns, unmapped before return;
        // `mincore` writes one byte per page into a vector of that many bytes.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED, "mmap failed");
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let mut resident = vec![0u8; len.div_ceil(page)];
            let rc = libc::mincore(map, len, resident.as_mut_ptr());
            libc::munmap(map, len);
            assert_eq!(rc, 0, "mincore failed");
            resident.iter().filter(|b| **b & 1 == 1).count()
        }
    }

    /// Reads `len` bytes as the blob reader does: never past the size it knows.
    async fn read_all(f: &mut BlobFile, chunk: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < len {
            let b = f.read(chunk.min(len - out.len())).await.unwrap();
            assert!(!b.is_empty(), "the file ended at {} of {len}", out.len());
            out.extend_from_slice(&b);
        }
        out
    }

    #[actix_rt::test]
    async fn reads_from_any_offset_return_exactly_the_bytes_there() {
        let content = pattern(1_000_003);
        let (_dir, path) = file_with(&content);
        for (offset, chunk) in [(0, 65_536), (1, 4096), (999_999, 7), (500_000, 262_144)] {
            let mut f = BlobFile::new(std::fs::File::open(&path).unwrap(), offset as u64);
            let rest = &content[offset..];
            assert_eq!(
                read_all(&mut f, chunk, rest.len()).await,
                rest,
                "at {offset}"
            );
        }
    }

    #[actix_rt::test]
    async fn a_read_at_the_end_is_empty_and_one_across_it_is_short() {
        let content = pattern(10_000);
        let (_dir, path) = file_with(&content);
        let mut f = BlobFile::new(std::fs::File::open(&path).unwrap(), 9_000);
        assert_eq!(&f.read(4096).await.unwrap()[..], &content[9_000..]);
        assert!(f.read(4096).await.unwrap().is_empty());
        let mut past = BlobFile::new(std::fs::File::open(&path).unwrap(), 20_000);
        assert!(past.read(4096).await.unwrap().is_empty());
    }

    #[actix_rt::test]
    async fn a_file_removed_while_open_is_still_read_to_its_end() {
        let content = pattern(300_000);
        let (_dir, path) = file_with(&content);
        let mut f = BlobFile::new(std::fs::File::open(&path).unwrap(), 0);
        let first = f.read(100_000).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut got = first.to_vec();
        got.extend(read_all(&mut f, 65_536, 200_000).await);
        assert_eq!(got, content);
    }

    #[cfg(target_os = "linux")]
    #[actix_rt::test]
    async fn pages_dropped_from_memory_are_read_on_the_blocking_pool_and_cached_ones_are_not() {
        use std::os::fd::AsRawFd;
        let content = pattern(2_000_000);
        let (_dir, path) = file_with(&content);
        let warm = std::fs::read(&path).unwrap();
        assert_eq!(warm, content);
        let mut hot = BlobFile::new(std::fs::File::open(&path).unwrap(), 0);
        assert_eq!(read_all(&mut hot, 262_144, content.len()).await, content);
        assert_eq!(
            hot.blocking_reads(),
            0,
            "cached pages waited for the blocking pool"
        );

        let file = std::fs::File::open(&path).unwrap();
        // The kernel drops pages on advice only when it can (pages batched for the LRU on a
        // busy machine are skipped): advise until none is cached, a bounded number of times.
        let mut tries = 0;
        loop {
            // SAFETY: a plain syscall on a descriptor this test owns.
            let dropped =
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(dropped, 0, "posix_fadvise failed");
            if cached_pages(&file, content.len()) == 0 {
                break;
            }
            tries += 1;
            assert!(tries < 100, "the kernel keeps the file's pages cached");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut cold = BlobFile::new(file, 12_345);
        let rest = &content[12_345..];
        assert_eq!(read_all(&mut cold, 262_144, rest.len()).await, rest);
        assert!(
            cold.blocking_reads() >= 2,
            "the dropped pages were read without waiting ({} blocking reads)",
            cold.blocking_reads()
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_whose_path_is_in_memory_opens_without_waiting_and_a_missing_one_is_not_found() {
        use std::io::Read as _;
        let content = pattern(5_000);
        let (dir, path) = file_with(&content);
        assert_eq!(std::fs::read(&path).unwrap(), content);
        // Kernels since 5.12 have RESOLVE_CACHED; this project's machines run newer ones.
        let mut f = open_without_waiting(&path)
            .unwrap()
            .expect("a file just read was not opened without waiting");
        let mut read = Vec::new();
        f.read_to_end(&mut read).unwrap();
        assert_eq!(read, content);
        // Missing: not found here, or left to the blocking open, which says so.
        match open_without_waiting(&dir.path().join("missing")) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("a missing file was opened"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
        }
    }
}
