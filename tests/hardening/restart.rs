//! "Never loses what it has" includes where a tag points: a tag that moved to a new manifest
//! (always-pull-latest re-fetched `latest`) must still point there after a restart, also when
//! the upstream is unreachable and the cache is all there is. So does when a tag was last
//! checked upstream: a restart does not make every tag under a freshness rule due at once.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::http;
use support::{sha256_hex, LocalImage, Server, ServerOptions, Upstream};

const REPO: &str = "e2e/moved";

#[test]
fn a_moved_latest_tag_still_points_at_the_new_manifest_after_a_restart() {
    let mut upstream = Upstream::start();
    let a = LocalImage::generate_for(&["64K"], "linux/amd64");
    let b = LocalImage::generate_for(&["64K"], "linux/amd64");
    // Manifest files load in name order and the last claim on a tag wins: make the old
    // manifest the one that loads last, so the outcome does not depend on chance.
    let (old, new) = if a.index_digest > b.index_digest {
        (a, b)
    } else {
        (b, a)
    };
    let mut server = Server::start_with(ServerOptions {
        extra_yaml: "alwaysPullLatest: true\n".into(),
        ..ServerOptions::new(&upstream.url())
    });
    let latest = server.manifest_path(REPO, "latest");
    let digest_of = |server: &Server| {
        let r = http::get_manifest(server.port, &latest);
        assert_eq!(r.status, 200, "{}", r.summary());
        format!("sha256:{}", sha256_hex(&r.body))
    };

    upstream.push_oci(&old, REPO, "latest");
    assert_eq!(digest_of(&server), old.index_digest);
    upstream.push_oci(&new, REPO, "latest");
    assert_eq!(
        digest_of(&server),
        new.index_digest,
        "latest was not re-fetched"
    );

    upstream.stop();
    assert_eq!(
        digest_of(&server),
        new.index_digest,
        "the cached copy of latest, upstream down"
    );
    server.restart();
    assert_eq!(
        digest_of(&server),
        new.index_digest,
        "after a restart with the upstream down, latest points at the manifest it was moved \
         away from\n--- server log ---\n{}",
        server.log_tail()
    );
}

/// A blob file damaged while the server was down (a cache written by a server that does not
/// fsync, as the Go server does not, can hold a truncated or zero-length blob after a power
/// loss) must not be served as the blob: the client gets the right bytes or an error.
#[test]
fn a_blob_damaged_on_disk_while_stopped_is_not_served_as_the_blob() {
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["256K"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let layer = tree.platform("amd64").layers[0].clone();
    let expected = upstream.blob(REPO, &layer);
    let mut server = Server::start(&upstream.url());
    let target = server.blob_path(REPO, &layer);
    let r = http::get(server.port, &target);
    assert_eq!(r.status, 200, "{}", r.summary());

    server.kill();
    let file = server
        .cache_dir()
        .join("blobs")
        .join(support::hex_of(&layer));
    let whole = std::fs::read(&file).expect("cached blob");
    std::fs::write(&file, &whole[..whole.len() / 3]).expect("truncate the blob");
    server.restart();

    // The upstream is still there: the damaged file is replaced and the client gets the blob.
    let r = http::get(server.port, &target);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(
        r.body == expected,
        "a damaged blob file was served as {layer}: {} of {} bytes, sha256 {}",
        r.body.len(),
        expected.len(),
        sha256_hex(&r.body)
    );
    // The client has every byte before the replacement is fsynced and renamed into place.
    server.settle();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        expected,
        "the damaged file was not replaced"
    );
}

#[test]
fn a_tag_checked_just_before_a_restart_is_not_checked_again_until_its_ttl() {
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["64K"], "linux/amd64");
    upstream.push_oci(&image, "e2e/checked", "v1");
    let mut server = Server::start_with(ServerOptions {
        extra_yaml: "tagFreshness:\n  - match: \"upstream\\\\.test/e2e/.*\"\n    ttl: 1h\n".into(),
        ..ServerOptions::new(&upstream.url())
    });
    let target = server.manifest_path("e2e/checked", "v1");
    let asked = |u: &Upstream| {
        u.count_requests("HEAD", "/e2e/checked/manifests/v1")
            + u.count_requests("GET", "/e2e/checked/manifests/v1")
    };
    let r = http::get_manifest(server.port, &target);
    assert_eq!(r.status, 200, "{}", r.summary());
    let before = asked(&upstream);
    server.restart();
    let r = http::get_manifest(server.port, &target);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(
        asked(&upstream),
        before,
        "the tag fetched a moment before the restart was checked again after it"
    );
}
