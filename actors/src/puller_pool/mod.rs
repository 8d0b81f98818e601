//! Actor: everything that talks to upstream registries.
//!
//! It owns one [`UpstreamClient`] per upstream (awc clients are not `Send`, so they live on this
//! actor's arbiter, and so do the fetches it spawns), runs at most one manifest fetch per image
//! reference however many requests wait for it, and runs the blob downloads that the blob table
//! registers, a bounded number at a time per upstream. Outcomes come back to the actor as
//! messages; nothing here blocks the arbiter.

mod breakers;

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::blob::{BlobSource, NamedBlob, Progress, StatedSizes};
use crate::breaker::Breakers;
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::manifest_index::{CachedManifest, Insert, ManifestIndex, Resolve};
use crate::metrics::{self, metrics, Kind};
use crate::oci::{Digest, ImageRef, Manifest, Reference};
use crate::proxy::download::{self, count_error, Job, Limits, Table};
use crate::proxy::peer::PeerClient;
use crate::store::Store;
use crate::upstream::{UpstreamClient, UpstreamError};
use breakers::report;

/// An empty referrers list: what the distribution spec answers for a subject with none.
const EMPTY_INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

type ManifestResult = Result<Arc<CachedManifest>, EngineError>;
/// `Ok(None)`: the tag still points at the cached manifest.
type RevalidateResult = Result<Option<Arc<CachedManifest>>, EngineError>;

/// Requests waiting for one piece of work, by key: the first one starts it, the others wait,
/// and all of them get its outcome.
struct Waiters<K, V> {
    by_key: HashMap<K, Vec<oneshot::Sender<V>>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Waiters<K, V> {
    fn new() -> Self {
        Waiters {
            by_key: HashMap::new(),
        }
    }

    /// Registers a waiter; `true` when it is the first, which must start the work.
    fn join(&mut self, key: K, tx: oneshot::Sender<V>) -> bool {
        let waiters = self.by_key.entry(key).or_default();
        waiters.push(tx);
        waiters.len() == 1
    }

    fn finish(&mut self, key: &K, outcome: V) {
        for tx in self.by_key.remove(key).unwrap_or_default() {
            let _ = tx.send(outcome.clone());
        }
    }
}

/// A future for the outcome a waiter was promised; an error if the worker vanished.
fn outcome<V: 'static>(
    rx: oneshot::Receiver<Result<V, EngineError>>,
) -> ResponseFuture<Result<V, EngineError>> {
    Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| Err(EngineError::Unavailable("upstream fetch abandoned".into())))
    })
}

pub struct PullerPool {
    config: Arc<EngineConfig>,
    /// Where downloads are written and referrers kept.
    store: Arc<dyn Store>,
    /// Where fetched manifests are persisted and indexed before any waiter hears of them.
    index: Addr<ManifestIndex>,
    /// One client per upstream, reused for its connections (and its cached tokens); they are
    /// not `Send`, which is why everything upstream runs on this actor's arbiter.
    clients: HashMap<String, Rc<UpstreamClient>>,
    /// Downloads at once per upstream (`maxConcurrentPerUpstream`): a burst of cold pulls must
    /// not open hundreds of connections to one registry and get rate-limited.
    limits: HashMap<String, Rc<Semaphore>>,
    /// Manifest fetches under way, with everyone waiting for each.
    in_flight: Waiters<ImageRef, ManifestResult>,
    /// Tag revalidations under way.
    revalidating: Waiters<ImageRef, RevalidateResult>,
    /// Blob downloads queued or running; shared with their tasks on this arbiter.
    downloads: Rc<Cell<usize>>,
    /// Which upstreams are found unreachable and not asked for now; every task that asked an
    /// upstream reports back ([`Reached`]).
    breakers: Breakers,
    /// The other replicas of a shared store, reached to follow their downloads; `None`
    /// without a fleet secret.
    peers: Option<Rc<PeerClient>>,
}

