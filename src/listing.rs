//! The tables of manifests, images and blobs that the `list` command prints and the admin API
//! (`/cmd/manifest/list`, `/cmd/image/list`, `/cmd/blob/list`) answers, built and rendered in
//! one place so that the command line and the API show a cache the same way.
//!
//! Text is whitespace-separated columns with a header line, in the Go server's layout for each
//! (`list`: `URL TYPE CREATED PULLED`; the admin API: `URL DIGEST CREATED PULLED` and
//! `URL REFCNT`), so that scripts written for it read ours. JSON comes in two forms
//! that are kept as they always were: `list --format json` prints rows pretty, keys in field
//! order ([`serde_json::to_string_pretty`] on the rows); the admin API answers compact JSON
//! objects ([`to_json`]), keys in `serde_json::Map` order.

use std::fmt::Write as _;

use actors::blob::BlobInfo;
use actors::manifest_index::IndexEntry;
use actors::store::{format_time, ManifestHolder};
use serde::Serialize;

/// One manifest. Read back by `list` from a running server's admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ManifestRow {
    pub url: String,
    /// `list` (manifest list / image index) or `image` (image manifest).
    #[serde(rename = "type")]
    pub kind: String,
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub created: String,
    pub pulled: String,
    pub tags: Vec<String>,
}

fn kind(is_list: bool) -> String {
    if is_list { "list" } else { "image" }.to_string()
}

impl ManifestRow {
    /// A manifest as read from the cache on disk (`list`).
    pub fn from_holder(h: &ManifestHolder) -> ManifestRow {
        ManifestRow {
            url: h.image_url().to_string(),
            kind: kind(h.is_list()),
            digest: h.digest().to_string(),
            media_type: h.media_type().to_string(),
            created: format_time(h.created()),
            pulled: format_time(h.pulled()),
            tags: h.tags().to_vec(),
        }
    }

    /// A manifest as the running server's index holds it (the admin API).
    pub fn from_entry(e: &IndexEntry) -> ManifestRow {
        ManifestRow {
            url: e.manifest.image_url.clone(),
            kind: kind(e.manifest.kind().is_list()),
            digest: e.manifest.digest.to_string(),
            media_type: e.manifest.media_type().to_string(),
            created: format_time(e.created),
            pulled: format_time(e.pulled),
            tags: e.tags.iter().cloned().collect(),
        }
    }
}

/// `URL TYPE CREATED PULLED`, one manifest a line.
pub fn manifests_text(rows: &[ManifestRow], header: bool) -> String {
    let mut out = String::new();
    if header {
        out.push_str("URL TYPE CREATED PULLED\n");
    }
    for r in rows {
        let _ = writeln!(out, "{} {} {} {}", r.url, r.kind, r.created, r.pulled);
    }
    out
}

/// An image manifest and the blobs it names (config and layers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRow {
    pub url: String,
    pub digest: String,
    pub created: String,
    pub pulled: String,
    pub blobs: Vec<ImageBlob>,
}

/// A blob an image names, and what the cache holds of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageBlob {
    pub digest: String,
    /// `None` while it is being fetched, or when the cache lacks it.
    pub size: Option<u64>,
    /// Whether the cache knows the blob (present or being fetched).
    pub cached: bool,
}

impl ImageRow {
    /// `size_of` answers `None` for a blob the cache lacks, `Some(None)` for one being fetched.
    pub fn from_entry(
        e: &IndexEntry,
        size_of: impl Fn(&actors::oci::Digest) -> Option<Option<u64>>,
    ) -> ImageRow {
        ImageRow {
            url: e.manifest.image_url.clone(),
            digest: e.manifest.digest.to_string(),
            created: format_time(e.created),
            pulled: format_time(e.pulled),
            blobs: e
                .manifest
                .manifest
                .children
                .iter()
                .map(|c| {
                    let known = size_of(&c.digest);
                    ImageBlob {
                        digest: c.digest.to_string(),
                        size: known.flatten(),
                        cached: known.is_some(),
                    }
                })
                .collect(),
        }
    }
}

