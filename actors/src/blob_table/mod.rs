//! Actor: every blob the cache has or is fetching, and how many image manifests name it.
//!
//! This is where one-download-per-digest is decided: [`Open`] either finds the blob on disk,
//! joins the download already under way, or registers a new download and hands it to the
//! puller pool, all inside one message, so two requests can never both start one.
//!
//! Pruning asks it twice: [`ReleaseRefs`] when image manifests leave the index (which blobs
//! no cached image manifest names any more), then [`Remove`] for those blobs, which it refuses
//! for a blob being downloaded or named again in the meantime. Both decisions happen inside
//! one message each, so a prune can never delete a blob that a pull has just started using.
//!
//! It also keeps, for every blob a cached image manifest names, the size its descriptor
//! states, and hands it to the download ([`Job::expected_size`]): a body that is not that
//! size fails, so an endless one cannot fill the disk before its digest is checked.
//!
//! It also keeps the cache's weight: the bytes on disk plus the announced sizes of downloads
//! under way. When `maxCacheSize` is set and a download starts ([`Expecting`]) or ends
//! ([`Finished`]) with the total above it, it tells the pruner, which evicts ([`Usage`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::watch;

use crate::blob::{
    BlobInfo, BlobSource, BlobStatus, NamedBlob, Progress, StatedSizes, StoredBlobs, Vanished,
};
use crate::oci::Digest;
use crate::proxy::download::{Expecting, Finished, Job, Table};
use crate::prune::{self, RefCounts};
use crate::puller_pool::{Download, ImageCached, PullerPool, Verify};
use crate::store::Store;

enum State {
    /// On disk. `verified`: written by this process, or hashed since it started; a file found
    /// at start is trusted by its name only until its first use checks it (a power cut can
    /// leave a damaged file behind, and the Go server never fsyncs).
    Present {
        size: u64,
        verified: bool,
    },
    Fetching(watch::Receiver<Progress>),
    /// Being hashed before its first use; a damaged file is replaced by a download.
    Verifying {
        progress: watch::Receiver<Progress>,
        size: u64,
    },
    /// Being deleted by a prune. An [`Open`] waits for the deletion to end (`true` on the
    /// channel) before it decides, so a new download can never land before the old file goes.
    Removing {
        size: u64,
        done: watch::Receiver<bool>,
    },
}

/// The one owner of every blob's state: because every decision about a digest is one message
/// here, two requests can never both start its download, and a prune can never delete a blob
/// a pull has just started to use.
pub struct BlobTable {
    /// Where new downloads (and checks of blobs found at start) are handed.
    puller: Addr<PullerPool>,
    /// Every blob stored or on its way; a digest absent here is neither.
    blobs: HashMap<Digest, State>,
    /// How many cached image manifests name each blob: a blob goes only at zero.
    refs: RefCounts,
    /// The image manifests whose blobs are counted in `refs`, so each counts once.
    counted: HashSet<Digest>,
    /// What the cached image manifests' descriptors state for the size of each blob they
    /// name (blobs without a stated size are absent).
    stated: HashMap<Digest, StatedSizes>,
    /// Where [`Remove`] deletes blobs; without it, removal only forgets them.
    store: Option<Arc<dyn Store>>,
    /// Bytes of the blobs on disk (present or being verified).
    bytes: u64,
    /// Downloads under way whose size is announced, with that size.
    expected: HashMap<Digest, u64>,
    /// `maxCacheSize`, and who evicts when the total crosses it.
    bound: Option<(u64, Recipient<OverBound>)>,
    /// When each blob this process stored landed: one no image manifest names yet is not a
    /// stray before [`STRAY_GRACE`] has passed (see [`Strays`]).
    landed: HashMap<Digest, Instant>,
    /// The present, verified blobs, where requests read them without a message; kept equal to
    /// what `blobs` says by [`BlobTable::set`] and [`BlobTable::unset`].
    stored: StoredBlobs,
}

/// How long a blob this process stored is kept while no cached image manifest names it: a
/// client may fetch a blob before the manifest naming it is cached, and the manifest's
/// references are counted only once it is. Blobs found at start are past it: the references
/// of the manifests found with them are counted before any prune can ask.
pub const STRAY_GRACE: Duration = Duration::from_secs(10 * 60);

