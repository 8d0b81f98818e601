//! The `ManifestHolder`: one cached manifest as a JSON file, in the shape the Go server reads
//! and writes. See the module documentation of [`crate::store`] for the field formats.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::oci::Digest;

pub use crate::oci::ManifestKind;

/// The `created` / `pulled` format: local wall-clock time to the second, no zone
/// (`2025-04-01T22:07:01`).
const TIME_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

/// Formats a timestamp the way the Go server stores it.
pub fn format_time(t: PrimitiveDateTime) -> String {
    // The format has only numeric components; it cannot fail for a valid date.
    t.format(TIME_FORMAT).unwrap_or_default()
}

/// Parses a stored timestamp. Tolerates a fractional-seconds or zone suffix after the
/// seconds (Go's parser accepts fractional seconds), which is ignored.
pub fn parse_time(s: &str) -> Option<PrimitiveDateTime> {
    let s = s.trim();
    let head = s.get(..19)?;
    PrimitiveDateTime::parse(head, TIME_FORMAT).ok()
}

/// The current local time as the Go server records it. Falls back to UTC when the local
/// offset cannot be determined (the `time` crate refuses to read it in some multi-threaded
/// processes).
pub fn now_local() -> PrimitiveDateTime {
    to_local(OffsetDateTime::now_utc())
}

/// Converts an instant to local wall-clock time (UTC when the offset is unknown).
pub fn to_local(t: OffsetDateTime) -> PrimitiveDateTime {
    let offset = UtcOffset::local_offset_at(t).unwrap_or(UtcOffset::UTC);
    let local = t.to_offset(offset);
    // Stored times have whole seconds; drop the fraction so a write/read round trip is exact.
    let local = local.replace_nanosecond(0).unwrap_or(local);
    PrimitiveDateTime::new(local.date(), local.time())
}

/// What `created()` / `pulled()` report for a holder whose file had no usable timestamp and
/// was not given one on load: the Unix epoch, i.e. "as old as can be".
const NO_TIME: PrimitiveDateTime = time::macros::datetime!(1970-01-01 00:00:00);

/// The tag in an image URL (`registry.k8s.io/pause:3.8` -> `3.8`); `None` for a URL by
/// digest (`...@sha256:...`) or without a tag.
pub fn tag_of_image_url(url: &str) -> Option<&str> {
    if url.contains('@') {
        return None;
    }
    let last = url.rsplit('/').next()?;
    let (_, tag) = last.rsplit_once(':')?;
    (!tag.is_empty()).then_some(tag)
}

/// One cached manifest: the exact upstream bytes plus what the cache knows about them.
///
/// Serializes to (and deserializes from) the Go server's ManifestHolder JSON, plus our own
/// `tags` field. Deserialization fails for a holder that cannot be served byte-exactly
/// (no `bytes`), has an unknown `type`, or a `digest` that is not sha256 hex.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawHolder", into = "RawHolder")]
pub struct ManifestHolder {
    kind: ManifestKind,
    digest: Digest,
    image_url: String,
    bytes: Vec<u8>,
    /// The decoded manifest, kept under the typed field for `kind`. `None` when the bytes
    /// are not JSON (the Go server then sees an empty typed field).
    manifest: Option<Value>,
    created: Option<PrimitiveDateTime>,
    pulled: Option<PrimitiveDateTime>,
    tags: Vec<String>,
    /// When each of `tags` was last checked against its upstream (fetched, or confirmed by a
    /// `HEAD`, or found unanswerable): a restart does not make every tag under a freshness
    /// rule due for a check at once.
    checked: BTreeMap<String, PrimitiveDateTime>,
}

impl ManifestHolder {
    /// A holder for freshly fetched manifest bytes. `digest` must be the digest of `bytes`
    /// (the store refuses to write a holder for which it is not).
    pub fn new(
        kind: ManifestKind,
        digest: Digest,
        image_url: impl Into<String>,
        bytes: Vec<u8>,
        created: PrimitiveDateTime,
        pulled: PrimitiveDateTime,
        tags: Vec<String>,
    ) -> Self {
        let manifest = serde_json::from_slice(&bytes).ok();
        let mut h = ManifestHolder {
            kind,
            digest,
            image_url: image_url.into(),
            bytes,
            manifest,
            created: Some(created),
            pulled: Some(pulled),
            tags: Vec::new(),
            checked: BTreeMap::new(),
        };
        h.set_tags(tags);
        h
    }

    /// When each tag was last checked upstream (only tags this holder has).
    pub fn checked(&self) -> &BTreeMap<String, PrimitiveDateTime> {
        &self.checked
    }

