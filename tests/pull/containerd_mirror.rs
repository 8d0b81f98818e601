//! containerd configured as users configure it: the example `hosts.toml`, and a second mirror
//! to fall back on when ours is down.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::{free_port, Containerd, LocalImage, Server, Upstream, UPSTREAM_NAME};

const REPO: &str = "e2e/mirror";

#[test]
fn the_example_default_hosts_toml_mirrors_pulls_through_the_server() {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["1M"]);
    let tree = upstream.push_oci(&image, REPO, "v1");
    let server = Server::start(&upstream.url());
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/containerd/certs.d/_default/hosts.toml"
    ))
    .expect("example hosts.toml");
    assert!(example.contains("ociregistry.example.internal:8080"));
    let containerd = Containerd::start();
    containerd.set_hosts_toml(
        "_default",
        &example.replace("ociregistry.example.internal:8080", &server.addr()),
    );
    let reference = format!("{UPSTREAM_NAME}/{REPO}:v1");
    let out = containerd.pull(&reference, None);
    assert!(out.success(), "ctr pull: {out}\n{}", server.log_tail());
    assert_eq!(containerd.image_digest(&reference), tree.top);
    assert!(
        server.log_text().contains("ns=upstream.test"),
        "requests did not reach the server through the mirror"
    );
}

#[test]
fn containerd_falls_back_to_the_next_host_when_the_server_is_down() {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["1M"]);
    let tree = upstream.push_oci(&image, REPO, "v1");
    // Our server's address, with nothing listening: it is down.
    let down = format!("127.0.0.1:{}", free_port());
    let containerd = Containerd::start();
    containerd.set_hosts_toml(
        "_default",
        &format!(
            "[host.\"http://{down}\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n\
             [host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            upstream.addr()
        ),
    );
    let reference = format!("{UPSTREAM_NAME}/{REPO}:v1");
    let out = containerd.pull(&reference, None);
    assert!(out.success(), "ctr pull with the first mirror down: {out}");
    assert_eq!(containerd.image_digest(&reference), tree.top);
}
