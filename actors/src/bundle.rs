//! Image bundles: cached images carried as an OCI image layout in a tar archive, for moving a
//! cache's content across an air gap (`export`, `import`, `load --archive`).
//!
//! # The archive
//!
//! ```text
//! oci-layout              {"imageLayoutVersion":"1.0.0"}
//! index.json              one descriptor per image, annotated with its full reference
//! blobs/sha256/<hex>      manifests (exact upstream bytes) and blobs (configs, layers)
//! ```
//!
//! Each `index.json` entry points at the image's top manifest (a list or an image manifest)
//! and carries `org.opencontainers.image.ref.name` = the full reference
//! (`registry.k8s.io/pause:3.8`), as skopeo's `oci-archive:bundle.tar:<ref>` expects. A list
//! travels with its exact bytes (so its digest is the upstream's) and with the image manifests
//! of the chosen platforms only; the others are simply absent from `blobs/`.
//!
//! # Importing
//!
//! The archive is read once, front to back. Every file under `blobs/` streams into a staging
//! directory under the cache's `tmp/` while it is hashed, and is kept only if it hashes to its
//! name. Then each image of `index.json` is checked as a whole: its manifests parse, every
//! manifest and blob it needs arrived intact (or is already cached). Only then are its blobs
//! renamed into `blobs/` and its manifests written, tagged with the reference. An image with
//! anything missing or damaged is rejected with the reason and leaves nothing behind; the
//! staging directory is removed at the end (or swept when the store next opens).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::manifest_index::CachedManifest;
use crate::oci::{Digest, ImageRef, Manifest, Reference};
use crate::preload::{self, Platforms};
use crate::store::{now_local, FsStore, ManifestHolder, StoreError};

/// The annotation naming an image in an OCI image layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation for the full image name (`ctr images export` writes it; its
/// `ref.name` then holds the tag only).
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const LAYOUT_VERSION: &str = "1.0.0";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// A manifest (or `index.json`) larger than this is not one.
const MAX_MANIFEST: u64 = 16 * 1024 * 1024;

/// Why a bundle could not be written or read at all. Problems with single images of an
/// archive are reported per image instead (see [`ImportReport`]).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Export

/// One image to put into a bundle: its manifests and the blobs of the chosen platforms.
#[derive(Debug, Clone)]
pub struct BundleImage {
    /// The full reference recorded in `index.json`.
    pub reference: String,
    /// The top manifest (what the reference points at).
    pub top: Arc<CachedManifest>,
    /// The image manifests of the chosen platforms (empty for a single image manifest).
    pub children: Vec<Arc<CachedManifest>>,
    /// Every config and layer of the chosen image manifests, each once.
    pub blobs: Vec<Digest>,
}

/// Makes `image` complete in the cache for `platforms` (fetching what is missing, as `load`
/// does, its bytes counted into `meter`), then describes what a bundle of it holds.
pub async fn collect(
    engine: &Engine,
    image: &ImageRef,
    platforms: &Platforms,
    meter: &preload::LoadMeter,
) -> Result<BundleImage, EngineError> {
    preload::load_image(engine, image, platforms, meter).await?;
    let cached = |i: ImageRef| async move {
        engine
            .cached_manifest(&i)
            .await?
            .ok_or_else(|| EngineError::NotCached(i.to_string()))
    };
    let top = cached(image.clone()).await?;
    let mut children = Vec::new();
    if top.kind().is_list() {
        for c in &top.manifest.children {
            if platforms.accepts(c.platform.as_ref()) {
                children
                    .push(cached(image.with_reference(Reference::Digest(c.digest.clone()))).await?);
            }
        }
    }
    let images: Vec<&Arc<CachedManifest>> = if top.kind().is_list() {
        children.iter().collect()
    } else {
        vec![&top]
    };
    let mut seen = HashSet::new();
    let blobs = images
        .iter()
        .flat_map(|m| m.manifest.children.iter().map(|c| c.digest.clone()))
        .filter(|d| seen.insert(d.clone()))
        .collect();
    Ok(BundleImage {
        reference: image.to_string(),
        top,
        children,
        blobs,
    })
}

