//! The container image: built with the README's command from the binary under test, run as a
//! non-root user with its cache in a volume, pulled through by skopeo and containerd, and
//! stopped cleanly by SIGTERM.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;

use support::container::{
    containerfile_base, ensure_base_image, repo_root, require_docker, unique_name, BuiltImage,
    Container,
};
use support::{free_port, Containerd, LocalImage, SkopeoDir, Upstream, UPSTREAM_NAME};

const REPO: &str = "e2e/app";

/// The README's image build command: one line in a shell block, `cargo build --release ...
/// && docker build ...`.
fn readme_build_command() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("read README.md");
    let mut in_shell = false;
    let mut found = Vec::new();
    for line in readme.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_shell = !in_shell && trimmed == "```shell";
            continue;
        }
        if in_shell && trimmed.contains("docker build") {
            found.push(trimmed.to_string());
        }
    }
    assert_eq!(
        found.len(),
        1,
        "README.md has one `docker build` command in a shell block: {found:?}"
    );
    found.remove(0)
}

/// The `docker build` part of the README's command, with its tag replaced by `tag`, as
/// arguments after `docker`. Its `cargo build --release` part is checked, not run: the test
/// image copies the binary this test run already built.
fn docker_build_args(command: &str, tag: &str) -> Vec<String> {
    let (cargo, build) = command
        .split_once("&&")
        .unwrap_or_else(|| panic!("`cargo build ... && docker build ...`: {command}"));
    let cargo: Vec<&str> = cargo.split_whitespace().collect();
    assert_eq!(
        &cargo[..3],
        ["cargo", "build", "--release"],
        "the README builds the release binary first: {command}"
    );
    let mut args: Vec<String> = build.split_whitespace().map(str::to_string).collect();
    assert_eq!(args.remove(0), "docker", "{command}");
    assert_eq!(args[0], "build", "{command}");
    let t = args
        .iter()
        .position(|a| a == "-t" || a == "--tag")
        .unwrap_or_else(|| panic!("the README's build names the image with -t: {command}"));
    args[t + 1] = tag.to_string();
    args
}

/// The bytes of `Sending build context to Docker daemon  206.1MB`, when the builder says it.
fn context_bytes(build_output: &str) -> Option<f64> {
    let size = build_output
        .lines()
        .find_map(|l| l.strip_prefix("Sending build context to Docker daemon"))?
        .trim();
    let split = size.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = size.split_at(split);
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unknown size unit {other:?} in {size:?}"),
    };
    Some(number.parse::<f64>().expect("context size") * scale)
}

#[test]
fn readme_command_builds_an_image_that_serves_pulls_as_non_root_and_stops_on_sigterm() {
    require_docker();
    ensure_base_image(&containerfile_base());

    let tag = format!("{}:test", unique_name("e2e-ociregistry-image"));
    let args = docker_build_args(&readme_build_command(), &tag);
    let image = BuiltImage::build(&args, &tag, Path::new(env!("CARGO_BIN_EXE_ociregistry")));

    // The legacy builder reports the context it sent: the staged binary and the release one
    // (when built), never the rest of the checkout's `target/`.
    let size = |p: &str| std::fs::metadata(repo_root().join(p)).map_or(0, |m| m.len()) as f64;
    let allowed = size(env!("CARGO_BIN_EXE_ociregistry")) + size("target/release/ociregistry");
    if let Some(sent) = context_bytes(&image.output.stdout) {
        assert!(
            sent <= allowed * 1.01 + 1e6,
            "build context of {sent} bytes for {allowed} bytes of binaries: the ignore file leaks"
        );
    }

    let config = image.inspect()["Config"].clone();
    assert_eq!(config["User"], "10001:10001", "runs as a non-root user");
    assert!(
        config["Volumes"].get("/var/lib/ociregistry").is_some(),
        "the cache is a volume: {config}"
    );

    let upstream = Upstream::start();
    let pushed = LocalImage::generate(&["1M", "2M"]);
    let tree = upstream.push_oci(&pushed, REPO, "v1");

    let dir = tempfile::Builder::new()
        .prefix("e2e-image-config-")
        .tempdir()
        .expect("config dir");
    let config_file = dir.path().join("config.yaml");
    std::fs::write(
        &config_file,
        format!(
            "registries:\n  - name: {UPSTREAM_NAME}\n    scheme: http\n    endpoint: {}\n",
            upstream.url()
        ),
    )
    .expect("write config");
    let port = free_port();
    let container = Container::run(
        &image.tag,
        &[
            "-v".to_string(),
            format!("{}:/etc/ociregistry/config.yaml:ro", config_file.display()),
        ],
        &[
            "--config-file",
            "/etc/ociregistry/config.yaml",
            "--log-level",
            "info",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ]
        .map(str::to_string),
    );
    container.wait_ready(port);

    let uid = container.exec(&["id", "-u"]).expect_success().stdout;
    assert_eq!(uid.trim(), "10001", "the server's user in the container");

    let addr = format!("127.0.0.1:{port}");
    let copy = SkopeoDir::new();
    let out = copy.copy_all(&format!("{addr}/{UPSTREAM_NAME}/{REPO}:v1"));
    assert!(
        out.success(),
        "{out}\n--- container log ---\n{}",
        container.logs()
    );
    copy.assert_matches(&tree);

    let containerd = Containerd::start();
    containerd.set_default_mirror(&addr);
    let reference = format!("{UPSTREAM_NAME}/{REPO}:v1");
    let out = containerd.pull(&reference, Some("linux/amd64"));
    assert!(
        out.success(),
        "{out}\n--- container log ---\n{}",
        container.logs()
    );
    assert_eq!(containerd.image_digest(&reference), tree.top);

    // Every blob the pulls fetched is in the volume, written by the non-root user.
    let listing = container
        .exec(&[
            "find",
            "/var/lib/ociregistry/blobs",
            "-type",
            "f",
            "-user",
            "10001",
        ])
        .expect_success()
        .stdout;
    let stored: std::collections::BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .map(|hex| format!("sha256:{hex}"))
        .collect();
    assert_eq!(stored, tree.blob_digests(), "blobs in the image's volume");

    let code = container.stop(30);
    let logs = container.logs();
    assert_eq!(code, 0, "SIGTERM stops the server cleanly:\n{logs}");
    assert_eq!(
        container.inspect()["State"]["OOMKilled"],
        false,
        "not killed: {logs}"
    );
}

#[test]
fn docker_reads_the_same_ignore_file_as_podman_and_it_sends_only_one_binary() {
    let root = repo_root();
    let link = std::fs::read_link(root.join(".dockerignore")).expect(".dockerignore is a link");
    assert_eq!(link, Path::new(".containerignore"));
    let ignore = std::fs::read_to_string(root.join(".containerignore")).expect("read ignore");
    let rules: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules.first(), Some(&"*"), "everything is left out first");
    assert!(
        rules[1..]
            .iter()
            .all(|r| *r == "!target/release/ociregistry" || *r == "!target/image-context"),
        "only built binaries are sent: {rules:?}"
    );
    assert!(
        !rules.contains(&"!target/debug/ociregistry"),
        "a release image build must not send the debug binary"
    );
}
