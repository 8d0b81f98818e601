//! The background pruner of a running server (`pruneConfig`): entries not pulled within the
//! configured age go, recently pulled ones stay (the index's in-memory pull times count, not
//! only what is on disk), and a pull running while it prunes completes intact.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::ops::{manifest_file, set_times, Workspace};
use support::{
    hex_of, wait_for, LocalImage, Relay, Server, ServerOptions, SkopeoDir, Upstream, UPSTREAM_NAME,
};

/// How often the server prunes in this test.
const FREQUENCY_SECS: u64 = 4;

#[test]
fn scheduled_prune_removes_stale_images_keeps_recent_ones_and_spares_a_pull_in_flight() {
    let upstream = Upstream::start();
    let old = upstream.push_oci(&LocalImage::generate(&["60K"]), "e2e/pr-old", "v1");
    let keep = upstream.push_oci(&LocalImage::generate(&["60K"]), "e2e/pr-keep", "v1");
    let new = upstream.push_oci(&LocalImage::generate(&["1M", "1M"]), "e2e/pr-new", "v1");

    let ws = Workspace::new(&upstream.url());
    let list = ws.file(
        "images.txt",
        &format!("{UPSTREAM_NAME}/e2e/pr-old:v1\n{UPSTREAM_NAME}/e2e/pr-keep:v1\n"),
    );
    let out = ws.run(&[
        "load",
        "--image-file",
        list.to_str().unwrap(),
        "--all-platforms",
    ]);
    assert!(out.success(), "{out}");
    // On disk both look untouched since 2020; `keep` is pulled again once the server runs.
    for tree in [&old, &keep] {
        for d in tree.manifest_digests() {
            let file = manifest_file(&ws.cache, &d).unwrap();
            set_times(&file, "2020-01-01T00:00:00", "2020-01-01T00:00:00");
        }
    }

    // The new image comes through a slow link, so its download spans several prunes.
    let relay = Relay::start(upstream.port, 256 * 1024);
    let server = Server::start_with(ServerOptions {
        cache_dir: Some(ws.cache.clone()),
        extra_yaml: format!(
            "pruneConfig:\n  enabled: true\n  type: accessed\n  duration: 1d\n  \
             frequency: {FREQUENCY_SECS}s\n  count: -1\n"
        ),
        ..ServerOptions::new(&relay.url())
    });
    let started = Instant::now();
    let copy = SkopeoDir::new();
    let out = copy.copy_all(&server.in_path_ref("e2e/pr-keep", "v1"));
    assert!(out.success(), "{out}");
    let kept_in_time = started.elapsed() < Duration::from_secs(FREQUENCY_SECS - 1);

    let slow = SkopeoDir::new();
    let out = slow.copy_all(&server.in_path_ref("e2e/pr-new", "v1"));
    assert!(
        out.success(),
        "pull during prunes: {out}\n{}",
        server.log_tail()
    );
    slow.assert_matches(&new);
    assert!(
        started.elapsed() > Duration::from_secs(FREQUENCY_SECS),
        "the slow pull should span at least one prune"
    );

    wait_for(
        "the stale image to be pruned",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            old.manifest_digests()
                .iter()
                .all(|d| manifest_file(&ws.cache, d).is_none())
                .then_some(())
        },
    );
    let log = server.log_text();
    assert!(
        log.contains(&format!(
            "removing manifest list {UPSTREAM_NAME}/e2e/pr-old:v1"
        )),
        "{log}"
    );
    assert!(log.contains("no cached image manifest names it"), "{log}");
    let blobs = server.cached_blobs();
    for d in old.blob_digests() {
        assert!(
            !blobs.contains(&hex_of(&d).to_string()),
            "stale blob {d} kept"
        );
    }
    for d in new.blob_digests() {
        assert!(
            blobs.contains(&hex_of(&d).to_string()),
            "blob {d} of the new pull removed"
        );
    }
    if kept_in_time {
        for d in keep.manifest_digests() {
            assert!(
                manifest_file(&ws.cache, &d).is_some(),
                "recently pulled {d} pruned"
            );
        }
        for d in keep.blob_digests() {
            assert!(
                blobs.contains(&hex_of(&d).to_string()),
                "blob {d} of a kept image removed"
            );
        }
    } else {
        eprintln!("the pull of the kept image took too long to check it against the first prune");
    }
}