/// Writes an OCI image layout tar archive of `images` (blobs read from `store`) to `out`.
/// Content shared by several images is written once. Blobs stream from their files.
pub fn write_bundle<W: Write>(
    store: &FsStore,
    images: &[BundleImage],
    out: W,
) -> Result<W, BundleError> {
    let mut tar = tar::Builder::new(out);
    let here = Path::new("archive");
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        tar.append_data(&mut h, dir, io::empty())
            .map_err(io_err(here))?;
    }
    let layout = json!({ "imageLayoutVersion": LAYOUT_VERSION }).to_string();
    append_bytes(&mut tar, LAYOUT_FILE, layout.as_bytes())?;
    let mut written: HashSet<Digest> = HashSet::new();
    let mut index = Vec::new();
    for image in images {
        for m in std::iter::once(&image.top).chain(image.children.iter()) {
            if written.insert(m.digest.clone()) {
                append_bytes(&mut tar, &blob_name(&m.digest), &m.bytes)?;
            }
        }
        for d in &image.blobs {
            if !written.insert(d.clone()) {
                continue;
            }
            let (file, size) = store.read_blob(d)?;
            let mut h = header(tar::EntryType::Regular, size, 0o644);
            tar.append_data(&mut h, blob_name(d), BufReader::new(file))
                .map_err(io_err(Path::new(&blob_name(d))))?;
        }
        index.push(json!({
            "mediaType": image.top.media_type(),
            "digest": image.top.digest.to_string(),
            "size": image.top.bytes.len(),
            "annotations": { REF_NAME: image.reference },
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": index,
    });
    let index = serde_json::to_vec(&index).map_err(|e| BundleError::Invalid(e.to_string()))?;
    append_bytes(&mut tar, INDEX_FILE, &index)?;
    tar.into_inner().map_err(io_err(here))
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> Result<(), BundleError> {
    let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
    tar.append_data(&mut h, name, bytes)
        .map_err(io_err(Path::new(name)))
}

// ---------------------------------------------------------------------------------------------
// Import

/// What happened to one image of an imported archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub reference: String,
    pub manifests: usize,
    pub blobs: usize,
    /// Blobs and manifests that were not in the cache before.
    pub new_blobs: usize,
    pub new_manifests: usize,
}

impl Imported {
    pub fn was_cached(&self) -> bool {
        self.new_blobs == 0 && self.new_manifests == 0
    }
}

/// Everything an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: Vec<Imported>,
    /// `(image, why)`; nothing of these images was added to the cache.
    pub failed: Vec<(String, String)>,
}

/// Removes the staging directory however the import ends.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("could not remove {}: {e}", self.0.display());
            }
        }
    }
}

/// What the single pass over the archive found.
#[derive(Default)]
struct Contents {
    index: Option<Vec<u8>>,
    layout: Option<Vec<u8>>,
    /// Blobs that arrived intact, staged under their hex name, with their size.
    staged: HashMap<Digest, u64>,
    /// Blobs whose content does not hash to their name: what it hashes to.
    damaged: HashMap<Digest, Digest>,
}

/// Imports the OCI image layout archive at `archive` into `store`, telling `read` how many
/// bytes of it each read took (for a progress display). Call it with the cache lock held (no
/// server running on the cache).
pub fn import_archive(
    store: &FsStore,
    archive: &Path,
    read: &dyn Fn(u64),
) -> Result<ImportReport, BundleError> {
    let staging = Staging(store.staging_dir("import")?);
    let contents = read_archive(archive, &staging.0, read)?;
    let layout = contents.layout.as_deref().ok_or_else(|| {
        BundleError::Invalid(format!(
            "{}: not an OCI image layout archive (no {LAYOUT_FILE} file)",
            archive.display()
        ))
    })?;
    let version = serde_json::from_slice::<Value>(layout)
        .ok()
        .and_then(|v| v["imageLayoutVersion"].as_str().map(str::to_string));
    if version.as_deref() != Some(LAYOUT_VERSION) {
        return Err(BundleError::Invalid(format!(
            "{}: unsupported image layout version {version:?} (expected {LAYOUT_VERSION})",
            archive.display()
        )));
    }
    let index = contents
        .index
        .as_deref()
        .ok_or_else(|| BundleError::Invalid(format!("{}: no {INDEX_FILE}", archive.display())))?;
    let index: Value = serde_json::from_slice(index)
        .map_err(|e| BundleError::Invalid(format!("{}: {INDEX_FILE}: {e}", archive.display())))?;
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return Err(BundleError::Invalid(format!(
            "{}: {INDEX_FILE} lists no images",
            archive.display()
        )));
    }

    let mut holders: HashMap<Digest, ManifestHolder> = store
        .load_manifests()?
        .holders
        .into_iter()
        .map(|h| (h.digest().clone(), h))
        .collect();
    let mut report = ImportReport::default();
    for (i, entry) in entries.iter().enumerate() {
        let label = entry_name(entry).unwrap_or_else(|| format!("{INDEX_FILE} entry {}", i + 1));
        let result = image_of(entry).and_then(|image| {
            let plan = plan_image(store, &staging.0, &contents, entry, &image)?;
            commit(store, &staging.0, &mut holders, &image, plan).map_err(|e| e.to_string())
        });
        match result {
            Ok(done) => report.imported.push(done),
            Err(why) => report.failed.push((label, why)),
        }
    }
    Ok(report)
}

