//! Actor: the manifest index, tag -> digest -> manifest, with created and pulled times.
//!
//! Every cache hit is answered from memory; the index only touches the disk when a manifest or a
//! tag is added (persisted before the insert is acknowledged, so a tag the client saw survives a
//! restart), when batched `pulled` times are flushed, and when pruning removes manifests
//! ([`Select`] chooses, [`Remove`] removes).
//!
//! Handlers read hits from the snapshot the actor publishes ([`IndexView`], `snapshot.rs`)
//! without a message; the actor stays the one writer.

mod adopt;
mod remove;
mod snapshot;
mod sources;

pub use adopt::Adopt;
pub use remove::{Forget, Remove, Removed};
pub use snapshot::{CheckClock, Hit, IndexView, PullClock};
use snapshot::{Published, PublishedTag, Snapshot};
use sources::NamedBy;
pub use sources::Sources;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use time::PrimitiveDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::error::EngineError;
use crate::oci::{Digest, ImageRef, Manifest, ManifestKind, Reference, RepoName};
use crate::prune::{self, CacheBound, Candidate, Doomed, Selector, SizePlan, Usage};
use crate::store::{now_local as now, ManifestHolder, Store, StoreError};

/// How often changed `pulled` times are written back to the manifest files.
const PULLED_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// A manifest exactly as the upstream served it, plus what the cache needs to know about it.
/// Immutable and shared: handlers hold it while they write the response.
#[derive(Debug)]
pub struct CachedManifest {
    /// The sha256 of `bytes`: what clients ask for and `Docker-Content-Digest` says.
    pub digest: Digest,
    /// The exact upstream bytes, never re-serialized: any other bytes would have another
    /// digest.
    pub bytes: Bytes,
    /// The bytes parsed once: its kind, and the children (image manifests, or config and
    /// layers) that prefetch, prune and export follow.
    pub manifest: Manifest,
    /// Where it was first pulled from (`registry/repo:tag` or `registry/repo@digest`).
    pub image_url: String,
}

impl CachedManifest {
    pub fn kind(&self) -> ManifestKind {
        self.manifest.kind
    }

    pub fn media_type(&self) -> &'static str {
        self.manifest.kind.media_type()
    }

    /// What an image manifest names, as the blob table counts and bounds it.
    pub fn named_blobs(&self) -> Vec<crate::blob::NamedBlob> {
        self.manifest.children.iter().map(Into::into).collect()
    }
}

/// A manifest in the index with its mutable bookkeeping.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// Shared with the handlers writing it out: immutable once cached.
    pub manifest: Arc<CachedManifest>,
    /// Every `registry/repo:tag` that points at this manifest.
    pub tags: BTreeSet<String>,
    /// When it was first cached (local time, as the Go server writes it): pruning by age.
    pub created: PrimitiveDateTime,
    /// When it was last served: pruning and eviction take the least recently pulled first.
    pub pulled: PrimitiveDateTime,
    /// When each of its tags was last checked upstream, in wall-clock time: written with the
    /// manifest so that a restart knows which tags are due a check.
    pub checked: std::collections::BTreeMap<String, PrimitiveDateTime>,
    /// Pulls served from the snapshot since the actor last looked: folded into `pulled`.
    pulls: Arc<PullClock>,
}

impl IndexEntry {
    /// A list: its image manifests. An image manifest: its config and layers.
    pub fn child_digests(&self) -> Vec<Digest> {
        self.manifest
            .manifest
            .children
            .iter()
            .map(|c| c.digest.clone())
            .collect()
    }

    /// This entry as pruning sees it.
    pub fn candidate(&self) -> Candidate {
        Candidate {
            digest: self.manifest.digest.clone(),
            is_list: self.manifest.kind().is_list(),
            url: self.manifest.image_url.clone(),
            tags: self.tags.iter().cloned().collect(),
            created: self.created,
            pulled: self.pulled,
            children: self.child_digests(),
        }
    }

    fn to_holder(&self) -> ManifestHolder {
        let mut h = ManifestHolder::new(
            self.manifest.kind(),
            self.manifest.digest.clone(),
            self.manifest.image_url.clone(),
            self.manifest.bytes.to_vec(),
            self.created,
            self.pulled,
            self.tags.iter().cloned().collect(),
        );
        h.set_checked(self.checked.clone());
        h
    }
}

