//! The cache in an S3-compatible bucket (AWS S3, Ceph RGW, MinIO, ...), shared by every
//! replica that names the same bucket and prefix.
//!
//! # Layout
//!
//! The keys are the cache directory's paths under an optional prefix, so a bucket and a
//! directory convert with ordinary tools (`aws s3 sync`, `rclone`):
//!
//! ```text
//! <prefix>blobs/<hex>               raw blobs, uploaded only once verified
//! <prefix>fat/<hex>, img/<hex>      manifest holders (the JSON of the files on disk)
//! <prefix>lts/<hex>                 read like the directory; never written
//! <prefix>referrers/<hex>           referrers lists
//! <prefix>leases/<hex>/<generation> who fetches a blob now (`lease.rs`)
//! ```
//!
//! A blob streams into a staging file on the replica's own disk (the cache directory's
//! `tmp/`), where readers follow it as they do on the filesystem store; once verified it is
//! uploaded (multipart when large) and only the finished upload makes it visible. Readers of a
//! stored blob get the body of one ranged GET, a chunk at a time.

mod lease;

use std::collections::{HashMap, HashSet};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig,
    WriteMultipart,
};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;

use super::blob_file::RemoteBody;
use super::blob_writer::{Destination, Upload};
use super::fs::{parse_holder, BLOBS_DIR, FAT_DIR, IMG_DIR, MANIFEST_DIRS, MAX_MANIFEST_FILE};
use super::{
    BlobFile, BlobWriter, Claim, FsStore, LoadProblem, LoadedCache, ManifestHolder, Space, Store,
    StoreError, StoreFuture, REFERRERS_DIR,
};
use crate::config::S3Config;
use crate::oci::Digest;

/// Blobs up to this size go up in one PUT, larger ones in parts of this size: the most of a
/// blob an upload holds in memory at once, times the parts in flight.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;
/// Manifest objects read at once when loading.
const PARALLEL_READS: usize = 16;

/// An S3-compatible bucket as the cache's store.
#[derive(Debug, Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: AmazonS3,
    /// For log lines: `s3://bucket/prefix at endpoint`.
    location: String,
    prefix: String,
    /// The replica's own disk, where downloads stage before their upload.
    scratch: FsStore,
    /// How this replica names itself in leases.
    holder: String,
    /// Manifest object -> the ETag last read or written by this replica, so that
    /// [`Store::changed_manifests`] reads only what others wrote.
    seen: Mutex<HashMap<String, String>>,
}