/// Reads the archive once: keeps `oci-layout` and `index.json`, stages every blob it can
/// verify and notes the ones it cannot.
fn read_archive(
    archive: &Path,
    staging: &Path,
    read: &dyn Fn(u64),
) -> Result<Contents, BundleError> {
    let file = File::open(archive).map_err(io_err(archive))?;
    let mut tar = tar::Archive::new(BufReader::new(Counting { inner: file, read }));
    let mut contents = Contents::default();
    for entry in tar.entries().map_err(io_err(archive))? {
        let mut entry = entry.map_err(io_err(archive))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(io_err(archive))?;
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        match parts
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [INDEX_FILE] => contents.index = Some(read_small(&mut entry, archive, INDEX_FILE)?),
            [LAYOUT_FILE] => contents.layout = Some(read_small(&mut entry, archive, LAYOUT_FILE)?),
            ["blobs", "sha256", hex] => {
                let Ok(digest) = Digest::from_hex(hex) else {
                    continue;
                };
                if contents.staged.contains_key(&digest) {
                    continue;
                }
                let dest = staging.join(digest.hex());
                match stage(&mut entry, &dest)? {
                    (actual, size) if actual == digest => {
                        contents.staged.insert(digest, size);
                    }
                    (actual, _) => {
                        let _ = fs::remove_file(&dest);
                        log::warn!("{}: blob {digest} hashes to {actual}", archive.display());
                        contents.damaged.insert(digest, actual);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(contents)
}

/// A reader that tells `read` how many bytes each read took.
struct Counting<'a, R> {
    inner: R,
    read: &'a dyn Fn(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.read)(n as u64);
        Ok(n)
    }
}

fn read_small(r: &mut impl Read, archive: &Path, what: &str) -> Result<Vec<u8>, BundleError> {
    let mut buf = Vec::new();
    r.take(MAX_MANIFEST + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(archive))?;
    if buf.len() as u64 > MAX_MANIFEST {
        return Err(BundleError::Invalid(format!(
            "{}: {what} is larger than {MAX_MANIFEST} bytes",
            archive.display()
        )));
    }
    Ok(buf)
}

/// Streams `r` into `dest`, hashing on the way, and makes the file durable.
fn stage(r: &mut impl Read, dest: &Path) -> Result<(Digest, u64), BundleError> {
    let mut file = File::create(dest).map_err(io_err(dest))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(dest)(e)),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io_err(dest))?;
        size += n as u64;
    }
    file.sync_all().map_err(io_err(dest))?;
    Ok((Digest::from_hasher(hasher), size))
}

/// The name an `index.json` entry gives its image, as written.
fn entry_name(entry: &Value) -> Option<String> {
    let a = &entry["annotations"];
    a[CONTAINERD_NAME]
        .as_str()
        .or_else(|| a[REF_NAME].as_str())
        .map(str::to_string)
}

