//! The engine as the HTTP edge sees it: the actors' addresses and the few questions handlers
//! ask. Every method only sends messages (and reads blobs through the store), except a manifest
//! hit, which reads the snapshot the index publishes; the actors hold all the state.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use crate::blob::{BlobInfo, BlobSource, BlobStatus, StoredBlobs, Vanished};
use crate::blob_table::{self, AddRefs, BlobTable, Open};
use crate::config::EngineConfig;
use crate::config::Ttl;
use crate::error::EngineError;
use crate::fleet::Fleet;
use crate::manifest_index::{
    self, CachedManifest, Hit, IndexView, ManifestIndex, Resolve, Validated,
};
use crate::metrics::{metrics, UpstreamKind};
use crate::oci::{Digest, ImageRef, Reference, RepoName};
use crate::proxy::reader::{BlobReader, Refetch};
use crate::prune::{CacheBound, Selector};
use crate::pruner::{EvictTo, Prune, PruneReport, Pruner};
use crate::puller_pool::{
    ActiveDownloads, FetchManifest, FetchReferrers, FetchTags, ImageCached, PullerPool, Revalidate,
};
use crate::store::{FsStore, S3Store, Store};

/// How recently pulled an image must be to be kept by an eviction asked for without a
/// configured `maxCacheSize` (whose `evictionGrace` applies otherwise): as being pulled.
const ASKED_EVICTION_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// A referrers list to serve.
#[derive(Debug, Clone)]
pub struct Referrers {
    /// An OCI image index.
    pub index: Vec<u8>,
    /// `artifactType` was applied (the `OCI-Filters-Applied` header says so).
    pub filtered: bool,
    pub from_cache: bool,
}

/// The cache's weight against its bound (`maxCacheSize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    /// Bytes of the blobs on disk, plus the announced sizes of downloads under way.
    pub total_bytes: u64,
    /// Blobs on disk or on their way.
    pub blobs: usize,
    /// `maxCacheSize`; `None` when unbounded.
    pub bound_bytes: Option<u64>,
    /// Images evicted since start.
    pub evictions: u64,
}

/// One page of a tag list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPage {
    pub tags: Vec<String>,
    /// More tags follow this page.
    pub more: bool,
    /// Answered from the tags this cache holds (the upstream did not answer).
    pub from_cache: bool,
}

/// The cache engine: what every request handler holds (cloned per worker).
#[derive(Clone)]
pub struct Engine {
    config: Arc<EngineConfig>,
    /// Where blobs are read from; the actors write through it too.
    store: Arc<dyn Store>,
    /// The index's snapshot: cache hits are answered from it without a message.
    view: IndexView,
    index: Addr<ManifestIndex>,
    blobs: Addr<BlobTable>,
    /// The blobs the table holds stored and verified: blob hits are answered from it without a
    /// message.
    stored: StoredBlobs,
    /// Where readers report a stored blob the store no longer has: built once, shared by every
    /// reader, so a hit does not box a recipient of its own.
    vanished: Arc<Recipient<Vanished>>,
    puller: Addr<PullerPool>,
    pruner: Addr<Pruner>,
    /// On a shared store: this replica's link to the others ([`crate::fleet`]).
    fleet: Option<Arc<Fleet>>,
}