impl PullerPool {
    pub fn new(
        config: Arc<EngineConfig>,
        store: Arc<dyn Store>,
        index: Addr<ManifestIndex>,
    ) -> Self {
        // Only a shared store has other replicas to follow.
        let peers = match (&config.fleet_secret, store.is_shared()) {
            (Some(secret), true) => Some(Rc::new(PeerClient::new(secret.clone()))),
            _ => None,
        };
        PullerPool {
            peers,
            config,
            store,
            index,
            clients: HashMap::new(),
            limits: HashMap::new(),
            in_flight: Waiters::new(),
            revalidating: Waiters::new(),
            downloads: Rc::new(Cell::new(0)),
            breakers: Breakers::default(),
        }
    }

    fn client(&mut self, registry: &str) -> Result<Rc<UpstreamClient>, EngineError> {
        if let Some(c) = self.clients.get(registry) {
            return Ok(c.clone());
        }
        // The engine refuses these first; this keeps every other path (prefetch) honest too.
        if !self.config.upstream_allowed(registry) {
            return Err(EngineError::UpstreamNotAllowed(registry.to_string()));
        }
        let client = UpstreamClient::new(self.config.upstream(registry))
            .map_err(|e| EngineError::upstream(registry, e))?
            .with_idle_timeout(self.config.upstream_idle_timeout);
        let client = Rc::new(client);
        self.clients.insert(registry.to_string(), client.clone());
        Ok(client)
    }

    /// Runs one small upstream request (bounded by `pullTimeout`) on this arbiter, where awc's
    /// non-`Send` futures must run, and answers through a channel.
    fn ask_upstream<T, F, Fut>(
        &mut self,
        ctx: &Context<Self>,
        registry: &str,
        what: String,
        request: F,
    ) -> ResponseFuture<Result<T, EngineError>>
    where
        T: Send + 'static,
        F: FnOnce(Rc<UpstreamClient>) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<T, UpstreamError>> + 'static,
    {
        if let Err(e) = self.admit(registry) {
            return Box::pin(async move { Err(e) });
        }
        let me = ctx.address();
        let client = self.client(registry);
        let timeout = self.config.pull_timeout;
        let upstream = registry.to_string();
        let name = upstream.clone();
        let (tx, rx) = oneshot::channel();
        actix_rt::spawn(async move {
            let fetch = async {
                let client = client?;
                let name = client.name().to_string();
                request(client)
                    .await
                    .map_err(|e| EngineError::upstream(&name, e))
            };
            let result = tokio::time::timeout(timeout, fetch)
                .await
                .unwrap_or_else(|_| {
                    Err(EngineError::PullTimeout {
                        upstream,
                        what,
                        millis: timeout.as_millis(),
                    })
                });
            report(&me, &name, &result);
            let _ = tx.send(result);
        });
        outcome(rx)
    }

    /// Lets a request go to `registry`, unless its breaker is open: then the error to answer
    /// with at once.
    fn admit(&mut self, registry: &str) -> Result<(), EngineError> {
        match self.breakers.admit(registry, std::time::Instant::now()) {
            Ok(()) => Ok(()),
            Err(refused) => {
                metrics()
                    .breaker_refused
                    .get_or_create(&metrics::Upstream {
                        upstream: registry.to_string(),
                    })
                    .inc();
                Err(EngineError::UpstreamUnreachable {
                    upstream: registry.to_string(),
                    why: refused.why,
                    retry_after_secs: refused.retry_after.as_secs_f64().ceil().max(1.0) as u32,
                })
            }
        }
    }

    fn limit(&mut self, registry: &str) -> Rc<Semaphore> {
        let n = self.config.max_concurrent_per_upstream.max(1);
        self.limits
            .entry(registry.to_string())
            .or_insert_with(|| Rc::new(Semaphore::new(n)))
            .clone()
    }
}

impl Actor for PullerPool {
    type Context = Context<Self>;

