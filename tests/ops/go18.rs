//! A cache in the Go server's 1.8 layout (lists in `fat/`, image manifests in `img/`, blobs in
//! `blobs/`), written by hand from the documented ManifestHolder format, is listed, served and
//! pruned.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::ops::{files_in, write_go18_manifest, Workspace};
use support::{hex_of, LocalImage, Server, ServerOptions, SkopeoDir, Upstream, UPSTREAM_NAME};

#[test]
fn a_go_18_cache_is_listed_served_and_pruned() {
    let mut upstream = Upstream::start();
    let repo = "e2e/go18";
    let tree = upstream.push_oci(&LocalImage::generate(&["70K"]), repo, "v1");
    let ws = Workspace::new(&upstream.url());

    // The list as pulled by tag, its image manifests by digest, every blob.
    let (_, media_type, bytes) = upstream.fetch_manifest(repo, "v1");
    let url = format!("{UPSTREAM_NAME}/{repo}:v1");
    write_go18_manifest(
        &ws.cache,
        &url,
        &media_type,
        &bytes,
        "2024-03-01T10:00:00",
        "2024-03-02T10:00:00",
    );
    for p in &tree.platforms {
        let (_, media_type, bytes) = upstream.fetch_manifest(repo, &p.manifest);
        let url = format!("{UPSTREAM_NAME}/{repo}@{}", p.manifest);
        write_go18_manifest(
            &ws.cache,
            &url,
            &media_type,
            &bytes,
            "2024-03-01T10:00:01",
            "2024-03-02T10:00:00",
        );
        for b in p.blobs() {
            std::fs::create_dir_all(ws.cache.join("blobs")).unwrap();
            std::fs::write(
                ws.cache.join("blobs").join(hex_of(&b)),
                upstream.blob(repo, &b),
            )
            .unwrap();
        }
    }
    assert_eq!(files_in(&ws.cache.join("fat")).len(), 1);
    assert_eq!(files_in(&ws.cache.join("img")).len(), 2);

    let out = ws.run(&["list"]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "{url} list 2024-03-01T10:00:00 2024-03-02T10:00:00"
        )),
        "{out}"
    );
    assert_eq!(out.stdout.lines().count(), 3, "{out}");

    // Served with the upstream gone.
    upstream.stop();
    let mut server = Server::start_with(ServerOptions {
        cache_dir: Some(ws.cache.clone()),
        ..ServerOptions::new(&upstream.url())
    });
    let copy = SkopeoDir::new();
    let out = copy.copy_all(&server.in_path_ref(repo, "v1"));
    assert!(out.success(), "{out}\n{}", server.log_tail());
    copy.assert_matches(&tree);
    server.kill();

    // Pruned by date: the list takes its image manifests and their blobs.
    let out = ws.run(&["prune", "--date", "2024-03-01T10:00:01", "--dry-run"]);
    assert!(
        out.stdout
            .contains("dry run, nothing changed: 3 manifest(s)"),
        "{out}"
    );
    let out = ws.run(&["prune", "--date", "2024-03-01T10:00:01"]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "pruned: 3 manifest(s), {} blob(s)",
            tree.blob_digests().len()
        )),
        "{out}"
    );
    for d in ["fat", "img", "blobs"] {
        assert!(
            files_in(&ws.cache.join(d)).is_empty(),
            "{d}: {:?}",
            files_in(&ws.cache.join(d))
        );
    }
}
