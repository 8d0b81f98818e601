//! Actor: prunes the running server's cache, on a schedule (`pruneConfig`) or when asked
//! (`DELETE /cmd/prune`).
//!
//! A prune is three questions to the actors that own the state, never a walk of the disk:
//! [`Select`] (which manifests, and which blobs only they name), [`ManifestRemove`] (take them
//! out of the index and off the disk), then [`ReleaseRefs`] and [`BlobRemove`] (delete the
//! blobs no cached image manifest names any more). Every prune, and every eviction first, also
//! removes the strays ([`Strays`]): blobs no cached image manifest names at all (pulled by
//! digest alone, left by an older cache), past a grace for downloads whose manifest is not
//! cached yet. `pulled` times come from the index's
//! memory, so a prune by access time sees every hit, flushed to disk or not. The blob table
//! refuses to delete a blob that is being downloaded or has been named again meanwhile, so a
//! pull running during a prune still completes. Prunes run one at a time. Every decision is
//! logged at `warn` level, so it shows at the usual log levels.
//!
//! On a store shared with other replicas, each prune runs under the fleet's prune lease, after
//! a fresh look at the whole store, and deletes only blobs no manifest in the store names at
//! that moment ([`crate::fleet`]).
//!
//! Eviction (`maxCacheSize`) is a prune of type size: the blob table reports that the total
//! crossed the bound ([`OverBound`]), and the pruner, in turn with every other prune, asks the
//! index for the least recently pulled images that may go ([`SelectBySize`]) and removes them
//! the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::blob_table::{
    self, BlobTable, OverBound, ReleaseRefs, Remove as BlobRemove, Strays, STRAY_GRACE,
};
use crate::error::EngineError;
use crate::fleet::Fleet;
use crate::manifest_index::{
    ManifestIndex, Remove as ManifestRemove, Select, SelectBySize, Selection,
};
use crate::oci::Digest;
use crate::prune::{human_size, CacheBound, Doomed, Selector};
use crate::store::now_local;

pub use crate::prune::PruneSchedule;

/// What one prune did (or, dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    pub dry_run: bool,
    /// Manifests removed, and why.
    pub manifests: Vec<Doomed>,
    /// Blobs removed, with their sizes (`None`: size unknown).
    pub blobs: Vec<(Digest, Option<u64>)>,
    /// Blobs that would have been removed but were kept, and why.
    pub kept_blobs: Vec<(Digest, String)>,
}

/// Runs prunes one at a time (scheduled, asked for, or evictions), so two can never decide on
/// the same cache state.
pub struct Pruner {
    /// Chooses the manifests and removes them.
    index: Addr<ManifestIndex>,
    /// Releases their blobs' references and removes the blobs nothing names.
    blobs: Addr<BlobTable>,
    /// `pruneConfig`; `None`: prunes only when asked.
    schedule: Option<PruneSchedule>,
    /// `maxCacheSize` and `pin`.
    bound: Option<CacheBound>,
    /// An eviction is waiting its turn: further reports of the bound add nothing.
    evict_queued: bool,
    /// When the cache was last found over its bound with nothing left to evict.
    warned: Option<Instant>,
    /// On a shared store: the lease that lets one replica prune at a time, and the store's
    /// own word on which blobs its manifests name (see [`crate::fleet`]).
    fleet: Option<Arc<Fleet>>,
}

/// How often the warning that nothing more may be evicted repeats while it holds.
const STUCK_WARNING_INTERVAL: Duration = Duration::from_secs(60);

impl Pruner {
    pub fn new(
        index: Addr<ManifestIndex>,
        blobs: Addr<BlobTable>,
        schedule: Option<PruneSchedule>,
    ) -> Self {
        Pruner {
            index,
            blobs,
            schedule,
            bound: None,
            evict_queued: false,
            warned: None,
            fleet: None,
        }
    }

    /// Prunes a store shared with other replicas (see [`crate::fleet`]).
    pub fn with_fleet(mut self, fleet: Option<Arc<Fleet>>) -> Self {
        self.fleet = fleet;
        self
    }

    /// Keeps the cache under `bound` (see [`Evict`]).
    pub fn with_bound(mut self, bound: Option<CacheBound>) -> Self {
        self.bound = bound;
        self
    }
}