impl BlobTable {
    /// `present` is what the store found on disk at start.
    pub fn new(puller: Addr<PullerPool>, present: Vec<(Digest, u64)>) -> Self {
        let m = crate::metrics::metrics();
        m.cached_blobs.set(present.len() as i64);
        let bytes: u64 = present.iter().map(|(_, s)| *s).sum();
        m.cached_blob_bytes.set(bytes as i64);
        BlobTable {
            bytes,
            expected: HashMap::new(),
            bound: None,
            puller,
            blobs: present
                .into_iter()
                .map(|(d, size)| {
                    let verified = false;
                    (d, State::Present { size, verified })
                })
                .collect(),
            refs: RefCounts::new(),
            counted: HashSet::new(),
            stated: HashMap::new(),
            store: None,
            landed: HashMap::new(),
            stored: StoredBlobs::default(),
        }
    }

    /// Publishes the stored, verified blobs to `stored` from now on.
    pub fn publishing(mut self, stored: StoredBlobs) -> Self {
        self.stored = stored;
        self.publish_verified();
        self
    }

    /// Lets [`Remove`] delete blobs from `store`; without it, removal only forgets them.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        if store.trusts_stored_blobs() {
            for state in self.blobs.values_mut() {
                if let State::Present { verified, .. } = state {
                    *verified = true;
                }
            }
            self.publish_verified();
        }
        self.store = Some(store);
        self
    }

    /// Publishes every present, verified blob: for the builders, which change states in bulk
    /// (in whichever order they are called), where a running table goes through
    /// [`BlobTable::set`].
    fn publish_verified(&self) {
        for (d, state) in &self.blobs {
            if let State::Present {
                size,
                verified: true,
            } = state
            {
                self.stored.set(d, Some(*size));
            }
        }
    }
}

impl BlobTable {
    /// Every change of a blob's state goes through here (or [`BlobTable::unset`]), so the
    /// published stored blobs change in the same turn.
    fn set(&mut self, digest: Digest, state: State) {
        let verified_size = match &state {
            State::Present {
                size,
                verified: true,
            } => Some(*size),
            _ => None,
        };
        self.stored.set(&digest, verified_size);
        self.blobs.insert(digest, state);
    }

    fn unset(&mut self, digest: &Digest) {
        self.stored.set(digest, None);
        self.blobs.remove(digest);
    }

    /// The bytes on disk plus the announced bytes on their way.
    fn total(&self) -> u64 {
        self.bytes + self.expected.values().sum::<u64>()
    }

    /// Tells the pruner when the total is above the bound.
    fn check_bound(&self) {
        if let Some((max, pruner)) = &self.bound {
            let total = self.total();
            if total > *max {
                pruner.do_send(OverBound { total });
            }
        }
    }
}

impl Actor for BlobTable {
    type Context = Context<Self>;
}

/// The cache's blobs weigh more than `maxCacheSize`: time to evict.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OverBound {
    pub total: u64,
}

/// Sets the bound and who evicts when the total crosses it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachBound {
    pub max_bytes: u64,
    pub evictor: Recipient<OverBound>,
}

impl Handler<AttachBound> for BlobTable {
    type Result = ();

    fn handle(&mut self, msg: AttachBound, _: &mut Context<Self>) {
        self.bound = Some((msg.max_bytes, msg.evictor));
        self.check_bound();
    }
}

impl Handler<Expecting> for BlobTable {
    type Result = ();

    fn handle(&mut self, msg: Expecting, _: &mut Context<Self>) {
        match self.blobs.get(&msg.digest) {
            Some(State::Fetching(_)) => {}
            // A damaged file being replaced is already counted.
            _ => return,
        }
        self.expected.insert(msg.digest, msg.size);
        self.check_bound();
    }
}

/// What the blobs weigh, for eviction.
#[derive(Message)]
#[rtype(result = "prune::Usage")]
pub struct Usage;

impl Handler<Usage> for BlobTable {
    type Result = MessageResult<Usage>;