impl Engine {
    /// Opens the cache directory `config.image_path` (sweeping temp files), or connects to the
    /// bucket of `config.s3` (staging downloads in that directory), and starts the engine on
    /// it (see [`Engine::with_store`]). Must run inside an actix `System`.
    pub async fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        let store: Arc<dyn Store> = match &config.s3 {
            Some(s3) => Arc::new(S3Store::connect(s3, &config.image_path).await?),
            None => Arc::new(FsStore::open(&config.image_path)?),
        };
        Engine::with_store(config, store).await
    }

    /// Loads every manifest from `store` and starts the actors, the puller pool on an arbiter
    /// of its own so upstream traffic and hashing never delay the bookkeeping. Must run inside
    /// an actix `System`.
    pub async fn with_store(
        config: EngineConfig,
        store: Arc<dyn Store>,
    ) -> Result<Engine, EngineError> {
        let config = Arc::new(config);
        // Two independent reads of the store: side by side, so a large cache starts sooner.
        let (loaded, present) = tokio::join!(store.load_manifests(), store.list_blobs());
        let (loaded, present) = (loaded?, present?);
        for problem in &loaded.problems {
            log::warn!("cache: {problem}");
        }
        let index = ManifestIndex::new(store.clone(), loaded.holders);
        let view = index.view();
        let refs = index.blob_refs();
        let on_disk: std::collections::HashSet<Digest> =
            present.iter().map(|(d, _)| d.clone()).collect();
        let missing = if config.air_gapped {
            Vec::new()
        } else {
            index.missing_blobs(&on_disk)
        };
        log::info!(
            "cache {}: {} manifests, {} blobs",
            store.location(),
            index.len(),
            present.len()
        );

        // Reading the OS trust store and compiling the reference patterns take a moment; do
        // it now rather than on a first pull.
        std::thread::spawn(crate::upstream::warm_up);
        crate::oci::compile_patterns();
        let bookkeeping = Arbiter::new().handle();
        let pulling = Arbiter::new().handle();
        let index = ManifestIndex::start_in_arbiter(&bookkeeping, move |_| index);
        let (cfg, st, ix) = (config.clone(), store.clone(), index.clone());
        let puller = PullerPool::start_in_arbiter(&pulling, move |_| PullerPool::new(cfg, st, ix));
        let p = puller.clone();
        let st = store.clone();
        let stored = StoredBlobs::default();
        let published = stored.clone();
        let blobs = BlobTable::start_in_arbiter(&bookkeeping, move |_| {
            BlobTable::new(p, present)
                .with_store(st)
                .publishing(published)
        });
        blobs.do_send(AddRefs { manifests: refs });
        let fleet = store
            .is_shared()
            .then(|| Arc::new(Fleet::new(store.clone(), index.clone(), blobs.clone())));
        let (ix, bl, schedule) = (index.clone(), blobs.clone(), config.prune.clone());
        let (bound, f) = (config.cache_bound.clone(), fleet.clone());
        let pruner = Pruner::start_in_arbiter(&bookkeeping, move |_| {
            Pruner::new(ix, bl, schedule)
                .with_bound(bound)
                .with_fleet(f)
        });
        if let Some(b) = &config.cache_bound {
            blobs.do_send(blob_table::AttachBound {
                max_bytes: b.max_bytes,
                evictor: pruner.clone().recipient(),
            });
        }
        if !missing.is_empty() {
            log::info!(
                "cache: fetching {} blobs that cached images lack",
                missing.len()
            );
        }
        for (digest, source) in missing {
            blobs.do_send(Open {
                digest,
                source: Some(source),
            });
        }
        let engine = Engine {
            config,
            store,
            view,
            index,
            vanished: Arc::new(blobs.clone().recipient()),
            blobs,
            stored,
            puller,
            pruner,
            fleet,
        };
        if let Some(fleet) = engine.fleet.clone() {
            actix_rt::spawn(async move {
                loop {
                    tokio::time::sleep(crate::fleet::SYNC_INTERVAL).await;
                    if let Err(err) = fleet.sync().await {
                        log::warn!("shared store: cannot pick up other replicas' writes ({err})");
                    }
                }
            });
        }
        Ok(engine)
    }

    /// Where the cache lives, for log lines: a directory, or a bucket.
    pub fn location(&self) -> String {
        self.store.location()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A manifest from the cache, or from its upstream on a miss. Offline first: a cached tag
    /// is served without asking the upstream, except `latest` under always-pull-latest, which
    /// falls back to the cached copy when the upstream fails.
    pub async fn manifest(&self, image: &ImageRef) -> Result<Arc<CachedManifest>, EngineError> {
        self.check_allowed(&image.registry)?;
        let label = UpstreamKind {
            upstream: image.registry.clone(),
            kind: "manifest",
        };
        let refresh = self.config.always_pull_latest
            && !self.config.air_gapped
            && image.reference.tag() == Some("latest");
        if refresh {
            metrics().cache_misses.get_or_create(&label).inc();
            return match self.fetch(image).await {
                Err(e) if !e.is_not_found() => match self.view.resolve(image) {
                    Some(Hit { manifest: m, .. }) => {
                        let level = e.fallback_log_level();
                        log::log!(
                            level,
                            "{image}: upstream failed ({e}); serving the cached copy"
                        );
                        let upstream = crate::metrics::Upstream {
                            upstream: image.registry.clone(),
                        };
                        metrics().stale_served.get_or_create(&upstream).inc();
                        Ok(m)
                    }
                    None => Err(e),
                },
                other => other,
            };
        }
        if let Some(hit) = self.view.resolve(image) {
            if let (Ttl::After(ttl), false) = (self.config.tag_ttl(image), self.config.air_gapped) {
                if hit.tag_age().is_none_or(|a| a >= ttl) {
                    return self.revalidate(image, hit).await;
                }
            }
            metrics().cache_hits.get_or_create(&label).inc();
            return Ok(hit.manifest);
        }
        if self.store.is_shared() {
            // Another replica may have cached it: the bucket before the upstream.
            if let Err(e) = self.sync_shared().await {
                log::warn!("{image}: cannot look in the shared store ({e})");
            }
            // What the sync adopted is in the snapshot once it returns.
            if let Some(hit) = self.view.resolve(image) {
                metrics().cache_hits.get_or_create(&label).inc();
                return Ok(hit.manifest);
            }
        }
        metrics().cache_misses.get_or_create(&label).inc();
        if self.config.air_gapped {
            return Err(EngineError::NotCached(image.to_string()));
        }
        // By digest, content no replica has yet is fetched once for the fleet; a tag is
        // resolved by each replica (it may have moved upstream).
        if let (Some(fleet), Reference::Digest(digest)) = (&self.fleet, &image.reference) {
            let cached = || self.view.resolve(image).map(|h| h.manifest);
            let within = self.config.pull_timeout;
            return fleet
                .manifest_once(digest, within, cached, || self.fetch(image))
                .await;
        }
        self.fetch(image).await
    }

    /// Picks up manifests and blobs written into the store beside the actors (an import into
    /// the running server's cache directory): new manifests join the index and the blob
    /// table's counts, blobs the table did not know become present. Nothing is written.
    pub async fn pick_up_stored(&self) -> Result<(), EngineError> {
        let (loaded, blobs) = tokio::join!(
            self.store.load_manifests(),
            self.store.list_blobs_with_age()
        );
        let (loaded, blobs) = (loaded?, blobs?);
        crate::fleet::adopt(&self.index, &self.blobs, loaded.holders, true).await?;
        let whole = false;
        self.blobs
            .send(blob_table::AdoptStored { blobs, whole })
            .await?;
        Ok(())
    }

    /// Picks up what the other replicas of a shared store wrote or removed since the last
    /// look (see [`Fleet::sync`]); nothing on a store of one process.
    pub async fn sync_shared(&self) -> Result<(), EngineError> {
        match &self.fleet {
            Some(f) => f.sync().await,
            None => Ok(()),
        }
    }

    /// Serves a cached tag after checking it upstream: the cached manifest when the tag has
    /// not moved (no GET), the new one when it has, and the cached one, stale, when the upstream
    /// cannot say.
    async fn revalidate(
        &self,
        image: &ImageRef,
        hit: Hit,
    ) -> Result<Arc<CachedManifest>, EngineError> {
        let cached = hit.manifest.clone();
        let label = UpstreamKind {
            upstream: image.registry.clone(),
            kind: "manifest",
        };
        let checked = self
            .puller
            .send(Revalidate {
                image: image.clone(),
                known: cached.digest.clone(),
                prefetch: Some(self.prefetch()),
            })
            .await?;
        match checked {
            Ok(None) => {
                // Seen by the next request at once; the actor keeps it with the manifest.
                hit.mark_checked();
                self.index.do_send(Validated {
                    image: image.clone(),
                });
                metrics().cache_hits.get_or_create(&label).inc();
                Ok(cached)
            }
            Ok(Some(fresh)) => {
                log::info!("{image}: the tag moved upstream to {}", fresh.digest);
                metrics().cache_misses.get_or_create(&label).inc();
                Ok(fresh)
            }
            Err(e) => {
                // Remembered as a check: the next one waits for the tag's TTL again rather
                // than every pull asking an upstream that just failed.
                hit.mark_checked();
                self.index.do_send(Validated {
                    image: image.clone(),
                });
                let level = e.fallback_log_level();
                log::log!(
                    level,
                    "{image}: cannot revalidate ({e}); serving the cached copy"
                );
                let upstream = crate::metrics::Upstream {
                    upstream: image.registry.clone(),
                };
                metrics().stale_served.get_or_create(&upstream).inc();
                Ok(cached)
            }
        }
    }

    async fn fetch(&self, image: &ImageRef) -> Result<Arc<CachedManifest>, EngineError> {
        self.puller
            .send(FetchManifest {
                image: image.clone(),
                prefetch: Some(self.prefetch()),
            })
            .await?
    }

    /// Who fetches a new image manifest's blobs ahead of clients.
    fn prefetch(&self) -> Recipient<ImageCached> {
        self.blobs.clone().recipient()
    }

    /// A blob to read: stored, or a download to follow (joined or started), once its response
    /// head is in (so an upstream failure is this call's error).
    pub async fn blob(
        &self,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<BlobReader, EngineError> {
        self.check_allowed(registry)?;
        let source = (!self.config.air_gapped).then(|| BlobSource {
            registry: registry.to_string(),
            repo: repo.clone(),
        });
        let seen = Instant::now();
        let label = UpstreamKind {
            upstream: registry.to_string(),
            kind: "blob",
        };
        // A hit: no message to the table, which decides only what is not stored.
        let status = match self.stored.size(digest) {
            Some(size) => BlobStatus::Present { size },
            None => {
                self.blobs
                    .send(Open {
                        digest: digest.clone(),
                        source: source.clone(),
                    })
                    .await?
            }
        };
        match &status {
            BlobStatus::Present { .. } => metrics().cache_hits.get_or_create(&label).inc(),
            _ => metrics().cache_misses.get_or_create(&label).inc(),
        };
        BlobReader::open(self.store.clone(), digest.clone(), status)
            .await?
            .map(|r| r.refetching(self.refetch(source, seen)))
            .ok_or_else(|| EngineError::NotCached(format!("{registry}/{repo}@{digest}")))
    }

    /// How a reader gets a stored blob back that the store no longer has (removed by hand,
    /// pruned by another replica): the table forgets it and fetches it from `source`.
    fn refetch(&self, source: Option<BlobSource>, seen: Instant) -> Refetch {
        Refetch {
            table: self.vanished.clone(),
            source,
            seen,
        }
    }

    /// A blob for another replica of the shared store that follows this one's download: only
    /// what this replica has or is fetching (`None` otherwise), never a new download.
    pub async fn fleet_blob(&self, digest: &Digest) -> Result<Option<BlobReader>, EngineError> {
        let seen = Instant::now();
        let status = self
            .blobs
            .send(Open {
                digest: digest.clone(),
                source: None,
            })
            .await?;
        let reader = BlobReader::open(self.store.clone(), digest.clone(), status).await?;
        Ok(reader.map(|r| r.refetching(self.refetch(None, seen))))
    }

    /// Refuses an upstream that `allowedUpstreams` does not list, before the cache or the
    /// network is consulted, so the answer does not depend on what happens to be cached.
    fn check_allowed(&self, registry: &str) -> Result<(), EngineError> {
        if self.config.upstream_allowed(registry) {
            return Ok(());
        }
        log::warn!("refused a request for upstream {registry}: not an allowed upstream");
        Err(EngineError::UpstreamNotAllowed(registry.to_string()))
    }

    /// Lets running blob downloads finish (up to `grace`), then writes pending bookkeeping,
    /// so a stop loses neither a nearly complete layer nor the recent pull times.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let active = match self.puller.send(ActiveDownloads).await {
                Ok(n) => n,
                Err(e) => {
                    log::warn!("shutdown: the puller pool is gone ({e})");
                    0
                }
            };
            if active == 0 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                log::warn!("shutdown: abandoning {active} unfinished blob downloads");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = self.index.send(manifest_index::Flush).await;
    }

    /// One page of a repository's tags: the upstream's while it answers, else the tags this
    /// cache holds, paginated the same way (`n` at most, after `last`, lexically).
    pub async fn tags(
        &self,
        registry: &str,
        repo: &RepoName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<TagPage, EngineError> {
        self.check_allowed(registry)?;
        let mut upstream_error = None;
        if !self.config.air_gapped {
            let fetched = self
                .puller
                .send(FetchTags {
                    registry: registry.to_string(),
                    repo: repo.clone(),
                    n,
                    last: last.map(str::to_string),
                })
                .await?;
            match fetched {
                // An upstream that paginated said so with a Link; one that ignored `n` and
                // `last` (distribution 2.x does) sent everything: paginate that here.
                Ok((tags, true)) => {
                    return Ok(TagPage {
                        tags,
                        more: true,
                        from_cache: false,
                    })
                }
                Ok((tags, false)) => {
                    let (tags, more) = paginate(tags, n, last);
                    return Ok(TagPage {
                        tags,
                        more,
                        from_cache: false,
                    });
                }
                Err(e) => {
                    let level = e.fallback_log_level();
                    log::log!(
                        level,
                        "tags of {registry}/{repo}: {e}; answering from the cache"
                    );
                    upstream_error = Some(e);
                }
            }
        }
        let held = self
            .index
            .send(manifest_index::Tags {
                registry: registry.to_string(),
                repo: repo.clone(),
            })
            .await?;
        if held.is_empty() {
            return Err(upstream_error
                .unwrap_or_else(|| EngineError::NotCached(format!("{registry}/{repo}"))));
        }
        let (tags, more) = paginate(held, n, last);
        Ok(TagPage {
            tags,
            more,
            from_cache: true,
        })
    }

    /// The referrers (signatures, SBOMs, attestations) of `subject` as an OCI image index: the
    /// upstream's, kept for the air gap, or the kept one when the upstream does not answer; an
    /// empty index when nothing is known. `artifact_type` filters the list here.
    pub async fn referrers(
        &self,
        registry: &str,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers, EngineError> {
        self.check_allowed(registry)?;
        let (bytes, from_cache) = self
            .puller
            .send(FetchReferrers {
                registry: registry.to_string(),
                repo: repo.clone(),
                subject: subject.clone(),
                offline: self.config.air_gapped,
            })
            .await??;
        let Some(wanted) = artifact_type else {
            return Ok(Referrers {
                index: bytes,
                filtered: false,
                from_cache,
            });
        };
        // Checked to be an index when it was kept; a kept file damaged since is an error.
        let unusable = |e: serde_json::Error| {
            EngineError::upstream(
                registry,
                crate::upstream::UpstreamError::Protocol(format!("referrers list: {e}")),
            )
        };
        let mut doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(unusable)?;
        if let Some(list) = doc.get_mut("manifests").and_then(|m| m.as_array_mut()) {
            list.retain(|d| d.get("artifactType").and_then(|t| t.as_str()) == Some(wanted));
        }
        Ok(Referrers {
            index: serde_json::to_vec(&doc).map_err(unusable)?,
            filtered: true,
            from_cache,
        })
    }

    /// The registries `digest` is known from in the cache (see [`manifest_index::Sources`]):
    /// empty when no cached manifest is it or names it.
    pub async fn sources(&self, digest: &Digest) -> Result<BTreeSet<String>, EngineError> {
        Ok(self
            .index
            .send(manifest_index::Sources {
                digest: digest.clone(),
            })
            .await?)
    }

    /// Every manifest in the index.
    pub async fn manifests(&self) -> Result<Vec<manifest_index::IndexEntry>, EngineError> {
        Ok(self.index.send(manifest_index::List).await?)
    }

    /// Every blob known.
    pub async fn blobs(&self) -> Result<Vec<BlobInfo>, EngineError> {
        Ok(self.blobs.send(blob_table::List).await?)
    }

    /// What the cache's blobs weigh against its bound.
    pub async fn cache_stats(&self) -> Result<CacheStats, EngineError> {
        let usage = self.blobs.send(blob_table::Usage).await?;
        Ok(CacheStats {
            total_bytes: usage.total,
            blobs: usage.sizes.len() + usage.busy.len(),
            bound_bytes: self.config.cache_bound.as_ref().map(|b| b.max_bytes),
            evictions: metrics().evictions.get(),
        })
    }

    /// A manifest if it is cached (recording the pull), without asking any upstream.
    pub async fn cached_manifest(
        &self,
        image: &ImageRef,
    ) -> Result<Option<Arc<CachedManifest>>, EngineError> {
        Ok(self
            .index
            .send(Resolve {
                image: image.clone(),
            })
            .await?)
    }

    /// Prunes the cache now (see [`crate::pruner`]); `why` names who asked, for the log.
    /// Evicts now, as `maxCacheSize` does, down to `max_bytes` (default: `maxCacheSize`),
    /// keeping the pinned images and those pulled within the eviction grace; `None` when no
    /// size is given and none is configured.
    pub async fn evict_to(
        &self,
        max_bytes: Option<u64>,
        dry_run: bool,
    ) -> Option<Result<PruneReport, EngineError>> {
        let configured = self.config.cache_bound.clone();
        let bound = match (max_bytes, configured) {
            (Some(max_bytes), Some(b)) => CacheBound { max_bytes, ..b },
            (Some(max_bytes), None) => CacheBound {
                max_bytes,
                pins: Vec::new(),
                grace: ASKED_EVICTION_GRACE,
            },
            (None, Some(b)) => b,
            (None, None) => return None,
        };
        Some(
            self.pruner
                .send(EvictTo { bound, dry_run })
                .await
                .map_err(EngineError::from)
                .and_then(|r| r),
        )
    }

    pub async fn prune(
        &self,
        selector: Selector,
        count: Option<usize>,
        dry_run: bool,
        why: String,
    ) -> Result<PruneReport, EngineError> {
        self.pruner
            .send(Prune {
                selector,
                count,
                dry_run,
                why,
            })
            .await?
    }
}

/// The distribution spec's tag pagination: the tags after `last` in lexical order, at most `n`,
/// and whether more follow.
fn paginate(mut tags: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    tags.sort();
    tags.retain(|t| last.is_none_or(|l| t.as_str() > l));
    let more = n.is_some_and(|n| tags.len() > n);
    if let Some(n) = n {
        tags.truncate(n);
    }
    (tags, more)
}

#[cfg(test)]
mod tests {
    use super::paginate;

    fn tags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pagination_is_lexical_after_last_and_at_most_n() {
        let all = tags(&["b", "a", "c"]);
        assert_eq!(
            paginate(all.clone(), None, None),
            (tags(&["a", "b", "c"]), false)
        );
        assert_eq!(
            paginate(all.clone(), Some(2), None),
            (tags(&["a", "b"]), true)
        );
        assert_eq!(
            paginate(all.clone(), Some(2), Some("b")),
            (tags(&["c"]), false)
        );
        assert_eq!(paginate(all.clone(), Some(0), None), (tags(&[]), true));
        assert_eq!(paginate(all, None, Some("c")), (tags(&[]), false));
    }
}