/// The index's store operations, run one at a time in the order the actor issued them, off
/// its thread. The order is what keeps the files true to the index: a removal queued after a
/// write removes what it wrote, and a re-insert queued after a removal writes again.
struct StoreQueue {
    jobs: mpsc::UnboundedSender<BoxFuture<'static, ()>>,
}

impl StoreQueue {
    /// Starts the queue's runner on the current arbiter.
    fn start() -> Self {
        let (jobs, mut rx) = mpsc::unbounded_channel::<BoxFuture<'static, ()>>();
        actix_rt::spawn(async move {
            while let Some(job) = rx.recv().await {
                job.await;
            }
        });
        StoreQueue { jobs }
    }

    /// Queues `op`; the returned future gives its outcome once it has run.
    fn run<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let queued = self.jobs.send(Box::pin(async move {
            let _ = tx.send(op.await);
        }));
        async move {
            queued.map_err(|_| StoreError::Task("the index's store queue is gone".into()))?;
            rx.await
                .unwrap_or_else(|_| Err(StoreError::Task("a store operation was lost".into())))
        }
    }
}

/// Every cached manifest in memory, so that a cache hit is answered without the disk; the
/// store holds the same, written before an insert is acknowledged.
pub struct ManifestIndex {
    /// Where manifests are persisted; reached only through `queue`.
    store: Arc<dyn Store>,
    /// Started with the actor, on its arbiter.
    queue: Option<StoreQueue>,
    /// The manifests, by their digest (the exact upstream bytes hash to it).
    by_digest: HashMap<Digest, IndexEntry>,
    /// Which of them name each digest; changed wherever `by_digest` is.
    named_by: NamedBy,
    /// `registry/repo:tag` -> the manifest the tag points at; a tag points at one manifest.
    by_tag: HashMap<String, Digest>,
    /// Manifests whose `pulled` time changed since the last flush.
    dirty: HashSet<Digest>,
    /// When each tag was last fetched or checked upstream; restored at start from the times
    /// kept with the manifests, absent (never) for tags without one. Shared with the snapshot,
    /// where a revalidating request marks it at once.
    checks: HashMap<String, Arc<CheckClock>>,
    /// What the last published snapshot holds; changed key by key, then published whole.
    published: Snapshot,
    /// Where handlers read it.
    view: IndexView,
}

impl ManifestIndex {
    /// Builds the index from the manifests found on disk at start.
    pub fn new(store: Arc<dyn Store>, holders: Vec<ManifestHolder>) -> Self {
        let mut index = ManifestIndex {
            store,
            queue: None,
            by_digest: HashMap::new(),
            named_by: NamedBy::default(),
            by_tag: HashMap::new(),
            dirty: HashSet::new(),
            checks: HashMap::new(),
            published: Snapshot::default(),
            view: IndexView::new(Snapshot::default()),
        };
        for h in holders {
            match entry_from_holder(&h) {
                Ok(entry) => index.add(entry),
                Err(e) => log::warn!("cache: skipping manifest {}: {e}", h.image_url()),
            }
        }
        index.restore_checks();
        let tags: Vec<String> = index.by_tag.keys().cloned().collect();
        let digests: Vec<Digest> = index.by_digest.keys().cloned().collect();
        index.republish(&tags, &digests);
        crate::metrics::metrics()
            .cached_manifests
            .set(index.by_digest.len() as i64);
        index
    }

    /// Turns the check times kept with the manifests back into ages: a tag checked a minute
    /// before a restart is not due a check at once. A time in the future (a clock set back)
    /// counts as no check.
    fn restore_checks(&mut self) {
        let (wall, mono) = (now(), std::time::Instant::now());
        for (digest, e) in &self.by_digest {
            for (tag, at) in &e.checked {
                if self.by_tag.get(tag) != Some(digest) {
                    continue;
                }
                let Ok(age) = std::time::Duration::try_from(wall - *at) else {
                    continue;
                };
                if let Some(then) = mono.checked_sub(age) {
                    self.checks.entry(tag.clone()).or_default().mark(then);
                }
            }
        }
    }

    /// Adds an entry loaded from disk. Two files claiming one tag (caches written without tag
    /// lists) resolve to the more recently created manifest.
    fn add(&mut self, mut entry: IndexEntry) {
        let digest = entry.manifest.digest.clone();
        for t in entry.tags.clone() {
            let other = self.by_tag.get(&t).and_then(|d| self.by_digest.get_mut(d));
            match other {
                Some(o) if o.created > entry.created => {
                    entry.tags.remove(&t);
                }
                Some(o) => {
                    o.tags.remove(&t);
                    self.by_tag.insert(t, digest.clone());
                }
                None => {
                    self.by_tag.insert(t, digest.clone());
                }
            }
        }
        self.named_by
            .add(&digest, &entry.manifest.manifest.children);
        self.by_digest.insert(digest, entry);
    }

