//! Invariants of a cache that must hold whatever happened to the server, its upstream or its
//! disk: only verified content under digest names, no temporary file surviving a start, a
//! server that is still up and never panicked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::server::Server;
use super::{is_sha256_hex, sha256_file, sha256_hex};

/// The manifest directories of the cache layout.
pub const MANIFEST_DIRS: [&str; 3] = ["fat", "img", "lts"];

/// Every file in the cache's manifest directories.
pub fn manifest_files(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in MANIFEST_DIRS {
        if let Ok(entries) = std::fs::read_dir(cache.join(dir)) {
            out.extend(entries.flatten().map(|e| e.path()));
        }
    }
    out.sort();
    out
}

/// `sha256:<hex>` of every manifest file in the cache.
pub fn cached_manifest_digests(cache: &Path) -> BTreeSet<String> {
    manifest_files(cache)
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(|n| format!("sha256:{n}")))
        .collect()
}

/// The exact manifest bytes kept in a ManifestHolder file.
pub fn holder_bytes(path: &Path) -> Vec<u8> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let holder: serde_json::Value = serde_json::from_slice(&text)
        .unwrap_or_else(|e| panic!("{} is not a JSON holder: {e}", path.display()));
    let b64 = holder["bytes"]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no bytes", path.display()));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("{}: bytes are not base64: {e}", path.display()))
}

/// Config and layer digests named by an image manifest (none for an index or list).
pub fn manifest_blob_digests(manifest: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(d) = value["config"]["digest"].as_str() {
        out.push(d.to_string());
    }
    for layer in value["layers"].as_array().into_iter().flatten() {
        if let Some(d) = layer["digest"].as_str() {
            out.push(d.to_string());
        }
    }
    out
}

/// Files in `<cache>/tmp/`.
pub fn temp_files(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Panics unless every blob hashes to its name, every manifest file is named by the sha256
/// of the bytes it holds, and nothing but digests sits in the content directories.
pub fn assert_cache_sound(server: &Server, context: &str) {
    let cache = server.cache_dir();
    let corrupt = server.corrupt_blobs();
    assert!(
        corrupt.is_empty(),
        "{context}: blobs whose content does not match their name: {corrupt:?}"
    );
    let stray = server.stray_cache_files();
    assert!(
        stray.is_empty(),
        "{context}: non-digest files in the content directories: {stray:?}"
    );
    for path in manifest_files(cache) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        assert!(
            is_sha256_hex(&name),
            "{context}: stray manifest file {path:?}"
        );
        let bytes = holder_bytes(&path);
        assert_eq!(
            sha256_hex(&bytes),
            name,
            "{context}: manifest file {path:?} holds bytes of another digest"
        );
    }
}

/// Panics if the server process has exited or its log shows a panic.
pub fn assert_server_alive(server: &mut Server, context: &str) {
    if let Some(status) = server.exited() {
        panic!(
            "{context}: the server exited with {status}\n{}",
            server.log_tail()
        );
    }
    let log = server.log_text();
    assert!(
        !log.contains("panicked"),
        "{context}: the server log shows a panic:\n{}",
        server.log_tail()
    );
}

/// Lowercase hex sha256 of a blob file in the cache, if present.
pub fn cached_blob_hash(server: &Server, digest: &str) -> Option<String> {
    let path = server
        .cache_dir()
        .join("blobs")
        .join(digest.trim_start_matches("sha256:"));
    path.is_file().then(|| sha256_file(&path))
}
