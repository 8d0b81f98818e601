//! One upstream fetch per blob across every replica of a bucket, and one prune at a time:
//! create-only lease objects.
//!
//! The lease of a blob is `leases/<hex>/<generation>` (generations zero-padded, so they list in
//! order). Whoever creates the next generation with one `PUT If-None-Match: *`
//! (`PutMode::Create`) fetches; the store lets exactly one creator of a key win. The object
//! names its holder and an expiry, which the holder pushes forward every [`RENEW_EVERY`] by
//! rewriting its own generation (no one else ever writes that key). A lease past its expiry
//! (its holder died or hangs) is taken over by creating the generation after it, again
//! create-only: conditional overwrites are not honoured alike by every store (Ceph RGW 16.2
//! refuses `If-Match` with the current ETag), and a delete followed by a create lets a slow
//! taker delete the winner's fresh lease.
//!
//! The holder removes every generation once the blob is stored, and its own when its download
//! fails, so the next claim starts at once. Expiry compares the holder's clock with the
//! reader's: replicas need clocks within a few seconds of each other (NTP), as the lease
//! lasts [`LEASE_TTL`].
//!
//! A task that one replica at a time may run (`prune`) is leased the same way, under
//! `leases/<task>/<generation>`, held until the task ends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::S3Store;
use crate::oci::Digest;
use crate::store::{Claim, Lease, StoreError};

/// How long a lease lives without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(20);
/// How often the holder renews: three chances before it expires.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
const LEASES_DIR: &str = "leases";

/// The content of a lease object.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseBody {
    holder: String,
    /// Seconds since the Unix epoch, on the holder's clock.
    expires: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn body(holder: &str) -> Vec<u8> {
    let b = LeaseBody {
        holder: holder.to_string(),
        expires: now_secs() + LEASE_TTL.as_secs(),
    };
    serde_json::to_vec(&b).unwrap_or_default()
}

/// What a lease is fetched for, with the size of what is stored of it already.
#[derive(Clone, Copy)]
enum Content {
    Blob,
    Manifest,
}

impl Content {
    async fn stored(self, store: &S3Store, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match self {
            Content::Blob => store.blob_size(digest).await,
            Content::Manifest => store.manifest_size(digest).await,
        }
    }
}

/// Decides who fetches `digest` (see [`Claim`]).
pub(super) async fn claim(store: &S3Store, digest: &Digest) -> Result<Claim, StoreError> {
    let dir = store.key(&format!("{LEASES_DIR}/{}", digest.hex()));
    claim_unless_stored(store, &dir, digest, Content::Blob).await
}

/// Decides who fetches the manifest `digest` from the upstream, the same way: its leases are
/// `leases/manifest-<hex>/...`.
pub(super) async fn claim_manifest(store: &S3Store, digest: &Digest) -> Result<Claim, StoreError> {
    let dir = store.key(&format!("{LEASES_DIR}/manifest-{}", digest.hex()));
    claim_unless_stored(store, &dir, digest, Content::Manifest).await
}

/// The lease under `dir` for `content` of `digest`: nobody fetches what is stored, looked at
/// before the lease and again after it.
async fn claim_unless_stored(
    store: &S3Store,
    dir: &Path,
    digest: &Digest,
    content: Content,
) -> Result<Claim, StoreError> {
    if let Some(size) = content.stored(store, digest).await? {
        return Ok(Claim::Stored(size));
    }
    let what = match content {
        Content::Blob => format!("blob {digest}"),
        Content::Manifest => format!("manifest {digest}"),
    };
    let lease = match take(store, dir, &what).await? {
        Ok(lease) => lease,
        Err(holder) => return Ok(Claim::Elsewhere(holder)),
    };
    // The previous holder may have stored it between the first look and the lease.
    if let Some(size) = content.stored(store, digest).await? {
        lease.end().await;
        return Ok(Claim::Stored(size));
    }
    Ok(Claim::Fetch(Some(lease)))
}

/// Decides who runs `task` (`prune`), which one replica at a time may run. Its leases live
/// beside the blobs' (`leases/prune/...`); a task name is never 64 hex digits.
pub(super) async fn claim_task(store: &S3Store, task: &str) -> Result<Claim, StoreError> {
    let dir = store.key(&format!("{LEASES_DIR}/{task}"));
    Ok(match take(store, &dir, task).await? {
        Ok(lease) => Claim::Fetch(Some(lease)),
        Err(holder) => Claim::Elsewhere(holder),
    })
}

/// Creates the next generation of the lease under `dir` unless a live one exists: the lease,
/// or the name of whoever holds it. `what` names the lease in log lines.
async fn take(
    store: &S3Store,
    dir: &Path,
    what: &str,
) -> Result<Result<Lease, String>, StoreError> {
    let client = &store.inner.client;
    let mut generations: Vec<u64> = client
        .list(Some(dir))
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| StoreError::object(dir, e))?
        .iter()
        .filter_map(|m| m.location.filename()?.parse().ok())
        .collect();
    generations.sort_unstable();
    let next = match generations.last() {
        None => 0,
        Some(&g) => {
            let key = generation_key(dir, g);
            let held = store.read_small(&key, 64 * 1024).await?;
            match held.and_then(|b| serde_json::from_slice::<LeaseBody>(&b).ok()) {
                Some(l) if l.expires > now_secs() => return Ok(Err(l.holder)),
                Some(l) => {
                    log::info!("{what}: the lease of {} expired; taking it over", l.holder);
                    g + 1
                }
                // Given back between the listing and the read, or unreadable: the next
                // generation decides.
                None => g + 1,
            }
        }
    };
    let key = generation_key(dir, next);
    let holder = store.inner.holder.clone();
    let created = client
        .put_opts(
            &key,
            PutPayload::from(body(&holder)),
            PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            },
        )
        .await;
    match created {
        Ok(_) => Ok(Ok(start(store, dir.clone(), key, holder))),
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok(Err("another replica".into())),
        Err(e) => Err(StoreError::object(&key, e)),
    }
}

fn generation_key(dir: &Path, generation: u64) -> Path {
    Path::from(format!("{dir}/{generation:020}"))
}

/// The won lease: renewed in the background until ended; ending it removes this generation,
/// and every older one once the blob is stored (the caller ends it after storing).
fn start(store: &S3Store, dir: Path, key: Path, holder: String) -> Lease {
    let renewing = {
        let (store, key, holder) = (store.clone(), key.clone(), holder.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(e) = store.put(&key, body(&holder)).await {
                    log::warn!("renewing lease {key}: {e}");
                }
            }
        })
    };
    let release = {
        let store = store.clone();
        let key = key.clone();
        Box::pin(async move {
            let client = &store.inner.client;
            let listed: Result<Vec<_>, _> = client.list(Some(&dir)).try_collect().await;
            let mut keys: Vec<Path> = listed
                .map(|l| l.into_iter().map(|m| m.location).collect())
                .unwrap_or_default();
            if !keys.contains(&key) {
                keys.push(key.clone());
            }
            // Older generations are stale leftovers of holders that died; newer ones belong to
            // a taker (this lease expired under a stalled renewal) and stay theirs.
            for k in keys.into_iter().filter(|k| k.as_ref() <= key.as_ref()) {
                if let Err(e) = client.delete(&k).await {
                    log::warn!("giving back lease {k}: {e}");
                }
            }
        })
    };
    Lease::new(format!("{key} held by {holder}"), renewing, release)
}
