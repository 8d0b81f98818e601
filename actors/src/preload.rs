//! Completing an image in the cache before anyone asks for it: `load --image-file` and
//! `serve --preload-images`.
//!
//! Loading goes through the [`Engine`] exactly as a pull does (same single-flight fetches, same
//! verification, same store), so an image loaded here is byte for byte what a client pulling it
//! through the server would have cached. An image is complete when its manifest (list), the
//! image manifests of the chosen platforms and every blob they name are on disk.

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

/// Makes `image` complete in the cache for `platforms`; returns when every piece is on disk.
pub async fn load_image(
    engine: &Engine,
    image: &ImageRef,
    platforms: &Platforms,
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
    let mut blobs: Vec<Digest> = images
        .iter()
        .flat_map(|m| m.manifest.children.iter().map(|c| c.digest.clone()))
        .collect();
    blobs.sort();
    blobs.dedup();
    let fetched = try_join_all(blobs.iter().map(|d| blob(engine, image, d))).await?;
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

/// Waits until the blob is stored; `true` if it had to be downloaded.
async fn blob(engine: &Engine, image: &ImageRef, digest: &Digest) -> Result<bool, EngineError> {
    let reader = engine.blob(&image.registry, &image.repo, digest).await?;
    Ok(reader.landed().await?.1)
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
