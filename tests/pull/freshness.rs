//! Tag freshness: a cached tag is served without asking the upstream until its TTL runs out,
//! then checked with a HEAD (no GET when it has not moved), refetched when it moved, and served
//! stale when the upstream cannot answer.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use support::{http, LocalImage, Server, ServerOptions, Upstream};

const REPO: &str = "e2e/fresh";
const TTL: Duration = Duration::from_secs(2);

fn digest_of(server: &Server) -> String {
    let r = http::get_manifest(server.port, &server.manifest_path(REPO, "v1"));
    assert_eq!(r.status, 200, "{}", r.summary());
    r.header("docker-content-digest").unwrap().to_string()
}

#[test]
fn a_repushed_tag_is_picked_up_after_the_ttl_and_not_before() {
    let mut upstream = Upstream::start();
    let first = upstream.push_oci(&LocalImage::generate(&["64K"]), REPO, "v1");
    let server = Server::start_with(ServerOptions {
        extra_yaml: "tagFreshness:\n  - match: \"upstream\\\\.test/e2e/.*\"\n    ttl: 2s\n".into(),
        ..ServerOptions::new(&upstream.url())
    });
    let gets = |u: &Upstream| u.count_requests("GET", &format!("/{REPO}/manifests/v1"));
    let heads = |u: &Upstream| u.count_requests("HEAD", &format!("/{REPO}/manifests/v1"));

    // Pushing and recording the image reads it back: count from here.
    let (g0, h0) = (gets(&upstream), heads(&upstream));
    assert_eq!(digest_of(&server), first.top);
    assert_eq!((gets(&upstream), heads(&upstream)), (g0 + 1, h0));

    // Re-pushed upstream; within the TTL the cache answers alone.
    let second = upstream.push_oci(&LocalImage::generate(&["64K"]), REPO, "v1");
    assert_ne!(first.top, second.top);
    let (g, h) = (gets(&upstream), heads(&upstream));
    assert_eq!(
        digest_of(&server),
        first.top,
        "served the new tag before the TTL ran out"
    );
    assert_eq!(
        (gets(&upstream), heads(&upstream)),
        (g, h),
        "asked the upstream within the TTL"
    );

    // After the TTL: a HEAD sees the move, a GET fetches the new manifest.
    std::thread::sleep(TTL + Duration::from_millis(300));
    assert_eq!(digest_of(&server), second.top);
    assert_eq!((gets(&upstream), heads(&upstream)), (g + 1, h + 1));

    // After another TTL with no move: a HEAD only.
    std::thread::sleep(TTL + Duration::from_millis(300));
    assert_eq!(digest_of(&server), second.top);
    assert_eq!(
        (gets(&upstream), heads(&upstream)),
        (g + 1, h + 2),
        "a GET for an unmoved tag"
    );

    // Upstream gone: the cached tag is served, stale, and the log says so.
    upstream.stop();
    std::thread::sleep(TTL + Duration::from_millis(300));
    assert_eq!(digest_of(&server), second.top);
    assert!(
        server.log_text().contains("serving the cached copy"),
        "no log line for the stale answer"
    );
}