    /// Builds the clients of the configured upstreams now (TLS settings, trust roots, client
    /// certificates), so the first pull does not pay for it while a client waits. A client
    /// that cannot be built is reported here and again, to the client, on first use.
    fn started(&mut self, _: &mut Context<Self>) {
        if self.config.air_gapped {
            return;
        }
        let names: Vec<String> = self
            .config
            .upstreams
            .iter()
            .map(|u| u.name.clone())
            .collect();
        for name in names {
            if !self.config.upstream_allowed(&name) {
                continue;
            }
            if let Err(e) = self.client(&name) {
                log::warn!("upstream {name}: {e}");
            }
        }
    }
}

/// An image manifest entered the cache: its blobs are counted and fetched ahead of clients
/// (prefetch), so that the cache completes itself. Sent to whoever the manifest fetch names
/// (the blob table).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ImageCached {
    pub manifest: Digest,
    pub blobs: Vec<NamedBlob>,
    pub source: BlobSource,
}

/// Fetches a manifest from its upstream, verifies, persists and indexes it, and starts the
/// prefetch of an image manifest's blobs. Concurrent requests for one reference share a fetch.
#[derive(Message)]
#[rtype(result = "Result<Arc<CachedManifest>, EngineError>")]
pub struct FetchManifest {
    pub image: ImageRef,
    /// Told when an image manifest is cached, to fetch its blobs ahead of clients.
    pub prefetch: Option<Recipient<ImageCached>>,
}

impl Handler<FetchManifest> for PullerPool {
    type Result = ResponseFuture<ManifestResult>;

    fn handle(&mut self, msg: FetchManifest, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let wait = outcome(rx);
        if !self.in_flight.join(msg.image.clone(), tx) {
            metrics()
                .waiters_joined
                .get_or_create(&Kind { kind: "manifest" })
                .inc();
            return wait;
        }

        let image = msg.image;
        if let Err(e) = self.admit(&image.registry) {
            self.in_flight.finish(&image, Err(e));
            return wait;
        }
        let me = ctx.address();
        let client = self.client(&image.registry);
        let index = self.index.clone();
        let prefetch = msg.prefetch;
        let timeout = self.config.pull_timeout;
        let complete = self.config.complete_platforms.clone();
        let kind = Kind { kind: "manifest" };
        metrics().fetches_in_flight.get_or_create(&kind).inc();
        let started = std::time::Instant::now();
        actix_rt::spawn(async move {
            let result = match client {
                Err(e) => Err(e),
                Ok(client) => {
                    match tokio::time::timeout(timeout, fetch_manifest(&client, &image)).await {
                        Ok(r) => r,
                        Err(_) => Err(EngineError::PullTimeout {
                            upstream: image.registry.clone(),
                            what: image.to_string(),
                            millis: timeout.as_millis(),
                        }),
                    }
                }
            };
            report(&me, &image.registry, &result);
            let result = match result {
                Ok(m) => persist_and_prefetch(&image, m, &index, prefetch.as_ref()).await,
                Err(e) => Err(e),
            };
            if let (Ok(list), Some(platforms)) = (&result, &complete) {
                complete_list(&me, &index, &image, list, platforms, prefetch.as_ref());
            }
            let m = metrics();
            m.fetches_in_flight.get_or_create(&kind).dec();
            m.fetch_seconds
                .get_or_create(&kind)
                .observe(started.elapsed().as_secs_f64());
            if let Err(e) = &result {
                if e.is_upstream_denied() {
                    log::debug!("pull {image}: {e}");
                } else {
                    log::warn!("pull {image}: {e}");
                }
                count_error(&image.registry, e);
            }
            me.do_send(ManifestFetched { image, result });
        });
        wait
    }
}