/// The full reference of an `index.json` entry. containerd's full name wins over a `ref.name`
/// that is only a tag; a bare tag cannot say which repository the image belongs to.
fn image_of(entry: &Value) -> Result<ImageRef, String> {
    let a = &entry["annotations"];
    if let Some(image) = a[CONTAINERD_NAME]
        .as_str()
        .and_then(|n| ImageRef::parse(n).ok())
    {
        return Ok(image);
    }
    let name = a[REF_NAME].as_str().ok_or_else(|| {
        format!("the entry has no {REF_NAME} annotation: the image cannot be named")
    })?;
    if !name.contains(['/', ':', '@']) {
        return Err(format!(
            "{REF_NAME} \"{name}\" is a bare tag; name the image in full \
             (registry/repository:tag) when writing the archive"
        ));
    }
    let image = ImageRef::parse(name).map_err(|e| format!("\"{name}\": {e}"))?;
    if let Reference::Digest(d) = &image.reference {
        if entry["digest"].as_str() != Some(d.to_string().as_str()) {
            return Err(format!("\"{name}\" names another digest than its entry"));
        }
    }
    Ok(image)
}

/// An image of the archive, checked whole and ready to be written.
struct Plan {
    /// Every manifest with its bytes, the top one first.
    manifests: Vec<(Digest, Manifest, Vec<u8>)>,
    blobs: Vec<Digest>,
}

fn plan_image(
    store: &FsStore,
    staging: &Path,
    contents: &Contents,
    entry: &Value,
    image: &ImageRef,
) -> Result<Plan, String> {
    let top = entry["digest"]
        .as_str()
        .ok_or("the entry has no digest")
        .and_then(|d| Digest::parse(d).map_err(|_| "the entry's digest is not a sha256 digest"))
        .map_err(str::to_string)?;
    let read = |d: &Digest, media_type: Option<&str>| -> Result<(Manifest, Vec<u8>), String> {
        if let Some(actual) = contents.damaged.get(d) {
            return Err(format!(
                "manifest {d} is damaged in the archive: its content hashes to {actual}"
            ));
        }
        let size = *contents
            .staged
            .get(d)
            .ok_or_else(|| format!("manifest {d} is not in the archive"))?;
        if size > MAX_MANIFEST {
            return Err(format!("manifest {d} is larger than {MAX_MANIFEST} bytes"));
        }
        let bytes = fs::read(staging.join(d.hex())).map_err(|e| format!("manifest {d}: {e}"))?;
        let m = Manifest::parse(&bytes, media_type).map_err(|e| format!("manifest {d}: {e}"))?;
        Ok((m, bytes))
    };
    let (top_manifest, top_bytes) = read(&top, entry["mediaType"].as_str())?;
    let mut plan = Plan {
        manifests: Vec::new(),
        blobs: Vec::new(),
    };
    let mut images = Vec::new();
    if top_manifest.kind.is_list() {
        for c in &top_manifest.children {
            // A list travels with the image manifests of the platforms chosen at export.
            if !contents.staged.contains_key(&c.digest) && !contents.damaged.contains_key(&c.digest)
            {
                continue;
            }
            let (m, bytes) = read(&c.digest, c.media_type.as_deref())?;
            if m.kind.is_list() {
                return Err(format!(
                    "manifest {}: nested lists are not supported",
                    c.digest
                ));
            }
            images.push(m.children.clone());
            plan.manifests.push((c.digest.clone(), m, bytes));
        }
        if images.is_empty() {
            return Err(format!(
                "none of the {} image manifests of list {top} is in the archive",
                top_manifest.children.len()
            ));
        }
    } else {
        images.push(top_manifest.children.clone());
    }
    plan.manifests
        .insert(0, (top.clone(), top_manifest, top_bytes));
    let mut seen = HashSet::new();
    for d in images.into_iter().flatten().map(|c| c.digest) {
        if !seen.insert(d.clone()) {
            continue;
        }
        if let Some(actual) = contents.damaged.get(&d) {
            return Err(format!(
                "blob {d} is damaged in the archive: its content hashes to {actual}"
            ));
        }
        if !contents.staged.contains_key(&d) && !store.has_blob(&d) {
            return Err(format!("blob {d} of {image} is not in the archive"));
        }
        plan.blobs.push(d);
    }
    Ok(plan)
}

