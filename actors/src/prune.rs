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

/// Parses a prune age: a whole number followed by `d` (days), `h` (hours), `m` (minutes) or
/// `s` (seconds), e.g. `30d`, `12h`, `10m`. Several parts may follow each other (`1d12h`).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty duration; use e.g. 30d, 12h or 10m".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "\"{text}\": unknown unit '{c}'; use d (days), h (hours), m (minutes) or s \
                     (seconds), e.g. 30d"
                ))
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("\"{text}\": a number must come before '{c}'"))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("\"{text}\" is too long"))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "\"{text}\": the number {digits} has no unit; use d, h, m or s, e.g. 30d"
        ));
    }
    Ok(Duration::from_secs(total))
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
        let secs = |d: &Duration| humanize(*d);
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

/// `90061s` -> `1d1h1m1s`, the form [`parse_age`] reads.
pub fn humanize(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, n) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn d(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    fn cand(c: char, url: &str, list: bool, children: &[char], day: u8) -> Candidate {
        let t = PrimitiveDateTime::new(
            time::Date::from_calendar_date(2025, time::Month::March, day).unwrap(),
            time::Time::MIDNIGHT,
        );
        Candidate {
            digest: d(c),
            is_list: list,
            url: url.to_string(),
            tags: Vec::new(),
            created: t,
            pulled: t,
            children: children.iter().map(|&c| d(c)).collect(),
        }
    }

    #[test]
    fn ages_parse_in_days_hours_minutes() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3_600));
        assert_eq!(parse_age("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_age("1d12h").unwrap(), Duration::from_secs(36 * 3_600));
        assert_eq!(parse_age(" 5s ").unwrap(), Duration::from_secs(5));
        for bad in ["", "30", "d", "3w", "-1d", "1.5h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn rules_turn_into_cutoffs_relative_to_now() {
        let now = datetime!(2025-03-31 12:00:00);
        let sel = PruneRule::Accessed(parse_age("1d").unwrap()).selector(now);
        assert_eq!(sel.pulled_before, Some(datetime!(2025-03-30 12:00:00)));
        assert!(sel.created_before.is_none() && sel.patterns.is_none());
        let sel = PruneRule::Created(parse_age("10m").unwrap()).selector(now);
        assert_eq!(sel.created_before, Some(datetime!(2025-03-31 11:50:00)));
        assert_eq!(humanize(parse_age("1d1h1m1s").unwrap()), "1d1h1m1s");
        assert_eq!(
            PruneRule::Created(parse_age("30d").unwrap()).to_string(),
            "created more than 30d ago"
        );
    }

    #[test]
    fn patterns_split_on_commas_and_bad_regexes_are_named() {
        assert_eq!(parse_patterns("calico, cilium").unwrap().len(), 2);
        let err = parse_patterns("ok,(unclosed").unwrap_err();
        assert!(err.contains("(unclosed"), "{err}");
        assert!(parse_patterns(" , ").is_err());
    }

    #[test]
    fn an_empty_selector_matches_nothing() {
        let all = vec![cand('a', "r/x:1", false, &['1'], 1)];
        assert!(plan(&all, &Selector::default(), None).is_empty());
    }

    #[test]
    fn dates_and_patterns_must_all_hold() {
        let all = vec![
            cand('a', "docker.io/library/old:1", false, &[], 1),
            cand('b', "docker.io/library/new:1", false, &[], 20),
            cand('c', "quay.io/x/old:1", false, &[], 2),
        ];
        let sel = Selector {
            patterns: Some(parse_patterns("docker.io").unwrap()),
            created_before: Some(datetime!(2025-03-10 00:00:00)),
            pulled_before: None,
        };
        let doomed = plan(&all, &sel, None);
        assert_eq!(doomed.len(), 1);
        assert_eq!(doomed[0].digest, d('a'));
        assert!(
            doomed[0].reason.contains("docker.io"),
            "{}",
            doomed[0].reason
        );
        assert!(doomed[0].reason.contains("2025-03-01T00:00:00"));
    }

    #[test]
    fn a_list_takes_its_cached_images_unless_a_kept_list_names_them() {
        let all = vec![
            cand('e', "r/app:1", true, &['a', 'b', '9'], 1),
            cand('a', "r/app@sha256:aa", false, &['1', '2'], 1),
            cand('b', "r/app@sha256:bb", false, &['1', '3'], 1),
            cand('f', "r/other:1", true, &['b'], 5),
        ];
        let sel = Selector {
            patterns: Some(parse_patterns("app:1").unwrap()),
            ..Selector::default()
        };
        let doomed: Vec<Digest> = plan(&all, &sel, None)
            .into_iter()
            .map(|x| x.digest)
            .collect();
        // `9` is not cached; `b` is also listed by the kept `r/other:1`.
        assert_eq!(doomed, vec![d('e'), d('a')]);
    }

    #[test]
    fn count_limits_the_matches_oldest_pull_first() {
        let all = vec![
            cand('a', "r/a:1", false, &[], 3),
            cand('b', "r/b:1", false, &[], 1),
            cand('c', "r/c:1", false, &[], 2),
        ];
        let sel = Selector {
            pulled_before: Some(datetime!(2025-04-01 00:00:00)),
            ..Selector::default()
        };
        let doomed: Vec<Digest> = plan(&all, &sel, Some(2))
            .into_iter()
            .map(|x| x.digest)
            .collect();
        assert_eq!(doomed, vec![d('b'), d('c')]);
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("50GiB").unwrap(), 50 << 30);
        assert_eq!(parse_size("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_size("500 mib").unwrap(), 500 << 20);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("4kB").unwrap(), 4_000);
        assert_eq!(parse_size("3KiB").unwrap(), 3 << 10);
        assert_eq!(parse_size("1TiB").unwrap(), 1 << 40);
        assert_eq!(parse_size(" 7B ").unwrap(), 7);
        for bad in [
            "",
            "GiB",
            "1.5GiB",
            "-1",
            "10 gigs",
            "5Gi",
            "1e9",
            "99999999999TiB",
            "18446744073709551616",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(3 << 29), "1.5GiB");
    }

    fn sized(blobs: &[(char, u64)]) -> Usage {
        Usage {
            total: blobs.iter().map(|(_, s)| s).sum(),
            sizes: blobs.iter().map(|&(c, s)| (d(c), s)).collect(),
            busy: HashSet::new(),
        }
    }

    fn bound(max_bytes: u64, pins: &[&str]) -> CacheBound {
        CacheBound {
            max_bytes,
            pins: pins.iter().map(|p| Regex::new(p).unwrap()).collect(),
            grace: Duration::from_secs(60),
        }
    }

    fn digests(plan: &SizePlan) -> Vec<Digest> {
        plan.doomed.iter().map(|x| x.digest.clone()).collect()
    }

    const NOW: PrimitiveDateTime = datetime!(2025-03-31 12:00:00);

    #[test]
    fn eviction_takes_least_recently_pulled_images_until_under_the_bound() {
        // Three lone images of 100 bytes each, pulled on the 1st, 2nd and 3rd.
        let all = vec![
            cand('a', "r/a:1", false, &['1'], 3),
            cand('b', "r/b:1", false, &['2'], 1),
            cand('c', "r/c:1", false, &['3'], 2),
        ];
        let usage = sized(&[('1', 100), ('2', 100), ('3', 100)]);
        let plan = plan_size(&all, &usage, &bound(250, &[]), NOW);
        assert_eq!(digests(&plan), vec![d('b')]);
        assert_eq!((plan.images, plan.freed, plan.remaining), (1, 100, 200));
        assert!(plan.doomed[0].reason.contains("least recently pulled"));
        let plan = plan_size(&all, &usage, &bound(150, &[]), NOW);
        assert_eq!(digests(&plan), vec![d('b'), d('c')]);
        // Under the bound: nothing.
        assert_eq!(
            plan_size(&all, &usage, &bound(300, &[]), NOW),
            SizePlan {
                remaining: 300,
                ..SizePlan::default()
            }
        );
    }

    #[test]
    fn eviction_skips_pinned_and_in_flight_images() {
        let mut recent = cand('c', "r/c:1", false, &['3'], 1);
        recent.pulled = NOW - time::Duration::seconds(10);
        let all = vec![
            cand('a', "r/pinned:1", false, &['1'], 1),
            cand('b', "r/pulling:1", false, &['2'], 1),
            recent,
            cand('e', "r/e:1", false, &['5'], 9),
        ];
        let mut usage = sized(&[('1', 100), ('3', 100), ('5', 100)]);
        usage.busy.insert(d('2'));
        usage.total += 100;
        let plan = plan_size(&all, &usage, &bound(100, &["pinned"]), NOW);
        // Only `e` may go; the rest stays over the bound.
        assert_eq!(digests(&plan), vec![d('e')]);
        assert_eq!(plan.remaining, 300);
    }

    #[test]
    fn eviction_takes_a_list_with_its_images_and_keeps_shared_blobs() {
        let mut all = vec![
            cand('e', "r/app:1", true, &['a', 'b'], 1),
            cand('a', "r/app@sha256:aa", false, &['1', '2'], 1),
            cand('b', "r/app@sha256:bb", false, &['1', '3'], 1),
            cand('c', "r/other:1", false, &['1', '4'], 5),
        ];
        // Pulling one image of the list by digest makes the whole list recent.
        all[2].pulled = datetime!(2025-03-02 00:00:00);
        let usage = sized(&[('1', 100), ('2', 10), ('3', 10), ('4', 10)]);
        let plan = plan_size(&all, &usage, &bound(120, &[]), NOW);
        assert_eq!(digests(&plan), vec![d('e'), d('a'), d('b')]);
        // `1` is shared with `r/other:1`, which stays.
        assert_eq!((plan.images, plan.freed), (1, 20));
        assert!(plan.doomed[1].reason.contains("which is evicted"));
        // A pin on an image of the list keeps the whole list.
        let plan = plan_size(&all, &usage, &bound(120, &["sha256:bb"]), NOW);
        assert_eq!(digests(&plan), vec![d('c')]);
    }

    #[test]
    fn shared_blobs_survive_until_their_last_manifest_goes() {
        let mut refs = RefCounts::new();
        refs.add(&[d('1'), d('2')]);
        refs.add(&[d('1'), d('3')]);
        assert_eq!(refs.get(&d('1')), 2);
        assert_eq!(refs.release(&[d('1'), d('2')]), vec![d('2')]);
        assert_eq!(refs.get(&d('1')), 1);
        assert_eq!(refs.release(&[d('1'), d('3')]), vec![d('1'), d('3')]);
        assert_eq!(refs.get(&d('1')), 0);
        // Releasing what nobody counted reports it as unreferenced and never underflows.
        assert_eq!(refs.release(&[d('4')]), vec![d('4')]);
        assert_eq!(refs.get(&d('4')), 0);
    }
}
