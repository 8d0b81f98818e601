//! A cache written straight to disk before an engine starts on it: image manifests of given
//! blobs, kept under a given image URL.

use actors::oci::{Digest, ManifestKind, OCI_INDEX, OCI_MANIFEST};
use actors::store::{now_local, FsStore, ManifestHolder};

/// The bytes of an OCI image manifest naming `config` and `layers`.
pub fn image(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|l| format!(r#"{{"digest":"{}","size":{}}}"#, Digest::of(l), l.len()))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":{}}},"layers":[{}]}}"#,
        Digest::of(config),
        config.len(),
        layers.join(",")
    )
    .into_bytes()
}

/// The bytes of an OCI image index whose one entry, for linux/amd64, is the image manifest
/// `image` (its bytes).
pub fn amd64_list(image: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
        Digest::of(image),
        image.len()
    )
    .into_bytes()
}

/// Keeps `bytes` as a manifest of `kind` first pulled as `url`, created and pulled now.
pub fn write(store: &FsStore, kind: ManifestKind, url: &str, bytes: &[u8]) -> Digest {
    write_tagged(store, kind, url, &[], bytes)
}

/// [`write`], with `tags` (`registry/repo:tag`) pointing at it.
pub fn write_tagged(
    store: &FsStore,
    kind: ManifestKind,
    url: &str,
    tags: &[&str],
    bytes: &[u8],
) -> Digest {
    let d = Digest::of(bytes);
    let now = now_local();
    store
        .write_manifest(&ManifestHolder::new(
            kind,
            d.clone(),
            url,
            bytes.to_vec(),
            now,
            now,
            tags.iter().map(|t| t.to_string()).collect(),
        ))
        .unwrap();
    d
}
