//! The tables of manifests, images and blobs that the `list` command prints and the admin API
//! (`/cmd/manifest/list`, `/cmd/image/list`, `/cmd/blob/list`) answers, built and rendered in
//! one place so that the command line and the API show a cache the same way.
//!
//! Text is whitespace-separated columns with an optional header line. JSON comes in two forms
//! that are kept as they always were: `list --format json` prints rows pretty, keys in field
//! order ([`serde_json::to_string_pretty`] on the rows); the admin API answers compact JSON
//! objects ([`to_json`]), keys in `serde_json::Map` order.

use std::fmt::Write as _;

use actors::blob::BlobInfo;
use actors::manifest_index::IndexEntry;
use actors::store::{format_time, ManifestHolder};
use serde::Serialize;

/// One manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// `URL DIGEST CREATED PULLED`, each image followed by `  blob DIGEST SIZE` lines (size
/// `fetching` or `missing` when the cache does not hold the whole blob).
pub fn images_text(rows: &[ImageRow]) -> String {
    let mut out = String::from("URL DIGEST CREATED PULLED\n");
    for r in rows {
        let _ = writeln!(out, "{} {} {} {}", r.url, r.digest, r.created, r.pulled);
        for b in &r.blobs {
            let size = match (b.size, b.cached) {
                (Some(s), _) => s.to_string(),
                (None, true) => "fetching".into(),
                (None, false) => "missing".into(),
            };
            let _ = writeln!(out, "  blob {} {size}", b.digest);
        }
    }
    out
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

/// `DIGEST SIZE REFS`, size `fetching` while a blob downloads.
pub fn blobs_text(rows: &[BlobRow]) -> String {
    let mut out = String::from("DIGEST SIZE REFS\n");
    for b in rows {
        let size = b
            .size
            .map(|s| s.to_string())
            .unwrap_or_else(|| "fetching".into());
        let _ = writeln!(out, "{} {size} {}", b.digest, b.refs);
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
    fn image_and_blob_tables_say_what_the_cache_lacks() {
        let image = ImageRow {
            url: "quay.io/a/b:v1".into(),
            digest: "sha256:1".into(),
            created: "c".into(),
            pulled: "p".into(),
            blobs: vec![
                ImageBlob {
                    digest: "sha256:2".into(),
                    size: Some(7),
                    cached: true,
                },
                ImageBlob {
                    digest: "sha256:3".into(),
                    size: None,
                    cached: true,
                },
                ImageBlob {
                    digest: "sha256:4".into(),
                    size: None,
                    cached: false,
                },
            ],
        };
        assert_eq!(
            images_text(&[image]),
            "URL DIGEST CREATED PULLED\nquay.io/a/b:v1 sha256:1 c p\n  blob sha256:2 7\n  \
             blob sha256:3 fetching\n  blob sha256:4 missing\n"
        );
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
        assert_eq!(
            blobs_text(&blobs),
            "DIGEST SIZE REFS\nsha256:2 7 2\nsha256:3 fetching 0\n"
        );
        let before = serde_json::json!([{"digest": "sha256:2", "size": 7, "refs": 2}]);
        assert_eq!(
            serde_json::to_string(&to_json(&blobs[..1])).unwrap(),
            serde_json::to_string(&before).unwrap()
        );
    }
}
