//! A cache written by the Go server is served as it is: both its 1.8 layout (`fat/` for lists,
//! `img/` for image manifests) and its 1.9+ layout (`img/` for everything, `lts/` for `latest`).

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;

use base64::Engine as _;
use support::{http, LocalImage, Server, ServerOptions, SkopeoDir, Upstream, UPSTREAM_NAME};

const REPO: &str = "e2e/gocache";

/// Writes one manifest the way the Go server does: bare hex digest, base64 bytes, the typed
/// manifest under its own key, local times without a zone, and no `tags` field.
fn write_go_holder(dir: &Path, media_type: &str, bytes: &[u8], image_url: &str) {
    let hex = support::sha256_hex(bytes);
    let (code, key) = match media_type {
        "application/vnd.docker.distribution.manifest.list.v2+json" => {
            (0, "v2.docker.manifestList")
        }
        "application/vnd.docker.distribution.manifest.v2+json" => (1, "v2.docker.manifest"),
        "application/vnd.oci.image.index.v1+json" => (2, "v1.oci.index"),
        "application/vnd.oci.image.manifest.v1+json" => (3, "v1.oci.manifest"),
        other => panic!("unexpected media type {other}"),
    };
    let typed: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let holder = serde_json::json!({
        "type": code,
        "digest": hex,
        "imageUrl": image_url,
        "bytes": base64::engine::general_purpose::STANDARD.encode(bytes),
        key: typed,
        "created": "2025-04-01T22:07:01",
        "pulled": "2025-04-01T22:07:01",
    });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(&hex), serde_json::to_vec(&holder).unwrap()).unwrap();
}

/// Fills `cache` with `tag` of `REPO` as the Go server would have cached it, then serves it
/// air-gapped and pulls it with skopeo.
fn serve_go_cache(layout_1_9: bool, tag: &str) {
    let mut upstream = Upstream::start();
    let image = LocalImage::generate(&["1M"]);
    let tree = upstream.push_oci(&image, REPO, tag);
    let mut server = Server::start_with(ServerOptions {
        air_gapped: true,
        ..ServerOptions::new(&upstream.url())
    });
    server.kill();
    let cache = server.cache_dir().to_path_buf();
    let top = http::get_manifest(upstream.port, &format!("/v2/{REPO}/manifests/{tag}"));
    assert_eq!(top.status, 200, "{}", top.summary());
    let media_type = top.header("content-type").unwrap().to_string();
    let list_dir = match (layout_1_9, tag) {
        (false, _) => cache.join("fat"),
        (true, "latest") => cache.join("lts"),
        (true, _) => cache.join("img"),
    };
    let image_dir = if layout_1_9 && tag == "latest" {
        cache.join("lts")
    } else {
        cache.join("img")
    };
    write_go_holder(
        &list_dir,
        &media_type,
        &top.body,
        &format!("{UPSTREAM_NAME}/{REPO}:{tag}"),
    );
    for p in &tree.platforms {
        let m = http::get_manifest(
            upstream.port,
            &format!("/v2/{REPO}/manifests/{}", p.manifest),
        );
        let mt = m.header("content-type").unwrap().to_string();
        write_go_holder(
            &image_dir,
            &mt,
            &m.body,
            &format!("{UPSTREAM_NAME}/{REPO}@{}", p.manifest),
        );
        for b in p.blobs() {
            let blobs = cache.join("blobs");
            std::fs::create_dir_all(&blobs).unwrap();
            std::fs::write(blobs.join(support::hex_of(&b)), upstream.blob(REPO, &b)).unwrap();
        }
    }
    upstream.stop();
    server.restart();

    let copy = SkopeoDir::new();
    let out = copy.copy_all(&server.in_path_ref(REPO, tag));
    assert!(
        out.success(),
        "skopeo pull from a Go-written cache: {out}\n{}",
        server.log_tail()
    );
    copy.assert_matches(&tree);
}

#[test]
fn a_cache_in_the_go_1_8_layout_is_served_as_is() {
    serve_go_cache(false, "v1");
}

#[test]
fn a_cache_in_the_go_1_9_layout_is_served_as_is_including_latest() {
    serve_go_cache(true, "latest");
}
