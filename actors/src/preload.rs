//! Completing an image in the cache before anyone asks for it: `load --image-file` and
//! `serve --preload-images`.
//!
//! Loading goes through the [`Engine`] exactly as a pull does (same single-flight fetches, same
//! verification, same store), so an image loaded here is byte for byte what a client pulling it
//! through the server would have cached. An image is complete when its manifest (list), the
//! image manifests of the chosen platforms and every blob they name are on disk.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::try_join_all;

use crate::engine::Engine;
use crate::error::EngineError;
pub use crate::oci::{host_arch, host_os, PlatformSpec, Platforms};
use crate::oci::{Digest, ImageRef, Reference};

/// What loading one image did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Manifests in the image (the list and the chosen image manifests).
    pub manifests: usize,
    pub blobs: usize,
    /// How many of them had to be fetched; zero means the image was already cached.
    pub fetched_manifests: usize,
    pub fetched_blobs: usize,
}

impl Loaded {
    pub fn was_cached(&self) -> bool {
        self.fetched_manifests == 0 && self.fetched_blobs == 0
    }
}

/// The bytes of one image's blobs as a load brings them in, for a progress display: shared
/// between the load and whoever draws it, so a multi-gigabyte layer on a slow link shows it is
/// moving long before it lands.
#[derive(Debug, Default)]
pub struct LoadMeter {
    /// What the image's manifests state its blobs weigh (known once its manifests are in).
    total: AtomicU64,
    /// Bytes of blobs found stored or landed so far.
    done: AtomicU64,
    /// Of `done`, the bytes that came from the upstream in this load.
    fetched: AtomicU64,
}

impl LoadMeter {
    /// What the image's blobs weigh, as far as known.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Bytes stored so far, cached ones included.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Bytes that had to come from the upstream so far.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// The manifests state `bytes` more of blobs.
    pub fn expect(&self, bytes: u64) {
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A blob stated as `stated` bytes turned out to be `size` (a manifest that left the
    /// size out states 0): the total follows what landed.
    pub fn correct(&self, stated: u64, size: u64) {
        if size > stated {
            self.total.fetch_add(size - stated, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(stated - size, Ordering::Relaxed);
        }
    }

    /// `bytes` more are stored; `fetched`: they came from the upstream.
    pub fn landed(&self, bytes: u64, fetched: bool) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        if fetched {
            self.fetched.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// Makes `image` complete in the cache for `platforms`, counting the bytes of its blobs into
/// `meter` as they land; returns when every piece is on disk.
pub async fn load_image(
    engine: &Engine,
    image: &ImageRef,
    platforms: &Platforms,
    meter: &LoadMeter,
) -> Result<Loaded, EngineError> {
    let mut loaded = Loaded::default();
    let top = manifest(engine, image, &mut loaded).await?;
    let images = if top.kind().is_list() {
        let chosen: Vec<Digest> = top
            .manifest
            .children
            .iter()
            .filter(|c| platforms.accepts(c.platform.as_ref()))
            .map(|c| c.digest.clone())
            .collect();
        if chosen.is_empty() {
            return Err(EngineError::NotCached(format!(
                "{image}: the list has no image for {platforms}"
            )));
        }
        let mut images = Vec::new();
        for d in chosen {
            let child = image.with_reference(Reference::Digest(d));
            images.push(manifest(engine, &child, &mut loaded).await?);
        }
        images
    } else {
        vec![top]
    };
    let mut blobs: Vec<(Digest, u64)> = images
        .iter()
        .flat_map(|m| {
            m.manifest
                .children
                .iter()
                .map(|c| (c.digest.clone(), c.size))
        })
        .collect();
    blobs.sort();
    blobs.dedup_by(|a, b| a.0 == b.0);
    meter.expect(blobs.iter().map(|(_, size)| size).sum());
    let fetched = try_join_all(
        blobs
            .iter()
            .map(|(d, size)| blob(engine, image, d, *size, meter)),
    )
    .await?;
    loaded.blobs = blobs.len();
    loaded.fetched_blobs = fetched.into_iter().filter(|f| *f).count();
    Ok(loaded)
}

async fn manifest(
    engine: &Engine,
    image: &ImageRef,
    loaded: &mut Loaded,
) -> Result<std::sync::Arc<crate::manifest_index::CachedManifest>, EngineError> {
    loaded.manifests += 1;
    if let Some(m) = engine.cached_manifest(image).await? {
        return Ok(m);
    }
    loaded.fetched_manifests += 1;
    engine.manifest(image).await
}

/// Waits until the blob is stored, counting its bytes into `meter`; `true` if it had to be
/// downloaded. `stated` is its size as its manifest states it (already in the meter's total).
async fn blob(
    engine: &Engine,
    image: &ImageRef,
    digest: &Digest,
    stated: u64,
    meter: &LoadMeter,
) -> Result<bool, EngineError> {
    let reader = engine.blob(&image.registry, &image.repo, digest).await?;
    let mut counted = 0u64;
    let (size, downloaded) = reader
        .landed_reporting(|written| {
            meter.landed(written.saturating_sub(counted), true);
            counted = counted.max(written);
        })
        .await?;
    // A stored blob lands at once; a download may end past what was reported.
    meter.landed(size.saturating_sub(counted), downloaded);
    if size != stated {
        meter.correct(stated, size);
    }
    Ok(downloaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Platform;

    fn p(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    #[test]
    fn platforms_parse_with_and_without_variant() {
        let s: PlatformSpec = "linux/arm64/v8".parse().unwrap();
        assert_eq!(s.variant.as_deref(), Some("v8"));
        assert_eq!(s.to_string(), "linux/arm64/v8");
        assert_eq!("linux/amd64".parse::<PlatformSpec>().unwrap().variant, None);
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(bad.parse::<PlatformSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn variants_are_honoured() {
        let v7: PlatformSpec = "linux/arm/v7".parse().unwrap();
        assert!(v7.matches(&p("linux", "arm", Some("v7"))));
        assert!(!v7.matches(&p("linux", "arm", Some("v6"))));
        let any_arm: PlatformSpec = "linux/arm".parse().unwrap();
        assert!(any_arm.matches(&p("linux", "arm", Some("v6"))));
        let v8: PlatformSpec = "linux/arm64/v8".parse().unwrap();
        assert!(v8.matches(&p("linux", "arm64", None)));
        assert!(v8.matches(&p("linux", "arm64", Some("v8"))));
        assert!(!v8.matches(&p("linux", "amd64", None)));
    }

    #[test]
    fn attestations_and_other_platforms_are_skipped() {
        let host = Platforms::Only(vec!["linux/amd64".parse().unwrap()]);
        assert!(host.accepts(Some(&p("linux", "amd64", None))));
        assert!(!host.accepts(Some(&p("unknown", "unknown", None))));
        assert!(!host.accepts(None));
        assert!(Platforms::All.accepts(None));
    }

    #[test]
    fn the_host_is_named_as_oci_does() {
        let h = PlatformSpec::host();
        assert!(!h.arch.contains("x86_64") && !h.arch.contains("aarch64"));
    }
}
