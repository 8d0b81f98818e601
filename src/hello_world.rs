//! The embedded image behind `serve --hello-world`: `docker.io/library/hello-world:latest`, an
//! OCI image index for linux/amd64 and linux/arm64, small enough to live in the binary. It is
//! written into a fresh cache directory that the server then serves air-gapped, so the server
//! can be tried with no network and no upstream, and a container run from it
//! (`docker run`, `ctr run`) prints a greeting: its one file is a tiny static program,
//! `src/hello_world/hello.c`. The files are made by `src/hello_world/generate.py` (the
//! committed output); the tests below check they agree with each other.

use std::path::Path;

use actors::oci::{Digest, ImageRef, Manifest, ManifestKind, Reference};
use actors::store::{now_local, FsStore, ManifestHolder};

/// The reference the embedded image is served under.
pub const IMAGE: &str = "docker.io/library/hello-world:latest";

const INDEX: &[u8] = include_bytes!("hello_world/index.json");
const MANIFESTS: [&[u8]; 2] = [
    include_bytes!("hello_world/manifest-amd64.json"),
    include_bytes!("hello_world/manifest-arm64.json"),
];
const BLOBS: [&[u8]; 4] = [
    include_bytes!("hello_world/config-amd64.json"),
    include_bytes!("hello_world/config-arm64.json"),
    include_bytes!("hello_world/layer-amd64.tar.gz"),
    include_bytes!("hello_world/layer-arm64.tar.gz"),
];

/// Writes the embedded image into the cache at `root` (created if needed).
pub fn seed(root: &Path) -> Result<(), String> {
    let store = FsStore::open(root).map_err(|e| e.to_string())?;
    let image = ImageRef::parse(IMAGE).map_err(|e| e.to_string())?;
    let now = now_local();
    for blob in BLOBS {
        store
            .write_blob(&Digest::of(blob), blob)
            .map_err(|e| e.to_string())?;
    }
    for m in MANIFESTS {
        let d = Digest::of(m);
        let url = image
            .with_reference(Reference::Digest(d.clone()))
            .to_string();
        let h = ManifestHolder::new(
            ManifestKind::OciManifest,
            d,
            url,
            m.to_vec(),
            now,
            now,
            Vec::new(),
        );
        store.write_manifest(&h).map_err(|e| e.to_string())?;
    }
    let h = ManifestHolder::new(
        ManifestKind::OciIndex,
        Digest::of(INDEX),
        IMAGE,
        INDEX.to_vec(),
        now,
        now,
        vec![IMAGE.to_string()],
    );
    store.write_manifest(&h).map_err(|e| e.to_string())?;
    // Every piece the index names must be there, or clients would get a 404 mid-pull.
    let index = Manifest::parse(INDEX, None).map_err(|e| e.to_string())?;
    if index.children.len() != MANIFESTS.len() {
        return Err("the embedded hello-world index does not match its manifests".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn blob(d: &Digest) -> &'static [u8] {
        BLOBS
            .iter()
            .chain(MANIFESTS.iter())
            .find(|b| &Digest::of(b) == d)
            .unwrap_or_else(|| panic!("{d} is not embedded"))
    }

    #[test]
    fn the_index_names_both_platforms_and_every_piece_is_embedded() {
        let index = Manifest::parse(INDEX, None).unwrap();
        assert_eq!(index.kind, ManifestKind::OciIndex);
        let mut platforms = Vec::new();
        for entry in &index.children {
            let p = entry.platform.clone().unwrap();
            platforms.push(format!("{}/{}", p.os, p.architecture));
            let bytes = blob(&entry.digest);
            assert_eq!(bytes.len() as u64, entry.size);
            let image = Manifest::parse(bytes, None).unwrap();
            assert_eq!(image.kind, ManifestKind::OciManifest);
            for piece in &image.children {
                assert_eq!(blob(&piece.digest).len() as u64, piece.size);
            }
        }
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    }

    #[test]
    fn layers_are_gzipped_tars_matching_the_configs_diff_ids() {
        for m in MANIFESTS {
            let image = Manifest::parse(m, None).unwrap();
            let config: serde_json::Value =
                serde_json::from_slice(blob(&image.children[0].digest)).unwrap();
            let layer = blob(&image.children[1].digest);
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(layer)
                .read_to_end(&mut tar)
                .unwrap();
            assert_eq!(
                config["rootfs"]["diff_ids"][0].as_str().unwrap(),
                Digest::of(&tar).to_string()
            );
            // One executable regular file named `hello`, then the end-of-archive blocks.
            assert_eq!(&tar[..6], b"hello\0");
            assert_eq!(&tar[100..107], b"0000755");
            assert_eq!(&tar[257..262], b"ustar");
            assert_eq!(tar.len() % 512, 0);
            assert_eq!(config["config"]["Cmd"], serde_json::json!(["/hello"]));
            // A static ELF program for the config's architecture, printing its platform.
            let program = &tar[512..];
            assert_eq!(&program[..4], b"\x7fELF");
            let machine = u16::from_le_bytes([program[18], program[19]]);
            let arch = config["architecture"].as_str().unwrap();
            let expected = match arch {
                "amd64" => 62,
                "arm64" => 183,
                other => panic!("unexpected architecture {other}"),
            };
            assert_eq!(machine, expected, "{arch}");
            let text = String::from_utf8_lossy(program);
            assert!(text.contains(&format!("linux/{arch}")), "{arch}");
        }
    }

    #[test]
    fn seeding_writes_a_cache_the_engine_loads() {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path()).unwrap();
        let loaded = FsStore::open(dir.path()).unwrap().load_manifests().unwrap();
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        assert_eq!(loaded.holders.len(), 3);
        let blobs = FsStore::open(dir.path()).unwrap().list_blobs().unwrap();
        assert_eq!(blobs.len(), 4);
    }
}