    fn handle(&mut self, _: Usage, _: &mut Context<Self>) -> Self::Result {
        let mut usage = prune::Usage {
            total: self.total(),
            ..prune::Usage::default()
        };
        for (d, s) in &self.blobs {
            match s {
                State::Present { size, .. } => {
                    usage.sizes.insert(d.clone(), *size);
                }
                State::Fetching(_) | State::Verifying { .. } | State::Removing { .. } => {
                    usage.busy.insert(d.clone());
                }
            }
        }
        MessageResult(usage)
    }
}

/// Finds a blob, joining or starting its download when `source` allows.
#[derive(Message)]
#[rtype(result = "BlobStatus")]
pub struct Open {
    pub digest: Digest,
    /// `None` in air-gapped mode: never start a download.
    pub source: Option<BlobSource>,
}

impl Handler<Open> for BlobTable {
    type Result = ResponseActFuture<Self, BlobStatus>;

    fn handle(&mut self, msg: Open, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(State::Removing { done, .. }) = self.blobs.get(&msg.digest) {
            let mut done = done.clone();
            let deleted = async move {
                let _ = done.wait_for(|d| *d).await;
            };
            return Box::pin(
                actix::fut::wrap_future(deleted)
                    .map(move |(), act: &mut Self, ctx| act.open(msg.digest, msg.source, ctx)),
            );
        }
        let status = self.open(msg.digest, msg.source, ctx);
        Box::pin(actix::fut::ready(status))
    }
}

/// Forgets a stored blob its reader did not find, then opens it again: a download of the same
/// bytes when there is a source, `Absent` in air-gapped mode. Readers that find it gone at the
/// same time join the one download; a blob stored again since the reader looked stays.
impl Handler<Vanished> for BlobTable {
    type Result = ResponseActFuture<Self, BlobStatus>;

    fn handle(&mut self, msg: Vanished, ctx: &mut Context<Self>) -> Self::Result {
        let stored_since = self.landed.get(&msg.digest).is_some_and(|t| *t > msg.seen);
        if let (false, Some(State::Present { size, .. })) =
            (stored_since, self.blobs.get(&msg.digest))
        {
            let size = *size;
            log::warn!(
                "cache: blob {} ({size} bytes) is no longer in the store; {}",
                msg.digest,
                if msg.source.is_some() {
                    "fetching it again"
                } else {
                    "forgetting it (nothing to fetch it from)"
                }
            );
            self.forget(&msg.digest, size);
        }
        let open = Open {
            digest: msg.digest,
            source: msg.source,
        };
        <Self as Handler<Open>>::handle(self, open, ctx)
    }
}

impl BlobTable {
    /// The addresses a download reports to.
    fn table(ctx: &Context<Self>) -> Table {
        let me = ctx.address();
        Table {
            expecting: me.clone().recipient(),
            finished: me.recipient(),
        }
    }

    /// [`Open`]'s decision, made in one turn of the actor.
    fn open(
        &mut self,
        digest: Digest,
        source: Option<BlobSource>,
        ctx: &Context<Self>,
    ) -> BlobStatus {
        match self.blobs.get(&digest) {
            Some(State::Present {
                size,
                verified: true,
            }) => BlobStatus::Present { size: *size },
            Some(State::Present {
                size,
                verified: false,
            }) => {
                let size = *size;
                let (tx, rx) = watch::channel(Progress::Queued);
                self.set(
                    digest.clone(),
                    State::Verifying {
                        progress: rx.clone(),
                        size,
                    },
                );
                self.puller.do_send(Verify {
                    expected_size: self.stated.get(&digest).cloned(),
                    digest,
                    size,
                    source,
                    progress: tx,
                    table: Self::table(ctx),
                });
                BlobStatus::Fetching(rx)
            }
            Some(State::Fetching(rx)) | Some(State::Verifying { progress: rx, .. }) => {
                crate::metrics::metrics()
                    .waiters_joined
                    .get_or_create(&crate::metrics::Kind { kind: "blob" })
                    .inc();
                BlobStatus::Fetching(rx.clone())
            }
            // [`Open`] waits for a removal before it decides, so this is a blob whose deletion
            // failed and that a second prune marked again in between: rare, and answered as not
            // cached rather than served from a file about to go.
            Some(State::Removing { .. }) => BlobStatus::Absent,
            None => match source {
                None => BlobStatus::Absent,
                Some(source) => {
                    let (tx, rx) = watch::channel(Progress::Queued);
                    self.set(digest.clone(), State::Fetching(rx.clone()));
                    self.puller.do_send(Download(Job {
                        expected_size: self.stated.get(&digest).cloned(),
                        digest,
                        source,
                        progress: tx,
                        table: Self::table(ctx),
                    }));
                    BlobStatus::Fetching(rx)
                }
            },
        }
    }

