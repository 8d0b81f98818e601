//! What pruning removes, decided once for the command line and the server alike.
//!
//! Pruning is pure arithmetic over the cache's manifests, done here without touching disk or
//! actors: [`Selector`] says which manifests match, [`plan`] expands a matched manifest list to
//! the cached image manifests it lists and caps the count, and [`RefCounts`] says which blobs no
//! kept image manifest names any more. `prune` (file system) and the [`crate::pruner`] actor
//! (running server) both use these, so a rule means the same thing in both places.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use regex::Regex;
use time::PrimitiveDateTime;

use crate::oci::{Digest, Manifest, OciError};
use crate::store::ManifestHolder;

mod size;
#[cfg(test)]
mod tests;

pub use size::{human_size, parse_size, plan_size, CacheBound, SizePlan, Usage};

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

/// Compiles comma-separated regular expressions (`calico,cilium`). Empty parts are skipped.
pub fn parse_patterns(text: &str) -> Result<Vec<Regex>, String> {
    let mut out = Vec::new();
    for p in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        out.push(Regex::new(p).map_err(|e| format!("pattern \"{p}\" is not a valid regex: {e}"))?);
    }
    if out.is_empty() {
        return Err(format!("\"{text}\" holds no pattern"));
    }
    Ok(out)
}

/// Which manifests match. Every condition given must hold; a selector with none matches
/// nothing (so a forgotten option never empties the cache).
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// The manifest URL or one of its tags matches any of these.
    pub patterns: Option<Vec<Regex>>,
    /// First cached before this time.
    pub created_before: Option<PrimitiveDateTime>,
    /// Last pulled before this time.
    pub pulled_before: Option<PrimitiveDateTime>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.patterns.is_none() && self.created_before.is_none() && self.pulled_before.is_none()
    }

    /// Why `c` matches, or `None` when it does not.
    pub fn reason(&self, c: &Candidate) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut why = Vec::new();
        if let Some(patterns) = &self.patterns {
            let hit = patterns
                .iter()
                .find(|re| re.is_match(&c.url) || c.tags.iter().any(|t| re.is_match(t)))?;
            why.push(format!("matches pattern \"{}\"", hit.as_str()));
        }
        if let Some(t) = self.created_before {
            if c.created >= t {
                return None;
            }
            why.push(format!(
                "created {} before {}",
                crate::store::format_time(c.created),
                crate::store::format_time(t)
            ));
        }
        if let Some(t) = self.pulled_before {
            if c.pulled >= t {
                return None;
            }
            why.push(format!(
                "last pulled {} before {}",
                crate::store::format_time(c.pulled),
                crate::store::format_time(t)
            ));
        }
        Some(why.join(", "))
    }
}

/// A pruning rule as configured (`pruneConfig.type`) or asked for over the admin API.
#[derive(Debug, Clone)]
pub enum PruneRule {
    /// Not pulled within this long.
    Accessed(Duration),
    /// First cached longer ago than this.
    Created(Duration),
    /// The manifest URL matches one of these.
    Pattern(Vec<Regex>),
}

impl PruneRule {
    /// The selector this rule means at `now` (local wall-clock time, as stored).
    pub fn selector(&self, now: PrimitiveDateTime) -> Selector {
        let before = |d: &Duration| {
            time::Duration::try_from(*d)
                .ok()
                .and_then(|d| now.checked_sub(d))
                .unwrap_or(PrimitiveDateTime::MIN)
        };
        match self {
            PruneRule::Accessed(d) => Selector {
                pulled_before: Some(before(d)),
                ..Selector::default()
            },
            PruneRule::Created(d) => Selector {
                created_before: Some(before(d)),
                ..Selector::default()
            },
            PruneRule::Pattern(p) => Selector {
                patterns: Some(p.clone()),
                ..Selector::default()
            },
        }
    }
}

impl fmt::Display for PruneRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: &Duration| crate::duration::format(*d);
        match self {
            PruneRule::Accessed(d) => write!(f, "not pulled for {}", secs(d)),
            PruneRule::Created(d) => write!(f, "created more than {} ago", secs(d)),
            PruneRule::Pattern(p) => {
                let p: Vec<&str> = p.iter().map(Regex::as_str).collect();
                write!(f, "matching {}", p.join(","))
            }
        }
    }
}

/// One cached manifest as pruning sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub digest: Digest,
    pub is_list: bool,
    /// The URL it was first pulled by.
    pub url: String,
    pub tags: Vec<String>,
    pub created: PrimitiveDateTime,
    pub pulled: PrimitiveDateTime,
    /// A list: the image manifests it names. An image manifest: its config and layers.
    pub children: Vec<Digest>,
}

impl Candidate {
    /// A manifest file as pruning sees it (for the command line, which reads the disk).
    pub fn from_holder(h: &ManifestHolder) -> Result<Candidate, OciError> {
        let m = Manifest::parse(h.bytes(), Some(h.media_type()))?;
        Ok(Candidate {
            digest: h.digest().clone(),
            is_list: h.is_list(),
            url: h.image_url().to_string(),
            tags: h.tags().to_vec(),
            created: h.created(),
            pulled: h.pulled(),
            children: m.children.into_iter().map(|c| c.digest).collect(),
        })
    }
}

/// A manifest chosen for removal, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub digest: Digest,
    pub url: String,
    pub is_list: bool,
    pub reason: String,
}

