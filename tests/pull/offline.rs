//! Offline-first: what is cached is served when the upstream is gone, across restarts, and an
//! air-gapped server never calls the upstream.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::http;
use support::{
    Containerd, ImageTree, LocalImage, Server, ServerOptions, SkopeoDir, Upstream, UPSTREAM_NAME,
};

const REPO: &str = "e2e/offline";

fn upstream_with_image() -> (Upstream, ImageTree, ImageTree) {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["1M", "1M"]);
    let oci = upstream.push_oci(&image, REPO, "v1");
    let docker = upstream.push_docker_list(&image, REPO, "v1-docker");
    (upstream, oci, docker)
}

fn skopeo_pull_matches(server: &Server, tag: &str, tree: &ImageTree, when: &str) {
    let copy = SkopeoDir::new();
    let out = copy.copy_all(&server.in_path_ref(REPO, tag));
    assert!(
        out.success(),
        "skopeo pull of {tag} {when}: {out}\n--- server log ---\n{}",
        server.log_tail()
    );
    copy.assert_matches(tree);
}

#[test]
fn skopeo_pulls_succeed_from_cache_with_upstream_stopped_and_after_server_restart() {
    let (mut upstream, oci, docker) = upstream_with_image();
    let mut server = Server::start(&upstream.url());
    for (tag, tree) in [("v1", &oci), ("v1-docker", &docker)] {
        skopeo_pull_matches(&server, tag, tree, "with the upstream up");
    }

    upstream.stop();
    for (tag, tree) in [("v1", &oci), ("v1-docker", &docker)] {
        skopeo_pull_matches(&server, tag, tree, "with the upstream stopped");
    }

    server.restart();
    for (tag, tree) in [("v1", &oci), ("v1-docker", &docker)] {
        skopeo_pull_matches(
            &server,
            tag,
            tree,
            "after a server restart with the upstream stopped",
        );
    }
}

fn ctr_pull_matches(server: &Server, tree: &ImageTree, when: &str) {
    // A fresh containerd each time, so that nothing comes from its own content store.
    let containerd = Containerd::start();
    containerd.set_default_mirror(&server.addr());
    let reference = format!("{UPSTREAM_NAME}/{REPO}:v1");
    let out = containerd.pull(&reference, None);
    assert!(
        out.success(),
        "ctr pull {when}: {out}\n--- server log ---\n{}",
        server.log_tail()
    );
    assert_eq!(containerd.image_digest(&reference), tree.top, "{when}");
    let content = containerd.content_digests();
    for digest in tree.platform("amd64").blobs() {
        assert!(
            content.contains(&digest),
            "{when}: containerd lacks {digest}"
        );
    }
}

#[test]
fn containerd_pulls_succeed_from_cache_with_upstream_stopped_and_after_server_restart() {
    let (mut upstream, oci, _) = upstream_with_image();
    let mut server = Server::start(&upstream.url());
    ctr_pull_matches(&server, &oci, "with the upstream up");
    upstream.stop();
    ctr_pull_matches(&server, &oci, "with the upstream stopped");
    server.restart();
    ctr_pull_matches(
        &server,
        &oci,
        "after a server restart with the upstream stopped",
    );
}

#[test]
fn air_gapped_miss_is_manifest_unknown_without_any_upstream_request() {
    let (upstream, oci, _) = upstream_with_image();
    let mark = upstream.log_mark();
    let server = Server::start_with(ServerOptions {
        air_gapped: true,
        ..ServerOptions::new(&upstream.url())
    });

    let r = http::get_manifest(server.port, &server.manifest_path(REPO, "v1"));
    r.assert_oci_error(404, "MANIFEST_UNKNOWN");
    let r = http::get_manifest(
        server.port,
        &format!("/v2/{REPO}/manifests/{}?ns={UPSTREAM_NAME}", oci.top),
    );
    assert_eq!(r.status, 404, "{}", r.summary());
    assert_eq!(
        r.oci_error_codes(),
        Some(vec!["MANIFEST_UNKNOWN".to_string()]),
        "{}",
        r.summary()
    );
    let layer = &oci.platform("amd64").layers[0];
    let r = http::get(server.port, &server.blob_path(REPO, layer));
    assert_eq!(r.status, 404, "{}", r.summary());
    assert_eq!(
        r.oci_error_codes(),
        Some(vec!["BLOB_UNKNOWN".to_string()]),
        "{}",
        r.summary()
    );

    let seen = upstream.requests_since(mark);
    assert!(
        seen.is_empty(),
        "an air-gapped server called the upstream: {seen:?}"
    );
}

#[test]
fn air_gapped_server_serves_what_the_cache_holds_without_upstream_requests() {
    let (upstream, oci, _) = upstream_with_image();
    let mut server = Server::start(&upstream.url());
    skopeo_pull_matches(&server, "v1", &oci, "to fill the cache");

    server.restart_with(ServerOptions {
        air_gapped: true,
        ..server.options.clone()
    });
    let mark = upstream.log_mark();
    skopeo_pull_matches(&server, "v1", &oci, "from an air-gapped server");
    let seen = upstream.requests_since(mark);
    assert!(
        seen.is_empty(),
        "an air-gapped server called the upstream: {seen:?}"
    );
}

#[test]
fn uncached_pull_with_upstream_stopped_is_a_gateway_error_naming_the_upstream() {
    let (mut upstream, oci, _) = upstream_with_image();
    let server = Server::start(&upstream.url());
    upstream.stop();
    let targets = [
        server.manifest_path(REPO, "v1"),
        server.blob_path(REPO, &oci.platform("amd64").layers[0]),
    ];
    for target in &targets {
        let r = http::get_manifest(server.port, target);
        // The first failure opens the upstream's breaker: the next request is refused at once
        // with 503 and a Retry-After instead of failing the same way again.
        let unreachable = r.status == 503 && r.header("Retry-After").is_some();
        assert!(
            r.status == 502 || r.status == 504 || unreachable,
            "{target} with the upstream stopped: {}",
            r.summary()
        );
        assert!(
            r.oci_error_codes().is_some(),
            "{target}: not an OCI error body: {}",
            r.summary()
        );
        assert!(
            r.text().contains(UPSTREAM_NAME),
            "{target}: the error does not name the upstream: {}",
            r.summary()
        );
    }
    assert_eq!(http::get(server.port, "/v2/").status, 200);
}