    /// Counts each image manifest's blobs once, and keeps the sizes they state.
    fn add_refs(&mut self, manifests: Vec<(Digest, Vec<NamedBlob>)>) {
        for (manifest, blobs) in manifests {
            if !self.counted.insert(manifest) {
                continue;
            }
            let digests: Vec<Digest> = blobs.iter().map(|b| b.digest.clone()).collect();
            self.refs.add(&digests);
            for blob in blobs {
                if let Some(size) = blob.size {
                    self.stated
                        .entry(blob.digest)
                        .and_modify(|known| known.add(size))
                        .or_insert_with(|| StatedSizes::new(size));
                }
            }
        }
    }
}

/// Counts the new image manifest's blobs (first, so their downloads are held to the stated
/// sizes), then opens each: the cache fetches them without waiting for clients to ask.
impl Handler<ImageCached> for BlobTable {
    type Result = ();

    fn handle(&mut self, msg: ImageCached, ctx: &mut Context<Self>) {
        let digests: Vec<Digest> = msg.blobs.iter().map(|b| b.digest.clone()).collect();
        self.add_refs(vec![(msg.manifest, msg.blobs)]);
        for digest in digests {
            ctx.notify(Open {
                digest,
                source: Some(msg.source.clone()),
            });
        }
    }
}

impl Handler<Finished> for BlobTable {
    type Result = ();

    fn handle(&mut self, msg: Finished, _: &mut Context<Self>) {
        let m = crate::metrics::metrics();
        // A verified (or re-fetched) file that was already counted at start.
        let counted = match self.blobs.get(&msg.digest) {
            Some(State::Verifying { size, .. }) => Some(*size),
            _ => None,
        };
        self.expected.remove(&msg.digest);
        match msg.result {
            Ok(size) => {
                let verified = true;
                self.landed.insert(msg.digest.clone(), Instant::now());
                self.set(msg.digest, State::Present { size, verified });
                self.bytes = self.bytes.saturating_sub(counted.unwrap_or(0)) + size;
                if counted.is_none() {
                    m.cached_blobs.inc();
                    m.cached_blob_bytes.inc_by(size as i64);
                }
            }
            Err(_) => {
                self.unset(&msg.digest);
                if let Some(size) = counted {
                    self.bytes = self.bytes.saturating_sub(size);
                    m.cached_blobs.dec();
                    m.cached_blob_bytes.dec_by(size as i64);
                }
            }
        }
        self.check_bound();
    }
}

/// Image manifests naming these blobs entered the cache: each `(manifest, blobs)` pair counts
/// once per manifest digest, however often it is sent (a tag re-fetched to the same digest
/// does not count twice). The sizes the descriptors state bound the blobs' downloads from now
/// on; a download already under way keeps the bound it started with.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddRefs {
    pub manifests: Vec<(Digest, Vec<NamedBlob>)>,
}

impl Handler<AddRefs> for BlobTable {
    type Result = ();

    fn handle(&mut self, msg: AddRefs, _: &mut Context<Self>) {
        self.add_refs(msg.manifests);
    }
}

/// Image manifests left the cache: their blobs lose one reference each. Answers the blobs
/// that no cached image manifest names any more (candidates for [`Remove`]).
#[derive(Message)]
#[rtype(result = "Vec<Digest>")]
pub struct ReleaseRefs {
    pub manifests: Vec<(Digest, Vec<Digest>)>,
}

impl Handler<ReleaseRefs> for BlobTable {
    type Result = MessageResult<ReleaseRefs>;

    fn handle(&mut self, msg: ReleaseRefs, _: &mut Context<Self>) -> Self::Result {
        let mut zero = Vec::new();
        for (manifest, blobs) in msg.manifests {
            if self.counted.remove(&manifest) {
                zero.extend(self.refs.release(&blobs));
            }
        }
        zero.sort();
        zero.dedup();
        zero.retain(|d| self.refs.get(d) == 0);
        // A size stays while any manifest naming the blob does (which one stated which is not
        // kept): a release can only widen what a download accepts, never narrow it wrongly.
        for d in &zero {
            self.stated.remove(d);
        }
        MessageResult(zero)
    }
}