/// Moves a checked image's blobs into the cache and writes its manifests, the top one tagged.
fn commit(
    store: &FsStore,
    staging: &Path,
    holders: &mut HashMap<Digest, ManifestHolder>,
    image: &ImageRef,
    plan: Plan,
) -> Result<Imported, BundleError> {
    let staged: Vec<(PathBuf, Digest)> = plan
        .blobs
        .iter()
        .map(|d| (staging.join(d.hex()), d.clone()))
        .collect();
    let new_blobs = store.adopt_blobs(&staged)?;
    let now = now_local();
    // Tags are kept as full references, as the index writes them: a manifest cached under
    // several repositories keeps each repository's tags apart.
    let tag = image.reference.tag().map(|_| image.to_string());
    let mut new_manifests = 0;
    let manifests = plan.manifests.len();
    for (i, (digest, manifest, bytes)) in plan.manifests.into_iter().enumerate() {
        let tag = if i == 0 { tag.clone() } else { None };
        match holders.get_mut(&digest) {
            Some(h) => {
                if tag.as_deref().is_some_and(|t| h.add_tag(t)) {
                    store.write_manifest(h)?;
                }
            }
            None => {
                let url = match (&tag, i) {
                    (Some(_), 0) => image.to_string(),
                    _ => image
                        .with_reference(Reference::Digest(digest.clone()))
                        .to_string(),
                };
                let h = ManifestHolder::new(
                    manifest.kind,
                    digest.clone(),
                    url,
                    bytes,
                    now,
                    now,
                    tag.iter().cloned().collect(),
                );
                store.write_manifest(&h)?;
                holders.insert(digest.clone(), h);
                new_manifests += 1;
            }
        }
        if tag.is_some() {
            untag_others(store, holders, image, &digest)?;
        }
    }
    Ok(Imported {
        reference: image.to_string(),
        manifests,
        blobs: plan.blobs.len(),
        new_blobs,
        new_manifests,
    })
}

/// `image`'s tag now points at `digest`: no other manifest keeps it, whether it wrote the tag
/// in full (`registry/repo:tag`) or bare, relative to its image URL (as the Go server does).
fn untag_others(
    store: &FsStore,
    holders: &mut HashMap<Digest, ManifestHolder>,
    image: &ImageRef,
    digest: &Digest,
) -> Result<(), BundleError> {
    let full = image.to_string();
    let Some(bare) = image.reference.tag() else {
        return Ok(());
    };
    let repo = format!("{}/{}", image.registry, image.repo);
    for h in holders.values_mut() {
        if h.digest() == digest {
            continue;
        }
        let same_repo = repo_of_url(h.image_url()) == repo;
        let names = |t: &String| *t == full || (same_repo && t == bare);
        if h.tags().iter().any(names) {
            let kept = h.tags().iter().filter(|t| !names(t)).cloned().collect();
            h.set_tags(kept);
            store.write_manifest(h)?;
        }
    }
    Ok(())
}