async fn fetch_manifest(
    client: &UpstreamClient,
    image: &ImageRef,
) -> Result<CachedManifest, EngineError> {
    let up = |e| EngineError::upstream(client.name(), e);
    let fetched = client
        .manifest(&image.repo, &image.reference)
        .await
        .map_err(up)?;
    let digest = Digest::of(&fetched.bytes);
    let expected = match (&image.reference, &fetched.digest_header) {
        (Reference::Digest(d), _) => Some(d.to_string()),
        (Reference::Tag(_), Some(h)) => Some(h.clone()),
        (Reference::Tag(_), None) => None,
    };
    if let Some(expected) = expected {
        if expected != digest.to_string() {
            return Err(EngineError::DigestMismatch {
                upstream: client.name().to_string(),
                what: format!("manifest {image}"),
                expected,
                actual: digest.to_string(),
            });
        }
    }
    let manifest = Manifest::parse(&fetched.bytes, fetched.content_type.as_deref())
        .map_err(|e| up(UpstreamError::Protocol(e.to_string())))?;
    Ok(CachedManifest {
        digest,
        bytes: fetched.bytes,
        manifest,
        image_url: image.to_string(),
    })
}

async fn persist_and_prefetch(
    image: &ImageRef,
    manifest: CachedManifest,
    index: &Addr<ManifestIndex>,
    prefetch: Option<&Recipient<ImageCached>>,
) -> ManifestResult {
    let cached = index
        .send(Insert {
            image: image.clone(),
            manifest,
        })
        .await??;
    if let (false, Some(prefetch)) = (cached.kind().is_list(), prefetch) {
        prefetch.do_send(ImageCached {
            manifest: cached.digest.clone(),
            blobs: cached.named_blobs(),
            source: BlobSource {
                registry: image.registry.clone(),
                repo: image.repo.clone(),
            },
        });
    }
    Ok(cached)
}

/// A list fetched by tag from the upstream (so once per fetch, never on a cache hit) completes
/// in the background the image of each configured platform: its image manifests are fetched
/// unless cached, and their prefetch fetches every blob, so a later disconnect finds it whole.
fn complete_list(
    me: &Addr<PullerPool>,
    index: &Addr<ManifestIndex>,
    image: &ImageRef,
    list: &CachedManifest,
    platforms: &crate::oci::Platforms,
    prefetch: Option<&Recipient<ImageCached>>,
) {
    if !list.kind().is_list() || image.reference.tag().is_none() {
        return;
    }
    let children: Vec<ImageRef> = (list.manifest.children.iter())
        .filter(|c| platforms.accepts(c.platform.as_ref()))
        .map(|c| image.with_reference(Reference::Digest(c.digest.clone())))
        .collect();
    let (me, index, prefetch) = (me.clone(), index.clone(), prefetch.cloned());
    actix_rt::spawn(async move {
        for child in children {
            let image = child.clone();
            if let Ok(Some(_)) = index.send(Resolve { image }).await {
                continue;
            }
            let (image, prefetch) = (child.clone(), prefetch.clone());
            let fetch = me.send(FetchManifest { image, prefetch }).await;
            if let Err(e) = fetch.map_err(EngineError::from).and_then(|r| r) {
                log::warn!("completing the platform image {child} in the background: {e}");
            }
        }
    });
}

/// A manifest fetch ended; everyone waiting gets the outcome.
#[derive(Message)]
#[rtype(result = "()")]
struct ManifestFetched {
    image: ImageRef,
    result: ManifestResult,
}

impl Handler<ManifestFetched> for PullerPool {
    type Result = ();

    fn handle(&mut self, msg: ManifestFetched, _: &mut Context<Self>) {
        self.in_flight.finish(&msg.image, msg.result);
    }
}

/// Checks with an upstream `HEAD` whether a cached tag still points at `known`; fetches the
/// manifest when it moved (or the upstream does not say). Concurrent checks of one tag share
/// one `HEAD`.
#[derive(Message)]
#[rtype(result = "Result<Option<Arc<CachedManifest>>, EngineError>")]
pub struct Revalidate {
    pub image: ImageRef,
    pub known: Digest,
    /// For the fetch when the tag moved: as [`FetchManifest::prefetch`].
    pub prefetch: Option<Recipient<ImageCached>>,
}

