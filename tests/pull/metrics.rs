//! `/metrics` after real pulls: the numbers match what happened.

#[path = "../support/mod.rs"]
mod support;

use support::{http, LocalImage, Server, SkopeoDir, Upstream};

const REPO: &str = "e2e/metrics";

/// The sum of every sample of `name` whose labels contain all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn metrics_count_misses_hits_bytes_and_cache_contents_after_pulls() {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["1M", "2M"]);
    let tree = upstream.push_oci(&image, REPO, "v1");
    let server = Server::start(&upstream.url());
    let reference = server.in_path_ref(REPO, "v1");

    SkopeoDir::new().copy_all(&reference).expect_success();
    let blob_bytes: u64 = tree
        .blob_digests()
        .iter()
        .map(|d| upstream.blob(REPO, d).len() as u64)
        .sum();
    let first = http::get(server.port, "/metrics");
    assert_eq!(first.status, 200);
    let m = first.text();
    let up = "upstream=\"upstream.test\"";
    assert_eq!(
        sample(&m, "ociregistry_upstream_received_bytes_total", &[up]),
        blob_bytes as f64,
        "bytes fetched from the upstream\n{m}"
    );
    assert_eq!(
        sample(&m, "ociregistry_cached_blobs", &[]),
        tree.blob_digests().len() as f64
    );
    assert_eq!(
        sample(&m, "ociregistry_cached_blob_bytes", &[]),
        blob_bytes as f64
    );
    assert_eq!(
        sample(&m, "ociregistry_cached_manifests", &[]),
        tree.manifest_digests().len() as f64
    );
    let manifest_misses = sample(
        &m,
        "ociregistry_cache_misses_total",
        &[up, "kind=\"manifest\""],
    );
    assert!(
        manifest_misses >= tree.manifest_digests().len() as f64,
        "{m}"
    );
    assert_eq!(sample(&m, "ociregistry_upstream_errors_total", &[]), 0.0);
    assert_eq!(sample(&m, "ociregistry_fetches_in_flight", &[]), 0.0);
    assert!(
        sample(
            &m,
            "ociregistry_upstream_fetch_seconds_count",
            &["kind=\"blob\""]
        ) >= 1.0
    );

    // A second pull is all hits; nothing more from the upstream.
    SkopeoDir::new().copy_all(&reference).expect_success();
    let m2 = http::get(server.port, "/metrics").text();
    assert_eq!(
        sample(&m2, "ociregistry_upstream_received_bytes_total", &[up]),
        blob_bytes as f64
    );
    let blob_hits = sample(&m2, "ociregistry_cache_hits_total", &[up, "kind=\"blob\""]);
    assert!(blob_hits >= tree.blob_digests().len() as f64, "{m2}");
    assert!(
        sample(
            &m2,
            "ociregistry_http_requests_total",
            &["endpoint=\"blobs\"", "status=\"200\""]
        ) >= 2.0 * tree.blob_digests().len() as f64,
        "{m2}"
    );
    assert!(
        sample(
            &m2,
            "ociregistry_http_response_bytes_total",
            &["endpoint=\"blobs\""]
        ) >= 2.0 * blob_bytes as f64
    );
}