impl Actor for Pruner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(b) = &self.bound {
            crate::metrics::metrics()
                .cache_bound_bytes
                .set(b.max_bytes as i64);
            let pins: Vec<&str> = b.pins.iter().map(regex::Regex::as_str).collect();
            log::info!(
                "cache bound: {} ({} bytes){}; images pulled within {} are kept",
                human_size(b.max_bytes),
                b.max_bytes,
                if pins.is_empty() {
                    String::new()
                } else {
                    format!(", never evicting images matching {}", pins.join(","))
                },
                crate::duration::format(b.grace)
            );
            // A cache already too big at start is trimmed right away.
            ctx.notify(OverBound { total: 0 });
            // On a shared store this replica's table sees only what it touched: the whole
            // store is weighed now and then, under the prune lease (see `in_turn`).
            if self.fleet.is_some() {
                ctx.run_interval(crate::fleet::BOUND_CHECK_INTERVAL, |_, ctx| {
                    ctx.notify(OverBound { total: 0 });
                });
            }
        }
        let Some(s) = self.schedule.clone() else {
            return;
        };
        log::info!(
            "prune: every {} remove manifests {}{}{}",
            crate::duration::format(s.frequency),
            s.rule,
            s.count
                .map(|n| format!(", at most {n} a run"))
                .unwrap_or_default(),
            if s.dry_run { " (dry run)" } else { "" }
        );
        ctx.run_interval(s.frequency, move |_, ctx| {
            ctx.notify(Prune {
                selector: s.rule.selector(now_local()),
                count: s.count,
                dry_run: s.dry_run,
                why: format!("scheduled prune ({})", s.rule),
            });
        });
    }
}

/// Prunes the manifests `selector` chooses (a list takes its cached image manifests), then the
/// blobs no remaining image manifest names. Waits for a prune already running to finish.
#[derive(Message)]
#[rtype(result = "Result<PruneReport, EngineError>")]
pub struct Prune {
    pub selector: Selector,
    /// At most this many matching manifests (`None`: no limit).
    pub count: Option<usize>,
    pub dry_run: bool,
    /// Who asked, for the log (`scheduled prune`, `admin request from ...`).
    pub why: String,
}

impl Handler<Prune> for Pruner {
    type Result = AtomicResponse<Self, Result<PruneReport, EngineError>>;

    fn handle(&mut self, msg: Prune, _: &mut Context<Self>) -> Self::Result {
        let index = self.index.clone();
        let blobs = self.blobs.clone();
        let fleet = self.fleet.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let result = in_turn(fleet.as_deref(), |f| prune(&index, &blobs, f, &msg)).await;
                match &result {
                    Err(e @ EngineError::Busy(_)) => log::info!("{}: not now: {e}", msg.why),
                    Err(e) => log::error!("{}: failed: {e}", msg.why),
                    Ok(_) => {}
                }
                result
            }
            .into_actor(self),
        ))
    }
}

impl Handler<OverBound> for Pruner {
    type Result = ();

    fn handle(&mut self, _: OverBound, ctx: &mut Context<Self>) {
        if self.bound.is_none() || self.evict_queued {
            return;
        }
        self.evict_queued = true;
        ctx.notify(Evict);
    }
}

/// Evicts the least recently pulled images until the cache is under `maxCacheSize` (a prune
/// of type size); does nothing while it is under. Waits for a prune already running.
#[derive(Message)]
#[rtype(result = "Result<PruneReport, EngineError>")]
pub struct Evict;

impl Handler<Evict> for Pruner {
    type Result = AtomicResponse<Self, Result<PruneReport, EngineError>>;

    fn handle(&mut self, _: Evict, _: &mut Context<Self>) -> Self::Result {
        self.evict_queued = false;
        let index = self.index.clone();
        let blobs = self.blobs.clone();
        let bound = self.bound.clone();
        let fleet = self.fleet.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let Some(bound) = bound else {
                    return Ok((PruneReport::default(), None));
                };
                in_turn(fleet.as_deref(), |f| evict(&index, &blobs, f, bound, false)).await
            }
            .into_actor(self)
            .map(|result, act, _| match result {
                Ok((report, stuck)) => {
                    if let Some(message) = stuck {
                        if act
                            .warned
                            .is_none_or(|t| t.elapsed() >= STUCK_WARNING_INTERVAL)
                        {
                            log::warn!("{message}");
                            act.warned = Some(Instant::now());
                        }
                    } else {
                        act.warned = None;
                    }
                    Ok(report)
                }
                Err(e @ EngineError::Busy(_)) => {
                    log::info!("size bound: eviction not now: {e}");
                    Err(e)
                }
                Err(e) => {
                    log::error!("size bound: eviction failed: {e}");
                    Err(e)
                }
            }),
        ))
    }
}