    fn lookup(&self, image: &ImageRef) -> Option<Digest> {
        match &image.reference {
            Reference::Digest(d) => self.by_digest.contains_key(d).then(|| d.clone()),
            Reference::Tag(_) => self.by_tag.get(&image.to_string()).cloned(),
        }
    }

    /// Every indexed image manifest with the blobs it names: the blob table's reference
    /// counts, and the sizes it holds downloads to, at start.
    pub fn blob_refs(&self) -> Vec<(Digest, Vec<crate::blob::NamedBlob>)> {
        self.by_digest
            .values()
            .filter(|e| !e.manifest.kind().is_list())
            .map(|e| (e.manifest.digest.clone(), e.manifest.named_blobs()))
            .collect()
    }

    /// The blobs that indexed image manifests name but `present` lacks, each with where to
    /// fetch it: after a crash mid-prefetch, the cache completes itself at start.
    pub fn missing_blobs(
        &self,
        present: &HashSet<Digest>,
    ) -> Vec<(Digest, crate::blob::BlobSource)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for e in self
            .by_digest
            .values()
            .filter(|e| !e.manifest.kind().is_list())
        {
            let Ok(home) = ImageRef::parse(&e.manifest.image_url) else {
                continue;
            };
            for c in &e.manifest.manifest.children {
                if !present.contains(&c.digest) && seen.insert(c.digest.clone()) {
                    let source = crate::blob::BlobSource {
                        registry: home.registry.clone(),
                        repo: home.repo.clone(),
                    };
                    out.push((c.digest.clone(), source));
                }
            }
        }
        out
    }

    /// Where handlers read the index without a message.
    pub fn view(&self) -> IndexView {
        self.view.clone()
    }

    /// Brings the snapshot's `tags` and `digests` in line with the index (added, moved or
    /// removed), then publishes it: called in the turn that changed them, before the change is
    /// acknowledged.
    fn republish(&mut self, tags: &[String], digests: &[Digest]) {
        for d in digests {
            match self.by_digest.get(d) {
                Some(e) => {
                    let p = Published {
                        manifest: e.manifest.clone(),
                        pulls: e.pulls.clone(),
                    };
                    self.published.by_digest.insert(d.clone(), p);
                }
                None => {
                    self.published.by_digest.remove(d);
                }
            }
        }
        for t in tags {
            let entry = self.by_tag.get(t).and_then(|d| self.by_digest.get(d));
            match entry {
                Some(e) => {
                    let slot = PublishedTag {
                        entry: Published {
                            manifest: e.manifest.clone(),
                            pulls: e.pulls.clone(),
                        },
                        checked: self.checks.entry(t.clone()).or_default().clone(),
                    };
                    self.published.by_tag.insert(Arc::from(t.as_str()), slot);
                }
                None => {
                    self.published.by_tag.remove(t.as_str());
                }
            }
        }
        self.view.publish(self.published.clone());
    }

    /// Folds the pulls served from the snapshot into `pulled` (and the next flush): before
    /// anything reads or writes pull times.
    fn count_pulls(&mut self) {
        for (d, e) in self.by_digest.iter_mut() {
            if let Some(t) = e.pulls.take() {
                if t > e.pulled {
                    e.pulled = t;
                }
                self.dirty.insert(d.clone());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Queues a store operation behind the ones issued before it.
    fn queued<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(Arc<dyn Store>) -> BoxFuture<'static, Result<T, StoreError>>,
    ) -> impl Future<Output = Result<T, StoreError>> {
        let queue = self.queue.get_or_insert_with(StoreQueue::start);
        queue.run(op(self.store.clone()))
    }

    /// Writes the changed `pulled` times in the background; the returned future ends when
    /// they are written.
    fn flush_pulled(&mut self) -> impl Future<Output = ()> {
        self.count_pulls();
        let holders: Vec<ManifestHolder> = self
            .dirty
            .drain()
            .filter_map(|d| self.by_digest.get(&d).map(IndexEntry::to_holder))
            .collect();
        let written = self.queued(|store| {
            Box::pin(async move {
                for h in holders {
                    let url = h.image_url().to_string();
                    if let Err(e) = store.write_manifests(vec![h]).await {
                        log::warn!("cache: recording pull time of {url}: {e}");
                    }
                }
                Ok(())
            })
        });
        async move {
            let _ = written.await;
        }
    }
}

/// Rebuilds an index entry from a manifest file.
fn entry_from_holder(h: &ManifestHolder) -> Result<IndexEntry, EngineError> {
    let bytes = Bytes::copy_from_slice(h.bytes());
    let manifest = Manifest::parse(&bytes, Some(h.kind().media_type()))?;
    // `tags` holds full references (`registry/repo:tag`); a bare tag, as the Go server's
    // `imageUrl` implies, belongs to the repository of `imageUrl`.
    let home = ImageRef::parse(h.image_url()).ok();
    let mut tags = BTreeSet::new();
    for t in h.tags() {
        if t.contains('/') {
            tags.insert(t.clone());
        } else if let Some(home) = &home {
            if let Ok(r) = Reference::parse(t) {
                tags.insert(home.with_reference(r).to_string());
            }
        }
    }
    Ok(IndexEntry {
        manifest: Arc::new(CachedManifest {
            digest: h.digest().clone(),
            bytes,
            manifest,
            image_url: h.image_url().to_string(),
        }),
        checked: h.checked().clone(),
        tags,
        created: h.created(),
        pulled: h.pulled(),
        pulls: Arc::default(),
    })
}

impl Actor for ManifestIndex {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.queue.get_or_insert_with(StoreQueue::start);
        ctx.run_interval(PULLED_FLUSH_INTERVAL, |act, _| {
            actix_rt::spawn(act.flush_pulled());
        });
    }
}

