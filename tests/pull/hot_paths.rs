//! The two paths a warm cache spends its time on, pulled through by real clients: cached blob
//! bodies (read from memory when their pages are there, from the disk when they are not) and
//! manifest hits (answered from the index's snapshot, which must follow every change).

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::{http, LocalImage, Server, ServerOptions, SkopeoDir, Upstream};

const TOKEN: &str = "hot-paths-admin-token";

/// The sum of every sample of `name` (a counter without labels here).
fn counter(server: &Server, name: &str) -> f64 {
    http::get(server.port, "/metrics")
        .text()
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Asks the kernel to drop the cached pages of every blob in the server's cache, so the next
/// read of them has to wait for the disk. The server fsynced them, so the pages are clean and
/// go.
fn drop_cached_pages(server: &Server) {
    server.settle();
    let blobs = server.cache_dir().join("blobs");
    let script = "import os, sys\n\
                  for p in sys.argv[1:]:\n\
                  \x20   fd = os.open(p, os.O_RDONLY)\n\
                  \x20   os.fsync(fd)\n\
                  \x20   os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n\
                  \x20   os.close(fd)\n";
    let files: Vec<String> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    assert!(!files.is_empty(), "no cached blobs in {}", blobs.display());
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cached_layers_whose_pages_left_memory_are_read_from_disk_exactly_and_counted() {
    let upstream = Upstream::start();
    let repo = "e2e/hot-blobs";
    let tree = upstream.push_oci(&LocalImage::generate(&["3M", "700K"]), repo, "v1");
    let server = Server::start(&upstream.url());
    let reference = server.in_path_ref(repo, "v1");
    let first = SkopeoDir::new();
    first.copy_all(&reference).expect_success();
    first.assert_matches(&tree);

    // Warm: the pages are in memory, nothing waits for the disk.
    let warm_before = counter(&server, "ociregistry_blob_reads_from_disk_total");
    let warm = SkopeoDir::new();
    warm.copy_all(&reference).expect_success();
    warm.assert_matches(&tree);
    let warm_after = counter(&server, "ociregistry_blob_reads_from_disk_total");

    // Cold: every blob's pages dropped; the same bytes come back, read from the disk.
    drop_cached_pages(&server);
    let cold = SkopeoDir::new();
    cold.copy_all(&reference).expect_success();
    cold.assert_matches(&tree);
    let cold_after = counter(&server, "ociregistry_blob_reads_from_disk_total");
    assert!(
        cold_after > warm_after,
        "no read waited for the disk after the pages were dropped ({warm_before} -> {warm_after} -> {cold_after})"
    );

    // A range in the middle of the largest layer, cold, is exactly those bytes.
    let (digest, size) = tree.largest_layer();
    assert_eq!(
        upstream.count_requests("GET", &format!("/blobs/{digest}")),
        1,
        "a cached layer was fetched again"
    );
    let whole = upstream.blob(repo, &digest);
    assert_eq!(whole.len() as u64, size);
    drop_cached_pages(&server);
    let (start, end) = (size / 3, size / 3 + 300_000);
    let r = http::get_with(
        server.port,
        &format!("/v2/upstream.test/{repo}/blobs/{digest}"),
        &[("Range", &format!("bytes={start}-{}", end - 1))],
    );
    assert_eq!(r.status, 206, "{}", r.summary());
    assert!(
        r.body == whole[start as usize..end as usize],
        "wrong range bytes"
    );
}

#[test]
fn manifest_hits_come_from_memory_and_follow_a_prune_and_a_moved_tag() {
    let upstream = Upstream::start();
    let repo = "e2e/hot-tags";
    let one = upstream.push_oci(&LocalImage::generate(&["20K"]), repo, "v1");
    let server = Server::start_with(ServerOptions {
        extra_yaml: format!("adminApi:\n  token: {TOKEN}\n"),
        ..ServerOptions::new(&upstream.url())
    });
    let target = format!("/v2/upstream.test/{repo}/manifests/v1");
    let first = http::get_manifest(server.port, &target);
    assert_eq!(first.status, 200, "{}", first.summary());
    assert_eq!(
        first.header("Docker-Content-Digest"),
        Some(one.top.as_str())
    );
    let fetched = upstream.count_requests("GET", "/manifests/v1");
    for _ in 0..50 {
        let hit = http::get_manifest(server.port, &target);
        assert_eq!(hit.status, 200);
        assert_eq!(hit.body, first.body, "a hit served other bytes");
    }
    assert_eq!(
        upstream.count_requests("GET", "/manifests/v1"),
        fetched,
        "a cached tag went to the upstream"
    );

    // Pruned: the next request is a miss and fetches the tag again, now pointing elsewhere.
    let two = upstream.push_oci(&LocalImage::generate(&["30K"]), repo, "v1");
    assert_ne!(one.top, two.top);
    let pushed = upstream.count_requests("GET", "/manifests/v1");
    let again = http::get_manifest(server.port, &target);
    assert_eq!(
        again.header("Docker-Content-Digest"),
        Some(one.top.as_str()),
        "a cached tag is served without asking the upstream"
    );
    let r = http::request(
        server.port,
        "DELETE",
        "/cmd/prune?type=pattern&expr=hot-tags&count=10",
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.summary());
    let again = http::get_manifest(server.port, &target);
    assert_eq!(again.status, 200, "{}", again.summary());
    assert_eq!(
        again.header("Docker-Content-Digest"),
        Some(two.top.as_str()),
        "the pruned tag was served from memory"
    );
    assert_eq!(upstream.count_requests("GET", "/manifests/v1"), pushed + 1);
}