impl Handler<Revalidate> for PullerPool {
    type Result = ResponseFuture<RevalidateResult>;

    fn handle(&mut self, msg: Revalidate, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let wait = outcome(rx);
        if !self.revalidating.join(msg.image.clone(), tx) {
            return wait;
        }
        if let Err(e) = self.admit(&msg.image.registry) {
            self.revalidating.finish(&msg.image, Err(e));
            return wait;
        }
        let me = ctx.address();
        let client = self.client(&msg.image.registry);
        let timeout = self.config.pull_timeout;
        actix_rt::spawn(async move {
            let image = msg.image;
            let head = async {
                let client = client?;
                let current = client
                    .manifest_digest(&image.repo, &image.reference)
                    .await
                    .map_err(|e| EngineError::upstream(client.name(), e))?;
                Ok::<_, EngineError>(current)
            };
            let head = tokio::time::timeout(timeout, head)
                .await
                .unwrap_or_else(|_| {
                    Err(EngineError::PullTimeout {
                        upstream: image.registry.clone(),
                        what: format!("HEAD {image}"),
                        millis: timeout.as_millis(),
                    })
                });
            // Reported before any fetch it leads to, which this outcome lets through.
            report(&me, &image.registry, &head);
            let result = match head {
                Err(e) => Err(e),
                Ok(Some(current)) if current == msg.known => Ok(None),
                Ok(_) => match me
                    .send(FetchManifest {
                        image: image.clone(),
                        prefetch: msg.prefetch,
                    })
                    .await
                {
                    Ok(fetched) => fetched.map(Some),
                    Err(e) => Err(e.into()),
                },
            };
            me.do_send(Revalidated { image, result });
        });
        wait
    }
}

/// A revalidation ended.
#[derive(Message)]
#[rtype(result = "()")]
struct Revalidated {
    image: ImageRef,
    result: RevalidateResult,
}

impl Handler<Revalidated> for PullerPool {
    type Result = ();

    fn handle(&mut self, msg: Revalidated, _: &mut Context<Self>) {
        self.revalidating.finish(&msg.image, msg.result);
    }
}

/// One page of a repository's tags from its upstream (not cached: tag lists change).
#[derive(Message)]
#[rtype(result = "Result<(Vec<String>, bool), EngineError>")]
pub struct FetchTags {
    pub registry: String,
    pub repo: crate::oci::RepoName,
    pub n: Option<usize>,
    pub last: Option<String>,
}

impl Handler<FetchTags> for PullerPool {
    type Result = ResponseFuture<Result<(Vec<String>, bool), EngineError>>;

    fn handle(&mut self, msg: FetchTags, ctx: &mut Context<Self>) -> Self::Result {
        let what = format!("the tags of {}", msg.repo);
        self.ask_upstream(ctx, &msg.registry, what, move |client| async move {
            client.tags(&msg.repo, msg.n, msg.last.as_deref()).await
        })
    }
}

/// The referrers list (an OCI image index) of a subject: the upstream's, kept for the air gap,
/// or the kept one when the upstream does not answer or is not to be asked; an empty index
/// when nothing is known. The flag says it came from the cache.
#[derive(Message)]
#[rtype(result = "Result<(Vec<u8>, bool), EngineError>")]
pub struct FetchReferrers {
    pub registry: String,
    pub repo: crate::oci::RepoName,
    pub subject: Digest,
    /// Air-gapped: only the kept list.
    pub offline: bool,
}

impl Handler<FetchReferrers> for PullerPool {
    type Result = ResponseFuture<Result<(Vec<u8>, bool), EngineError>>;

