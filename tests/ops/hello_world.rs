//! `serve --hello-world`: the embedded image pulls through real clients with no upstream at all,
//! and runs: Docker and containerd start it, it prints its greeting and exits 0.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::{Containerd, DockerImage, Server, ServerOptions, SkopeoDir};

/// `linux/amd64` or `linux/arm64`: the platform the greeting names when run here.
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no hello-world program for {other}"),
    };
    format!("linux/{arch}")
}

#[test]
fn hello_world_pulls_with_skopeo_and_containerd_without_any_upstream() {
    // Nothing listens on the discard port: any upstream contact would fail.
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--hello-world".into()],
        ..ServerOptions::new("http://127.0.0.1:9")
    });
    let copy = SkopeoDir::new();
    let reference = format!("{}/docker.io/library/hello-world:latest", server.addr());
    let out = copy.copy_all(&reference);
    assert!(out.success(), "skopeo: {out}\n{}", server.log_tail());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy.out().join("manifest.json")).unwrap()).unwrap();
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    let containerd = Containerd::start();
    containerd.set_default_mirror(&server.addr());
    for platform in ["linux/amd64", "linux/arm64"] {
        let out = containerd.pull("docker.io/library/hello-world:latest", Some(platform));
        assert!(
            out.success(),
            "ctr pull --platform {platform}: {out}\n{}",
            server.log_tail()
        );
    }
    assert!(server.log_text().contains("ns=docker.io"));
    // `ctr run` of the host's platform: the program prints its greeting and exits 0.
    let name = format!("e2e-hello-{}", server.port);
    let out = containerd.run_container("docker.io/library/hello-world:latest", &name);
    assert!(out.success(), "ctr run: {out}\n{}", server.log_tail());
    assert!(
        out.stdout.contains("Hello from ociregistry!"),
        "ctr run: {out}"
    );
    assert!(out.stdout.contains(&host_platform()), "ctr run: {out}");
    // A miss is a 404, never an upstream call.
    let r = support::http::get_manifest(server.port, "/v2/docker.io/library/busybox/manifests/1");
    assert_eq!(r.status, 404, "{}", r.summary());
}

#[test]
fn docker_runs_the_embedded_hello_world_which_prints_its_greeting_and_exits_0() {
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--hello-world".into()],
        ..ServerOptions::new("http://127.0.0.1:9")
    });
    // The port makes the reference, and so the image in Docker's store, this test's own.
    let reference = format!("{}/docker.io/library/hello-world:latest", server.addr());
    let (image, out) = DockerImage::pull(&reference);
    assert!(out.success(), "docker pull: {out}\n{}", server.log_tail());
    let out = image.run();
    assert!(out.success(), "docker run: {out}\n{}", server.log_tail());
    assert!(
        out.stdout.contains("Hello from ociregistry!"),
        "docker run: {out}"
    );
    assert!(out.stdout.contains(&host_platform()), "docker run: {out}");
}
