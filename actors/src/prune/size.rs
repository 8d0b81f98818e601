//! Pruning by size (`maxCacheSize`): which images to evict, least recently pulled first, so
//! that the cache falls back under its bound.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use regex::Regex;
use time::PrimitiveDateTime;

use super::{expand, orphaned_blobs, Candidate, Doomed};
use crate::oci::Digest;

/// Parses a size in bytes: a whole number, optionally followed by a unit, e.g. `50GiB`,
/// `500MiB`, `2GB` or `1048576`. Binary units (`KiB`, `MiB`, `GiB`, `TiB`) count in 1024s,
/// decimal ones (`kB`, `MB`, `GB`, `TB`) in 1000s; `B` is bytes. Units are case-insensitive
/// and may follow a space.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "\"{text}\" is not a size; use a whole number of bytes or e.g. 500MiB, 50GiB"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("\"{text}\" is too large"))?;
    let factor: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "\"{text}\": unknown unit \"{other}\"; use B, KiB, MiB, GiB, TiB (1024s) or kB, \
                 MB, GB, TB (1000s)"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

/// `1610612736` -> `1.5GiB`: a byte count for people (exact below 1 KiB).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1}{unit}")
}

/// The size bound on the cache: `maxCacheSize`, and what eviction never touches.
#[derive(Debug, Clone)]
pub struct CacheBound {
    /// Blob bytes the cache should stay under.
    pub max_bytes: u64,
    /// `pin`: images whose URL or a tag matches one of these are never evicted.
    pub pins: Vec<Regex>,
    /// An image pulled within this long counts as being pulled and is never evicted.
    pub grace: Duration,
}

/// What the blobs of the cache weigh, as eviction needs to know it.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Bytes of the blobs on disk, plus the announced sizes of downloads under way.
    pub total: u64,
    /// The blobs on disk and their sizes.
    pub sizes: HashMap<Digest, u64>,
    /// Blobs being downloaded or verified: an image naming one is being pulled.
    pub busy: HashSet<Digest>,
}

/// What an eviction chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizePlan {
    /// The manifests to remove (lists first), each with why.
    pub doomed: Vec<Doomed>,
    /// How many images (a list with its cached image manifests, or a lone image manifest).
    pub images: usize,
    /// Bytes of the blobs that only the chosen images name.
    pub freed: u64,
    /// Bytes left once they are gone; above the bound when what may not go is too big.
    pub remaining: u64,
}

/// Chooses the images to evict so the cache fits `bound`: least recently pulled first, never
/// a pinned image, never one pulled within `bound.grace` of `now` or naming a blob in
/// `usage.busy`. An image is a list with its cached image manifests, or an image manifest no
/// cached list names; it counts as pulled when any of its manifests last was. Blobs another
/// kept image names stay, and do not count as freed.
pub fn plan_size(
    all: &[Candidate],
    usage: &Usage,
    bound: &CacheBound,
    now: PrimitiveDateTime,
) -> SizePlan {
    let mut plan = SizePlan {
        remaining: usage.total,
        ..SizePlan::default()
    };
    if usage.total <= bound.max_bytes {
        return plan;
    }
    let by_digest: HashMap<&Digest, &Candidate> = all.iter().map(|c| (&c.digest, c)).collect();
    let listed: HashSet<&Digest> = all
        .iter()
        .filter(|c| c.is_list)
        .flat_map(|c| c.children.iter())
        .collect();
    let recent = time::Duration::try_from(bound.grace)
        .ok()
        .and_then(|g| now.checked_sub(g))
        .unwrap_or(PrimitiveDateTime::MIN);
    let mut images: Vec<(PrimitiveDateTime, &Candidate)> = Vec::new();
    for root in all
        .iter()
        .filter(|c| c.is_list || !listed.contains(&c.digest))
    {
        let mut members = vec![root];
        if root.is_list {
            members.extend(
                root.children
                    .iter()
                    .filter_map(|d| by_digest.get(d).copied())
                    .filter(|c| !c.is_list),
            );
        }
        let pulled = members
            .iter()
            .map(|c| c.pulled)
            .max()
            .unwrap_or(root.pulled);
        let pinned = members.iter().any(|c| {
            bound
                .pins
                .iter()
                .any(|re| re.is_match(&c.url) || c.tags.iter().any(|t| re.is_match(t)))
        });
        let busy = pulled >= recent
            || members
                .iter()
                .filter(|c| !c.is_list)
                .any(|c| c.children.iter().any(|b| usage.busy.contains(b)));
        if !pinned && !busy {
            images.push((pulled, root));
        }
    }
    images.sort_by(|(a, x), (b, y)| (a, &x.url).cmp(&(b, &y.url)));
    let over = usage.total - bound.max_bytes;
    let mut matched: Vec<(&Candidate, String)> = Vec::new();
    for (pulled, root) in images {
        if plan.freed >= over {
            break;
        }
        matched.push((
            root,
            format!(
                "least recently pulled image (last pulled {}) while the cache holds {} over \
                 its bound of {}",
                crate::store::format_time(pulled),
                human_size(usage.total),
                human_size(bound.max_bytes)
            ),
        ));
        let doomed = expand(all, &matched, "evicted");
        plan.freed = orphaned_blobs(all, &doomed)
            .iter()
            .filter_map(|d| usage.sizes.get(d))
            .sum();
        plan.doomed = doomed;
        plan.images = matched.len();
    }
    plan.remaining = usage.total.saturating_sub(plan.freed);
    plan
}