impl fmt::Display for Doomed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.is_list {
            "manifest list"
        } else {
            "image manifest"
        };
        if self.url.ends_with(&self.digest.to_string()) {
            write!(f, "{what} {}: {}", self.url, self.reason)
        } else {
            write!(f, "{what} {} ({}): {}", self.url, self.digest, self.reason)
        }
    }
}

/// Chooses what to remove: the manifests `selector` matches, least recently pulled first, at
/// most `count` of them (`None`: no limit); then, for every chosen list, the cached image
/// manifests it names, unless a list that stays also names them.
pub fn plan(all: &[Candidate], selector: &Selector, count: Option<usize>) -> Vec<Doomed> {
    let mut matched: Vec<(&Candidate, String)> = all
        .iter()
        .filter_map(|c| selector.reason(c).map(|r| (c, r)))
        .collect();
    matched.sort_by(|(a, _), (b, _)| (a.pulled, &a.url).cmp(&(b.pulled, &b.url)));
    if let Some(n) = count {
        matched.truncate(n);
    }
    expand(all, &matched, "pruned")
}

/// The manifests `matched` names, each with its reason, plus the cached image manifests of
/// every matched list that no list staying behind also names (`verb` says what happens to the
/// list, for their reason).
fn expand(all: &[Candidate], matched: &[(&Candidate, String)], verb: &str) -> Vec<Doomed> {
    let mut chosen: BTreeMap<Digest, Doomed> = BTreeMap::new();
    for (c, reason) in matched {
        chosen.insert(
            c.digest.clone(),
            Doomed {
                digest: c.digest.clone(),
                url: c.url.clone(),
                is_list: c.is_list,
                reason: reason.clone(),
            },
        );
    }
    let by_digest: HashMap<&Digest, &Candidate> = all.iter().map(|c| (&c.digest, c)).collect();
    // Image manifests still named by a list that stays.
    let kept_children: HashSet<&Digest> = all
        .iter()
        .filter(|c| c.is_list && !chosen.contains_key(&c.digest))
        .flat_map(|c| c.children.iter())
        .collect();
    for (list, _) in matched.iter().filter(|(c, _)| c.is_list) {
        for child in &list.children {
            let Some(image) = by_digest.get(child) else {
                continue;
            };
            if image.is_list || chosen.contains_key(child) || kept_children.contains(child) {
                continue;
            }
            chosen.insert(
                child.clone(),
                Doomed {
                    digest: child.clone(),
                    url: image.url.clone(),
                    is_list: false,
                    reason: format!("listed by {}, which is {verb}", list.url),
                },
            );
        }
    }
    // Lists first, then the image manifests, so a reader of the log sees the cause first.
    let mut out: Vec<Doomed> = chosen.into_values().collect();
    out.sort_by(|a, b| (!a.is_list, &a.url).cmp(&(!b.is_list, &b.url)));
    out
}

/// The blobs that only the `doomed` image manifests name.
pub fn orphaned_blobs(all: &[Candidate], doomed: &[Doomed]) -> Vec<Digest> {
    let mut refs = RefCounts::new();
    for c in all.iter().filter(|c| !c.is_list) {
        refs.add(&c.children);
    }
    let gone: HashSet<&Digest> = doomed.iter().map(|d| &d.digest).collect();
    let mut out = Vec::new();
    for c in all
        .iter()
        .filter(|c| !c.is_list && gone.contains(&c.digest))
    {
        out.extend(refs.release(&c.children));
    }
    out.sort();
    out.dedup();
    out.retain(|d| refs.get(d) == 0);
    out
}

/// The blobs of `on_disk` that no image manifest of `all` names: left by an older cache,
/// pulled by digest alone, or orphaned by a manifest removed by other means. They weigh on
/// the cache and serve nobody, so a prune on disk removes them with what it selects.
pub fn stray_blobs(all: &[Candidate], on_disk: &[Digest]) -> Vec<Digest> {
    let named: HashSet<&Digest> = all
        .iter()
        .filter(|c| !c.is_list)
        .flat_map(|c| &c.children)
        .collect();
    let mut out: Vec<Digest> = on_disk
        .iter()
        .filter(|d| !named.contains(d))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How many image manifests name each blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefCounts(HashMap<Digest, u32>);

impl RefCounts {
    pub fn new() -> Self {
        RefCounts::default()
    }

    /// One more image manifest names each of `digests` (a blob named twice counts twice).
    pub fn add<'a>(&mut self, digests: impl IntoIterator<Item = &'a Digest>) {
        for d in digests {
            *self.0.entry(d.clone()).or_default() += 1;
        }
    }

    /// One image manifest naming `digests` is gone. Returns the blobs now named by none, each
    /// once. A count never goes below zero.
    pub fn release<'a>(&mut self, digests: impl IntoIterator<Item = &'a Digest>) -> Vec<Digest> {
        let mut zero = Vec::new();
        for d in digests {
            if let Some(n) = self.0.get_mut(d) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.0.remove(d);
                    zero.push(d.clone());
                }
            } else if !zero.contains(d) {
                zero.push(d.clone());
            }
        }
        zero.sort();
        zero.dedup();
        zero
    }

    pub fn get(&self, d: &Digest) -> u32 {
        self.0.get(d).copied().unwrap_or(0)
    }
}
