//! A server killed with SIGKILL in the middle of downloads leaves a cache with no wrong blob,
//! sweeps its temporary files when it starts again, and completes the pull.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::http;
use support::{wait_for, LocalImage, Relay, Server, SkopeoDir, Upstream, UPSTREAM_NAME};

const REPO: &str = "e2e/crash";

#[test]
fn kill_9_mid_download_leaves_only_verified_blobs_and_the_pull_completes_after_restart() {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["512K", "3M"]);
    let tree = upstream.push_oci(&image, REPO, "v1");
    let (layer, size) = tree.largest_layer();
    // Slow enough that the kill lands in the middle of the downloads.
    let relay = Relay::start(upstream.port, 512 * 1024);
    let mut server = Server::start(&relay.url());

    // One client on the big layer, and the manifest, whose blobs the server prefetches.
    let received = Arc::new(AtomicU64::new(0));
    let client = {
        let (port, path, received) = (
            server.port,
            server.blob_path(REPO, &layer),
            received.clone(),
        );
        thread::spawn(move || {
            http::request_streaming(port, "GET", &path, &[], |chunk| {
                received.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            })
        })
    };
    let r = http::get_manifest(
        server.port,
        &server.manifest_path(REPO, &tree.platform("arm64").manifest),
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    wait_for(
        "the client to receive part of the blob",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || (received.load(Ordering::SeqCst) >= 128 * 1024).then_some(()),
    );
    assert!(
        received.load(Ordering::SeqCst) < size,
        "the download finished before the kill; the relay is not slowing it down"
    );

    server.crash();
    // The client sees a cut connection; what matters is the cache.
    let _ = client.join().expect("client thread");
    let at_kill = cache_listing(server.cache_dir());
    // Partial downloads at the kill: every file not named by its digest, wherever it lies.
    let partial_at_kill = partial_files(server.cache_dir());
    let corrupt = server.corrupt_blobs();
    assert!(
        corrupt.is_empty(),
        "blobs whose content does not match their name after SIGKILL: {corrupt:?}\n\
         cache at the kill:\n{at_kill}"
    );

    relay.set_rate(0);
    server.restart();
    let stray = wait_for(
        "the restarted server to sweep temporary files",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let stray = server.stray_cache_files();
            stray.is_empty().then_some(stray)
        },
    );
    assert!(stray.is_empty(), "cache at the kill:\n{at_kill}");
    let left: Vec<_> = partial_at_kill.iter().filter(|p| p.exists()).collect();
    assert!(
        left.is_empty(),
        "temporary files of the killed server were not swept at start: {left:?}\n\
         cache at the kill:\n{at_kill}"
    );

    let copy = SkopeoDir::new();
    let out = copy.copy_all(&format!("{}/{UPSTREAM_NAME}/{REPO}:v1", server.addr()));
    assert!(
        out.success(),
        "{out}\n--- server log ---\n{}",
        server.log_tail()
    );
    copy.assert_matches(&tree);

    let corrupt = server.corrupt_blobs();
    assert!(
        corrupt.is_empty(),
        "corrupt blobs after the pull: {corrupt:?}"
    );
    let stray = server.stray_cache_files();
    assert!(
        stray.is_empty(),
        "temporary files left after the pull: {stray:?}"
    );
    assert!(
        server
            .cached_blobs()
            .contains(&support::hex_of(&layer).to_string()),
        "the interrupted blob was not cached by the completed pull"
    );
}

/// Every file under `root` with its size, one per line, for failure messages.
fn cache_listing(root: &Path) -> String {
    let mut lines = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    // Bounded walk: the cache is small in these tests.
    for _ in 0..10_000 {
        let Some(dir) = dirs.pop() else { break };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                let rel = path.strip_prefix(root).unwrap_or(&path);
                lines.push(format!("  {} ({size} bytes)", rel.display()));
            }
        }
    }
    lines.sort();
    lines.join("\n")
}

/// Files under `root` whose name is not a digest, skipping the cache's JSON bookkeeping.
fn partial_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    for _ in 0..10_000 {
        let Some(dir) = dirs.pop() else { break };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if !support::is_sha256_hex(&name)
                && !name.ends_with(".json")
                // The cache lock a running server holds is no download.
                && name != "ociregistry.lock"
            {
                found.push(path);
            }
        }
    }
    found
}
