//! Stopping the server: SIGTERM lets running downloads finish and exits cleanly.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use support::{http, wait_for, LocalImage, Relay, Server, Upstream};

const REPO: &str = "e2e/shutdown";

#[test]
fn sigterm_lets_a_running_download_finish_and_exits_zero() {
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["2M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let (layer, size) = tree.largest_layer();
    // About three seconds of download: it is still running when the signal arrives.
    let relay = Relay::start(upstream.port, 768 * 1024);
    let mut server = Server::start(&relay.url());
    let manifest = http::get_manifest(server.port, &server.manifest_path(REPO, "v1"));
    assert_eq!(manifest.status, 200, "{}", manifest.summary());
    // Asking for the platform manifest starts the prefetch of its layers.
    let platform = &tree.platform("amd64").manifest;
    let m = http::get_manifest(server.port, &server.manifest_path(REPO, platform));
    assert_eq!(m.status, 200, "{}", m.summary());
    let tmp = server.cache_dir().join("tmp");
    // The layer's staging file, under way: past what the config blob (or a manifest being
    // written) could put there.
    wait_for(
        "the layer download to start",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let busy = std::fs::read_dir(&tmp).ok()?.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("blob-")
                    && e.metadata().is_ok_and(|m| m.len() >= 64 * 1024)
            });
            busy.then_some(())
        },
    );
    let cache = server.cache_dir().to_path_buf();
    let status = server.terminate(Duration::from_secs(40));
    let status = status.expect("the server did not stop within 40 s of SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let blob = cache.join("blobs").join(support::hex_of(&layer));
    assert_eq!(
        std::fs::metadata(&blob).map(|m| m.len()).ok(),
        Some(size),
        "the download under way at SIGTERM was not completed"
    );
    assert_eq!(format!("sha256:{}", support::sha256_file(&blob)), layer);
}
