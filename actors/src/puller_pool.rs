//! Actor: everything that talks to upstream registries.
//!
//! It owns one [`UpstreamClient`] per upstream (awc clients are not `Send`, so they live on this
//! actor's arbiter, and so do the fetches it spawns), runs at most one manifest fetch per image
//! reference however many requests wait for it, and runs the blob downloads that the blob table
//! registers, a bounded number at a time per upstream. Outcomes come back to the actor as
//! messages; nothing here blocks the arbiter.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::blob::{BlobSource, NamedBlob, Progress, StatedSizes};
use crate::blob_table::{AddRefs, BlobTable, Expecting, Finished, Open};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::manifest_index::{CachedManifest, Insert, ManifestIndex};
use crate::metrics::{self, metrics, Kind};
use crate::oci::{Digest, ImageRef, Manifest, Reference};
use crate::store::{Store, StoreError};
use crate::upstream::{UpstreamClient, UpstreamError};

/// The most bytes gathered from the upstream before one write to the temp file.
const WRITE_BATCH: usize = 1024 * 1024;

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
    store: Arc<Store>,
    index: Addr<ManifestIndex>,
    /// Set right after start-up (the blob table and the pool refer to each other).
    blobs: Option<Addr<BlobTable>>,
    clients: HashMap<String, Rc<UpstreamClient>>,
    limits: HashMap<String, Rc<Semaphore>>,
    /// Manifest fetches under way, with everyone waiting for each.
    in_flight: Waiters<ImageRef, ManifestResult>,
    /// Tag revalidations under way.
    revalidating: Waiters<ImageRef, RevalidateResult>,
    /// Blob downloads queued or running; shared with their tasks on this arbiter.
    downloads: Rc<Cell<usize>>,
}

impl PullerPool {
    pub fn new(config: Arc<EngineConfig>, store: Arc<Store>, index: Addr<ManifestIndex>) -> Self {
        PullerPool {
            config,
            store,
            index,
            blobs: None,
            clients: HashMap::new(),
            limits: HashMap::new(),
            in_flight: Waiters::new(),
            revalidating: Waiters::new(),
            downloads: Rc::new(Cell::new(0)),
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
        registry: &str,
        what: String,
        request: F,
    ) -> ResponseFuture<Result<T, EngineError>>
    where
        T: Send + 'static,
        F: FnOnce(Rc<UpstreamClient>) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<T, UpstreamError>> + 'static,
    {
        let client = self.client(registry);
        let timeout = self.config.pull_timeout;
        let upstream = registry.to_string();
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
            let _ = tx.send(result);
        });
        outcome(rx)
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

/// Completes the wiring: the blob table is created after the pool.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachBlobTable(pub Addr<BlobTable>);

impl Handler<AttachBlobTable> for PullerPool {
    type Result = ();

    fn handle(&mut self, msg: AttachBlobTable, _: &mut Context<Self>) {
        self.blobs = Some(msg.0);
    }
}

/// Fetches a manifest from its upstream, verifies, persists and indexes it, and starts the
/// prefetch of an image manifest's blobs. Concurrent requests for one reference share a fetch.
#[derive(Message)]
#[rtype(result = "Result<Arc<CachedManifest>, EngineError>")]
pub struct FetchManifest {
    pub image: ImageRef,
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
        let me = ctx.address();
        let client = self.client(&image.registry);
        let index = self.index.clone();
        let blobs = self.blobs.clone();
        let timeout = self.config.pull_timeout;
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
            let result = match result {
                Ok(m) => persist_and_prefetch(&image, m, &index, blobs.as_ref()).await,
                Err(e) => Err(e),
            };
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
    blobs: Option<&Addr<BlobTable>>,
) -> ManifestResult {
    let cached = index
        .send(Insert {
            image: image.clone(),
            manifest,
        })
        .await??;
    if let (false, Some(blobs)) = (cached.kind().is_list(), blobs) {
        let named = cached.named_blobs();
        // Sent before the opens, so that their downloads are held to the stated sizes.
        blobs.do_send(AddRefs {
            manifests: vec![(cached.digest.clone(), named.clone())],
        });
        for NamedBlob { digest, .. } in named {
            blobs.do_send(Open {
                digest,
                source: Some(BlobSource {
                    registry: image.registry.clone(),
                    repo: image.repo.clone(),
                }),
            });
        }
    }
    Ok(cached)
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
}

impl Handler<Revalidate> for PullerPool {
    type Result = ResponseFuture<RevalidateResult>;