/// `registry/repo` of an image URL (`registry/repo:tag` or `registry/repo@sha256:...`).
fn repo_of_url(url: &str) -> &str {
    if let Some((repo, _)) = url.split_once('@') {
        return repo;
    }
    match url.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_come_from_the_annotations() {
        let e = json!({"digest": "sha256:00", "annotations": {REF_NAME: "quay.io/a/b:v1"}});
        assert_eq!(image_of(&e).unwrap().to_string(), "quay.io/a/b:v1");
        let e = json!({"annotations": {REF_NAME: "v1", CONTAINERD_NAME: "quay.io/a/b:v1"}});
        assert_eq!(image_of(&e).unwrap().to_string(), "quay.io/a/b:v1");
        let e = json!({"annotations": {REF_NAME: "v1"}});
        assert!(image_of(&e).unwrap_err().contains("bare tag"));
        assert!(image_of(&json!({})).unwrap_err().contains(REF_NAME));
    }

    /// Content by digest.
    type Blobs = Vec<(Digest, Vec<u8>)>;

    /// A one-layer OCI image: (manifest digest, manifest bytes, blobs).
    fn image(layer: &[u8]) -> (Digest, Vec<u8>, Blobs) {
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        let desc = |mt: &str, b: &[u8]| json!({"mediaType": mt, "digest": Digest::of(b).to_string(), "size": b.len()});
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc("application/vnd.oci.image.config.v1+json", &config),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar", layer)],
        }))
        .unwrap();
        let blobs = vec![
            (Digest::of(&config), config),
            (Digest::of(layer), layer.to_vec()),
        ];
        (Digest::of(&manifest), manifest, blobs)
    }

    /// An archive of one image named `name`; `tamper` flips a byte of its layer.
    fn archive(dir: &Path, name: &str, layer: &[u8], tamper: bool) -> PathBuf {
        let (digest, manifest, blobs) = image(layer);
        let path = dir.join(format!("{}.tar", Digest::of(layer).hex()));
        let mut tar = tar::Builder::new(File::create(&path).unwrap());
        append_bytes(&mut tar, LAYOUT_FILE, br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        append_bytes(&mut tar, &blob_name(&digest), &manifest).unwrap();
        for (d, mut b) in blobs {
            if tamper && b == layer {
                b[0] ^= 1;
            }
            append_bytes(&mut tar, &blob_name(&d), &b).unwrap();
        }
        let index = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest.to_string(), "size": manifest.len(),
            "annotations": {REF_NAME: name}}]});
        append_bytes(&mut tar, INDEX_FILE, index.to_string().as_bytes()).unwrap();
        tar.finish().unwrap();
        path
    }

    fn tagged(store: &FsStore) -> Vec<(String, Vec<String>)> {
        let mut v: Vec<_> = store
            .load_manifests()
            .unwrap()
            .holders
            .iter()
            .map(|h| (h.digest().to_string(), h.tags().to_vec()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_import_tags_the_image_and_moves_the_tag() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(&dir.path().join("cache")).unwrap();
        let first = archive(dir.path(), "quay.io/a/b:v1", b"layer one", false);
        let read = std::cell::Cell::new(0u64);
        let report = import_archive(&store, &first, &|n| read.set(read.get() + n)).unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(
            read.get(),
            std::fs::metadata(&first).unwrap().len(),
            "every byte of the archive is reported read"
        );
        assert_eq!(report.imported[0].new_blobs, 2);
        let (one, _, _) = image(b"layer one");
        assert_eq!(
            tagged(&store),
            vec![(one.to_string(), vec!["quay.io/a/b:v1".to_string()])]
        );
        assert!(import_archive(&store, &first, &|_| {}).unwrap().imported[0].was_cached());

        let second = archive(dir.path(), "quay.io/a/b:v1", b"layer two", false);
        import_archive(&store, &second, &|_| {}).unwrap();
        let (two, _, _) = image(b"layer two");
        let mut want = vec![
            (one.to_string(), vec![]),
            (two.to_string(), vec!["quay.io/a/b:v1".to_string()]),
        ];
        want.sort();
        assert_eq!(tagged(&store), want, "the tag moved to the new image");
        // Both images share their config.
        assert_eq!(store.list_blobs().unwrap().len(), 3);
    }

    #[test]
    fn a_damaged_blob_rejects_its_image_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(&dir.path().join("cache")).unwrap();
        let bad = archive(dir.path(), "quay.io/a/b:v1", b"layer", true);
        let report = import_archive(&store, &bad, &|_| {}).unwrap();
        assert!(report.imported.is_empty());
        assert_eq!(report.failed[0].0, "quay.io/a/b:v1");
        assert!(
            report.failed[0].1.contains("damaged"),
            "{:?}",
            report.failed
        );
        assert!(store.list_blobs().unwrap().is_empty());
        assert!(store.load_manifests().unwrap().holders.is_empty());
        let tmp = fs::read_dir(dir.path().join("cache").join(crate::store::TMP_DIR))
            .unwrap()
            .count();
        assert_eq!(tmp, 0, "the staging directory is gone");
    }

    #[test]
    fn repositories_of_image_urls() {
        assert_eq!(repo_of_url("quay.io/a/b:v1"), "quay.io/a/b");
        assert_eq!(
            repo_of_url("localhost:5000/a@sha256:00"),
            "localhost:5000/a"
        );
        assert_eq!(repo_of_url("localhost:5000/a"), "localhost:5000/a");
    }
}
