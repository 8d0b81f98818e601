//! One replica among several on a shared store (an S3 bucket): how it keeps in step with the
//! others without a coordinator. The store is the index.
//!
//! - [`Fleet::sync`] picks up what the others wrote and removed since the last look (every
//!   [`SYNC_INTERVAL`], and before a miss goes upstream): new manifests join the index and the
//!   blob table's counts, moved tags follow the latest check, removed manifests leave (and
//!   their `pulled` times are never written back, which would bring them back).
//! - A prune (asked, scheduled, or an eviction) runs on one replica at a time: the one that
//!   creates the store's `prune` lease ([`Fleet::begin_prune`]); with `maxCacheSize`, every
//!   replica weighs the whole store each [`BOUND_CHECK_INTERVAL`]. It first syncs and adopts
//!   the store's whole blob listing, so it decides over everything the fleet cached, and right
//!   before deleting blobs it looks again and keeps each blob that a manifest written since
//!   names ([`Fleet::unnamed`]): a manifest another replica wrote meanwhile keeps its blobs.
//! - A blob whose last naming manifest another replica pruned may be gone: it is checked
//!   against the store on its next use and fetched again when gone
//!   ([`crate::blob_table::Suspect`]).
//! - What a replica wrote a moment after that second look can still name a blob being
//!   deleted, and a replica that has not synced since still counts it stored: the next reader
//!   finds it gone and fetches it again ([`crate::blob::Vanished`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use crate::blob_table::{AddRefs, AdoptStored, BlobTable, ReleaseRefs, Suspect};
use crate::error::EngineError;
use crate::manifest_index::{Adopt, Forget, ManifestIndex};
use crate::oci::Digest;
use crate::store::{Claim, Lease, ManifestHolder, Store};

/// How often a replica of a shared store picks up what the others wrote: the bound on how
/// long a tag moved (or a manifest pruned) by one replica takes to reach the others (plus one
/// look at the bucket).
pub const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// How often each replica of a shared store with `maxCacheSize` weighs the whole store (a
/// blob listing under the prune lease) and evicts when it is over the bound. Between two
/// checks, each replica evicts when the blobs it knows of cross the bound.
pub const BOUND_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// How often a replica waiting for another's manifest fetch looks in the store.
const MANIFEST_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// This replica's link to the others: the store they share, and the actors a sync updates.
pub struct Fleet {
    store: Arc<dyn Store>,
    index: Addr<ManifestIndex>,
    blobs: Addr<BlobTable>,
    /// One look at the store at a time.
    running: tokio::sync::Mutex<()>,
    /// Looks completed, so a caller that waited while another ran can take its result.
    done: AtomicU64,
}

impl Fleet {
    pub fn new(store: Arc<dyn Store>, index: Addr<ManifestIndex>, blobs: Addr<BlobTable>) -> Self {
        Fleet {
            store,
            index,
            blobs,
            running: tokio::sync::Mutex::new(()),
            done: AtomicU64::new(0),
        }
    }

    /// Picks up what the other replicas wrote or removed since the last look. One look at a
    /// time; a caller that waited while another ran takes its result.
    pub async fn sync(&self) -> Result<(), EngineError> {
        let before = self.done.load(Ordering::SeqCst);
        let _one = self.running.lock().await;
        if self.done.load(Ordering::SeqCst) != before {
            return Ok(());
        }
        self.look().await.map(drop)
    }

    /// A look that starts now: for a prune, which must not decide on an older one.
    async fn sync_now(&self) -> Result<HashSet<Digest>, EngineError> {
        let _one = self.running.lock().await;
        self.look().await
    }

