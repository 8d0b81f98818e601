//! Referrers (signatures, SBOMs): passed through from the upstream, kept with their subject, and
//! answered from the cache when the upstream is gone; `artifactType` filters the list.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{http, LocalImage, Server, Upstream};

const REPO: &str = "e2e/refs";
const SBOM: &str = "application/vnd.example.sbom";
const SIG: &str = "application/vnd.example.signature";

/// `curl` with a deadline; the output, or a panic naming the command.
fn curl(args: &[&str]) -> String {
    support::proc::run(
        Command::new("curl").args(["-sS", "--fail"]).args(args),
        Duration::from_secs(30),
    )
    .expect_success()
    .stdout
}

/// Uploads a blob in one request (POST for a session, PUT with the digest).
fn push_blob(upstream: &Upstream, bytes: &[u8]) -> serde_json::Value {
    let digest = format!("sha256:{}", support::sha256_hex(bytes));
    let head = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        &format!("{}/v2/{REPO}/blobs/uploads/", upstream.url()),
    ]);
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .expect("upload location")
        .trim()
        .to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = if location.starts_with("http") {
        format!("{location}{sep}digest={digest}")
    } else {
        format!("{}{location}{sep}digest={digest}", upstream.url())
    };
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.path().display()),
        &url,
    ]);
    json!({"digest": digest, "size": bytes.len()})
}

fn push_manifest(
    upstream: &Upstream,
    reference: &str,
    media_type: &str,
    doc: &serde_json::Value,
) -> serde_json::Value {
    let bytes = serde_json::to_vec(doc).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &bytes).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {media_type}"),
        "--data-binary",
        &format!("@{}", file.path().display()),
        &format!("{}/v2/{REPO}/manifests/{reference}", upstream.url()),
    ]);
    json!({"digest": format!("sha256:{}", support::sha256_hex(&bytes)), "size": bytes.len()})
}

/// Pushes two artifacts referring to `subject` the way registries without the referrers API
/// keep them: an index tagged `sha256-<hex>` (the referrers tag schema).
fn push_referrers(upstream: &Upstream, subject: &str, subject_size: u64) -> Vec<String> {
    let config = push_blob(upstream, b"{}");
    let mut entries = Vec::new();
    for (kind, content) in [(SBOM, &b"sbom"[..]), (SIG, &b"signature"[..])] {
        let layer = push_blob(upstream, content);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": config["digest"], "size": config["size"]},
            "layers": [{"mediaType": "application/octet-stream",
                        "digest": layer["digest"], "size": layer["size"]}],
            "subject": {"mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": subject, "size": subject_size},
        });
        let d = push_manifest(
            upstream,
            &format!("artifact-{}", entries.len()),
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        );
        entries.push(
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": d["digest"], "size": d["size"], "artifactType": kind}),
        );
    }
    let digests = entries
        .iter()
        .map(|e| e["digest"].as_str().unwrap().to_string())
        .collect();
    let index = json!({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": entries});
    let tag = format!("sha256-{}", support::hex_of(subject));
    push_manifest(
        upstream,
        &tag,
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    digests
}

fn listed(r: &support::Response) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.summary());
    r.json()["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn referrers_are_passed_through_kept_and_served_in_the_air_gap() {
    let mut upstream = Upstream::start();
    let tree = upstream.push_oci(&LocalImage::generate(&["64K"]), REPO, "v1");
    let top = http::get_manifest(upstream.port, &format!("/v2/{REPO}/manifests/v1"));
    let referrers = push_referrers(&upstream, &tree.top, top.body.len() as u64);
    let server = Server::start(&upstream.url());
    let path = format!("/v2/upstream.test/{REPO}/referrers/{}", tree.top);

    let all = http::get(server.port, &path);
    assert_eq!(
        all.header("content-type"),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert_eq!(listed(&all), referrers);
    let sboms = http::get(server.port, &format!("{path}?artifactType={SBOM}"));
    assert_eq!(listed(&sboms), referrers[..1]);
    assert_eq!(sboms.header("oci-filters-applied"), Some("artifactType"));
    // The artifacts themselves come through the ordinary manifest endpoint, and are cached.
    for d in &referrers {
        let m = http::get_manifest(server.port, &server.manifest_path(REPO, d));
        assert_eq!(m.status, 200, "{}", m.summary());
    }

    upstream.stop();
    let kept = http::get(server.port, &path);
    assert_eq!(listed(&kept), referrers, "referrers lost with the upstream");
    assert!(kept.header("warning").is_some());
    let sigs = http::get(server.port, &format!("{path}?artifactType={SIG}"));
    assert_eq!(listed(&sigs), referrers[1..]);
    for d in &referrers {
        let m = http::get_manifest(server.port, &server.manifest_path(REPO, d));
        assert_eq!(
            m.status,
            200,
            "artifact {d} not served offline: {}",
            m.summary()
        );
    }
    // A subject nobody referred to: an empty list, not an error.
    let other = format!("sha256:{}", "0".repeat(64));
    let none = http::get(
        server.port,
        &format!("/v2/upstream.test/{REPO}/referrers/{other}"),
    );
    assert!(listed(&none).is_empty());
}