impl S3Store {
    /// Connects to the bucket and checks, with one listing, that it exists and the
    /// credentials are good: a mistake is a clear error at start, not on the first pull.
    /// Downloads stage in `scratch` (the cache directory's `tmp/`, swept now).
    pub async fn connect(config: &S3Config, scratch: &FsPath) -> Result<S3Store, StoreError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_virtual_hosted_style_request(false)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    // No bound on a whole request (a blob streams to a slow client for as
                    // long as it takes), but on silence.
                    .with_timeout_disabled()
                    .with_read_timeout(Duration::from_secs(30))
                    .with_allow_http(true),
            )
            // A store that is down must become a quick 503, not minutes of retries.
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &config.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let location = format!(
            "s3://{}/{} at {}",
            config.bucket,
            config.prefix,
            config.endpoint.as_deref().unwrap_or("AWS")
        );
        let client = builder
            .build()
            .map_err(|e| StoreError::Setup(format!("storage.s3 ({location}): {e}")))?;
        let scratch_dir = scratch.to_path_buf();
        let scratch = tokio::task::spawn_blocking(move || FsStore::open(&scratch_dir))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        let store = S3Store {
            inner: Arc::new(Inner {
                client,
                location,
                prefix: config.prefix.clone(),
                scratch,
                holder: config.holder.clone(),
                seen: Mutex::new(HashMap::new()),
            }),
        };
        store.check_access().await?;
        Ok(store)
    }

    /// One listing of the prefix: fails on a missing bucket, bad credentials, an unreachable
    /// endpoint.
    async fn check_access(&self) -> Result<(), StoreError> {
        let prefix = self.key(BLOBS_DIR);
        let first = self.inner.client.list(Some(&prefix)).next().await;
        match first {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(StoreError::Setup(format!(
                "storage.s3: cannot use {}: {}",
                self.inner.location,
                explain(&e)
            ))),
        }
    }

    /// The key of `rel` (a path as in the cache directory) under the prefix.
    fn key(&self, rel: &str) -> Path {
        Path::from(format!("{}{rel}", self.inner.prefix))
    }

    fn blob_key(&self, d: &Digest) -> Path {
        self.key(&format!("{BLOBS_DIR}/{}", d.hex()))
    }

    /// The blob's size, or `None` when it is not stored.
    async fn blob_size(&self, d: &Digest) -> Result<Option<u64>, StoreError> {
        let key = self.blob_key(d);
        match self.inner.client.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::object(&key, e)),
        }
    }

    /// The size of the manifest object of `d`, under either layout directory; `None`: none.
    async fn manifest_size(&self, d: &Digest) -> Result<Option<u64>, StoreError> {
        for dir in MANIFEST_DIRS {
            let key = self.key(&format!("{dir}/{}", d.hex()));
            match self.inner.client.head(&key).await {
                Ok(meta) => return Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(StoreError::object(&key, e)),
            }
        }
        Ok(None)
    }

    /// An object's bytes (small objects only: manifests, referrers, leases); `None` when
    /// there is none.
    async fn read_small(&self, key: &Path, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let got = match self.inner.client.get(key).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::object(key, e)),
        };
        if got.meta.size > limit {
            return Err(StoreError::Setup(format!(
                "{key}: {} bytes is too large for what it should hold",
                got.meta.size
            )));
        }
        let bytes = got.bytes().await.map_err(|e| StoreError::object(key, e))?;
        Ok(Some(bytes.to_vec()))
    }

    async fn put(&self, key: &Path, bytes: Vec<u8>) -> Result<String, StoreError> {
        let put = self
            .inner
            .client
            .put(key, PutPayload::from(bytes))
            .await
            .map_err(|e| StoreError::object(key, e))?;
        Ok(put.e_tag.unwrap_or_default())
    }

    /// Deletes `key`; `false` when there was nothing.
    async fn remove(&self, key: &Path) -> Result<bool, StoreError> {
        match self.inner.client.head(key).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(StoreError::object(key, e)),
        }
        self.inner
            .client
            .delete(key)
            .await
            .map_err(|e| StoreError::object(key, e))?;
        Ok(true)
    }

    /// Every manifest object with its ETag and time.
    async fn list_manifests(&self) -> Result<Vec<object_store::ObjectMeta>, StoreError> {
        let mut out = Vec::new();
        for dir in MANIFEST_DIRS {
            let mut listed = self.list_under(dir).await?;
            listed.sort_by(|a, b| a.location.cmp(&b.location));
            out.extend(listed);
        }
        Ok(out)
    }

    /// Every object under the directory `dir` of the layout.
    async fn list_under(&self, dir: &str) -> Result<Vec<object_store::ObjectMeta>, StoreError> {
        let prefix = self.key(dir);
        self.inner
            .client
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| StoreError::object(&prefix, e))
    }

    /// Reads the manifest objects `metas`, merging a digest found under two keys as the
    /// filesystem store does, and remembers their ETags.
    async fn read_manifests(
        &self,
        metas: Vec<object_store::ObjectMeta>,
    ) -> Result<LoadedCache, StoreError> {
        let reads = futures_util::stream::iter(metas.into_iter().map(|meta| async move {
            let read = self.read_manifest(&meta).await;
            (meta, read)
        }))
        .buffered(PARALLEL_READS)
        .collect::<Vec<_>>()
        .await;
        let mut loaded = LoadedCache::default();
        let mut by_digest: HashMap<Digest, usize> = HashMap::new();
        for (meta, read) in reads {
            let key = meta.location.to_string();
            match read? {
                Ok(h) => {
                    self.remember(&key, meta.e_tag.clone().unwrap_or_default());
                    match by_digest.get(h.digest()) {
                        Some(&i) => loaded.holders[i].merge_from(&h),
                        None => {
                            by_digest.insert(h.digest().clone(), loaded.holders.len());
                            loaded.holders.push(h);
                        }
                    }
                }
                Err(reason) => {
                    log::warn!("skipping manifest object {key}: {reason}");
                    self.remember(&key, meta.e_tag.clone().unwrap_or_default());
                    loaded.problems.push(LoadProblem {
                        path: PathBuf::from(key),
                        reason,
                    });
                }
            }
        }
        Ok(loaded)
    }

    /// One manifest object: the outer error is the store's, the inner one the content's.
    async fn read_manifest(
        &self,
        meta: &object_store::ObjectMeta,
    ) -> Result<Result<ManifestHolder, String>, StoreError> {
        let name = meta.location.filename().unwrap_or("");
        let Ok(digest) = Digest::from_hex(name) else {
            return Ok(Err("object name is not a sha256 hex digest".into()));
        };
        if meta.size > MAX_MANIFEST_FILE {
            return Ok(Err(format!(
                "{} bytes is too large for a manifest",
                meta.size
            )));
        }
        let Some(bytes) = self.read_small(&meta.location, MAX_MANIFEST_FILE).await? else {
            // Removed between the listing and the read.
            return Ok(Err("removed while being read".into()));
        };
        let mtime = OffsetDateTime::from_unix_timestamp(meta.last_modified.timestamp())
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        Ok(parse_holder(&digest, &bytes, mtime))
    }

    fn forget(&self, key: &str) {
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.remove(key);
    }

    fn remember(&self, key: &str, etag: String) {
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(key.to_string(), etag);
    }

    async fn write_manifest(&self, h: &ManifestHolder) -> Result<(), StoreError> {
        let dir = if h.is_list() { FAT_DIR } else { IMG_DIR };
        let key = self.key(&format!("{dir}/{}", h.digest().hex()));
        let actual = Digest::of(h.bytes());
        if &actual != h.digest() {
            return Err(StoreError::ManifestDigestMismatch {
                path: PathBuf::from(key.to_string()),
                actual,
            });
        }
        let json = serde_json::to_vec(h).map_err(|source| StoreError::Serialize {
            path: PathBuf::from(key.to_string()),
            source: Arc::new(source),
        })?;
        let etag = self.put(&key, json).await?;
        self.remember(key.as_ref(), etag);
        Ok(())
    }

    /// Uploads a verified staging file under the blob's key: one PUT when small, else a
    /// multipart upload (aborted on failure, so no part is left visible).
    async fn upload_file(&self, file: &FsPath, d: &Digest, size: u64) -> Result<(), StoreError> {
        let key = self.blob_key(d);
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| StoreError::io(file, e))?;
        if size <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            f.read_to_end(&mut buf)
                .await
                .map_err(|e| StoreError::io(file, e))?;
            self.put(&key, buf).await?;
            return Ok(());
        }
        let upload = self
            .inner
            .client
            .put_multipart(&key)
            .await
            .map_err(|e| StoreError::object(&key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        let sent = async {
            loop {
                let n = f
                    .read(&mut buf)
                    .await
                    .map_err(|e| StoreError::io(file, e))?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| StoreError::object(&key, e))?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| StoreError::object(&key, e))?;
                Ok(())
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }
}

