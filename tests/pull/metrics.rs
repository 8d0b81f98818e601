//! `/metrics` after real pulls: the numbers match what happened, in the format the scraper
//! asked for, and the example Grafana dashboard asks only for what the server exposes.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use support::{http, LocalImage, Server, SkopeoDir, Upstream};

const REPO: &str = "e2e/metrics";

/// What Prometheus (2.x and 3.x) sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
     application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The metric name of a sample line.
fn sample_name(line: &str) -> &str {
    line.split(['{', ' ']).next().unwrap_or(line)
}

/// `# TYPE` declarations: family name -> type.
fn declared_types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

/// Every sample of `text` belongs to a family declared by `# TYPE` under the naming rules
/// of `format`, and the format's own framing holds.
fn assert_well_formed(text: &str, openmetrics: bool) {
    let types = declared_types(text);
    assert!(!types.is_empty(), "no families:\n{text}");
    if openmetrics {
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics ends with # EOF:\n{text}"
        );
    } else {
        assert!(
            !text.contains("# EOF"),
            "the classic format has no # EOF:\n{text}"
        );
        assert!(
            !text.contains("# UNIT"),
            "the classic format has no # UNIT:\n{text}"
        );
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = sample_name(line);
        let family = types.iter().find(|(family, kind)| {
            let suffixes: &[&str] = match (kind.as_str(), openmetrics) {
                ("histogram", _) => &["_bucket", "_sum", "_count"],
                ("counter", true) => &["_total", "_created"],
                ("info", true) => &["_info"],
                ("counter" | "gauge" | "untyped", false) => &[""],
                ("gauge" | "unknown", true) => &[""],
                _ => &[],
            };
            suffixes.iter().any(|s| name == format!("{family}{s}"))
        });
        assert!(
            family.is_some(),
            "sample {name} belongs to no declared family ({}):\n{text}",
            if openmetrics {
                "OpenMetrics"
            } else {
                "classic"
            }
        );
    }
    let allowed: &[&str] = if openmetrics {
        &["counter", "gauge", "histogram", "info", "unknown"]
    } else {
        &["counter", "gauge", "histogram", "untyped"]
    };
    for (family, kind) in &types {
        assert!(allowed.contains(&kind.as_str()), "{family} has type {kind}");
        if !openmetrics && kind == "counter" {
            assert!(
                family.ends_with("_total"),
                "classic counter {family} ends in _total"
            );
        }
    }
}

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
    // Every manifest was asked for once at least; the host platform's image manifest may have
    // been cached by the list's background completion before skopeo asked, and so be a hit.
    let manifest = [up, "kind=\"manifest\""];
    let manifest_misses = sample(&m, "ociregistry_cache_misses_total", &manifest);
    let manifest_hits = sample(&m, "ociregistry_cache_hits_total", &manifest);
    assert!(
        manifest_misses >= 1.0
            && manifest_misses + manifest_hits >= tree.manifest_digests().len() as f64,
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

#[test]
fn metrics_format_follows_accept_as_prometheus_negotiates() {
    let upstream = Upstream::start();
    let server = Server::start(&upstream.url());
    // Populate the request families first.
    http::get(server.port, "/v2/");

    for (accept, content_type, openmetrics) in [
        (None, "text/plain; version=0.0.4; charset=utf-8", false),
        (
            Some("text/plain"),
            "text/plain; version=0.0.4; charset=utf-8",
            false,
        ),
        (
            Some("*/*"),
            "text/plain; version=0.0.4; charset=utf-8",
            false,
        ),
        (
            Some(PROMETHEUS_ACCEPT),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            true,
        ),
        (
            Some("application/openmetrics-text;version=1.0.0"),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            true,
        ),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let r = http::get_with(server.port, "/metrics", &headers);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Type"),
            Some(content_type),
            "Accept: {accept:?}"
        );
        assert_well_formed(&r.text(), openmetrics);
    }
}

