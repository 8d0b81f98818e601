//! The index as handlers read it: an immutable snapshot the index actor publishes, so that a
//! cache hit needs no message and no wait for the actor's turn.
//!
//! The actor stays the one writer. It publishes a new snapshot whenever a tag or a manifest is
//! added, moved or removed, in the same handler turn as the change and so before the change is
//! acknowledged: a reader that comes after an acknowledged `Insert` or `Remove` sees it, as it
//! did when it asked the actor. The two things a hit writes go to shared cells instead of
//! messages: the time of the pull ([`PullClock`], folded into `pulled` by the actor when it
//! flushes, lists or prunes) and, after a revalidation, when the tag was checked
//! ([`CheckClock`], which the actor also reads and sets).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::CachedManifest;
use crate::oci::{Digest, ImageRef, Reference};

/// When a manifest was last served from the snapshot and the actor has not yet counted it:
/// Unix seconds, 0 for none. One per cached manifest, shared by its index entry and the
/// snapshots that hold it, so a hit costs one clock read and one store.
#[derive(Debug, Default)]
pub struct PullClock(AtomicI64);

impl PullClock {
    fn hit(&self) {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.0.store(now, Ordering::Relaxed);
    }

    /// The pull not yet counted, if any, in the index's local time; counted from now on.
    pub(super) fn take(&self) -> Option<PrimitiveDateTime> {
        match self.0.swap(0, Ordering::Relaxed) {
            0 => None,
            secs => OffsetDateTime::from_unix_timestamp(secs)
                .ok()
                .map(crate::store::to_local),
        }
    }
}

/// When a tag was last fetched or confirmed upstream, on the monotonic clock: one per tag,
/// kept by the actor across moves of the tag and shared with the snapshots.
#[derive(Debug, Default)]
pub struct CheckClock(AtomicU64);

/// The origin of every [`CheckClock`]: nanoseconds since it, plus one (0 is never).
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(|| {
        // Ages restored at start may reach back before the process: leave room below.
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(10 * 365 * 24 * 3600))
            .unwrap_or(now)
    })
}

impl CheckClock {
    /// Checked at `at` (kept if it is not older than what is recorded).
    pub(super) fn mark(&self, at: Instant) {
        let nanos = at.saturating_duration_since(origin()).as_nanos();
        let v = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.0.fetch_max(v, Ordering::Relaxed);
    }

    pub(super) fn mark_now(&self) {
        self.mark(Instant::now());
    }

    /// How long ago the tag was checked; `None`: never (since start, or kept with it).
    pub(super) fn age(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            v => {
                let at = origin() + Duration::from_nanos(v - 1);
                Some(Instant::now().saturating_duration_since(at))
            }
        }
    }
}

/// One manifest as the snapshot holds it.
#[derive(Debug, Clone)]
pub(super) struct Published {
    pub(super) manifest: Arc<CachedManifest>,
    pub(super) pulls: Arc<PullClock>,
}

/// One tag as the snapshot holds it.
#[derive(Debug, Clone)]
pub(super) struct PublishedTag {
    pub(super) entry: Published,
    pub(super) checked: Arc<CheckClock>,
}

/// What the index held at one moment: the maps a hit needs, and nothing a hit could change.
#[derive(Debug, Clone, Default)]
pub(super) struct Snapshot {
    /// `registry/repo:tag` -> its manifest; keys shared with the next snapshot.
    pub(super) by_tag: HashMap<Arc<str>, PublishedTag>,
    pub(super) by_digest: HashMap<Digest, Published>,
}

/// The handlers' side of the index (cloned into every [`crate::Engine`]).
#[derive(Clone, Debug)]
pub struct IndexView(Arc<ArcSwap<Snapshot>>);

/// A manifest found in the snapshot.
#[derive(Debug)]
pub struct Hit {
    pub manifest: Arc<CachedManifest>,
    /// When its tag was checked; `None` for a request by digest.
    checked: Option<Arc<CheckClock>>,
}

impl Hit {
    /// How long ago the tag was last checked upstream; `None`: never, or asked by digest.
    pub fn tag_age(&self) -> Option<Duration> {
        self.checked.as_ref().and_then(|c| c.age())
    }

    /// The upstream just confirmed the tag (or failed to answer, which counts as a check too):
    /// seen at once by the next request, before the actor records it.
    pub fn mark_checked(&self) {
        if let Some(c) = &self.checked {
            c.mark_now();
        }
    }
}

thread_local! {
    /// Where a hit spells the tag's key (`registry/repo:tag`, as `ImageRef` displays it): one
    /// buffer per thread, instead of a new string per hit.
    static TAG_KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// `image`'s key by tag, as its `Display` spells it, written into `key`.
fn tag_key(image: &ImageRef, tag: &str, key: &mut String) {
    key.clear();
    key.push_str(&image.registry);
    key.push('/');
    key.push_str(image.repo.as_str());
    key.push(':');
    key.push_str(tag);
}

impl IndexView {
    pub(super) fn new(first: Snapshot) -> Self {
        IndexView(Arc::new(ArcSwap::from_pointee(first)))
    }

    pub(super) fn publish(&self, next: Snapshot) {
        self.0.store(Arc::new(next));
    }

    /// The cached manifest `image` names, recording the pull; `None` when the index has none.
    pub fn resolve(&self, image: &ImageRef) -> Option<Hit> {
        let snap = self.0.load();
        let (published, checked) = match &image.reference {
            Reference::Digest(d) => (snap.by_digest.get(d)?, None),
            Reference::Tag(tag) => {
                let t = TAG_KEY.with_borrow_mut(|key| {
                    tag_key(image, tag, key);
                    snap.by_tag.get(key.as_str())
                })?;
                (&t.entry, Some(t.checked.clone()))
            }
        };
        published.pulls.hit();
        Some(Hit {
            manifest: published.manifest.clone(),
            checked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_key_is_spelled_as_the_image_displays() {
        let image = ImageRef::parse("registry.k8s.io/pause:3.8").unwrap();
        let Reference::Tag(tag) = &image.reference else {
            panic!("a tag")
        };
        let mut key = String::from("left over from an earlier hit");
        tag_key(&image, tag, &mut key);
        assert_eq!(key, image.to_string());
    }

    #[test]
    fn a_check_clock_tells_the_age_of_the_latest_check_and_never_goes_back() {
        let c = CheckClock::default();
        assert_eq!(c.age(), None, "never checked");
        let hour_ago = Instant::now() - Duration::from_secs(3600);
        c.mark(hour_ago);
        let age = c.age().unwrap();
        assert!(age >= Duration::from_secs(3600) && age < Duration::from_secs(3700));
        c.mark_now();
        assert!(c.age().unwrap() < Duration::from_secs(60));
        c.mark(hour_ago);
        assert!(
            c.age().unwrap() < Duration::from_secs(60),
            "an older check won"
        );
    }

    #[test]
    fn a_pull_clock_gives_each_pull_once() {
        let p = PullClock::default();
        assert_eq!(p.take(), None);
        p.hit();
        let t = p.take().expect("the pull");
        assert!((crate::store::now_local() - t).abs() < time::Duration::seconds(5));
        assert_eq!(p.take(), None, "counted twice");
    }
}