/// What [`Remove`] did with each blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Deleted (or, dry run, would be), with their sizes.
    pub removed: Vec<(Digest, u64)>,
    /// Kept, and why.
    pub kept: Vec<(Digest, String)>,
}

/// Deletes blobs that no image manifest names. A blob being downloaded, or named again since
/// [`ReleaseRefs`] (a pull re-cached its manifest), is kept. The deletions run off the actor's
/// thread (a slow disk must not stall every cache hit); until each ends its blob is in state
/// `Removing`, and an [`Open`] of it waits, so no download can start between the table's
/// decision and the file going away (a reader with the file already open keeps reading it).
#[derive(Message)]
#[rtype(result = "Removal")]
pub struct Remove {
    pub digests: Vec<Digest>,
    /// Only report what would happen.
    pub dry_run: bool,
}

impl Handler<Remove> for BlobTable {
    type Result = ResponseActFuture<Self, Removal>;

    fn handle(&mut self, msg: Remove, _: &mut Context<Self>) -> Self::Result {
        let mut out = Removal::default();
        let mut doomed = Vec::new();
        for d in msg.digests {
            let refs = self.refs.get(&d);
            let (size, verified) = match self.blobs.get(&d) {
                _ if refs > 0 => {
                    out.kept
                        .push((d, format!("named by {refs} cached image manifest(s)")));
                    continue;
                }
                Some(State::Fetching(_)) | Some(State::Verifying { .. }) => {
                    out.kept.push((d, "being downloaded".into()));
                    continue;
                }
                Some(State::Removing { .. }) => {
                    out.kept.push((d, "being removed by another prune".into()));
                    continue;
                }
                None => {
                    out.kept.push((d, "not in the cache".into()));
                    continue;
                }
                Some(State::Present { size, verified }) => (*size, *verified),
            };
            if msg.dry_run {
                out.removed.push((d, size));
                continue;
            }
            if self.store.is_none() {
                self.forget(&d, size);
                out.removed.push((d, size));
                continue;
            }
            let (tx, done) = watch::channel(false);
            self.set(d.clone(), State::Removing { size, done });
            doomed.push((d, size, verified, tx));
        }
        let Some(store) = self.store.clone().filter(|_| !doomed.is_empty()) else {
            return Box::pin(actix::fut::ready(out));
        };
        // Deleted off the actor's thread; the blobs stay `Removing` meanwhile, so an `Open`
        // waits rather than starting a download the deletion could then remove.
        let deletions = async move {
            let mut results = Vec::with_capacity(doomed.len());
            for (d, size, verified, tx) in doomed {
                let result = store.remove_blob(d.clone()).await;
                results.push((d, size, verified, tx, result));
            }
            results
        };
        Box::pin(
            actix::fut::wrap_future(deletions).map(move |results, act: &mut Self, _| {
                for (d, size, verified, tx, result) in results {
                    match result {
                        Ok(_) => {
                            act.forget(&d, size);
                            out.removed.push((d, size));
                        }
                        Err(e) => {
                            log::warn!("prune: cannot remove blob {d}: {e}");
                            act.set(d.clone(), State::Present { size, verified });
                            out.kept.push((d, format!("cannot delete the file: {e}")));
                        }
                    }
                    let _ = tx.send(true);
                }
                out
            }),
        )
    }
}

impl BlobTable {
    /// Drops a deleted blob from the table and the cache's weight.
    fn forget(&mut self, d: &Digest, size: u64) {
        self.unset(d);
        self.landed.remove(d);
        self.bytes = self.bytes.saturating_sub(size);
        let m = crate::metrics::metrics();
        m.cached_blobs.dec();
        m.cached_blob_bytes.dec_by(size as i64);
    }
}

/// The blobs on disk that no cached image manifest names (pulled by digest alone, left by an
/// older cache, or by a manifest removed by other means) and that landed `grace` ago or before
/// this process started: what a prune removes besides the blobs of the manifests it removes.
/// A blob being downloaded, checked or removed is never one; [`Remove`] checks again.
#[derive(Message)]
#[rtype(result = "Vec<Digest>")]
pub struct Strays {
    pub grace: Duration,
}