/// One blob of the cache and how many cached image manifests name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobRow {
    pub digest: String,
    /// `None` while it is being fetched.
    pub size: Option<u64>,
    pub refs: u32,
}

impl BlobRow {
    pub fn from_info(b: &BlobInfo) -> BlobRow {
        BlobRow {
            digest: b.digest.to_string(),
            size: b.size,
            refs: b.refs,
        }
    }
}

/// What the Go server's admin API answers when a list selects nothing (its blob list too).
pub const NO_MANIFESTS: &str = "no manifests found\n";

/// A manifest as the Go server's admin API lists it (`/cmd/manifest/list`, and
/// `/cmd/image/list` with the blobs), so that scripts written against it read ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoManifestLine {
    /// The image URL, a digest in it cut to its first 10 hex digits as the Go server cuts it.
    pub url: String,
    /// The manifest's digest without `sha256:`, as the Go server stores it.
    pub digest: String,
    pub created: String,
    pub pulled: String,
    /// The layers, then the config (an image manifest's blobs in the Go server's order); none
    /// for a list.
    pub blobs: Vec<String>,
}

impl GoManifestLine {
    /// `with_blobs`: the image list's lines (the manifest list's have none).
    pub fn from_entry(e: &IndexEntry, with_blobs: bool) -> GoManifestLine {
        let children = &e.manifest.manifest.children;
        let blobs = if !with_blobs || e.manifest.kind().is_list() || children.is_empty() {
            Vec::new()
        } else {
            children[1..]
                .iter()
                .chain(&children[..1])
                .map(|c| c.digest.to_string())
                .collect()
        };
        GoManifestLine {
            url: shorten_digest(&e.manifest.image_url),
            digest: e.manifest.digest.hex().to_string(),
            created: format_time(e.created),
            pulled: format_time(e.pulled),
            blobs,
        }
    }
}

/// `...@sha256:<64 hex>` with the hex cut to 10 digits (the rest of the URL unchanged).
fn shorten_digest(url: &str) -> String {
    if let Some(at) = url.find("sha256:") {
        let start = at + "sha256:".len();
        let hex = url[start..]
            .bytes()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            .count();
        if hex >= 64 {
            return format!("{}{}", &url[..start + 10], &url[start + 64..]);
        }
    }
    url.to_string()
}

/// `URL DIGEST CREATED PULLED` (two spaces after the digest, as the Go server writes them),
/// each manifest followed by `- DIGEST` lines for its blobs; [`NO_MANIFESTS`] when empty.
pub fn go_manifests_text(lines: &[GoManifestLine]) -> String {
    if lines.is_empty() {
        return NO_MANIFESTS.to_string();
    }
    let mut out = String::from("URL DIGEST CREATED PULLED\n");
    for l in lines {
        let _ = writeln!(out, "{} {}  {} {}", l.url, l.digest, l.created, l.pulled);
        for b in &l.blobs {
            let _ = writeln!(out, "- {b}");
        }
    }
    out
}

/// `URL REFCNT`: each blob's digest without `sha256:` and the image manifests naming it;
/// [`NO_MANIFESTS`] when empty (the Go server's words for its blob list too).
pub fn go_blobs_text(rows: &[BlobRow]) -> String {
    if rows.is_empty() {
        return NO_MANIFESTS.to_string();
    }
    let mut out = String::from("URL REFCNT\n");
    for b in rows {
        let hex = b.digest.strip_prefix("sha256:").unwrap_or(&b.digest);
        let _ = writeln!(out, "{hex} {}", b.refs);
    }
    out
}

