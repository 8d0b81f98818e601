//! Actor: prunes the running server's cache, on a schedule (`pruneConfig`) or when asked
//! (`DELETE /cmd/prune`).
//!
//! A prune is three questions to the actors that own the state, never a walk of the disk:
//! [`Select`] (which manifests, and which blobs only they name), [`ManifestRemove`] (take them
//! out of the index and off the disk), then [`ReleaseRefs`] and [`BlobRemove`] (delete the
//! blobs no cached image manifest names any more). `pulled` times come from the index's
//! memory, so a prune by access time sees every hit, flushed to disk or not. The blob table
//! refuses to delete a blob that is being downloaded or has been named again meanwhile, so a
//! pull running during a prune still completes. Prunes run one at a time. Every decision is
//! logged at `warn` level, so it shows at the usual log levels.

use std::time::Duration;

use actix::prelude::*;

use crate::blob_table::{self, BlobTable, ReleaseRefs, Remove as BlobRemove};
use crate::error::EngineError;
use crate::manifest_index::{ManifestIndex, Remove as ManifestRemove, Select};
use crate::oci::Digest;
use crate::prune::{Doomed, PruneRule, Selector};
use crate::store::now_local;

/// The background prune, as configured by `pruneConfig`.
#[derive(Debug, Clone)]
pub struct PruneSchedule {
    pub rule: PruneRule,
    /// How often to run.
    pub frequency: Duration,
    /// At most this many matching manifests per run (`None`: no limit).
    pub count: Option<usize>,
    /// Only log what would be removed.
    pub dry_run: bool,
}

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

pub struct Pruner {
    index: Addr<ManifestIndex>,
    blobs: Addr<BlobTable>,
    schedule: Option<PruneSchedule>,
}

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
        }
    }
}

impl Actor for Pruner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(s) = self.schedule.clone() else {
            return;
        };
        log::info!(
            "prune: every {} remove manifests {}{}{}",
            crate::prune::humanize(s.frequency),
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
        AtomicResponse::new(Box::pin(
            async move {
                let result = prune(&index, &blobs, &msg).await;
                if let Err(e) = &result {
                    log::error!("{}: failed: {e}", msg.why);
                }
                result
            }
            .into_actor(self),
        ))
    }
}

async fn prune(
    index: &Addr<ManifestIndex>,
    blobs: &Addr<BlobTable>,
    msg: &Prune,
) -> Result<PruneReport, EngineError> {
    let why = &msg.why;
    let selection = index
        .send(Select {
            selector: msg.selector.clone(),
            count: msg.count,
        })
        .await?;
    let mut report = PruneReport {
        dry_run: msg.dry_run,
        ..PruneReport::default()
    };
    let verb = if msg.dry_run {
        "would remove"
    } else {
        "removing"
    };
    for m in &selection.manifests {
        log::warn!("{why}: {verb} {m}");
    }
    if msg.dry_run {
        let sizes: std::collections::HashMap<Digest, Option<u64>> = blobs
            .send(blob_table::List)
            .await?
            .into_iter()
            .map(|b| (b.digest, b.size))
            .collect();
        for d in selection.blobs {
            let size = sizes.get(&d).copied().flatten();
            log::warn!("{why}: would remove blob {d}: no other cached image manifest names it");
            report.blobs.push((d, size));
        }
        report.manifests = selection.manifests;
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
    let removal = blobs
        .send(BlobRemove {
            digests: released,
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
    log_summary(why, &report);
    Ok(report)
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
