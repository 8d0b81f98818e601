//! `/metrics` and the per-request counters behind it.

use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{Accept, Header};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use actors::metrics::{metrics, render, Endpoint, Format, Request};

use super::pull_path::PullPath;

/// Every metric, in the format the scraper prefers.
pub async fn scrape(req: HttpRequest) -> HttpResponse {
    let format = negotiate(Accept::parse(&req).ok());
    // The process metrics read /proc: keep that off the worker thread.
    match web::block(move || render(format)).await {
        Ok(body) => HttpResponse::Ok()
            .content_type(format.content_type())
            .body(body),
        Err(e) => {
            log::error!("rendering metrics: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// OpenMetrics when the scraper ranks it above the classic text format (Prometheus does, with
/// `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5`), the
/// classic format otherwise: for `text/plain`, `*/*`, anything else and no `Accept` at all.
fn negotiate(accept: Option<Accept>) -> Format {
    let Some(accept) = accept else {
        return Format::Classic;
    };
    for mime in accept.ranked() {
        match (mime.type_().as_str(), mime.subtype().as_str()) {
            ("application", "openmetrics-text") => return Format::OpenMetrics,
            ("text", "plain") | ("text", "*") | ("*", "*") => return Format::Classic,
            _ => {}
        }
    }
    Format::Classic
}

/// Which API a path belongs to; a bounded label set, whatever the path. Pull paths are told
/// apart as the pull API dispatches them (`PullPath`), so a request is counted under what it
/// was served as; push attempts (`.../blobs/uploads/...`) are no pull path and count as
/// `other`.
fn endpoint(path: &str) -> &'static str {
    match PullPath::parse(path) {
        Some(PullPath::Version) => "version",
        Some(PullPath::Manifest { .. }) => "manifests",
        Some(PullPath::Blob { .. }) => "blobs",
        Some(PullPath::Referrers { .. }) => "referrers",
        Some(PullPath::Tags { .. }) => "tags",
        None if path.starts_with("/cmd/") => "admin",
        None if path == "/metrics" => "metrics",
        None => "other",
    }
}

/// A method as a label: its name when it is one of HTTP's own, `other` otherwise, so that
/// clients cannot grow the label set (nor make each request build one).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts each request by endpoint, method and status, and the body bytes it is answered with.
pub async fn count(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let endpoint = endpoint(req.path());
    let method = req.method().clone();
    let started = Instant::now();
    let res = next.call(req).await?;
    let m = metrics();
    m.http_request_seconds
        .get_or_create(&Endpoint { endpoint })
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .get_or_create(&Request {
            endpoint,
            method: method_label(&method),
            status: res.status().as_u16(),
        })
        .inc();
    if method != Method::HEAD {
        if let BodySize::Sized(n) = res.response().body().size() {
            m.http_response_bytes
                .get_or_create(&Endpoint { endpoint })
                .inc_by(n);
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{Accept, Header};
    use actix_web::test::TestRequest;
    use actors::metrics::Format;

    use super::{endpoint, method_label, negotiate};

    fn format_for(accept: &str) -> Format {
        let req = TestRequest::default()
            .insert_header(("Accept", accept))
            .to_http_request();
        negotiate(Accept::parse(&req).ok())
    }

    #[test]
    fn openmetrics_only_when_ranked_above_the_classic_text() {
        // What Prometheus 2.x and 3.x send.
        assert_eq!(
            format_for(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(
            format_for("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"),
            Format::Classic
        );
        assert_eq!(format_for("text/plain"), Format::Classic);
        assert_eq!(format_for("*/*"), Format::Classic);
        assert_eq!(format_for("application/json"), Format::Classic);
        assert_eq!(
            format_for("application/openmetrics-text"),
            Format::OpenMetrics
        );
        assert_eq!(negotiate(None), Format::Classic);
    }

    #[test]
    fn methods_are_a_small_fixed_set() {
        use actix_web::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let made_up = Method::from_bytes(b"FROBNICATE").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }

    #[test]
    fn endpoints_are_a_small_fixed_set() {
        assert_eq!(endpoint("/v2"), "version");
        assert_eq!(endpoint("/v2/"), "version");
        assert_eq!(endpoint("/v2/a/b/manifests/1"), "manifests");
        assert_eq!(endpoint("/v2/a/blobs/sha256:x"), "blobs");
        assert_eq!(endpoint("/v2/a/referrers/sha256:x"), "referrers");
        assert_eq!(endpoint("/v2/a/b/tags/list"), "tags");
        // Counted as what the pull API serves them as, whatever else the name holds.
        assert_eq!(endpoint("/v2/a/manifests/x/blobs/y"), "blobs");
        assert_eq!(endpoint("/v2/a/blobs/x/manifests/y"), "manifests");
        // Push attempts are no pull path.
        assert_eq!(endpoint("/v2/a/blobs/uploads/"), "other");
        assert_eq!(endpoint("/v2/a/blobs/uploads/123"), "other");
        assert_eq!(endpoint("/v2/token"), "other");
        assert_eq!(endpoint("/cmd/stop"), "admin");
        assert_eq!(endpoint("/metrics"), "metrics");
        assert_eq!(endpoint("/../../etc/passwd"), "other");
    }
}