/// Writes pending `pulled` times now; answered once they are on disk (used at shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for ManifestIndex {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.flush_pulled())
    }
}

/// Looks a manifest up by tag or digest, and records the pull. (Requests read the snapshot
/// instead; this is for preload and export, which run beside the server.)
#[derive(Message)]
#[rtype(result = "Option<Arc<CachedManifest>>")]
pub struct Resolve {
    pub image: ImageRef,
}

impl Handler<Resolve> for ManifestIndex {
    type Result = Option<Arc<CachedManifest>>;

    fn handle(&mut self, msg: Resolve, _: &mut Context<Self>) -> Self::Result {
        let digest = self.lookup(&msg.image)?;
        let entry = self.by_digest.get_mut(&digest)?;
        entry.pulled = now();
        self.dirty.insert(digest);
        Some(entry.manifest.clone())
    }
}

/// Adds a manifest fetched from `image` (persisting it first), or, when it is already cached,
/// records the tag it was fetched by. A tag that pointed elsewhere is moved.
#[derive(Message)]
#[rtype(result = "Result<Arc<CachedManifest>, EngineError>")]
pub struct Insert {
    pub image: ImageRef,
    pub manifest: CachedManifest,
}

impl Handler<Insert> for ManifestIndex {
    type Result = ResponseFuture<Result<Arc<CachedManifest>, EngineError>>;

    fn handle(&mut self, msg: Insert, _: &mut Context<Self>) -> Self::Result {
        let digest = msg.manifest.digest.clone();
        let tag = msg.image.reference.tag().map(|_| msg.image.to_string());
        let mut to_write: Vec<ManifestHolder> = Vec::new();

        let mut moved_from = None;
        if let Some(tag) = &tag {
            self.checks.entry(tag.clone()).or_default().mark_now();
            if let Some(old) = self.by_tag.insert(tag.clone(), digest.clone()) {
                if old != digest {
                    if let Some(e) = self.by_digest.get_mut(&old) {
                        e.tags.remove(tag);
                        e.checked.remove(tag);
                        to_write.push(e.to_holder());
                    }
                    moved_from = Some(old);
                }
            }
        }
        let t = now();
        let is_new = !self.by_digest.contains_key(&digest);
        let entry = self
            .by_digest
            .entry(digest.clone())
            .or_insert_with(|| IndexEntry {
                manifest: Arc::new(msg.manifest),
                tags: BTreeSet::new(),
                created: t,
                pulled: t,
                checked: std::collections::BTreeMap::new(),
                pulls: Arc::default(),
            });
        entry.pulled = t;
        if let Some(tag) = &tag {
            // Fetched by this tag just now: as good as a check.
            entry.checked.insert(tag.clone(), t);
            self.dirty.insert(digest.clone());
        }
        if is_new {
            self.named_by
                .add(&digest, &entry.manifest.manifest.children);
            crate::metrics::metrics().cached_manifests.inc();
        }
        let tag_added = match &tag {
            Some(tag) => entry.tags.insert(tag.clone()),
            None => false,
        };
        if is_new || tag_added {
            to_write.push(entry.to_holder());
        }
        let shared = entry.manifest.clone();
        // Readers see the change from now on, before it is acknowledged.
        let digests: Vec<Digest> = std::iter::once(digest).chain(moved_from).collect();
        self.republish(tag.as_slice(), &digests);
        if to_write.is_empty() {
            return Box::pin(async move { Ok(shared) });
        }
        let written =
            self.queued(|store| Box::pin(async move { store.write_manifests(to_write).await }));
        Box::pin(async move {
            written.await?;
            Ok(shared)
        })
    }
}