/// Rows as the admin API answers them: each row a JSON object.
pub fn to_json<T: Serialize>(rows: &[T]) -> serde_json::Value {
    // Rows hold strings, numbers and lists only, which always serialize.
    serde_json::to_value(rows).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(url: &str, kind: &str) -> ManifestRow {
        ManifestRow {
            url: url.into(),
            kind: kind.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            created: "2024-03-01T22:17:31".into(),
            pulled: "2024-03-02T08:00:00".into(),
            tags: vec![url.to_string()],
        }
    }

    #[test]
    fn the_manifest_table_has_one_line_per_manifest_after_an_optional_header() {
        let rows = [
            row("quay.io/a/b:v1", "list"),
            row("quay.io/a/b:v1", "image"),
        ];
        assert_eq!(
            manifests_text(&rows, true),
            "URL TYPE CREATED PULLED\n\
             quay.io/a/b:v1 list 2024-03-01T22:17:31 2024-03-02T08:00:00\n\
             quay.io/a/b:v1 image 2024-03-01T22:17:31 2024-03-02T08:00:00\n"
        );
        assert_eq!(manifests_text(&rows[..1], false).lines().count(), 1);
    }

    #[test]
    fn the_api_json_is_what_the_admin_api_always_answered() {
        let r = row("quay.io/a/b:v1", "list");
        let before = serde_json::json!([{
            "url": r.url,
            "type": r.kind,
            "digest": r.digest,
            "mediaType": r.media_type,
            "created": r.created,
            "pulled": r.pulled,
            "tags": r.tags,
        }]);
        let rows = [r];
        assert_eq!(
            serde_json::to_string(&to_json(&rows)).unwrap(),
            serde_json::to_string(&before).unwrap()
        );
        let cli = serde_json::to_string_pretty(&rows).unwrap();
        assert!(cli.starts_with("[\n  {\n    \"url\":"), "{cli}");
    }

    #[test]
    fn go_lines_cut_digests_in_urls_and_put_the_config_last() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(
            shorten_digest(&format!("quay.io/a/b@sha256:{hex}")),
            "quay.io/a/b@sha256:0123456789"
        );
        assert_eq!(shorten_digest("quay.io/a/b:v1"), "quay.io/a/b:v1");
        assert_eq!(
            shorten_digest("quay.io/a/b@sha256:0123"),
            "quay.io/a/b@sha256:0123"
        );
        let lines = [
            GoManifestLine {
                url: "quay.io/a/b:v1".into(),
                digest: "aa".into(),
                created: "c".into(),
                pulled: "p".into(),
                blobs: vec![],
            },
            GoManifestLine {
                url: "quay.io/a/b@sha256:0123456789".into(),
                digest: "bb".into(),
                created: "c".into(),
                pulled: "p".into(),
                blobs: vec!["sha256:1".into(), "sha256:2".into()],
            },
        ];
        assert_eq!(
            go_manifests_text(&lines),
            "URL DIGEST CREATED PULLED\nquay.io/a/b:v1 aa  c p\n\
             quay.io/a/b@sha256:0123456789 bb  c p\n- sha256:1\n- sha256:2\n"
        );
        assert_eq!(go_manifests_text(&[]), "no manifests found\n");
    }

    #[test]
    fn the_go_blob_table_has_hex_digests_and_reference_counts() {
        let blobs = [
            BlobRow {
                digest: "sha256:2".into(),
                size: Some(7),
                refs: 2,
            },
            BlobRow {
                digest: "sha256:3".into(),
                size: None,
                refs: 0,
            },
        ];
        assert_eq!(go_blobs_text(&blobs), "URL REFCNT\n2 2\n3 0\n");
        assert_eq!(go_blobs_text(&[]), "no manifests found\n");
        let before = serde_json::json!([{"digest": "sha256:2", "size": 7, "refs": 2}]);
        assert_eq!(
            serde_json::to_string(&to_json(&blobs[..1])).unwrap(),
            serde_json::to_string(&before).unwrap()
        );
    }
}
