//! Prometheus metrics for the whole process.
//!
//! One set per process, reached through [`metrics()`]: counters are process-wide by nature, and
//! a global spares every actor and handler a constructor argument. The HTTP edge renders them
//! on `/metrics` with [`render`] and adds its own request counters to the same registry.

mod process;

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The two text formats a scraper may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`# EOF`-terminated), which Prometheus prefers when it may.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, for every other scraper.
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamKind {
    pub upstream: String,
    /// `manifest` or `blob`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Upstream {
    pub upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamError {
    pub upstream: String,
    /// An HTTP status, or `connect`, `timeout`, `digest`, `protocol`.
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    /// `manifests`, `blobs`, `version`, `admin`, `metrics` or `other`.
    pub endpoint: &'static str,
    /// The standard methods by name, anything else as `other`: a bounded label set.
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Endpoint {
    pub endpoint: &'static str,
}

pub struct Metrics {
    pub cache_hits: Family<UpstreamKind, Counter>,
    pub cache_misses: Family<UpstreamKind, Counter>,
    pub upstream_bytes: Family<Upstream, Counter>,
    pub upstream_errors: Family<UpstreamError, Counter>,
    pub fetches_in_flight: Family<Kind, Gauge>,
    pub waiters_joined: Family<Kind, Counter>,
    pub fetch_seconds: Family<Kind, Histogram>,
    pub stale_served: Family<Upstream, Counter>,
    /// 1 while an upstream's breaker is open (nothing is sent to it), else 0.
    pub breaker_open: Family<Upstream, Gauge>,
    /// Requests refused at once because the upstream's breaker was open.
    pub breaker_refused: Family<Upstream, Counter>,
    pub cached_manifests: Gauge,
    pub cached_blobs: Gauge,
    pub cached_blob_bytes: Gauge,
    /// `maxCacheSize` in bytes (0: no bound).
    pub cache_bound_bytes: Gauge,
    /// Images evicted to keep the cache under its bound.
    pub evictions: Counter,
    pub http_requests: Family<Request, Counter>,
    pub http_response_bytes: Family<Endpoint, Counter>,
    /// From a request's arrival to its response head (a blob's body streams after).
    pub http_request_seconds: Family<Endpoint, Histogram>,
    /// Blob reads that found their pages out of memory and waited for the disk on the blocking
    /// pool (the others are copied from the page cache on the worker).
    pub blob_reads_from_disk: Counter,
    registry: Registry,
    /// The `process_*` metrics, unprefixed as every Prometheus client library names them.
    process: Registry,
}

fn fetch_histogram() -> Histogram {
    // 5 ms .. ~80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn request_histogram() -> Histogram {
    // 0.5 ms (a cached manifest) .. ~16 s (a cold fetch before the head).
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            upstream_bytes: Family::default(),
            upstream_errors: Family::default(),
            fetches_in_flight: Family::default(),
            waiters_joined: Family::default(),
            fetch_seconds: Family::new_with_constructor(fetch_histogram),
            stale_served: Family::default(),
            breaker_open: Family::default(),
            breaker_refused: Family::default(),
            cached_manifests: Gauge::default(),
            cached_blobs: Gauge::default(),
            cached_blob_bytes: Gauge::default(),
            cache_bound_bytes: Gauge::default(),
            evictions: Counter::default(),
            http_requests: Family::default(),
            http_response_bytes: Family::default(),
            http_request_seconds: Family::new_with_constructor(request_histogram),
            blob_reads_from_disk: Counter::default(),
            registry: Registry::with_prefix("ociregistry"),
            process: Registry::default(),
        }
    }

    fn registered() -> Metrics {
        let mut m = Metrics::new();
        let r = &mut m.registry;
        r.register(
            "cache_hits",
            "Requests answered from the cache",
            m.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Requests that needed the upstream (started or joined a fetch)",
            m.cache_misses.clone(),
        );
        r.register(
            "upstream_received_bytes",
            "Blob bytes received from each upstream",
            m.upstream_bytes.clone(),
        );
        r.register(
            "upstream_errors",
            "Failed upstream fetches by upstream and cause",
            m.upstream_errors.clone(),
        );
        r.register(
            "fetches_in_flight",
            "Upstream fetches under way",
            m.fetches_in_flight.clone(),
        );
        r.register(
            "fetch_waiters_joined",
            "Requests that joined a fetch already under way instead of starting one",
            m.waiters_joined.clone(),
        );
        r.register(
            "upstream_fetch_seconds",
            "Duration of upstream fetches (manifests end to end, blobs to the last byte)",
            m.fetch_seconds.clone(),
        );
        r.register(
            "stale_served",
            "Cached manifests served because the upstream failed",
            m.stale_served.clone(),
        );
        r.register(
            "upstream_breaker_open",
            "1 while the upstream is considered unreachable and not asked",
            m.breaker_open.clone(),
        );
        r.register(
            "upstream_breaker_refused",
            "Upstream requests not sent because the upstream was considered unreachable",
            m.breaker_refused.clone(),
        );
        r.register(
            "cached_manifests",
            "Manifests in the cache",
            m.cached_manifests.clone(),
        );
        r.register("cached_blobs", "Blobs in the cache", m.cached_blobs.clone());
        r.register(
            "cached_blob_bytes",
            "Bytes of blobs in the cache",
            m.cached_blob_bytes.clone(),
        );
        r.register(
            "cache_bound_bytes",
            "The bound on the bytes of blobs in the cache (maxCacheSize); 0 when unbounded",
            m.cache_bound_bytes.clone(),
        );
        r.register(
            "evictions",
            "Images evicted to keep the cache under maxCacheSize",
            m.evictions.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by endpoint, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "http_response_bytes",
            "Response body bytes sent, by endpoint",
            m.http_response_bytes.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response head, by endpoint",
            m.http_request_seconds.clone(),
        );
        r.register(
            "build",
            "The running build: its version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        m.process
            .register_collector(Box::new(process::ProcessCollector));
        r.register(
            "blob_reads_from_disk",
            "Blob reads whose pages were not in memory and waited for the disk",
            m.blob_reads_from_disk.clone(),
        );
        m
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::registered)
}

/// Every metric in `format`. Reads `/proc` for the process metrics: call it where a short
/// blocking read is allowed.
pub fn render(format: Format) -> String {
    use prometheus_client::encoding::{prometheus_text, text};
    let m = metrics();
    let mut out = String::new();
    let result = match format {
        Format::OpenMetrics => text::encode_registry(&mut out, &m.registry)
            .and_then(|()| text::encode_registry(&mut out, &m.process))
            .and_then(|()| text::encode_eof(&mut out)),
        Format::Classic => prometheus_text::encode(&mut out, &m.registry)
            .and_then(|()| prometheus_text::encode(&mut out, &m.process)),
    };
    if let Err(e) = result {
        log::error!("rendering metrics: {e}");
    }
    out
}

/// The `error` label for an upstream failure.
pub fn error_label(e: &crate::EngineError) -> String {
    use crate::upstream::UpstreamError as U;
    use crate::EngineError as E;
    match e {
        E::Upstream { source, .. } => match source {
            U::NotFound => "404".into(),
            U::Denied(_) => "denied".into(),
            U::TooManyRequests { .. } => "429".into(),
            U::Unavailable { .. } => "503".into(),
            U::Status(s) => s.split_whitespace().next().unwrap_or("status").to_string(),
            U::Connect(_) => "connect".into(),
            U::Tls(_) => "tls".into(),
            U::Timeout(_) => "timeout".into(),
            U::Protocol(_) => "protocol".into(),
            U::Config(_) => "config".into(),
        },
        E::PullTimeout { .. } => "timeout".into(),
        E::DigestMismatch { .. } => "digest".into(),
        E::SizeMismatch { .. } => "size".into(),
        E::BlobTooLarge { .. } => "too_large".into(),
        E::UpstreamUnreachable { .. } => "breaker".into(),
        E::InsufficientStorage(_) => "storage_full".into(),
        E::Store(_) => "store".into(),
        _ => "other".into(),
    }
}