    fn handle(&mut self, msg: Revalidate, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let wait = outcome(rx);
        if !self.revalidating.join(msg.image.clone(), tx) {
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
            let result = match tokio::time::timeout(timeout, head).await {
                Err(_) => Err(EngineError::PullTimeout {
                    upstream: image.registry.clone(),
                    what: format!("HEAD {image}"),
                    millis: timeout.as_millis(),
                }),
                Ok(Err(e)) => Err(e),
                Ok(Ok(Some(current))) if current == msg.known => Ok(None),
                Ok(Ok(_)) => match me
                    .send(FetchManifest {
                        image: image.clone(),
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

    fn handle(&mut self, msg: FetchTags, _: &mut Context<Self>) -> Self::Result {
        let what = format!("the tags of {}", msg.repo);
        self.ask_upstream(&msg.registry, what, move |client| async move {
            client.tags(&msg.repo, msg.n, msg.last.as_deref()).await
        })
    }
}

/// The referrers index of a subject from its upstream (`None`: the upstream knows none).
#[derive(Message)]
#[rtype(result = "Result<Option<bytes::Bytes>, EngineError>")]
pub struct FetchReferrers {
    pub registry: String,
    pub repo: crate::oci::RepoName,
    pub subject: Digest,
}

impl Handler<FetchReferrers> for PullerPool {
    type Result = ResponseFuture<Result<Option<bytes::Bytes>, EngineError>>;

    fn handle(&mut self, msg: FetchReferrers, _: &mut Context<Self>) -> Self::Result {
        let what = format!("the referrers of {}", msg.subject);
        self.ask_upstream(&msg.registry, what, move |client| async move {
            client.referrers(&msg.repo, &msg.subject).await
        })
    }
}

/// Hashes a blob found on disk at start before its first use. A sound file is reported done; a
/// damaged or missing one is deleted and downloaded again from `source` (or reported failed
/// when there is none, as in air-gapped mode), on the same progress channel, so the readers
/// already waiting get the right bytes either way.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Verify {
    pub digest: Digest,
    pub size: u64,
    pub source: Option<BlobSource>,
    /// For the download that replaces a damaged file: as [`Download::expected_size`].
    pub expected_size: Option<StatedSizes>,
    pub progress: watch::Sender<Progress>,
}

impl Handler<Verify> for PullerPool {
    type Result = ();

    fn handle(&mut self, msg: Verify, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let blobs = self.blobs.clone();
        let path = self.store.blob_path(&msg.digest);
        actix_rt::spawn(async move {
            let p = path.clone();
            let found = actix_rt::task::spawn_blocking(move || file_digest(&p))
                .await
                .ok()
                .and_then(Result::ok);
            if found == Some((msg.digest.clone(), msg.size)) {
                conclude(blobs.as_ref(), &msg.progress, msg.digest, Ok(msg.size));
                return;
            }
            log::warn!(
                "cache: blob {} on disk does not match its name ({}); removing it",
                msg.digest,
                match &found {
                    Some((d, n)) => format!("{n} bytes hashing to {d}"),
                    None => "unreadable".to_string(),
                }
            );
            let _ = std::fs::remove_file(&path);
            match msg.source {
                Some(source) => me.do_send(Download {
                    digest: msg.digest,
                    source,
                    expected_size: msg.expected_size,
                    progress: msg.progress,
                }),
                None => {
                    let e = EngineError::NotCached(format!("{} (damaged on disk)", msg.digest));
                    conclude(blobs.as_ref(), &msg.progress, msg.digest, Err(e));
                }
            }
        });
    }
}

/// Ends a download or a verification: the blob table hears first, then the readers. A reader
/// who sees the outcome and asks again must find the blob present, or forgotten so that its
/// request starts a new download, never the one that failed; the table's mailbox keeps the
/// order of what was sent to it.
fn conclude(
    blobs: Option<&Addr<BlobTable>>,
    progress: &watch::Sender<Progress>,
    digest: Digest,
    result: Result<u64, EngineError>,
) {
    if let Some(blobs) = blobs {
        blobs.do_send(Finished {
            digest,
            result: result.clone(),
        });
    }
    progress.send_replace(match result {
        Ok(size) => Progress::Done { size },
        Err(e) => Progress::Failed(e),
    });
}

/// The sha256 and length of a file, read in large chunks.
fn file_digest(path: &std::path::Path) -> std::io::Result<(Digest, u64)> {
    use sha2::Digest as _;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
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

/// Downloads one blob into the store, publishing progress; sent by the blob table, which has
/// already made sure no other download of this digest runs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Download {
    pub digest: Digest,
    pub source: BlobSource,
    /// The size the cached image manifests' descriptors state for this blob. The body must be
    /// that long: a `Content-Length` that disagrees fails the download before anything is
    /// written, a body that runs past it fails there, one that ends short fails at its end.
    /// Without it (a blob no cached image manifest names) only a `Content-Length`, if sent,
    /// bounds the body before the digest check at its end.
    pub expected_size: Option<StatedSizes>,
    pub progress: watch::Sender<Progress>,
}

impl Handler<Download> for PullerPool {
    type Result = ();

    fn handle(&mut self, msg: Download, _: &mut Context<Self>) {
        let client = self.client(&msg.source.registry);
        let limit = self.limit(&msg.source.registry);
        let store = self.store.clone();
        let blobs = self.blobs.clone();
        let downloads = self.downloads.clone();
        downloads.set(downloads.get() + 1);
        actix_rt::spawn(async move {
            let kind = Kind { kind: "blob" };
            metrics().fetches_in_flight.get_or_create(&kind).inc();
            let started = std::time::Instant::now();
            let result = match client {
                Err(e) => Err(e),
                Ok(client) => match limit.acquire().await {
                    Ok(_permit) => {
                        let to = Announce {
                            blobs: blobs.as_ref(),
                            progress: &msg.progress,
                        };
                        let expected = msg.expected_size.as_ref();
                        download(&client, &store, &msg.digest, &msg.source, expected, to).await
                    }
                    Err(_) => Err(EngineError::Unavailable("download limiter closed".into())),
                },
            };
            metrics().fetches_in_flight.get_or_create(&kind).dec();
            match &result {
                Ok(size) => {
                    metrics()
                        .fetch_seconds
                        .get_or_create(&kind)
                        .observe(started.elapsed().as_secs_f64());
                    log::info!(
                        "cached blob {} ({size} bytes) from {}",
                        msg.digest,
                        msg.source.registry
                    );
                }
                Err(e) => {
                    let level = if e.is_upstream_denied() {
                        log::Level::Debug
                    } else {
                        log::Level::Warn
                    };
                    log::log!(
                        level,
                        "blob {} from {}/{}: {e}",
                        msg.digest,
                        msg.source.registry,
                        msg.source.repo
                    );
                    count_error(&msg.source.registry, e);
                }
            }
            conclude(blobs.as_ref(), &msg.progress, msg.digest, result);
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

/// Who hears about a download: its readers, and the blob table (for the size bound).
struct Announce<'a> {
    blobs: Option<&'a Addr<BlobTable>>,
    progress: &'a watch::Sender<Progress>,
}

async fn download(
    client: &UpstreamClient,
    store: &Store,
    digest: &Digest,
    source: &BlobSource,
    expected: Option<&StatedSizes>,
    to: Announce<'_>,
) -> Result<u64, EngineError> {
    let up = |e| EngineError::upstream(client.name(), e);
    let st = |e: StoreError| EngineError::Store(e.to_string());
    let wrong_size = |stated: &StatedSizes, sent: String| EngineError::SizeMismatch {
        upstream: client.name().to_string(),
        digest: digest.to_string(),
        stated: stated.to_string(),
        sent,
    };
    let progress = to.progress;
    // The temp file is made while the upstream answers, not after: readers get the response
    // head and the first bytes sooner. It is removed again if the request fails.
    let (body, writer) = tokio::join!(
        client.blob(&source.repo, digest),
        store.create_blob_writer()
    );
    let mut body = body.map_err(up)?;
    if let (Some(stated), Some(length)) = (expected, body.size) {
        if !stated.allows(length) {
            return Err(wrong_size(stated, format!("with Content-Length {length}")));
        }
    }
    // What the body will come to, for readers (their Content-Length) and the cache's weight:
    // its Content-Length, else the size its manifests agree on. The most it may come to:
    // the same, else the largest size they state.
    let total = body.size.or_else(|| expected.and_then(StatedSizes::agreed));
    let bound = body.size.or_else(|| expected.map(StatedSizes::max));
    if let (Some(blobs), Some(size)) = (to.blobs, bound) {
        blobs.do_send(Expecting {
            digest: digest.clone(),
            size,
        });
    }
    let mut writer = writer.map_err(st)?;
    let temp = Arc::new(writer.temp_path().to_path_buf());
    progress.send_replace(Progress::Receiving {
        temp: temp.clone(),
        written: 0,
        total,
    });
    let received = metrics()
        .upstream_bytes
        .get_or_create_owned(&metrics::Upstream {
            upstream: client.name().to_string(),
        });
    while let Some(chunk) = body.next_batch(WRITE_BATCH).await.map_err(up)? {
        received.inc_by(chunk.len() as u64);
        let after = writer.written() + chunk.len() as u64;
        // Checked before the write: not one byte past the bound reaches the disk.
        if bound.is_some_and(|b| after > b) {
            return Err(match (body.size, expected) {
                (None, Some(stated)) => wrong_size(stated, format!("of at least {after} bytes")),
                _ => up(UpstreamError::Protocol(format!(
                    "blob {digest} is longer than its Content-Length"
                ))),
            });
        }
        writer.write(&chunk).await.map_err(st)?;
        let written = writer.written();
        progress.send_modify(|p| {
            if let Progress::Receiving { written: w, .. } = p {
                *w = written;
            }
        });
    }
    let written = writer.written();
    match (body.size, expected) {
        (Some(length), _) if written != length => {
            return Err(up(UpstreamError::Protocol(format!(
                "blob {digest} ended after {written} of {length} bytes"
            ))));
        }
        (None, Some(stated)) if !stated.allows(written) => {
            return Err(wrong_size(stated, format!("of {written} bytes")));
        }
        _ => {}
    }
    let verified = match writer.verify(digest).await {
        Ok(v) => v,
        Err(StoreError::DigestMismatch { expected, actual }) => {
            return Err(EngineError::DigestMismatch {
                upstream: client.name().to_string(),
                what: format!("blob {digest}"),
                expected: expected.to_string(),
                actual: actual.to_string(),
            })
        }
        Err(e) => return Err(st(e)),
    };
    // The bytes are right: readers may finish while they are made durable, which on a slow
    // disk (and with other downloads' data to flush first) can take longer than the transfer.
    progress.send_replace(Progress::Verified {
        temp,
        size: written,
    });
    verified.persist().await.map_err(st)
}

fn count_error(upstream: &str, e: &EngineError) {
    let label = metrics::UpstreamError {
        upstream: upstream.to_string(),
        error: metrics::error_label(e),
    };
    metrics().upstream_errors.get_or_create(&label).inc();
}