    /// Records when tags were last checked upstream; times of tags the holder does not have
    /// are dropped.
    pub fn set_checked(&mut self, checked: BTreeMap<String, PrimitiveDateTime>) {
        let tags = &self.tags;
        self.checked = checked
            .into_iter()
            .filter(|(t, _)| tags.contains(t))
            .collect();
    }

    pub fn kind(&self) -> ManifestKind {
        self.kind
    }

    pub fn media_type(&self) -> &'static str {
        self.kind.media_type()
    }

    pub fn is_list(&self) -> bool {
        self.kind.is_list()
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The exact upstream manifest bytes, to be served as-is.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The decoded manifest (for reading layers, config, child manifests).
    pub fn manifest(&self) -> Option<&Value> {
        self.manifest.as_ref()
    }

    /// The image URL the manifest was first cached under, e.g. `registry.k8s.io/pause:3.8`
    /// or `registry.k8s.io/pause@sha256:<hex>`.
    pub fn image_url(&self) -> &str {
        &self.image_url
    }

    /// Every tag known to point at this manifest.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// When the manifest was first cached (the Unix epoch if that was never recorded).
    pub fn created(&self) -> PrimitiveDateTime {
        self.created.unwrap_or(NO_TIME)
    }

    /// When the manifest was last served (the Unix epoch if that was never recorded).
    pub fn pulled(&self) -> PrimitiveDateTime {
        self.pulled.unwrap_or(NO_TIME)
    }

    pub fn set_pulled(&mut self, t: PrimitiveDateTime) {
        self.pulled = Some(t);
    }

    /// Replaces the tag list (duplicates and empty strings are dropped, order kept).
    pub fn set_tags(&mut self, tags: Vec<String>) {
        self.tags.clear();
        for t in tags {
            self.add_tag(&t);
        }
    }

    /// Adds a tag; `false` if it was already there (or empty).
    pub fn add_tag(&mut self, tag: &str) -> bool {
        if tag.is_empty() || self.tags.iter().any(|t| t == tag) {
            return false;
        }
        self.tags.push(tag.to_string());
        true
    }

    /// Whether the Go server (1.9+) would file this manifest under `lts/`: its image URL
    /// carries the tag `latest` (any case).
    pub fn is_latest(&self) -> bool {
        tag_of_image_url(&self.image_url).is_some_and(|t| t.eq_ignore_ascii_case("latest"))
    }

    /// Fills in timestamps the file did not have (older Go caches), from `fallback`.
    pub(crate) fn fill_missing_times(&mut self, fallback: PrimitiveDateTime) {
        self.created.get_or_insert(fallback);
        self.pulled.get_or_insert(fallback);
    }

    /// Merges what another copy of the same manifest knows: tags are united, the earliest
    /// `created` and the latest `pulled` win.
    pub(crate) fn merge_from(&mut self, other: &ManifestHolder) {
        for t in &other.tags {
            self.add_tag(t);
        }
        self.created = match (self.created, other.created) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.pulled = self.pulled.max(other.pulled);
        for (t, at) in &other.checked {
            let known = self.checked.entry(t.clone()).or_insert(*at);
            *known = (*known).max(*at);
        }
    }
}

/// The on-disk shape. Go's `encoding/json` matches keys case-insensitively and ignores
/// unknown ones, so `tags` is invisible to it.
#[derive(Serialize, Deserialize)]
struct RawHolder {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    digest: String,
    #[serde(rename = "imageUrl", default)]
    image_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<String>,
    #[serde(
        rename = "v1.oci.index",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    oci_index: Option<Value>,
    #[serde(
        rename = "v1.oci.manifest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    oci_manifest: Option<Value>,
    #[serde(
        rename = "v2.docker.manifestList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    docker_list: Option<Value>,
    #[serde(
        rename = "v2.docker.manifest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    docker_manifest: Option<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    created: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pulled: String,
    /// Always written, also empty: present means this file records its tags itself (a moved
    /// tag leaves an empty list behind), absent means a Go-written file whose only tag is the
    /// one in `imageUrl`.
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Ours: tag -> when it was last checked upstream, in the format of `created`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    checked: BTreeMap<String, String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl RawHolder {
    fn typed_mut(&mut self, kind: ManifestKind) -> &mut Option<Value> {
        match kind {
            ManifestKind::DockerList => &mut self.docker_list,
            ManifestKind::DockerManifest => &mut self.docker_manifest,
            ManifestKind::OciIndex => &mut self.oci_index,
            ManifestKind::OciManifest => &mut self.oci_manifest,
        }
    }
}

impl TryFrom<RawHolder> for ManifestHolder {
    type Error = String;

