//! Real clients pull through the server and get exactly the upstream's manifests and blobs.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::{
    Containerd, DockerImage, ImageTree, LocalImage, Podman, Relay, Server, SkopeoDir, Upstream,
    UPSTREAM_NAME,
};

const REPO: &str = "e2e/app";

/// An upstream holding one two-platform image as an OCI index (`v1`) and as a Docker
/// manifest list (`v1-docker`).
fn upstream_with_image() -> (Upstream, ImageTree, ImageTree) {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["1M", "2M"]);
    let oci = upstream.push_oci(&image, REPO, "v1");
    let docker = upstream.push_docker_list(&image, REPO, "v1-docker");
    (upstream, oci, docker)
}

/// What skopeo copies through the server: the tag or digest it names, and the upstream tree
/// the copy must match.
enum SkopeoSource {
    /// `v1` by tag: the OCI index.
    OciIndex,
    /// `v1-docker` by tag: the Docker manifest list.
    DockerManifestList,
    /// The OCI index by its digest.
    OciIndexByDigest,
}

/// `skopeo copy --all` of `source` through a fresh server (cold cache) gives exactly the
/// upstream's manifests and blobs.
fn skopeo_copy_matches_upstream(source: SkopeoSource) {
    let (upstream, oci, docker) = upstream_with_image();
    let server = Server::start(&upstream.url());
    let (reference, tree) = match source {
        SkopeoSource::OciIndex => (server.in_path_ref(REPO, "v1"), &oci),
        SkopeoSource::DockerManifestList => (server.in_path_ref(REPO, "v1-docker"), &docker),
        SkopeoSource::OciIndexByDigest => (
            format!("{}/{UPSTREAM_NAME}/{REPO}@{}", server.addr(), oci.top),
            &oci,
        ),
    };
    let copy = SkopeoDir::new();
    let out = copy.copy_all(&reference);
    assert!(
        out.success(),
        "{out}\n--- server log ---\n{}",
        server.log_tail()
    );
    copy.assert_matches(tree);
}

#[test]
fn skopeo_copy_all_in_path_oci_index_matches_upstream_digests() {
    skopeo_copy_matches_upstream(SkopeoSource::OciIndex);
}

#[test]
fn skopeo_copy_all_in_path_docker_manifest_list_matches_upstream_digests() {
    skopeo_copy_matches_upstream(SkopeoSource::DockerManifestList);
}

#[test]
fn skopeo_copy_by_digest_in_path_matches_upstream_digests() {
    skopeo_copy_matches_upstream(SkopeoSource::OciIndexByDigest);
}

#[test]
fn docker_pull_in_path_gives_upstream_image_id_and_repo_digest() {
    let (upstream, oci, docker) = upstream_with_image();
    let server = Server::start(&upstream.url());
    for (tag, tree) in [("v1", &oci), ("v1-docker", &docker)] {
        let reference = server.in_path_ref(REPO, tag);
        let (image, out) = DockerImage::pull(&reference);
        assert!(
            out.success(),
            "{out}\n--- server log ---\n{}",
            server.log_tail()
        );
        let inspect = image.inspect();
        // The host is amd64; Docker's image ID is the digest of the image config.
        assert_eq!(
            inspect["Id"].as_str(),
            Some(tree.platform("amd64").config.as_str()),
            "image ID of {reference}"
        );
        let expected = format!("{}/{UPSTREAM_NAME}/{REPO}@{}", server.addr(), tree.top);
        let repo_digests: Vec<&str> = inspect["RepoDigests"]
            .as_array()
            .expect("RepoDigests")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(
            repo_digests.contains(&expected.as_str()),
            "RepoDigests {repo_digests:?} lacks {expected}"
        );
    }
}

/// containerd with a `_default` mirror: every request carries `?ns=upstream.test`, the pull
/// (with unpack) succeeds and records the upstream's digests.
fn containerd_pull(platform: Option<&str>, architecture: &str) {
    let (upstream, oci, _) = upstream_with_image();
    let server = Server::start(&upstream.url());
    // Recording relay in front of the server, to see what containerd sends.
    let recorder = Relay::start(server.port, 0);
    let containerd = Containerd::start();
    containerd.set_default_mirror(&format!("127.0.0.1:{}", recorder.port));
    let reference = format!("{UPSTREAM_NAME}/{REPO}:v1");
    let out = containerd.pull(&reference, platform);
    assert!(
        out.success(),
        "{out}\n--- server log ---\n{}",
        server.log_tail()
    );

    assert_eq!(containerd.image_digest(&reference), oci.top);
    let content = containerd.content_digests();
    let wanted = oci.platform(architecture);
    for digest in std::iter::once(&wanted.manifest).chain(wanted.blobs().iter()) {
        assert!(
            content.contains(digest),
            "containerd content store lacks {digest} of {architecture}; has {content:?}"
        );
    }
    assert!(
        containerd.snapshot_count() >= wanted.layers.len(),
        "the image was not unpacked"
    );

    let requests = recorder.requests();
    assert!(
        !requests.is_empty(),
        "containerd sent nothing to the mirror"
    );
    for line in &requests {
        assert!(
            line.contains(&format!("ns={UPSTREAM_NAME}")),
            "mirror request without ?ns={UPSTREAM_NAME}: {line}"
        );
    }
}

#[test]
fn containerd_pull_through_default_mirror_with_ns_matches_upstream_digests() {
    containerd_pull(None, "amd64");
}

#[test]
fn containerd_pull_arm64_platform_through_default_mirror_matches_upstream_digests() {
    containerd_pull(Some("linux/arm64"), "arm64");
}

#[test]
fn podman_pull_in_path_gives_upstream_image_id_and_digests() {
    let (upstream, oci, _) = upstream_with_image();
    let server = Server::start(&upstream.url());
    let podman = Podman::new();
    let reference = server.in_path_ref(REPO, "v1");
    let out = podman.pull(&reference);
    assert!(
        out.success(),
        "{out}\n--- server log ---\n{}",
        server.log_tail()
    );
    let inspect = podman.inspect(&reference);
    let amd64 = oci.platform("amd64");
    assert_eq!(
        inspect["Id"].as_str(),
        Some(support::hex_of(&amd64.config)),
        "podman image ID"
    );
    assert_eq!(inspect["Digest"].as_str(), Some(oci.top.as_str()));
    let repo_digests: Vec<&str> = inspect["RepoDigests"]
        .as_array()
        .expect("RepoDigests")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let name = format!("{}/{UPSTREAM_NAME}/{REPO}", server.addr());
    for digest in [&oci.top, &amd64.manifest] {
        let expected = format!("{name}@{digest}");
        assert!(
            repo_digests.contains(&expected.as_str()),
            "RepoDigests {repo_digests:?} lacks {expected}"
        );
    }
}