/// The upstream confirmed that a tag still points at the cached manifest.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Validated {
    pub image: ImageRef,
}

impl Handler<Validated> for ManifestIndex {
    type Result = ();

    fn handle(&mut self, msg: Validated, _: &mut Context<Self>) {
        let tag = msg.image.to_string();
        self.checks.entry(tag.clone()).or_default().mark_now();
        // Kept with the manifest (written with the next flush of pull times).
        if let Some(digest) = self.by_tag.get(&tag).cloned() {
            if let Some(e) = self.by_digest.get_mut(&digest) {
                e.checked.insert(tag, now());
                self.dirty.insert(digest);
            }
        }
    }
}

/// The tags held for one repository, sorted.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct Tags {
    pub registry: String,
    pub repo: RepoName,
}

impl Handler<Tags> for ManifestIndex {
    type Result = MessageResult<Tags>;

    fn handle(&mut self, msg: Tags, _: &mut Context<Self>) -> Self::Result {
        let prefix = format!("{}/{}:", msg.registry, msg.repo);
        let mut tags: Vec<String> = self
            .by_tag
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(str::to_string)
            .collect();
        tags.sort();
        MessageResult(tags)
    }
}

/// Every entry, for listings and pruning.
#[derive(Message)]
#[rtype(result = "Vec<IndexEntry>")]
pub struct List;

impl Handler<List> for ManifestIndex {
    type Result = MessageResult<List>;

    fn handle(&mut self, _: List, _: &mut Context<Self>) -> Self::Result {
        self.count_pulls();
        MessageResult(self.by_digest.values().cloned().collect())
    }
}

/// What pruning would remove: the manifests chosen by `selector` (see [`prune::plan`]), and the
/// blobs that only they name. Changes nothing.
#[derive(Message)]
#[rtype(result = "Selection")]
pub struct Select {
    pub selector: Selector,
    /// At most this many matching manifests (`None`: no limit).
    pub count: Option<usize>,
}

/// The answer to [`Select`].
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub manifests: Vec<Doomed>,
    /// Blobs named by chosen image manifests and by no other cached image manifest.
    pub blobs: Vec<Digest>,
}

impl Handler<Select> for ManifestIndex {
    type Result = MessageResult<Select>;

    fn handle(&mut self, msg: Select, _: &mut Context<Self>) -> Self::Result {
        self.count_pulls();
        let all: Vec<Candidate> = self.by_digest.values().map(IndexEntry::candidate).collect();
        let manifests = prune::plan(&all, &msg.selector, msg.count);
        MessageResult(Selection {
            blobs: orphaned_blobs(&all, &manifests),
            manifests,
        })
    }
}

pub use crate::prune::orphaned_blobs;

/// What eviction would remove to bring the cache under `bound` (see [`prune::plan_size`]),
/// with the blobs only those manifests name. Changes nothing.
#[derive(Message)]
#[rtype(result = "(Selection, SizePlan)")]
pub struct SelectBySize {
    pub bound: CacheBound,
    pub usage: Usage,
}

impl Handler<SelectBySize> for ManifestIndex {
    type Result = MessageResult<SelectBySize>;

    fn handle(&mut self, msg: SelectBySize, _: &mut Context<Self>) -> Self::Result {
        self.count_pulls();
        let all: Vec<Candidate> = self.by_digest.values().map(IndexEntry::candidate).collect();
        let plan = prune::plan_size(&all, &msg.usage, &msg.bound, now());
        let selection = Selection {
            blobs: orphaned_blobs(&all, &plan.doomed),
            manifests: plan.doomed.clone(),
        };
        MessageResult((selection, plan))
    }
}

#[cfg(test)]
mod tests;