    /// One look; the blobs that the image manifests it picked up (new to the index) name.
    async fn look(&self) -> Result<HashSet<Digest>, EngineError> {
        let changed = self.store.changed_manifests().await;
        self.done.fetch_add(1, Ordering::SeqCst);
        let changed = changed?;
        for problem in &changed.problems {
            log::warn!("shared store: {problem}");
        }
        let mut named = HashSet::new();
        if !changed.holders.is_empty() {
            log::debug!(
                "shared store: {} manifests written by other replicas",
                changed.holders.len()
            );
            named = adopt(&self.index, &self.blobs, changed.holders, false).await?;
        }
        if !changed.removed.is_empty() {
            let gone = self
                .index
                .send(Forget {
                    digests: changed.removed,
                })
                .await?;
            if !gone.is_empty() {
                log::info!(
                    "shared store: {} manifests removed by another replica: {}",
                    gone.len(),
                    gone.iter()
                        .map(|g| g.url.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // Only the counts: deleting the blobs is the pruning replica's work, which may
            // have deleted the ones no manifest here names any more.
            let unnamed = self
                .blobs
                .send(ReleaseRefs {
                    manifests: gone
                        .into_iter()
                        .filter(|g| !g.is_list)
                        .map(|g| (g.digest, g.blobs))
                        .collect(),
                })
                .await?;
            self.blobs.send(Suspect { digests: unnamed }).await?;
        }
        Ok(named)
    }

    /// A manifest by digest that no replica has cached: fetched from the upstream by one
    /// replica of the fleet (the one that takes its lease, with `fetch`), while the others
    /// wait for it to appear in the store and take it from there (`cached` reads this
    /// replica's index after a sync). Waits at most `within` for another replica's fetch.
    pub async fn manifest_once<T, F, Fut>(
        &self,
        digest: &Digest,
        within: std::time::Duration,
        cached: impl Fn() -> Option<T>,
        fetch: F,
    ) -> Result<T, EngineError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, EngineError>>,
    {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.store.claim_manifest(digest.clone()).await? {
                Claim::Fetch(lease) => {
                    let fetched = fetch().await;
                    if let Some(lease) = lease {
                        lease.end().await;
                    }
                    return fetched;
                }
                Claim::Stored(_) => {
                    self.sync_now().await?;
                    // Stored, yet not adopted (unreadable, say): this replica fetches it.
                    return match cached() {
                        Some(found) => Ok(found),
                        None => fetch().await,
                    };
                }
                Claim::Elsewhere(holder) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(EngineError::FetchedElsewhere(format!(
                            "manifest {digest}: {holder} is fetching it and has not finished"
                        )));
                    }
                    tokio::time::sleep(MANIFEST_POLL).await;
                    self.sync().await?;
                    if let Some(found) = cached() {
                        return Ok(found);
                    }
                }
            }
        }
    }

    /// Takes the fleet's prune lease (held until dropped or ended), then brings this replica
    /// up to date with the whole store: its manifests, and every blob it holds.
    pub async fn begin_prune(&self) -> Result<Option<Lease>, EngineError> {
        let lease = match self.store.claim_task("prune").await? {
            Claim::Fetch(lease) => lease,
            Claim::Elsewhere(holder) => {
                return Err(EngineError::Busy(format!(
                    "{holder} is pruning the shared store; one replica prunes at a time, try \
                     again when it has finished"
                )))
            }
            Claim::Stored(_) => None,
        };
        self.sync_now().await?;
        let stored = self.store.list_blobs_with_age().await?;
        let whole = true;
        self.blobs
            .send(AdoptStored {
                blobs: stored,
                whole,
            })
            .await?;
        Ok(lease)
    }

    /// Splits `candidates` into the blobs no manifest in the store names now, and the ones
    /// one does (with the reason, for the report). A fresh look at the store (one listing, and
    /// a read of each manifest object written since the last) picks up the manifests other
    /// replicas wrote since the prune began; those this replica knew of already are in the
    /// blob table's counts, which the candidates were chosen by and which its `Remove` checks
    /// again.
    pub async fn unnamed(
        &self,
        candidates: Vec<Digest>,
    ) -> Result<(Vec<Digest>, Vec<(Digest, String)>), EngineError> {
        if candidates.is_empty() {
            return Ok((candidates, Vec::new()));
        }
        let named = self.sync_now().await?;
        let (kept, free): (Vec<Digest>, Vec<Digest>) =
            candidates.into_iter().partition(|d| named.contains(d));
        let kept = kept
            .into_iter()
            .map(|d| {
                let why = "named by a manifest another replica wrote meanwhile".to_string();
                (d, why)
            })
            .collect();
        Ok((free, kept))
    }
}

/// Manifests written into the store beside the index (by other replicas, or by an import into
/// the running server's directory): into the index (see [`Adopt`] for `tags_as_stored`), and
/// the blobs of the new image manifests into the blob table's counts. Answers those blobs.
pub async fn adopt(
    index: &Addr<ManifestIndex>,
    blobs: &Addr<BlobTable>,
    holders: Vec<ManifestHolder>,
    tags_as_stored: bool,
) -> Result<HashSet<Digest>, EngineError> {
    let new_images = index
        .send(Adopt {
            holders,
            tags_as_stored,
        })
        .await?;
    let named = new_images
        .iter()
        .flat_map(|(_, named)| named.iter().map(|b| b.digest.clone()))
        .collect();
    blobs
        .send(AddRefs {
            manifests: new_images,
        })
        .await?;
    Ok(named)
}
