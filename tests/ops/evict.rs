//! The size-bounded cache (`maxCacheSize`, `pin`): pulling images one after another keeps the
//! blobs on disk under the bound, the least recently pulled unpinned image is the one evicted,
//! a pinned image survives, and a pull under way while others are evicted completes intact.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use support::ops::manifest_file;
use support::{
    hex_of, http, wait_for, ImageTree, LocalImage, Relay, Server, ServerOptions, SkopeoDir,
    Upstream, UPSTREAM_NAME,
};

/// `maxCacheSize` in this test: three images of about 1 MB fit, four do not.
const BOUND: u64 = 3500 * 1024;
/// `evictionGrace` is 1s: waiting longer between pulls lets the previous image be evicted.
const BETWEEN_PULLS: Duration = Duration::from_millis(1300);

/// The bytes of the blob files in the cache.
fn blob_bytes(cache: &Path) -> u64 {
    std::fs::read_dir(cache.join("blobs"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn cached(server: &Server, tree: &ImageTree) -> bool {
    tree.manifest_digests()
        .iter()
        .all(|d| manifest_file(server.cache_dir(), d).is_some())
}

fn gone(server: &Server, tree: &ImageTree) -> bool {
    let blobs = server.cached_blobs();
    tree.manifest_digests()
        .iter()
        .all(|d| manifest_file(server.cache_dir(), d).is_none())
        && tree
            .blob_digests()
            .iter()
            .all(|d| !blobs.contains(&hex_of(d).to_string()))
}

fn pull(server: &Server, tree: &ImageTree) {
    let copy = SkopeoDir::new();
    let out = copy.copy_all(&server.in_path_ref(&tree.repo, &tree.tag));
    assert!(
        out.success(),
        "pull {}: {out}\n{}",
        tree.repo,
        server.log_tail()
    );
    copy.assert_matches(tree);
    // The client has every byte before the cache has fsynced and renamed the last blob.
    server.settle();
}

fn under_bound(server: &Server, after: &str) {
    wait_for(
        &format!("the cache to be under its bound after {after}"),
        Duration::from_secs(15),
        Duration::from_millis(100),
        || (blob_bytes(server.cache_dir()) <= BOUND).then_some(()),
    );
}

#[test]
fn a_bounded_cache_evicts_the_least_recently_pulled_unpinned_image() {
    let upstream = Upstream::start();
    let image = |repo: &str| upstream.push_oci(&LocalImage::generate(&["500K"]), repo, "v1");
    let pinned = image("e2e/ev-pinned");
    let a = image("e2e/ev-a");
    let b = image("e2e/ev-b");
    let c = image("e2e/ev-c");
    let e = image("e2e/ev-e");

    let relay = Relay::start(upstream.port, 0);
    let server = Server::start_with(ServerOptions {
        extra_yaml: format!(
            "maxCacheSize: {}KiB\npin:\n  - e2e/ev-pin\nevictionGrace: 1s\n",
            BOUND / 1024
        ),
        ..ServerOptions::new(&relay.url())
    });

    // Three images fit.
    for tree in [&pinned, &a, &b] {
        pull(&server, tree);
        under_bound(&server, &tree.repo);
        sleep(BETWEEN_PULLS);
    }
    for tree in [&pinned, &a, &b] {
        assert!(cached(&server, tree), "{} evicted too early", tree.repo);
    }

    // A fourth evicts the least recently pulled unpinned one: `a`, not the older pinned one.
    pull(&server, &c);
    under_bound(&server, "the fourth image");
    wait_for(
        "ev-a to be evicted",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || gone(&server, &a).then_some(()),
    );
    for tree in [&pinned, &b, &c] {
        assert!(cached(&server, tree), "{} evicted", tree.repo);
    }
    let log = server.log_text();
    assert!(
        log.contains(&format!(
            "removing manifest list {UPSTREAM_NAME}/e2e/ev-a:v1"
        )) && log.contains("over maxCacheSize")
            && log.contains("least recently pulled image"),
        "{log}"
    );

    // Pulled again, `b` is fresher than `c`: pulling `a` back evicts `c`.
    sleep(BETWEEN_PULLS);
    pull(&server, &b);
    sleep(BETWEEN_PULLS);
    pull(&server, &a);
    under_bound(&server, "pulling ev-a again");
    wait_for(
        "ev-c to be evicted",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || gone(&server, &c).then_some(()),
    );
    for tree in [&pinned, &a, &b] {
        assert!(cached(&server, tree), "{} evicted", tree.repo);
    }

    // A slow pull: its own download starts an eviction (of `b`), which must leave it alone.
    sleep(BETWEEN_PULLS);
    relay.set_rate(400 * 1024);
    pull(&server, &e);
    relay.set_rate(0);
    under_bound(&server, "the slow pull");
    assert!(cached(&server, &e), "the image pulled during an eviction");
    let blobs = server.cached_blobs();
    for d in e.blob_digests() {
        assert!(blobs.contains(&hex_of(&d).to_string()), "blob {d} of ev-e");
    }
    assert!(gone(&server, &b), "ev-b should have made room for ev-e");
    assert!(cached(&server, &pinned) && cached(&server, &a));

    // Reported over the admin API and in the metrics.
    let stats = http::get_with(
        server.port,
        "/cmd/cache/stats",
        &[("Accept", "application/json")],
    )
    .json();
    assert_eq!(stats["boundBytes"], BOUND, "{stats}");
    assert!(stats["evictions"].as_u64().unwrap() >= 3, "{stats}");
    assert!(stats["totalBytes"].as_u64().unwrap() <= BOUND, "{stats}");
    let metrics = http::get(server.port, "/metrics").text();
    assert!(
        metrics.contains(&format!("ociregistry_cache_bound_bytes {BOUND}")),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l
            .strip_prefix("ociregistry_evictions_total ")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .is_some_and(|n| n >= 3)),
        "{metrics}"
    );
}

#[test]
fn list_ends_with_the_total_against_the_bound() {
    let upstream = Upstream::start();
    upstream.push_oci(&LocalImage::generate(&["60K"]), "e2e/ev-list", "v1");
    let ws = support::ops::Workspace::with_config(&upstream.url(), "maxCacheSize: 10MiB\n");
    let list = ws.file("images.txt", &format!("{UPSTREAM_NAME}/e2e/ev-list:v1\n"));
    let out = ws.run(&[
        "load",
        "--image-file",
        list.to_str().unwrap(),
        "--all-platforms",
    ]);
    assert!(out.success(), "{out}");
    let out = ws.run(&["list"]);
    assert!(out.success(), "{out}");
    let last = out.stdout.lines().last().unwrap_or_default().to_string();
    let blobs = ws.files("blobs").len();
    assert_eq!(
        last,
        format!(
            "TOTAL {} bytes in {blobs} blobs, bound {} bytes ({}%)",
            blob_bytes(&ws.cache),
            10 << 20,
            blob_bytes(&ws.cache) * 100 / (10 << 20)
        ),
        "{out}"
    );
    // Three manifests, then the total.
    assert_eq!(out.stdout.lines().count(), 4, "{out}");
}