    fn handle(&mut self, msg: FetchReferrers, ctx: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let (registry, subject) = (msg.registry.clone(), msg.subject.clone());
        let fetched = (!msg.offline).then(|| {
            let what = format!("the referrers of {}", msg.subject);
            self.ask_upstream(ctx, &msg.registry, what, move |client| async move {
                client.referrers(&msg.repo, &msg.subject).await
            })
        });
        Box::pin(async move {
            if let Some(fetched) = fetched {
                match fetched.await {
                    Ok(found) => {
                        let bytes = found.map_or_else(|| EMPTY_INDEX.to_vec(), |b| b.to_vec());
                        referrer_entries(&bytes).map_err(|m| {
                            EngineError::upstream(&registry, UpstreamError::Protocol(m))
                        })?;
                        store.write_referrers(subject, bytes.clone()).await?;
                        return Ok((bytes, false));
                    }
                    Err(e) => {
                        let level = e.fallback_log_level();
                        log::log!(
                            level,
                            "referrers of {subject} at {registry}: {e}; using the cache"
                        )
                    }
                }
            }
            let kept = store.read_referrers(subject).await?;
            Ok((kept.unwrap_or_else(|| EMPTY_INDEX.to_vec()), true))
        })
    }
}

/// Checks that `bytes` is an image index (a referrers list); the number of entries.
fn referrer_entries(bytes: &[u8]) -> Result<usize, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("referrers list: {e}"))?;
    doc.get("manifests")
        .and_then(|m| m.as_array())
        .map(Vec::len)
        .ok_or_else(|| "referrers list without \"manifests\"".to_string())
}

/// Checks a blob found in the store at start before its first use (see
/// [`download::check_found`]); a damaged one is fetched again from `source`, or reported failed
/// when there is none (air-gapped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Verify {
    pub digest: Digest,
    pub size: u64,
    pub source: Option<BlobSource>,
    /// For the download that replaces a damaged blob: as [`Job::expected_size`].
    pub expected_size: Option<StatedSizes>,
    pub progress: watch::Sender<Progress>,
    pub table: Table,
}

impl Handler<Verify> for PullerPool {
    type Result = ();

    fn handle(&mut self, msg: Verify, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let store = self.store.clone();
        actix_rt::spawn(async move {
            let (digest, table, progress) = (&msg.digest, &msg.table, &msg.progress);
            if download::check_found(store.as_ref(), digest, msg.size, table, progress)
                .await
                .is_some()
            {
                return;
            }
            match msg.source {
                Some(source) => me.do_send(Download(Job {
                    digest: msg.digest,
                    source,
                    expected_size: msg.expected_size,
                    progress: msg.progress,
                    table: msg.table,
                })),
                None => {
                    let e = EngineError::NotCached(format!("{} (damaged on disk)", msg.digest));
                    download::conclude(&msg.table, &msg.progress, msg.digest, Err(e));
                }
            }
        });
    }
}

/// Downloads one blob into the store (see [`crate::proxy::download`]); sent by the blob table,
/// which has already made sure no other download of this digest runs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Download(pub Job);

impl Handler<Download> for PullerPool {
    type Result = ();

    fn handle(&mut self, Download(job): Download, ctx: &mut Context<Self>) {
        // Decided now, heeded only when this process is the one to fetch: a blob another
        // replica stored needs no upstream.
        let admission = self.admit(&job.source.registry);
        let reached = ctx.address().recipient();
        let client = self.client(&job.source.registry);
        let limit = self.limit(&job.source.registry);
        let store = self.store.clone();
        let limits = Limits {
            max_blob_size: self.config.max_blob_size,
            min_free_space: self.config.min_free_space,
        };
        let downloads = self.downloads.clone();
        let peers = self.peers.clone();
        downloads.set(downloads.get() + 1);
        actix_rt::spawn(async move {
            let upstream = download::Upstream {
                admission,
                client,
                limit,
                reached,
                peers,
            };
            download::run(upstream, store, limits, job).await;
            downloads.set(downloads.get().saturating_sub(1));
        });
    }
}

/// How many blob downloads are queued or running: shutdown waits for them to drain.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ActiveDownloads;

impl Handler<ActiveDownloads> for PullerPool {
    type Result = usize;

    fn handle(&mut self, _: ActiveDownloads, _: &mut Context<Self>) -> usize {
        self.downloads.get()
    }
}