    fn try_from(mut raw: RawHolder) -> Result<Self, String> {
        let kind = ManifestKind::from_code(raw.kind)
            .ok_or_else(|| format!("unknown manifest type {}", raw.kind))?;
        let hex = raw.digest.strip_prefix("sha256:").unwrap_or(&raw.digest);
        let digest = Digest::from_hex(hex)
            .map_err(|_| format!("digest {:?} is not sha256 hex", raw.digest))?;
        let Some(b64) = raw.bytes.take().filter(|b| !b.is_empty()) else {
            return Err(format!(
                "{} has no manifest bytes and cannot be served byte-exactly",
                raw.image_url
            ));
        };
        let bytes = BASE64
            .decode(b64.as_bytes())
            .map_err(|e| format!("bytes are not valid base64: {e}"))?;
        // Keep the typed manifest the file carries; rebuild it from the bytes when absent
        // (or left empty by a writer that did not fill it).
        let manifest = match raw.typed_mut(kind).take() {
            Some(v) if !v.is_null() => Some(v),
            _ => serde_json::from_slice(&bytes).ok(),
        };
        let tags = match raw.tags.take() {
            Some(tags) => tags,
            // Go writes no tag list: the tag it was pulled by is in the image URL.
            None => tag_of_image_url(&raw.image_url)
                .map(|t| vec![t.to_string()])
                .unwrap_or_default(),
        };
        let mut h = ManifestHolder {
            kind,
            digest,
            image_url: raw.image_url,
            bytes,
            manifest,
            created: parse_time(&raw.created),
            pulled: parse_time(&raw.pulled),
            tags: Vec::new(),
            checked: BTreeMap::new(),
        };
        h.set_tags(tags);
        // A time that does not parse is no check at all: the tag is checked when due.
        let checked = std::mem::take(&mut raw.checked)
            .into_iter()
            .filter_map(|(t, at)| Some((t, parse_time(&at)?)))
            .collect();
        h.set_checked(checked);
        Ok(h)
    }
}

impl From<ManifestHolder> for RawHolder {
    fn from(h: ManifestHolder) -> Self {
        let mut raw = RawHolder {
            kind: h.kind.code(),
            // The Go server stores the bare hex (it also names the file after this field).
            digest: h.digest.hex().to_string(),
            image_url: h.image_url,
            bytes: Some(BASE64.encode(&h.bytes)),
            oci_index: None,
            oci_manifest: None,
            docker_list: None,
            docker_manifest: None,
            created: h.created.map(format_time).unwrap_or_default(),
            pulled: h.pulled.map(format_time).unwrap_or_default(),
            tags: Some(h.tags),
            checked: h
                .checked
                .into_iter()
                .map(|(t, at)| (t, format_time(at)))
                .collect(),
        };
        *raw.typed_mut(h.kind) = h.manifest;
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_round_trip_through_kinds() {
        for k in ManifestKind::ALL {
            assert_eq!(ManifestKind::from_media_type(k.media_type()), Some(k));
            assert_eq!(ManifestKind::from_code(k.code()), Some(k));
        }
        assert_eq!(
            ManifestKind::from_media_type("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            Some(ManifestKind::OciIndex)
        );
        assert_eq!(ManifestKind::from_media_type("text/plain"), None);
        assert_eq!(ManifestKind::from_code(4), None);
        assert!(ManifestKind::DockerList.is_list() && ManifestKind::OciIndex.is_list());
        assert!(!ManifestKind::DockerManifest.is_list() && !ManifestKind::OciManifest.is_list());
    }

    #[test]
    fn tags_come_from_image_urls_by_tag_only() {
        assert_eq!(tag_of_image_url("registry.k8s.io/pause:3.8"), Some("3.8"));
        assert_eq!(tag_of_image_url("localhost:5000/a/b:v1"), Some("v1"));
        assert_eq!(tag_of_image_url("localhost:5000/a/b"), None);
        assert_eq!(
            tag_of_image_url(&format!("registry.k8s.io/pause@sha256:{}", "a".repeat(64))),
            None
        );
    }

    #[test]
    fn times_use_the_go_layout_and_tolerate_fractions() {
        let t = parse_time("2025-04-01T22:07:01").unwrap();
        assert_eq!(format_time(t), "2025-04-01T22:07:01");
        assert_eq!(parse_time("2025-04-01T22:07:01.123456"), Some(t));
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}
