//! Test images, generated offline, and the digests a pull of them must reproduce.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::proc::run;
use super::require_tool;

const GENERATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/gen_image.py");

/// A multi-platform (linux/amd64 + linux/arm64) OCI image layout on disk.
pub struct LocalImage {
    dir: TempDir,
    pub tag: String,
    pub index_digest: String,
    /// What the generator reported (platforms, manifests, configs, layers with diff_ids).
    pub description: serde_json::Value,
}

impl LocalImage {
    /// Generates random gzip'd tar layers of the given sizes (e.g. `["1M", "2M"]`) per platform.
    pub fn generate(layer_sizes: &[&str]) -> LocalImage {
        LocalImage::generate_for(layer_sizes, "linux/amd64,linux/arm64")
    }

    pub fn generate_for(layer_sizes: &[&str], platforms: &str) -> LocalImage {
        require_tool("python3");
        let dir = tempfile::Builder::new()
            .prefix("e2e-image-")
            .tempdir()
            .expect("image temp dir");
        let tag = "latest".to_string();
        let mut cmd = Command::new("python3");
        cmd.arg(GENERATOR)
            .arg("--out")
            .arg(dir.path())
            .args(["--tag", &tag, "--layers", &layer_sizes.join(",")])
            .args(["--platforms", platforms]);
        let out = run(&mut cmd, Duration::from_secs(120)).expect_success();
        let description: serde_json::Value =
            serde_json::from_str(out.stdout.trim()).expect("generator output is JSON");
        let index_digest = description["index"]["digest"]
            .as_str()
            .expect("index digest")
            .to_string();
        LocalImage {
            dir,
            tag,
            index_digest,
            description,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One platform's image below an index or manifest list.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub os: String,
    pub architecture: String,
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
    pub layer_sizes: Vec<u64>,
}

impl PlatformImage {
    /// Config and layer digests.
    pub fn blobs(&self) -> Vec<String> {
        let mut all = vec![self.config.clone()];
        all.extend(self.layers.iter().cloned());
        all
    }
}

/// An image as the upstream serves it: the top manifest (OCI index or Docker manifest list)
/// and every platform image below it.
#[derive(Debug, Clone)]
pub struct ImageTree {
    pub repo: String,
    pub tag: String,
    pub top: String,
    pub media_type: String,
    pub platforms: Vec<PlatformImage>,
}

impl ImageTree {
    pub fn platform(&self, architecture: &str) -> &PlatformImage {
        self.platforms
            .iter()
            .find(|p| p.architecture == architecture)
            .unwrap_or_else(|| panic!("{}:{} has no {architecture} image", self.repo, self.tag))
    }

    /// The top manifest and every per-platform manifest.
    pub fn manifest_digests(&self) -> BTreeSet<String> {
        let mut all = BTreeSet::from([self.top.clone()]);
        all.extend(self.platforms.iter().map(|p| p.manifest.clone()));
        all
    }

    /// Every config and layer of every platform.
    pub fn blob_digests(&self) -> BTreeSet<String> {
        self.platforms.iter().flat_map(|p| p.blobs()).collect()
    }

    /// The largest layer of all platforms, with its size.
    pub fn largest_layer(&self) -> (String, u64) {
        self.platforms
            .iter()
            .flat_map(|p| p.layers.iter().cloned().zip(p.layer_sizes.iter().copied()))
            .max_by_key(|(_, size)| *size)
            .expect("at least one layer")
    }
}