impl Upload for S3Store {
    fn upload<'a>(
        &'a self,
        file: &'a FsPath,
        digest: &'a Digest,
        size: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.upload_file(file, digest, size))
    }
}

/// What an operator can do about a failure at start.
fn explain(e: &object_store::Error) -> String {
    let text = e.to_string();
    let hint = if text.contains("NoSuchBucket") || matches!(e, object_store::Error::NotFound { .. })
    {
        "the bucket does not exist"
    } else if text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
        || text.contains("AccessDenied")
        || matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        )
    {
        "the credentials were refused"
    } else {
        "the store did not answer as expected"
    };
    format!("{hint} ({text})")
}

impl Store for S3Store {
    fn location(&self) -> String {
        self.inner.location.clone()
    }

    fn load_manifests(&self) -> StoreFuture<'_, LoadedCache> {
        Box::pin(async move {
            let metas = self.list_manifests().await?;
            self.read_manifests(metas).await
        })
    }

    fn write_manifests(&self, holders: Vec<ManifestHolder>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            for h in &holders {
                self.write_manifest(h).await?;
            }
            Ok(())
        })
    }

    fn remove_manifest(&self, digest: Digest) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut removed = false;
            for dir in MANIFEST_DIRS {
                let key = self.key(&format!("{dir}/{}", digest.hex()));
                removed |= self.remove(&key).await?;
                // Not reported back as another replica's removal.
                self.forget(key.as_ref());
            }
            Ok(removed)
        })
    }

    fn write_referrers(&self, subject: Digest, index: Vec<u8>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let key = self.key(&format!("{REFERRERS_DIR}/{}", subject.hex()));
            self.put(&key, index).await.map(drop)
        })
    }

    fn read_referrers(&self, subject: Digest) -> StoreFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            let key = self.key(&format!("{REFERRERS_DIR}/{}", subject.hex()));
            self.read_small(&key, MAX_MANIFEST_FILE).await
        })
    }

    fn list_blobs(&self) -> StoreFuture<'_, Vec<(Digest, u64)>> {
        Box::pin(async move {
            let listed = self.list_under(BLOBS_DIR).await?;
            let mut out: Vec<(Digest, u64)> = listed
                .into_iter()
                .filter_map(|m| {
                    let d = Digest::from_hex(m.location.filename()?).ok()?;
                    Some((d, m.size))
                })
                .collect();
            out.sort();
            Ok(out)
        })
    }

    fn create_blob(&self) -> StoreFuture<'_, BlobWriter> {
        Box::pin(async move {
            let writer = self.inner.scratch.create_blob_writer().await?;
            Ok(writer.with_destination(Destination::Remote(Arc::new(self.clone()))))
        })
    }

    fn open_blob(&self, digest: Digest, offset: u64) -> StoreFuture<'_, BlobFile> {
        Box::pin(async move {
            let key = self.blob_key(&digest);
            let options = GetOptions {
                // An empty object has no byte 0 to start a range at.
                range: (offset > 0).then_some(GetRange::Offset(offset)),
                ..GetOptions::default()
            };
            let got = self
                .inner
                .client
                .get_opts(&key, options)
                .await
                .map_err(|e| StoreError::object(&key, e))?;
            Ok(BlobFile::Remote(RemoteBody::new(got.into_stream())))
        })
    }

    fn check_blob(&self, digest: Digest) -> StoreFuture<'_, Option<(Digest, u64)>> {
        Box::pin(async move {
            use sha2::Digest as _;
            let key = self.blob_key(&digest);
            let got = match self.inner.client.get(&key).await {
                Ok(g) => g,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(StoreError::object(&key, e)),
            };
            let mut body = got.into_stream();
            let mut hasher = sha2::Sha256::new();
            let mut len = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::object(&key, e))?;
                hasher.update(&chunk);
                len += chunk.len() as u64;
            }
            Ok(Some((Digest::from_hasher(hasher), len)))
        })
    }

    fn remove_blob(&self, digest: Digest) -> StoreFuture<'_, bool> {
        Box::pin(async move { self.remove(&self.blob_key(&digest)).await })
    }

    fn space(&self) -> StoreFuture<'_, Option<Space>> {
        Box::pin(async { Ok(None) })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn trusts_stored_blobs(&self) -> bool {
        true
    }

    fn claim_blob(&self, digest: Digest) -> StoreFuture<'_, Claim> {
        Box::pin(async move { lease::claim(self, &digest).await })
    }

    fn claim_manifest(&self, digest: Digest) -> StoreFuture<'_, Claim> {
        Box::pin(async move { lease::claim_manifest(self, &digest).await })
    }

    fn claim_task(&self, task: &'static str) -> StoreFuture<'_, Claim> {
        Box::pin(async move { lease::claim_task(self, task).await })
    }

    fn list_blobs_with_age(&self) -> StoreFuture<'_, Vec<(Digest, u64, Duration)>> {
        Box::pin(async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let listed = self.list_under(BLOBS_DIR).await?;
            let mut out: Vec<(Digest, u64, Duration)> = listed
                .into_iter()
                .filter_map(|m| {
                    let d = Digest::from_hex(m.location.filename()?).ok()?;
                    // A clock behind the store's makes a fresh object look newer, not older.
                    let age = now.saturating_sub(m.last_modified.timestamp()).max(0) as u64;
                    let age = Duration::from_secs(age);
                    Some((d, m.size, age))
                })
                .collect();
            out.sort();
            Ok(out)
        })
    }

    fn changed_manifests(&self) -> StoreFuture<'_, LoadedCache> {
        Box::pin(async move {
            let metas = self.list_manifests().await?;
            let (mut changed, gone): (Vec<_>, Vec<String>) = {
                let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
                let listed: HashSet<&str> = metas.iter().map(|m| m.location.as_ref()).collect();
                let gone: Vec<String> = seen
                    .keys()
                    .filter(|k| !listed.contains(k.as_str()))
                    .cloned()
                    .collect();
                for k in &gone {
                    seen.remove(k);
                }
                let changed = metas
                    .into_iter()
                    .filter(|m| {
                        seen.get(m.location.as_ref()) != Some(&m.e_tag.clone().unwrap_or_default())
                    })
                    .collect();
                (changed, gone)
            };
            // The later write wins when two replicas moved one tag: apply them in order.
            changed.sort_by_key(|m| m.last_modified);
            let mut loaded = self.read_manifests(changed).await?;
            // A digest is gone when no key of it is left (a manifest may sit under two).
            let kept: HashSet<Digest> = loaded.holders.iter().map(|h| h.digest().clone()).collect();
            let still: HashSet<String> = {
                let seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.keys()
                    .filter_map(|k| k.rsplit('/').next().map(str::to_string))
                    .collect()
            };
            let mut removed: Vec<Digest> = gone
                .iter()
                .filter_map(|k| Digest::from_hex(k.rsplit('/').next()?).ok())
                .filter(|d| !kept.contains(d) && !still.contains(d.hex()))
                .collect();
            removed.sort();
            removed.dedup();
            loaded.removed = removed;
            Ok(loaded)
        })
    }
}
