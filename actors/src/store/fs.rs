//! The on-disk cache, shared with the Go `ociregistry` server.
//!
//! # Layout
//!
//! Everything lives under one root directory (`--image-path`, `/var/lib/ociregistry` by
//! default):
//!
//! ```text
//! <root>/blobs/<hex>   raw blobs (layers, configs), named by their sha256 hex
//! <root>/fat/<hex>     manifest lists / image indexes        (Go 1.8 layout)
//! <root>/img/<hex>     image manifests (1.8); every non-`latest` manifest (1.9+)
//! <root>/lts/<hex>     manifests pulled by the tag `latest`   (Go 1.9+ layout)
//! <root>/tmp/          our temp files; never content, emptied when the store opens
//! ```
//!
//! Manifest files are named by the bare sha256 hex of the manifest bytes and contain one
//! JSON `ManifestHolder` each.
//!
//! ## What the Go server does (as read from its sources)
//!
//! * **1.8** files a manifest by kind: lists and indexes in `fat/`, image manifests in
//!   `img/`. It loads by walking `fat/` then `img/`.
//! * **1.9 and later** no longer use `fat/`. The directory is chosen by whether the image
//!   URL's tag is `latest` (compared case-insensitively): such manifests go to `lts/`,
//!   everything else, lists and image manifests alike, to `img/`. It loads by walking
//!   `lts/` then `img/`, and creates `lts/`, `img/` and `blobs/` at start. `latest` is
//!   kept apart because the server can be told to always re-pull `latest`; a re-pulled
//!   manifest with a new digest replaces the old file (and its unshared blobs).
//! * Both versions write with a plain create-and-write (no temp file, no fsync) and take a
//!   blob listing from every name in `blobs/`, so nothing but finished blobs may ever be put
//!   there. Older Go versions staged downloads in `pulls/`; we stage in `tmp/`.
//!
//! We read all three manifest directories. We write lists to `fat/` and image manifests to
//! `img/` (the 1.8 layout, which the 1.8 server reads back), except that a manifest whose
//! file already exists in another of the directories is rewritten where it is, so a cache
//! written by a 1.9+ server keeps its shape when we update `pulled` or tags. A 1.9+ Go
//! server does not look in `fat/`, so lists we added are invisible to it.
//!
//! ## The ManifestHolder JSON
//!
//! | key | content |
//! | --- | --- |
//! | `type` | 0 Docker manifest list, 1 Docker image manifest, 2 OCI index, 3 OCI image manifest (Go also has 4, "undefined", which never reaches disk) |
//! | `digest` | the manifest digest as bare hex, no `sha256:` prefix (it is also the file name); we accept a prefixed value on read |
//! | `imageUrl` | the reference the manifest was pulled by, with its registry: `registry.k8s.io/pause:3.8` by tag, `registry.k8s.io/pause@sha256:<hex>` by digest |
//! | `bytes` | base64 (standard alphabet, padded: Go's encoding of `[]byte`) of the exact upstream manifest; omitted when empty |
//! | `v1.oci.index`, `v1.oci.manifest`, `v2.docker.manifestList`, `v2.docker.manifest` | the manifest decoded into Go structs. Go writes all four, the three that do not apply as zero values; we write only the one for `type` and keep it as untyped JSON |
//! | `created`, `pulled` | local wall-clock time `YYYY-MM-DDTHH:MM:SS` (Go layout `2006-01-02T15:04:05`); `created` is set on first pull, `pulled` on every cache hit. Files from before 1.8 lack both |
//! | `tags` | ours: every tag known to point at the manifest. Go's decoder ignores it; for files without it the tag in `imageUrl` (if any) is used |
//! | `checked` | ours: tag -> when it was last checked against its upstream, in the format of `created`; omitted when empty |
//!
//! A holder without `bytes` cannot be served byte-exactly; [`FsStore::load_manifests`] skips
//! it and reports why. So it does for a file whose bytes do not hash to its name.
//!
//! ## Durability
//!
//! Blobs stream into `tmp/` while being hashed ([`BlobWriter`]); only a verified, fsynced
//! file is renamed into `blobs/`, and the directory is fsynced after. Manifests are written
//! the same way (temp file, fsync, rename, directory fsync). A crash leaves either the old
//! file or the new one, and at worst stray temp files, which [`FsStore::open`] deletes.
//!
//! The synchronous functions use blocking `std::fs`: call them off the async threads.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use super::blob_writer::{BlobWriter, Destination};
use super::holder::{to_local, ManifestHolder};
use super::{BlobFile, LoadProblem, LoadedCache, Space, Store, StoreError, StoreFuture};
use crate::oci::Digest;