/// An eviction asked for (`DELETE /cmd/prune?type=size`): the least recently pulled images,
/// after the strays, until the cache is under `bound` (or, dry run, what would go). Waits for
/// a prune already running.
#[derive(Message)]
#[rtype(result = "Result<PruneReport, EngineError>")]
pub struct EvictTo {
    pub bound: CacheBound,
    pub dry_run: bool,
}

impl Handler<EvictTo> for Pruner {
    type Result = AtomicResponse<Self, Result<PruneReport, EngineError>>;

    fn handle(&mut self, msg: EvictTo, _: &mut Context<Self>) -> Self::Result {
        let index = self.index.clone();
        let blobs = self.blobs.clone();
        let fleet = self.fleet.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let (report, stuck) = in_turn(fleet.as_deref(), |f| {
                    evict(&index, &blobs, f, msg.bound, msg.dry_run)
                })
                .await?;
                if let Some(message) = stuck {
                    log::warn!("{message}");
                }
                Ok(report)
            }
            .into_actor(self),
        ))
    }
}

/// One eviction: the report, and a warning when the cache stays over its bound.
async fn evict(
    index: &Addr<ManifestIndex>,
    blobs: &Addr<BlobTable>,
    fleet: Option<&Fleet>,
    bound: CacheBound,
    dry_run: bool,
) -> Result<(PruneReport, Option<String>), EngineError> {
    let mut usage = blobs.send(blob_table::Usage).await?;
    if usage.total <= bound.max_bytes {
        return Ok((
            PruneReport {
                dry_run,
                ..PruneReport::default()
            },
            None,
        ));
    }
    let mut total = usage.total;
    let max = bound.max_bytes;
    let why = format!(
        "size bound: the cache holds {} ({total} bytes), over maxCacheSize {} ({max} bytes)",
        human_size(total),
        human_size(max)
    );
    // Blobs no image names go first: they weigh without serving anyone.
    let mut freed = PruneReport {
        dry_run,
        ..PruneReport::default()
    };
    strays(blobs, fleet, &why, &mut freed).await?;
    if !freed.blobs.is_empty() && !dry_run {
        usage = blobs.send(blob_table::Usage).await?;
        total = usage.total;
        if total <= max {
            log_summary(&why, &freed);
            return Ok((freed, None));
        }
    }
    let (selection, plan) = index.send(SelectBySize { bound, usage }).await?;
    let report = if plan.images > 0 {
        let mut report = apply(index, blobs, fleet, &why, selection, dry_run).await?;
        // A dry run's strays were reported twice: by `freed` and by `apply`.
        report.blobs.retain(|b| !freed.blobs.contains(b));
        report.blobs.splice(0..0, freed.blobs);
        if !dry_run {
            crate::metrics::metrics()
                .evictions
                .inc_by(plan.images as u64);
        }
        report
    } else {
        if !freed.blobs.is_empty() {
            log_summary(&why, &freed);
        }
        freed
    };
    let stuck = (plan.remaining > max).then(|| {
        format!(
            "size bound: the cache stays at {} ({} bytes), over maxCacheSize {} ({max} \
             bytes): what is left is pinned, being pulled, or named by no cached image. \
             Pulls go on; raise maxCacheSize or pin fewer images",
            human_size(plan.remaining),
            plan.remaining,
            human_size(max)
        )
    });
    Ok((report, stuck))
}

async fn prune(
    index: &Addr<ManifestIndex>,
    blobs: &Addr<BlobTable>,
    fleet: Option<&Fleet>,
    msg: &Prune,
) -> Result<PruneReport, EngineError> {
    let selection = index
        .send(Select {
            selector: msg.selector.clone(),
            count: msg.count,
        })
        .await?;
    apply(index, blobs, fleet, &msg.why, selection, msg.dry_run).await
}

