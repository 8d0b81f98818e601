//! Actor: everything that talks to upstream registries.
//!
//! It owns one [`UpstreamClient`] per upstream (awc clients are not `Send`, so they live on this
//! actor's arbiter, and so do the fetches it spawns), runs at most one manifest fetch per image
//! reference however many requests wait for it, and runs the blob downloads that the blob table
//! registers, a bounded number at a time per upstream. Outcomes come back to the actor as
//! messages; nothing here blocks the arbiter.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::blob_table::{AddRefs, BlobSource, BlobTable, Finished, Open, Progress};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::manifest_index::{CachedManifest, Insert, ManifestIndex};
use crate::oci::{Digest, ImageRef, Manifest, Reference};
use crate::store::{Store, StoreError};
use crate::upstream::{UpstreamClient, UpstreamError};

type ManifestResult = Result<Arc<CachedManifest>, EngineError>;

pub struct PullerPool {
    config: Arc<EngineConfig>,
    store: Arc<Store>,
    index: Addr<ManifestIndex>,
    /// Set right after start-up (the blob table and the pool refer to each other).
    blobs: Option<Addr<BlobTable>>,
    clients: HashMap<String, Rc<UpstreamClient>>,
    limits: HashMap<String, Rc<Semaphore>>,
    /// Manifest fetches under way, with everyone waiting for each.
    in_flight: HashMap<ImageRef, Vec<oneshot::Sender<ManifestResult>>>,
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
            in_flight: HashMap::new(),
        }
    }

    fn client(&mut self, registry: &str) -> Result<Rc<UpstreamClient>, EngineError> {
        if let Some(c) = self.clients.get(registry) {
            return Ok(c.clone());
        }
        let client = UpstreamClient::new(self.config.upstream(registry))
            .map_err(|e| EngineError::upstream(registry, e))?
            .with_idle_timeout(self.config.upstream_idle_timeout);
        let client = Rc::new(client);
        self.clients.insert(registry.to_string(), client.clone());
        Ok(client)
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
        let wait = Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(EngineError::Unavailable("manifest fetch abandoned".into()))
            })
        });
        if let Some(waiters) = self.in_flight.get_mut(&msg.image) {
            waiters.push(tx);
            return wait;
        }
        self.in_flight.insert(msg.image.clone(), vec![tx]);

        let image = msg.image;
        let me = ctx.address();
        let client = self.client(&image.registry);
        let index = self.index.clone();
        let blobs = self.blobs.clone();
        let timeout = self.config.pull_timeout;
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
            if let Err(e) = &result {
                log::warn!("pull {image}: {e}");
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
        let digests: Vec<Digest> = cached
            .manifest
            .children
            .iter()
            .map(|c| c.digest.clone())
            .collect();
        blobs.do_send(AddRefs {
            digests: digests.clone(),
        });
        for digest in digests {
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
        for tx in self.in_flight.remove(&msg.image).unwrap_or_default() {
            let _ = tx.send(msg.result.clone());
        }
    }
}

/// Downloads one blob into the store, publishing progress; sent by the blob table, which has
/// already made sure no other download of this digest runs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Download {
    pub digest: Digest,
    pub source: BlobSource,
    pub progress: watch::Sender<Progress>,
}

impl Handler<Download> for PullerPool {
    type Result = ();

    fn handle(&mut self, msg: Download, _: &mut Context<Self>) {
        let client = self.client(&msg.source.registry);
        let limit = self.limit(&msg.source.registry);
        let store = self.store.clone();
        let blobs = self.blobs.clone();
        actix_rt::spawn(async move {
            let result = match client {
                Err(e) => Err(e),
                Ok(client) => match limit.acquire().await {
                    Ok(_permit) => {
                        download(&client, &store, &msg.digest, &msg.source, &msg.progress).await
                    }
                    Err(_) => Err(EngineError::Unavailable("download limiter closed".into())),
                },
            };
            match &result {
                Ok(size) => {
                    log::info!(
                        "cached blob {} ({size} bytes) from {}",
                        msg.digest,
                        msg.source.registry
                    );
                    msg.progress.send_replace(Progress::Done { size: *size });
                }
                Err(e) => {
                    log::warn!(
                        "blob {} from {}/{}: {e}",
                        msg.digest,
                        msg.source.registry,
                        msg.source.repo
                    );
                    msg.progress.send_replace(Progress::Failed(e.clone()));
                }
            }
            if let Some(blobs) = blobs {
                blobs.do_send(Finished {
                    digest: msg.digest,
                    result,
                });
            }
        });
    }
}

async fn download(
    client: &UpstreamClient,
    store: &Store,
    digest: &Digest,
    source: &BlobSource,
    progress: &watch::Sender<Progress>,
) -> Result<u64, EngineError> {
    let up = |e| EngineError::upstream(client.name(), e);
    let st = |e: StoreError| EngineError::Store(e.to_string());
    let mut body = client.blob(&source.repo, digest).await.map_err(up)?;
    let total = body.size;
    let mut writer = store.create_blob_writer().await.map_err(st)?;
    progress.send_replace(Progress::Receiving {
        temp: Arc::new(writer.temp_path().to_path_buf()),
        written: 0,
        total,
    });
    while let Some(chunk) = body.next_chunk().await.map_err(up)? {
        writer.write(&chunk).await.map_err(st)?;
        let written = writer.written();
        if matches!(total, Some(t) if written > t) {
            return Err(up(UpstreamError::Protocol(format!(
                "blob {digest} is longer than its Content-Length"
            ))));
        }
        progress.send_modify(|p| {
            if let Progress::Receiving { written: w, .. } = p {
                *w = written;
            }
        });
    }
    if let Some(t) = total {
        if writer.written() != t {
            return Err(up(UpstreamError::Protocol(format!(
                "blob {digest} ended after {} of {t} bytes",
                writer.written()
            ))));
        }
    }
    match writer.commit(digest).await {
        Ok(size) => Ok(size),
        Err(StoreError::DigestMismatch { expected, actual }) => Err(EngineError::DigestMismatch {
            upstream: client.name().to_string(),
            what: format!("blob {digest}"),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }),
        Err(e) => Err(st(e)),
    }
}
