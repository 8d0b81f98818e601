//! "Never loses what it has" includes where a tag points: a tag that moved to a new manifest
//! (always-pull-latest re-fetched `latest`) must still point there after a restart, also when
//! the upstream is unreachable and the cache is all there is. So does when a tag was last
//! checked upstream: a restart does not make every tag under a freshness rule due at once.
//! Nor does a blob file removed from the cache behind the server's back break its image: it
//! is fetched again, or, air-gapped, answered as unknown before any byte is promised.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::http;
use support::{hex_of, sha256_hex, LocalImage, Server, ServerOptions, SkopeoDir, Upstream};

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

/// Blob files removed from the cache directory while the server runs (by hand, to make room
/// in a hurry): the next pull gets the whole image, each removed blob fetched again once, a
/// range from its offset; an air-gapped server answers `BLOB_UNKNOWN` for a removed blob, not
/// a 200 whose body breaks, and goes on serving the rest.
#[test]
fn blobs_removed_from_the_cache_while_serving_are_fetched_again_or_unknown_when_air_gapped() {
    const REMOVED: &str = "e2e/removed";
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["256K", "128K"], "linux/amd64");
    let tree = upstream.push_oci(&image, REMOVED, "v1");
    let mut server = Server::start(&upstream.url());
    let pull = |server: &Server, when: &str| {
        let copy = SkopeoDir::new();
        let out = copy.copy_all(&server.in_path_ref(REMOVED, "v1"));
        assert!(
            out.success(),
            "skopeo pull {when}: {out}\n--- server log ---\n{}",
            server.log_tail()
        );
        copy.assert_matches(&tree);
    };
    pull(&server, "to fill the cache");
    let blob_dir = server.cache_dir().join("blobs");
    let cached = server.cached_blobs();
    assert!(cached.len() >= 3, "config and two layers: {cached:?}");
    for hex in &cached {
        std::fs::remove_file(blob_dir.join(hex)).expect("remove a cached blob");
    }

    let mark = upstream.log_mark();
    pull(&server, "after every blob file was removed");
    let fetched: Vec<String> = upstream
        .requests_since(mark)
        .into_iter()
        .filter(|e| e.method == "GET" && e.path.contains("/blobs/"))
        .map(|e| e.path)
        .collect();
    assert_eq!(
        fetched.len(),
        cached.len(),
        "each removed blob fetched once: {fetched:?}"
    );
    assert_eq!(
        server.cached_blobs(),
        cached,
        "the blobs are not stored again"
    );

    let layer = tree.platform("amd64").layers[0].clone();
    let bytes = upstream.blob(REMOVED, &layer);
    std::fs::remove_file(blob_dir.join(hex_of(&layer))).expect("remove the layer again");
    let target = server.blob_path(REMOVED, &layer);
    let r = http::get_with(server.port, &target, &[("Range", "bytes=1000-1999")]);
    assert_eq!(r.status, 206, "{}", r.summary());
    assert!(
        r.body == bytes[1000..2000],
        "a range of a re-fetched layer: wrong bytes"
    );

    server.restart_with(ServerOptions {
        air_gapped: true,
        ..server.options.clone()
    });
    // The first use checks a blob found at start; the removal comes after, while serving.
    let r = http::get(server.port, &target);
    assert_eq!(r.status, 200, "{}", r.summary());
    let other = tree.platform("amd64").layers[1].clone();
    let other_bytes = upstream.blob(REMOVED, &other);
    let mark = upstream.log_mark();
    std::fs::remove_file(blob_dir.join(hex_of(&layer))).expect("remove the layer");
    for attempt in ["first", "second"] {
        let r = http::get(server.port, &target);
        assert_eq!(
            r.status,
            404,
            "{attempt} GET of a removed blob, air-gapped: {}",
            r.summary()
        );
        r.assert_oci_error(404, "BLOB_UNKNOWN");
    }
    let r = http::get(server.port, &server.blob_path(REMOVED, &other));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.body == other_bytes, "another layer: wrong bytes");
    let seen = upstream.requests_since(mark);
    assert!(
        seen.is_empty(),
        "an air-gapped server called the upstream: {seen:?}"
    );
}
