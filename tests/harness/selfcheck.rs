//! Checks of the test harness itself against the real upstream registry, without our server.
//! When these fail, the environment (tools, loopback, permissions) is at fault, not the server.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::http;
use support::{Containerd, LocalImage, Relay, SkopeoDir, Upstream};

#[test]
fn generated_image_is_pushed_unchanged_and_copied_back_byte_for_byte() {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["64K", "128K"]);
    let oci = upstream.push_oci(&image, "selfcheck/img", "v1");
    assert_eq!(oci.platforms.len(), 2);
    for (platform, described) in oci
        .platforms
        .iter()
        .zip(image.description["platforms"].as_array().unwrap())
    {
        assert_eq!(platform.manifest, described["manifest"].as_str().unwrap());
        assert_eq!(platform.config, described["config"].as_str().unwrap());
    }
    let list = upstream.push_docker_list(&image, "selfcheck/img", "v1-docker");
    assert_ne!(list.top, oci.top);
    assert_eq!(list.blob_digests(), oci.blob_digests());

    let copy = SkopeoDir::new();
    copy.copy_all(&format!("{}/selfcheck/img:v1", upstream.addr()))
        .expect_success();
    copy.assert_matches(&oci);

    let blob = &oci.platform("amd64").layers[0];
    assert_eq!(
        upstream.count_requests("GET", &format!("/v2/selfcheck/img/blobs/{blob}")),
        1,
        "the access log must show the one GET of the copy"
    );
}

#[test]
fn upstream_stops_and_restarts_on_the_same_port_with_its_content() {
    let mut upstream = Upstream::start();
    let image = LocalImage::generate_for(&["16K"], "linux/amd64");
    let tree = upstream.push_oci(&image, "selfcheck/restart", "v1");
    upstream.stop();
    assert!(http::request(upstream.port, "GET", "/v2/", &[]).is_err());
    upstream.restart();
    assert_eq!(upstream.image_tree("selfcheck/restart", "v1").top, tree.top);
}

#[test]
fn relay_throttles_upstream_responses() {
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["600K"], "linux/amd64");
    let tree = upstream.push_oci(&image, "selfcheck/relay", "v1");
    let (layer, size) = tree.largest_layer();
    let relay = Relay::start(upstream.port, 300 * 1024);
    let start = Instant::now();
    let r = http::get(relay.port, &format!("/v2/selfcheck/relay/blobs/{layer}"));
    let took = start.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, size);
    assert_eq!(format!("sha256:{}", support::sha256_hex(&r.body)), layer);
    assert!(
        took >= Duration::from_millis(1500),
        "{size} bytes at 300 KiB/s took only {took:?}"
    );
    assert!(relay
        .requests()
        .iter()
        .any(|l| l.starts_with("GET /v2/selfcheck/relay/blobs/")));
}

#[test]
fn containerd_pulls_through_a_default_mirror() {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["64K"]);
    let tree = upstream.push_oci(&image, "selfcheck/ctr", "v1");
    let relay = Relay::start(upstream.port, 0);
    let containerd = Containerd::start();
    containerd.set_default_mirror(&format!("127.0.0.1:{}", relay.port));
    let reference = "upstream.test/selfcheck/ctr:v1";
    containerd.pull(reference, None).expect_success();
    assert_eq!(containerd.image_digest(reference), tree.top);
    let requests = relay.requests();
    assert!(!requests.is_empty());
    for line in &requests {
        assert!(
            line.contains("ns=upstream.test"),
            "containerd mirror request without ?ns=: {line}"
        );
    }
}