impl Handler<Strays> for BlobTable {
    type Result = MessageResult<Strays>;

    fn handle(&mut self, msg: Strays, _: &mut Context<Self>) -> Self::Result {
        let mut out: Vec<Digest> = self
            .blobs
            .iter()
            .filter(|(d, s)| {
                matches!(s, State::Present { .. })
                    && self.refs.get(d) == 0
                    && self.landed.get(*d).is_none_or(|t| t.elapsed() >= msg.grace)
            })
            .map(|(d, _)| d.clone())
            .collect();
        out.sort();
        MessageResult(out)
    }
}

/// Blobs written into the store beside this table (blob, size, how long ago it was stored):
/// by other replicas of a shared store, listed by the replica about to prune it, or by an
/// import into the running server's directory. Those not known here are adopted as present
/// (one stored within [`STRAY_GRACE`] counts as landed then). With `whole`, the listing is
/// the whole store, and blobs this table holds as present that it lacks (another replica's
/// prune removed them) are forgotten: the prune decides over the whole store, not over what
/// this replica happened to see.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdoptStored {
    pub blobs: Vec<(Digest, u64, Duration)>,
    pub whole: bool,
}

impl Handler<AdoptStored> for BlobTable {
    type Result = ();

    fn handle(&mut self, msg: AdoptStored, _: &mut Context<Self>) {
        let listed: HashSet<&Digest> = msg.blobs.iter().map(|(d, _, _)| d).collect();
        let vanished: Vec<(Digest, u64)> = self
            .blobs
            .iter()
            .filter_map(|(d, s)| match s {
                // One this replica stored after the listing is not gone.
                State::Present { size, .. }
                    if msg.whole
                        && !listed.contains(d)
                        && self
                            .landed
                            .get(d)
                            .is_none_or(|t| t.elapsed() >= STRAY_GRACE) =>
                {
                    Some((d.clone(), *size))
                }
                _ => None,
            })
            .collect();
        for (d, size) in vanished {
            self.forget(&d, size);
        }
        let m = crate::metrics::metrics();
        for (d, size, age) in msg.blobs {
            if self.blobs.contains_key(&d) {
                continue;
            }
            if let Some(at) = Instant::now()
                .checked_sub(age)
                .filter(|_| age < STRAY_GRACE)
            {
                self.landed.insert(d.clone(), at);
            }
            self.set(
                d,
                State::Present {
                    size,
                    verified: true,
                },
            );
            self.bytes += size;
            m.cached_blobs.inc();
            m.cached_blob_bytes.inc_by(size as i64);
        }
    }
}

/// Blobs another replica of a shared store may have deleted: the manifests naming them were
/// pruned there. Each is checked again on its next use, as a file found at start is (the
/// [`Open`] of an unverified blob checks the store and downloads it again when it is gone),
/// so a cache hit never pays for a look at the store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Suspect {
    pub digests: Vec<Digest>,
}

impl Handler<Suspect> for BlobTable {
    type Result = ();

    fn handle(&mut self, msg: Suspect, _: &mut Context<Self>) {
        for d in msg.digests {
            if let Some(State::Present { size, .. }) = self.blobs.get(&d) {
                let size = *size;
                let verified = false;
                self.set(d, State::Present { size, verified });
            }
        }
    }
}

/// Every blob known, for listings.
#[derive(Message)]
#[rtype(result = "Vec<BlobInfo>")]
pub struct List;

impl Handler<List> for BlobTable {
    type Result = MessageResult<List>;

    fn handle(&mut self, _: List, _: &mut Context<Self>) -> Self::Result {
        let mut out: Vec<BlobInfo> = self
            .blobs
            .iter()
            .map(|(d, s)| BlobInfo {
                digest: d.clone(),
                size: match s {
                    State::Present { size, .. }
                    | State::Verifying { size, .. }
                    | State::Removing { size, .. } => Some(*size),
                    State::Fetching(_) => None,
                },
                refs: self.refs.get(d),
            })
            .collect();
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        MessageResult(out)
    }
}

#[cfg(test)]
mod tests;
