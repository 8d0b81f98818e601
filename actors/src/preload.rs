//! Completing an image in the cache before anyone asks for it: `load --image-file` and
//! `serve --preload-images`.
//!
//! Loading goes through the [`Engine`] exactly as a pull does (same single-flight fetches, same
//! verification, same store), so an image loaded here is byte for byte what a client pulling it
//! through the server would have cached. An image is complete when its manifest (list), the
//! image manifests of the chosen platforms and every blob they name are on disk.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::try_join_all;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::oci::{Digest, ImageRef, Platform, Reference};

/// A platform as written on the command line: `os/arch` or `os/arch/variant`
/// (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// The platform of this machine, in the names OCI image indexes use.
    pub fn host() -> PlatformSpec {
        PlatformSpec {
            os: host_os().to_string(),
            arch: host_arch().to_string(),
            variant: None,
        }
    }

    /// Whether an index entry's platform is this one. A spec without a variant accepts any
    /// variant; `arm64` entries without a variant count as `v8`, as containerd treats them.
    pub fn matches(&self, p: &Platform) -> bool {
        if p.os != self.os || p.architecture != self.arch {
            return false;
        }
        let Some(want) = &self.variant else {
            return true;
        };
        let have = p.variant.as_deref().filter(|v| !v.is_empty());
        match have {
            Some(v) => v == want,
            None => self.arch == "arm64" && want == "v8",
        }
    }
}

impl FromStr for PlatformSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(PlatformSpec {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(PlatformSpec {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "\"{s}\" is not a platform; use os/arch or os/arch/variant, e.g. linux/amd64 or \
                 linux/arm64/v8"
            )),
        }
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The host's operating system as OCI image indexes name it.
pub fn host_os() -> &'static str {
    std::env::consts::OS
}

/// The host's architecture as OCI image indexes name it (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Which image manifests of a list to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platforms {
    All,
    Only(Vec<PlatformSpec>),
}

impl Platforms {
    /// Whether an image manifest of a list, with this platform, is one to take.
    pub fn accepts(&self, p: Option<&Platform>) -> bool {
        match (self, p) {
            (Platforms::All, _) => true,
            (Platforms::Only(_), None) => false,
            (Platforms::Only(specs), Some(p)) => specs.iter().any(|s| s.matches(p)),
        }
    }
}

impl fmt::Display for Platforms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Platforms::All => f.write_str("all platforms"),
            Platforms::Only(specs) => {
                let s: Vec<String> = specs.iter().map(ToString::to_string).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

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

/// Makes `image` complete in the cache for `platforms`; returns when every piece is on disk.
pub async fn load_image(
    engine: &Engine,
    image: &ImageRef,
    platforms: &Platforms,
) -> Result<Loaded, EngineError> {
    load_image_metered(engine, image, platforms, &LoadMeter::default()).await
}

/// [`load_image`], counting the bytes of its blobs into `meter` as they land.
pub async fn load_image_metered(
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
