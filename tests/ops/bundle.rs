//! Bundles for the air gap (`export`, `import`, `load --archive`) and preloading from
//! Kubernetes manifests (`load --from-manifests`): real upstream, real binary, real clients.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::ops::{code, Workspace};
use support::proc::{run, Output};
use support::{
    hex_of, require_tool, Containerd, ImageTree, LocalImage, Server, ServerOptions, SkopeoDir,
    Upstream, UPSTREAM_NAME,
};

const BINARY: &str = env!("CARGO_BIN_EXE_ociregistry");

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("e2e-bundle-")
        .tempdir()
        .expect("temp dir")
}

fn air_gapped(upstream: &Upstream, cache: &Path) -> Server {
    Server::start_with(ServerOptions {
        air_gapped: true,
        cache_dir: Some(cache.to_path_buf()),
        ..ServerOptions::new(&upstream.url())
    })
}

fn skopeo(args: &[&str]) -> Output {
    require_tool("skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.arg("--insecure-policy").args(args);
    run(&mut cmd, Duration::from_secs(120))
}

/// Every content file of the cache (`blobs`, `fat`, `img`, `lts`, `tmp`).
fn cache_content(ws: &Workspace) -> Vec<String> {
    ["blobs", "fat", "img", "lts", "tmp"]
        .iter()
        .flat_map(|d| ws.files(d).into_iter().map(move |f| format!("{d}/{f}")))
        .collect()
}

#[test]
fn an_exported_bundle_imported_into_a_fresh_cache_serves_skopeo_and_containerd_air_gapped() {
    let mut upstream = Upstream::start();
    let a = upstream.push_oci(
        &LocalImage::generate(&["300K", "200K"]),
        "e2e/bundle-a",
        "v1",
    );
    let b = upstream.push_docker_list(&LocalImage::generate(&["100K"]), "e2e/bundle-b", "v1");
    let out_dir = temp_dir();
    let bundle = out_dir.path().join("bundle.tar");
    let bundle_arg = bundle.to_str().unwrap();

    let connected = Workspace::new(&upstream.url());
    let list = connected.file(
        "images.txt",
        &format!("{UPSTREAM_NAME}/e2e/bundle-a:v1\n{UPSTREAM_NAME}/e2e/bundle-b:v1\n"),
    );
    let out = connected.run(&[
        "export",
        "--image-file",
        list.to_str().unwrap(),
        "--all-platforms",
        "-o",
        bundle_arg,
    ]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("2 image(s) exported"), "{out}");

    // skopeo reads the archive by the full reference, every digest the upstream's. (skopeo
    // looks names up among OCI-typed entries only, so the Docker list is checked after import.)
    let copy = SkopeoDir::new();
    let src = format!("oci-archive:{bundle_arg}:{UPSTREAM_NAME}/e2e/bundle-a:v1");
    let dest = format!("dir:{}", copy.out().display());
    let out = skopeo(&["copy", "--all", &src, &dest]);
    assert!(out.success(), "skopeo reads the bundle: {out}");
    copy.assert_matches(&a);

    upstream.stop();
    let gapped = Workspace::new(&upstream.url());
    let out = gapped.run(&["import", bundle_arg]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("2 loaded, 0 already cached, 0 failed"),
        "{out}"
    );
    let again = gapped.run(&["import", bundle_arg]);
    assert!(
        again
            .stdout
            .contains("0 loaded, 2 already cached, 0 failed"),
        "{again}"
    );

    let server = air_gapped(&upstream, &gapped.cache);
    for (repo, tree) in [("e2e/bundle-a", &a), ("e2e/bundle-b", &b)] {
        let copy = SkopeoDir::new();
        let out = copy.copy_all(&server.in_path_ref(repo, "v1"));
        assert!(
            out.success(),
            "{repo} from the imported cache: {out}\n{}",
            server.log_tail()
        );
        copy.assert_matches(tree);
    }
    let containerd = Containerd::start();
    containerd.set_default_mirror(&server.addr());
    let reference = format!("{UPSTREAM_NAME}/e2e/bundle-a:v1");
    let out = containerd.pull(&reference, Some("linux/amd64"));
    assert!(out.success(), "ctr pull: {out}\n{}", server.log_tail());
    assert_eq!(containerd.image_digest(&reference), a.top);
    let content = containerd.content_digests();
    for d in a.platform("amd64").blobs() {
        assert!(content.contains(&d), "containerd lacks {d}");
    }
}

/// Flips one byte of the file `name` inside the tar archive at `path`.
fn tamper(path: &Path, name: &str) {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut at = None;
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(name) {
            at = Some(entry.raw_file_position() + entry.size() / 2);
        }
    }
    let at = at.unwrap_or_else(|| panic!("{name} is not in {}", path.display())) as usize;
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_bundle_is_rejected_and_leaves_nothing_in_the_cache() {
    let mut upstream = Upstream::start();
    let tree = upstream.push_oci(&LocalImage::generate(&["200K"]), "e2e/bundle-bad", "v1");
    let out_dir = temp_dir();
    let bundle = out_dir.path().join("bundle.tar");
    let connected = Workspace::new(&upstream.url());
    let list = connected.file(
        "images.txt",
        &format!("{UPSTREAM_NAME}/e2e/bundle-bad:v1\n"),
    );
    let out = connected.run(&[
        "export",
        "--image-file",
        list.to_str().unwrap(),
        "--platform",
        "linux/amd64",
        "-o",
        bundle.to_str().unwrap(),
    ]);
    assert!(out.success(), "{out}");
    upstream.stop();

    let layer = &tree.platform("amd64").layers[0];
    tamper(&bundle, &format!("blobs/sha256/{}", hex_of(layer)));
    let gapped = Workspace::new(&upstream.url());
    for args in [
        vec!["import", bundle.to_str().unwrap()],
        vec!["load", "--archive", bundle.to_str().unwrap()],
    ] {
        let out = gapped.run(&args);
        assert_eq!(code(&out), 1, "{args:?}: {out}");
        assert!(
            out.stdout.contains("0 loaded, 0 already cached, 1 failed"),
            "{out}"
        );
        assert!(
            out.stderr.contains(layer.as_str()) && out.stderr.contains("damaged"),
            "the error names the damaged blob: {out}"
        );
        assert_eq!(cache_content(&gapped), Vec::<String>::new(), "{args:?}");
    }
}

#[test]
fn an_archive_written_by_skopeo_is_imported_under_its_reference() {
    let mut upstream = Upstream::start();
    let tree = upstream.push_oci(
        &LocalImage::generate(&["100K", "100K"]),
        "e2e/bundle-skopeo",
        "v2",
    );
    let out_dir = temp_dir();
    let archive = out_dir.path().join("skopeo.tar");
    let src = format!("docker://{}/e2e/bundle-skopeo:v2", upstream.addr());
    let dest = format!(
        "oci-archive:{}:{UPSTREAM_NAME}/e2e/bundle-skopeo:v2",
        archive.display()
    );
    let out = skopeo(&["copy", "--all", "--src-tls-verify=false", &src, &dest]);
    assert!(out.success(), "{out}");
    upstream.stop();

    let gapped = Workspace::new(&upstream.url());
    let out = gapped.run(&["load", "--archive", archive.to_str().unwrap()]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "loaded          {UPSTREAM_NAME}/e2e/bundle-skopeo:v2"
        )),
        "{out}"
    );
    let server = air_gapped(&upstream, &gapped.cache);
    let copy = SkopeoDir::new();
    let out = copy.copy_all(&server.in_path_ref("e2e/bundle-skopeo", "v2"));
    assert!(out.success(), "{out}\n{}", server.log_tail());
    copy.assert_matches(&tree);
}

const MANIFESTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  image: upstream.test/e2e/not-an-image:v1
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: upstream.test/e2e/k8s-web:v1
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: job
              image: "upstream.test/e2e/k8s-job:v1"
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
spec:
  initContainers:
    - name: init
      image: upstream.test/e2e/k8s-init:v1
  containers:
    - name: again
      image: upstream.test/e2e/k8s-web:v1
"#;

fn push_k8s_images(upstream: &Upstream) -> Vec<ImageTree> {
    ["e2e/k8s-web", "e2e/k8s-job", "e2e/k8s-init"]
        .iter()
        .map(|repo| upstream.push_oci(&LocalImage::generate(&["50K"]), repo, "v1"))
        .collect()
}

fn assert_cached(ws: &Workspace, trees: &[ImageTree]) {
    let blobs = ws.files("blobs");
    for t in trees {
        for d in t.platform("amd64").blobs() {
            assert!(blobs.contains(&hex_of(&d).to_string()), "{d} missing");
        }
    }
}

#[test]
fn load_from_manifests_reads_a_file_and_standard_input() {
    let upstream = Upstream::start();
    let trees = push_k8s_images(&upstream);

    let ws = Workspace::new(&upstream.url());
    let file = ws.file("rendered.yaml", MANIFESTS);
    let out = ws.run(&[
        "load",
        "--from-manifests",
        file.to_str().unwrap(),
        "--platform",
        "linux/amd64",
    ]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("3 loaded, 0 already cached, 0 failed"),
        "three distinct workload images: {out}"
    );
    assert!(!out.stdout.contains("not-an-image"), "{out}");
    assert_cached(&ws, &trees);

    // `helm template ... | ociregistry load --from-manifests -`
    let piped = Workspace::new(&upstream.url());
    // The harness gives commands no standard input: the shell redirects the file onto it.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"exec "$0" "$@" < "$MANIFESTS_FILE""#, BINARY])
        .env("MANIFESTS_FILE", &file)
        .arg("--image-path")
        .arg(&piped.cache)
        .arg("--config-file")
        .arg(&piped.config)
        .args(["load", "--from-manifests", "-", "--platform", "linux/amd64"]);
    let out = run(&mut cmd, Duration::from_secs(180));
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("3 loaded, 0 already cached, 0 failed"),
        "{out}"
    );
    assert_cached(&piped, &trees);
}
