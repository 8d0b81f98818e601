//! The podman/skopeo mirror configuration from `examples/registries.conf`: pulls of an
//! upstream's own name go through the server in the in-path form.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use support::{LocalImage, Server, Upstream, UPSTREAM_NAME};

const REPO: &str = "e2e/regconf";

#[test]
fn skopeo_with_the_example_registries_conf_pulls_through_the_server() {
    support::require_tool("skopeo");
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["1M"]);
    let tree = upstream.push_oci(&image, REPO, "v1");
    let server = Server::start(&upstream.url());

    // The example's quay.io entry, pointed at this server and this test's upstream name.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/registries.conf"
    ))
    .unwrap();
    let start = example
        .find("[[registry]]\nprefix = \"quay.io\"")
        .expect("quay.io entry");
    let end = start
        + 1
        + example[start + 1..]
            .find("\n\n[[registry]]")
            .expect("end of entry");
    // Should the mirror fail, the fallback is a closed loopback port, never a name lookup.
    let entry = example[start..end]
        .replace(
            "location = \"quay.io\"",
            "location = \"127.0.0.1:9/quay.io\"",
        )
        .replace("quay.io", UPSTREAM_NAME)
        .replace("ociregistry.example.internal:8080", &server.addr());
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, &entry).unwrap();

    let out = support::proc::run(
        Command::new("skopeo")
            .arg("--registries-conf")
            .arg(&conf)
            .args(["inspect", "--raw", "--retry-times", "0"])
            .arg(format!("docker://{UPSTREAM_NAME}/{REPO}:v1")),
        Duration::from_secs(120),
    );
    assert!(
        out.success(),
        "skopeo through the mirror entry:\n{entry}\n{out}"
    );
    assert_eq!(
        support::sha256_hex(out.stdout.as_bytes()),
        support::hex_of(&tree.top)
    );
    let log = server.log_text();
    assert!(
        log.contains(&format!("/v2/{UPSTREAM_NAME}/{REPO}/manifests/v1")),
        "the pull did not go through the server:\n{log}"
    );
}