/// Runs `work` in this replica's turn: on a shared store, under the fleet's prune lease and
/// after a fresh look at the whole store (see [`Fleet::begin_prune`]); elsewhere, at once.
async fn in_turn<'a, T, F, Fut>(fleet: Option<&'a Fleet>, work: F) -> Result<T, EngineError>
where
    F: FnOnce(Option<&'a Fleet>) -> Fut,
    Fut: std::future::Future<Output = Result<T, EngineError>>,
{
    let Some(f) = fleet else {
        return work(None).await;
    };
    let lease = f.begin_prune().await?;
    let result = work(Some(f)).await;
    if let Some(lease) = lease {
        lease.end().await;
    }
    result
}

/// The blobs of `digests` that may go: on a shared store, only those no manifest in the store
/// names now; the others are added to `report` as kept, with the reason.
async fn deletable(
    fleet: Option<&Fleet>,
    digests: Vec<Digest>,
    report: &mut PruneReport,
) -> Result<Vec<Digest>, EngineError> {
    let Some(f) = fleet else {
        return Ok(digests);
    };
    let (free, kept) = f.unnamed(digests).await?;
    for (d, why) in kept {
        log::warn!("kept blob {d}: {why}");
        report.kept_blobs.push((d, why));
    }
    Ok(free)
}

/// Removes what a selection chose: the manifests, then the blobs no remaining image manifest
/// names (or, dry run, only reports them).
async fn apply(
    index: &Addr<ManifestIndex>,
    blobs: &Addr<BlobTable>,
    fleet: Option<&Fleet>,
    why: &str,
    selection: Selection,
    dry_run: bool,
) -> Result<PruneReport, EngineError> {
    let mut report = PruneReport {
        dry_run,
        ..PruneReport::default()
    };
    let verb = if dry_run { "would remove" } else { "removing" };
    for m in &selection.manifests {
        log::warn!("{why}: {verb} {m}");
    }
    if dry_run {
        let sizes: std::collections::HashMap<Digest, Option<u64>> = blobs
            .send(blob_table::List)
            .await?
            .into_iter()
            .map(|b| (b.digest, b.size))
            .collect();
        for d in deletable(fleet, selection.blobs, &mut report).await? {
            let size = sizes.get(&d).copied().flatten();
            log::warn!("{why}: would remove blob {d}: no other cached image manifest names it");
            report.blobs.push((d, size));
        }
        report.manifests = selection.manifests;
        strays(blobs, fleet, why, &mut report).await?;
        log_summary(why, &report);
        return Ok(report);
    }
    let removed = index
        .send(ManifestRemove {
            digests: selection
                .manifests
                .iter()
                .map(|m| m.digest.clone())
                .collect(),
        })
        .await??;
    let gone: std::collections::HashSet<&Digest> = removed.iter().map(|r| &r.digest).collect();
    report.manifests = selection
        .manifests
        .iter()
        .filter(|m| gone.contains(&m.digest))
        .cloned()
        .collect();
    let released = blobs
        .send(ReleaseRefs {
            manifests: removed
                .iter()
                .filter(|r| !r.is_list)
                .map(|r| (r.digest.clone(), r.blobs.clone()))
                .collect(),
        })
        .await?;
    let digests = deletable(fleet, released, &mut report).await?;
    let removal = blobs
        .send(BlobRemove {
            digests,
            dry_run: false,
        })
        .await?;
    for (d, size) in &removal.removed {
        log::warn!("{why}: removed blob {d} ({size} bytes): no cached image manifest names it");
        report.blobs.push((d.clone(), Some(*size)));
    }
    for (d, reason) in removal.kept {
        log::warn!("{why}: kept blob {d}: {reason}");
        report.kept_blobs.push((d, reason));
    }
    strays(blobs, fleet, why, &mut report).await?;
    log_summary(why, &report);
    Ok(report)
}

/// Adds to `report` the blobs no cached image manifest names ([`Strays`]): removed, or in a
/// dry run reported. A stray that a pull takes up meanwhile is kept without a word: it is no
/// stray any more.
async fn strays(
    blobs: &Addr<BlobTable>,
    fleet: Option<&Fleet>,
    why: &str,
    report: &mut PruneReport,
) -> Result<(), EngineError> {
    let digests = blobs.send(Strays { grace: STRAY_GRACE }).await?;
    let digests = deletable(fleet, digests, report).await?;
    if digests.is_empty() {
        return Ok(());
    }
    let removal = blobs
        .send(BlobRemove {
            digests,
            dry_run: report.dry_run,
        })
        .await?;
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (d, size) in removal.removed {
        log::warn!("{why}: {verb} blob {d} ({size} bytes): no cached image manifest names it");
        report.blobs.push((d, Some(size)));
    }
    Ok(())
}

fn log_summary(why: &str, r: &PruneReport) {
    let bytes: u64 = r.blobs.iter().filter_map(|(_, s)| *s).sum();
    let level = if r.manifests.is_empty() && r.blobs.is_empty() {
        log::Level::Info
    } else {
        log::Level::Warn
    };
    log::log!(
        level,
        "{why}: {} {} manifest(s) and {} blob(s), {bytes} bytes",
        if r.dry_run { "would remove" } else { "removed" },
        r.manifests.len(),
        r.blobs.len()
    );
}
