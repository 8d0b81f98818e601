//! `list` and `prune` on a cache on disk: selection by pattern and by date, dry runs that
//! change nothing, shared blobs kept until their last image manifest goes, and the cache lock
//! that keeps `prune` away from a running server.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::ops::{code, manifest_file, set_times, Workspace};
use support::{hex_of, LocalImage, Server, ServerOptions, Upstream, UPSTREAM_NAME};

fn snapshot(ws: &Workspace) -> Vec<Vec<String>> {
    ["blobs", "fat", "img"]
        .iter()
        .map(|d| ws.files(d))
        .collect()
}

#[test]
fn list_and_prune_select_by_pattern_and_date_and_keep_shared_blobs() {
    let upstream = Upstream::start();
    // The same image as an OCI index and as a Docker list: different manifests, same blobs.
    let shared = LocalImage::generate(&["100K", "50K"]);
    let one = upstream.push_oci(&shared, "e2e/p-one", "v1");
    let two = upstream.push_docker_list(&shared, "e2e/p-two", "v1");
    assert_eq!(one.blob_digests(), two.blob_digests());
    let three = upstream.push_oci(&LocalImage::generate(&["80K"]), "e2e/p-three", "v1");

    let ws = Workspace::new(&upstream.url());
    let list = ws.file(
        "images.txt",
        &format!(
            "{UPSTREAM_NAME}/e2e/p-one:v1\n{UPSTREAM_NAME}/e2e/p-two:v1\n\
             {UPSTREAM_NAME}/e2e/p-three:v1\n"
        ),
    );
    let out = ws.run(&[
        "load",
        "--image-file",
        list.to_str().unwrap(),
        "--all-platforms",
    ]);
    assert!(out.success(), "{out}");

    // list: header, one row per manifest, patterns, JSON, a bad regex.
    let out = ws.run(&["list", "--header"]);
    assert!(out.success(), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "URL TYPE CREATED PULLED");
    assert_eq!(
        lines.len(),
        1 + 9,
        "3 lists and 6 image manifests: {}",
        out.stdout
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with(&format!("{UPSTREAM_NAME}/e2e/p-one:v1 list "))));
    let out = ws.run(&["list", "--pattern", "p-three,nothing-else"]);
    assert_eq!(out.stdout.lines().count(), 3, "{out}");
    let out = ws.run(&["list", "--format", "json"]);
    let listing: serde_json::Value = serde_json::from_str(&out.stdout).expect("list JSON");
    let rows = &listing["manifests"];
    assert_eq!(rows.as_array().unwrap().len(), 9);
    assert!(rows[0]["created"].as_str().unwrap().len() == 19);
    let blob_bytes: u64 = ws
        .files("blobs")
        .iter()
        .map(|f| {
            std::fs::metadata(ws.cache.join("blobs").join(f))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(listing["totals"]["manifests"], 9, "{listing}");
    assert_eq!(
        listing["totals"]["blobs"],
        ws.files("blobs").len(),
        "{listing}"
    );
    assert_eq!(listing["totals"]["bytes"], blob_bytes, "{listing}");
    assert!(out.stdout.trim_end().ends_with('}'), "ends with the totals");
    let out = ws.run(&["list", "--pattern", "p-(one"]);
    assert_eq!(code(&out), 1, "{out}");
    assert!(out.stderr.contains("not a valid regex"), "{out}");

    // Dry run: reports, changes nothing.
    let before = snapshot(&ws);
    let out = ws.run(&["prune", "--pattern", "p-one", "--dry-run"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("would remove manifest list"), "{out}");
    assert!(
        out.stdout
            .contains("dry run, nothing changed: 3 manifest(s), 0 blob(s)"),
        "{out}"
    );
    assert_eq!(snapshot(&ws), before, "a dry run changed the cache");

    // p-one goes; its blobs stay, p-two still names them.
    let out = ws.run(&["prune", "--pattern", "p-one"]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("pruned: 3 manifest(s), 0 blob(s)"),
        "{out}"
    );
    for d in one.manifest_digests() {
        assert!(manifest_file(&ws.cache, &d).is_none(), "{d} survived");
    }
    for d in two.manifest_digests() {
        assert!(manifest_file(&ws.cache, &d).is_some(), "{d} was removed");
    }
    let blobs = ws.files("blobs");
    for d in one.blob_digests() {
        assert!(
            blobs.contains(&hex_of(&d).to_string()),
            "shared blob {d} removed"
        );
    }

    // By date: only p-three's list is old; it takes its image manifests and unique blobs.
    let old = manifest_file(&ws.cache, &three.top).unwrap();
    set_times(&old, "2020-01-01T00:00:00", "2020-01-02T00:00:00");
    let out = ws.run(&["prune", "--date", "2021-01-01T00:00:00"]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("created 2020-01-01T00:00:00 before"),
        "{out}"
    );
    for d in three.manifest_digests() {
        assert!(manifest_file(&ws.cache, &d).is_none(), "{d} survived");
    }
    let blobs = ws.files("blobs");
    for d in three.blob_digests() {
        assert!(
            !blobs.contains(&hex_of(&d).to_string()),
            "unique blob {d} kept"
        );
    }
    for d in two.blob_digests() {
        assert!(
            blobs.contains(&hex_of(&d).to_string()),
            "{d} of p-two removed"
        );
    }

    // The last manifest naming the shared blobs goes, and so do they.
    let out = ws.run(&["prune", "--pattern", "p-two"]);
    assert!(out.success(), "{out}");
    assert!(ws.files("blobs").is_empty(), "{:?}", ws.files("blobs"));
    assert!(ws.files("fat").is_empty() && ws.files("img").is_empty());
    let out = ws.run(&["prune", "--pattern", "p-two"]);
    assert!(out.stdout.contains("(nothing matched)"), "{out}");
}

#[test]
fn prune_load_and_import_beside_a_running_server_go_through_it() {
    let upstream = Upstream::start();
    upstream.push_oci(&LocalImage::generate(&["50K"]), "e2e/p-lock", "v1");
    let ws = Workspace::new(&upstream.url());
    let mut server = Server::start_with(ServerOptions {
        cache_dir: Some(ws.cache.clone()),
        ..ServerOptions::new(&upstream.url())
    });
    let out = ws.run(&["prune", "--pattern", "p-lock"]);
    assert!(out.success(), "{out}");
    assert!(out.stderr.contains("pruning through it"), "{out}");
    assert!(
        out.stdout
            .ends_with("pruned: 0 manifest(s), 0 blob(s), 0 bytes (nothing matched)\n"),
        "{out}"
    );
    // load does not write under a running server either: it asks the server to load.
    let list = ws.file("images.txt", &format!("{UPSTREAM_NAME}/e2e/p-lock:v1\n"));
    let out = ws.run(&["load", "--image-file", list.to_str().unwrap()]);
    assert!(out.success(), "{out}");
    assert!(out.stderr.contains("loading through it"), "{out}");
    let blobs = server.cached_blobs();
    assert!(!blobs.is_empty());

    // A dry run through the server names the image and changes nothing; the prune removes it
    // from the running server, which no longer lists it.
    let out = ws.run(&["prune", "--pattern", "p-lock", "--dry-run"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("would remove manifest list"), "{out}");
    assert!(
        out.stdout
            .contains("dry run, nothing changed: 2 manifest(s), "),
        "{out}"
    );
    assert_eq!(server.cached_blobs(), blobs);
    let out = ws.run(&[
        "prune",
        "--pattern",
        "p-lock",
        "--date",
        "2999-01-01T00:00:00",
    ]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("removed manifest list"), "{out}");
    assert!(
        out.stdout
            .contains(&format!("pruned: 2 manifest(s), {} blob(s), ", blobs.len())),
        "{out}"
    );
    assert!(server.cached_blobs().is_empty());
    let r = support::http::get(server.port, "/cmd/manifest/list");
    assert_eq!(r.text(), "no manifests found\n");

    // import asks the server too, which refuses what is no archive (exit 1).
    let archive = ws.file("archive.tar", "not an archive");
    let out = ws.run(&["import", archive.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{out}");
    assert!(out.stderr.contains("refused the import: 400"), "{out}");
    // list only reads, so it works.
    assert!(ws.run(&["list"]).success());
    server.kill();
    let out = ws.run(&["prune", "--pattern", "p-lock", "--dry-run"]);
    assert!(out.success(), "the lock goes with the server: {out}");
    assert!(!out.stderr.contains("through it"), "{out}");
}