#[test]
fn latency_histogram_build_info_and_process_metrics_describe_the_running_server() {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["1M"]);
    upstream.push_oci(&image, REPO, "v1");
    let launched = std::time::SystemTime::now();
    let server = Server::start(&upstream.url());
    SkopeoDir::new()
        .copy_all(&server.in_path_ref(REPO, "v1"))
        .expect_success();
    let tags = http::get(server.port, &format!("/v2/upstream.test/{REPO}/tags/list"));
    assert_eq!(tags.status, 200, "{}", tags.summary());
    let m = http::get(server.port, "/metrics").text();

    // Every request answered is timed once, under the same endpoint as it is counted.
    for endpoint in ["version", "manifests", "blobs", "tags"] {
        let label = format!("endpoint=\"{endpoint}\"");
        let counted = sample(&m, "ociregistry_http_requests_total", &[&label]);
        assert!(counted >= 1.0, "{endpoint} requests counted:\n{m}");
        assert_eq!(
            sample(
                &m,
                "ociregistry_http_request_duration_seconds_count",
                &[&label]
            ),
            counted,
            "{endpoint}: requests timed and counted differ\n{m}"
        );
        assert_eq!(
            sample(
                &m,
                "ociregistry_http_request_duration_seconds_bucket",
                &[&label, "le=\"+Inf\""]
            ),
            counted
        );
        assert!(
            sample(
                &m,
                "ociregistry_http_request_duration_seconds_sum",
                &[&label]
            ) > 0.0
        );
    }

    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        sample(&m, "ociregistry_build_info", &[&version]),
        1.0,
        "{m}"
    );

    assert!(sample(&m, "process_cpu_seconds_total", &[]) > 0.0, "{m}");
    assert!(
        sample(&m, "process_resident_memory_bytes", &[]) > 1e6,
        "{m}"
    );
    assert!(
        sample(&m, "process_virtual_memory_bytes", &[])
            >= sample(&m, "process_resident_memory_bytes", &[])
    );
    assert!(sample(&m, "process_threads", &[]) >= 2.0, "{m}");
    let open = sample(&m, "process_open_fds", &[]);
    assert!(
        open >= 3.0 && open <= sample(&m, "process_max_fds", &[]),
        "{m}"
    );
    // The kernel's boot time has a one-second resolution.
    let epoch = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let started = sample(&m, "process_start_time_seconds", &[]);
    assert!(
        started >= epoch(launched) - 2.0 && started <= epoch(std::time::SystemTime::now()) + 2.0,
        "start time {started} is not when the test started the server\n{m}"
    );
}

/// Every metric name in the dashboard's queries (`expr` and template variable queries).
fn dashboard_metric_names(dashboard: &serde_json::Value) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, exprs: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                            exprs.push(s.clone())
                        }
                        _ => walk(v, exprs),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, exprs)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(dashboard, &mut exprs);
    let name = regex::Regex::new(r"\b(?:ociregistry|process)_[a-z0-9_]+\b").unwrap();
    exprs
        .iter()
        .flat_map(|e| name.find_iter(e).map(|m| m.as_str().to_string()))
        .collect()
}

#[test]
fn grafana_dashboard_queries_only_metrics_the_server_exposes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana/ociregistry.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read the dashboard"))
            .expect("the dashboard is JSON");
    let wanted = dashboard_metric_names(&dashboard);
    for must in [
        "ociregistry_http_request_duration_seconds_bucket",
        "ociregistry_build_info",
        "process_cpu_seconds_total",
    ] {
        assert!(wanted.contains(must), "the dashboard shows {must}");
    }

    // A workload that makes every family appear: pulls (hits, misses, bytes, fetches), a tag
    // the upstream lacks (an upstream error), then the upstream gone (its breaker opens).
    let mut upstream = Upstream::start();
    let image = LocalImage::generate(&["1M"]);
    upstream.push_oci(&image, REPO, "v1");
    let server = Server::start(&upstream.url());
    let reference = server.in_path_ref(REPO, "v1");
    SkopeoDir::new().copy_all(&reference).expect_success();
    SkopeoDir::new().copy_all(&reference).expect_success();
    let missing = http::get_manifest(server.port, &server.manifest_path(REPO, "missing"));
    assert_eq!(missing.status, 404);
    upstream.stop();
    let unreachable = http::get_manifest(server.port, &server.manifest_path(REPO, "gone"));
    assert!(unreachable.status >= 500, "{}", unreachable.summary());

    let exposed: BTreeSet<String> = http::get(server.port, "/metrics")
        .text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| sample_name(l).to_string())
        .collect();
    let unknown: Vec<&String> = wanted.difference(&exposed).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the server does not expose: {unknown:?}\nexposed: {exposed:?}"
    );
}