/// Subdirectory for blobs.
pub const BLOBS_DIR: &str = "blobs";
/// Go 1.8: manifest lists and indexes.
pub const FAT_DIR: &str = "fat";
/// Go 1.8: image manifests; Go 1.9+: every manifest not tagged `latest`.
pub const IMG_DIR: &str = "img";
/// Go 1.9+: manifests pulled by the tag `latest`.
pub const LTS_DIR: &str = "lts";
/// Our temp files. Not a Go directory; emptied at open.
pub const TMP_DIR: &str = "tmp";
/// Referrers lists (OCI image indexes) by subject digest; our addition, unknown to the Go server.
pub const REFERRERS_DIR: &str = "referrers";

/// The manifest directories, in the order they are read.
pub(super) const MANIFEST_DIRS: [&str; 3] = [FAT_DIR, IMG_DIR, LTS_DIR];

/// A manifest file larger than this is not a manifest.
pub(super) const MAX_MANIFEST_FILE: u64 = 16 * 1024 * 1024;

/// The on-disk cache rooted at one directory. Its own methods block (the command-line tools
/// that work on a cache directory call them directly); the engine uses it as a [`Store`].
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

/// Distinguishes temp files made by this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FsStore {
    /// Opens (creating as needed) the cache at `root`: makes the blob, manifest and temp
    /// directories, and deletes temp files left by an earlier run.
    pub fn open(root: &Path) -> Result<FsStore, StoreError> {
        let store = FsStore {
            root: root.to_path_buf(),
        };
        for dir in [BLOBS_DIR, FAT_DIR, IMG_DIR, LTS_DIR, TMP_DIR] {
            let p = store.root.join(dir);
            fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
        }
        store.sweep_temp()?;
        Ok(store)
    }

    /// A store over an existing cache for reading only: creates nothing and, unlike
    /// [`FsStore::open`], leaves `tmp/` alone, so it is safe while a server uses the cache.
    pub fn read_only(root: &Path) -> FsStore {
        FsStore {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with digest `d` is (or would be) stored.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join(BLOBS_DIR).join(d.hex())
    }

    /// Starts streaming a new blob into a temp file.
    pub async fn create_blob_writer(&self) -> Result<BlobWriter, StoreError> {
        loop {
            let path = self.temp_file_path("blob");
            match tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .await
            {
                Ok(file) => {
                    let dest = Destination::Dir(self.root.join(BLOBS_DIR));
                    return Ok(BlobWriter::new(file.into_std().await, path, dest));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
    }

    /// Writes (or replaces) a manifest file atomically. Lists go to `fat/`, image manifests
    /// to `img/`, unless the file already exists in another manifest directory, in which case
    /// it is replaced there. Refuses a holder whose bytes do not hash to its digest.
    pub fn write_manifest(&self, h: &ManifestHolder) -> Result<(), StoreError> {
        let dest = self.manifest_destination(h);
        let actual = Digest::of(h.bytes());
        if &actual != h.digest() {
            return Err(StoreError::ManifestDigestMismatch { path: dest, actual });
        }
        let json = serde_json::to_vec(h).map_err(|source| StoreError::Serialize {
            path: dest.clone(),
            source: std::sync::Arc::new(source),
        })?;
        self.write_atomically(&dest, &json, "manifest")
    }

    /// Replaces `dest` with `bytes` so that a crash leaves the old file or the new one, never a
    /// mix: temp file, fsync, rename, fsync of the directory.
    fn write_atomically(&self, dest: &Path, bytes: &[u8], what: &str) -> Result<(), StoreError> {
        let (tmp, mut file) = self.create_temp_file(what)?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io(&tmp, e));
        drop(file);
        let renamed =
            written.and_then(|()| fs::rename(&tmp, dest).map_err(|e| StoreError::io(dest, e)));
        if let Err(e) = renamed {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let dir = dest.parent().unwrap_or(&self.root);
        sync_dir(dir)
    }

    /// Where the referrers list of `subject` is kept (an OCI image index, as served).
    fn referrers_path(&self, subject: &Digest) -> PathBuf {
        self.root.join(REFERRERS_DIR).join(subject.hex())
    }

    /// Keeps the referrers list of `subject`, for answering it without the upstream.
    pub fn write_referrers(&self, subject: &Digest, index: &[u8]) -> Result<(), StoreError> {
        let dest = self.referrers_path(subject);
        let dir = self.root.join(REFERRERS_DIR);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        self.write_atomically(&dest, index, "referrers")
    }

    /// The kept referrers list of `subject`, if any.
    pub fn read_referrers(&self, subject: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.referrers_path(subject);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Removes the manifest with digest `d` from every manifest directory, and the referrers
    /// list kept for it as a subject (nothing would ever serve or remove it otherwise).
    /// `Ok(false)` if there was no manifest to remove.
    pub fn remove_manifest(&self, d: &Digest) -> Result<bool, StoreError> {
        let mut removed = false;
        for dir in MANIFEST_DIRS {
            removed |= remove_if_present(&self.root.join(dir).join(d.hex()))?;
        }
        remove_if_present(&self.referrers_path(d))?;
        Ok(removed)
    }

    /// Stores a blob held in memory (temp file, fsync, rename), after checking that `bytes`
    /// hash to `d`. For small content the process carries itself, such as the embedded
    /// hello-world image; upstream blobs stream through [`FsStore::create_blob_writer`].
    pub fn write_blob(&self, d: &Digest, bytes: &[u8]) -> Result<u64, StoreError> {
        let actual = Digest::of(bytes);
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                expected: d.clone(),
                actual,
            });
        }
        self.write_atomically(&self.blob_path(d), bytes, "blob")?;
        Ok(bytes.len() as u64)
    }

    /// Whether a blob is stored.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// A stored blob opened for reading, with its size (for writing it into an archive).
    pub fn read_blob(&self, d: &Digest) -> Result<(fs::File, u64), StoreError> {
        let path = self.blob_path(d);
        let file = fs::File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let size = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        Ok((file, size))
    }

    /// A new, empty directory in `tmp/` for staging many blobs before any of them is adopted
    /// (an archive import). The caller removes it; a crash leaves it to the next open's sweep.
    pub fn staging_dir(&self, what: &str) -> Result<PathBuf, StoreError> {
        let dir = self.temp_file_path(what);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        Ok(dir)
    }

    /// Moves staged files, each already checked to hash to its digest, into `blobs/` (those
    /// stored already are left alone), then makes the renames durable. The number adopted.
    pub fn adopt_blobs(&self, staged: &[(PathBuf, Digest)]) -> Result<usize, StoreError> {
        let mut adopted = 0;
        for (from, d) in staged {
            let dest = self.blob_path(d);
            if dest.is_file() {
                continue;
            }
            fs::rename(from, &dest).map_err(|e| StoreError::io(&dest, e))?;
            adopted += 1;
        }
        if adopted > 0 {
            sync_dir(&self.root.join(BLOBS_DIR))?;
        }
        Ok(adopted)
    }

    /// Removes a blob. `Ok(false)` if it was not there.
    pub fn remove_blob(&self, d: &Digest) -> Result<bool, StoreError> {
        remove_if_present(&self.blob_path(d))
    }

    /// Every blob in `blobs/` with its size. Names that are not sha256 hex are ignored.
    pub fn list_blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        let dir = self.root.join(BLOBS_DIR);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            else {
                continue;
            };
            let meta = entry
                .metadata()
                .map_err(|e| StoreError::io(&entry.path(), e))?;
            if meta.is_file() {
                out.push((digest, meta.len()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads every manifest file of every layout. A file that cannot be used is reported in
    /// [`LoadedCache::problems`] and skipped; only an unreadable directory fails the load.
    pub fn load_manifests(&self) -> Result<LoadedCache, StoreError> {
        let mut loaded = LoadedCache::default();
        let mut by_digest: HashMap<Digest, usize> = HashMap::new();
        for dir in MANIFEST_DIRS {
            let dir = self.root.join(dir);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(&dir, e)),
            };
            let mut paths = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
                paths.push(entry.path());
            }
            paths.sort();
            for path in paths {
                match load_manifest_file(&path) {
                    Ok(Some(h)) => match by_digest.get(h.digest()) {
                        Some(&i) => loaded.holders[i].merge_from(&h),
                        None => {
                            by_digest.insert(h.digest().clone(), loaded.holders.len());
                            loaded.holders.push(h);
                        }
                    },
                    Ok(None) => {}
                    Err(reason) => {
                        log::warn!("skipping manifest file {}: {reason}", path.display());
                        loaded.problems.push(LoadProblem { path, reason });
                    }
                }
            }
        }
        Ok(loaded)
    }

    /// Where `h` is written: its existing file if there is one, else by kind.
    fn manifest_destination(&self, h: &ManifestHolder) -> PathBuf {
        let preferred = if h.is_list() { FAT_DIR } else { IMG_DIR };
        let name = h.digest().hex();
        std::iter::once(preferred)
            .chain(MANIFEST_DIRS.into_iter().filter(|d| *d != preferred))
            .map(|d| self.root.join(d).join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| self.root.join(preferred).join(name))
    }

    fn temp_file_path(&self, what: &str) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.root
            .join(TMP_DIR)
            .join(format!("{what}-{}-{n}-{nanos}.part", std::process::id()))
    }

    fn create_temp_file(&self, what: &str) -> Result<(PathBuf, fs::File), StoreError> {
        loop {
            let path = self.temp_file_path(what);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => return Ok((path, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
    }

    /// Deletes everything in `tmp/`: it only ever holds unfinished writes.
    fn sweep_temp(&self) -> Result<(), StoreError> {
        let dir = self.root.join(TMP_DIR);
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let res = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match res {
                Ok(()) => log::info!("removed leftover temp file {}", path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
        Ok(())
    }
}

/// Reads one manifest file. `Ok(None)` for entries that are not files (ignored silently).
fn load_manifest_file(path: &Path) -> Result<Option<ManifestHolder>, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Ok(None);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name_digest =
        Digest::from_hex(name).map_err(|_| "file name is not a sha256 hex digest".to_string())?;
    if meta.len() > MAX_MANIFEST_FILE {
        return Err(format!(
            "{} bytes is too large for a manifest file",
            meta.len()
        ));
    }
    let text = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let mtime = meta
        .modified()
        .map(OffsetDateTime::from)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    parse_holder(&name_digest, &text, mtime).map(Some)
}

/// A manifest file's content, named `name` (its digest), written at `mtime`: the holder, or
/// why it cannot be used. Alike for a file and an object.
pub(super) fn parse_holder(
    name: &Digest,
    text: &[u8],
    mtime: OffsetDateTime,
) -> Result<ManifestHolder, String> {
    let mut h: ManifestHolder =
        serde_json::from_slice(text).map_err(|e| format!("not a usable manifest holder: {e}"))?;
    if h.digest() != name {
        return Err(format!(
            "holds digest {} but is named {}",
            h.digest(),
            name.hex()
        ));
    }
    let actual = Digest::of(h.bytes());
    if &actual != name {
        return Err(format!(
            "manifest bytes hash to {actual}, not to the file name"
        ));
    }
    h.fill_missing_times(to_local(mtime));
    Ok(h)
}

fn remove_if_present(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Runs a blocking filesystem step on the blocking pool.
fn blocking<T, F>(f: F) -> StoreFuture<'static, T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|e| Err(StoreError::Task(e.to_string())))
    })
}

impl Store for FsStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn load_manifests(&self) -> StoreFuture<'_, LoadedCache> {
        let s = self.clone();
        blocking(move || s.load_manifests())
    }

    fn write_manifests(&self, holders: Vec<ManifestHolder>) -> StoreFuture<'_, ()> {
        let s = self.clone();
        blocking(move || holders.iter().try_for_each(|h| s.write_manifest(h)))
    }

    fn remove_manifest(&self, digest: Digest) -> StoreFuture<'_, bool> {
        let s = self.clone();
        blocking(move || s.remove_manifest(&digest))
    }

    fn write_referrers(&self, subject: Digest, index: Vec<u8>) -> StoreFuture<'_, ()> {
        let s = self.clone();
        blocking(move || s.write_referrers(&subject, &index))
    }

    fn read_referrers(&self, subject: Digest) -> StoreFuture<'_, Option<Vec<u8>>> {
        let s = self.clone();
        blocking(move || s.read_referrers(&subject))
    }

    fn list_blobs(&self) -> StoreFuture<'_, Vec<(Digest, u64)>> {
        let s = self.clone();
        blocking(move || s.list_blobs())
    }

    fn create_blob(&self) -> StoreFuture<'_, BlobWriter> {
        Box::pin(self.create_blob_writer())
    }

    fn open_blob(&self, digest: Digest, offset: u64) -> StoreFuture<'_, BlobFile> {
        let path = self.blob_path(&digest);
        // A cache hit's path is in memory: opened here, with no trip to the blocking pool.
        match super::blob_file::open_without_waiting(&path) {
            Ok(Some(f)) => return Box::pin(std::future::ready(Ok(BlobFile::new(f, offset)))),
            Ok(None) => {}
            Err(e) => return Box::pin(std::future::ready(Err(StoreError::io(&path, e)))),
        }
        blocking(move || {
            let f = std::fs::File::open(&path).map_err(|e| StoreError::io(&path, e))?;
            Ok(BlobFile::new(f, offset))
        })
    }

    fn check_blob(&self, digest: Digest) -> StoreFuture<'_, Option<(Digest, u64)>> {
        let path = self.blob_path(&digest);
        blocking(move || Ok(file_digest(&path).ok()))
    }

    fn remove_blob(&self, digest: Digest) -> StoreFuture<'_, bool> {
        let s = self.clone();
        blocking(move || s.remove_blob(&digest))
    }

    fn space(&self) -> StoreFuture<'_, Option<Space>> {
        let dir = self.root.join(BLOBS_DIR);
        blocking(move || {
            let stats = fs4::statvfs(&dir).map_err(|e| StoreError::io(&dir, e))?;
            Ok(Some(Space {
                available: stats.available_space(),
                total: stats.total_space(),
            }))
        })
    }
}

/// The sha256 and length of a file, read in large chunks.
fn file_digest(path: &Path) -> io::Result<(Digest, u64)> {
    use sha2::Digest as _;
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((Digest::from_hasher(hasher), len))
}
