//! `/metrics` and the per-request counters behind it.

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, Responder};
use actors::metrics::{metrics, render, Endpoint, Request};

/// The Prometheus text exposition of every metric.
pub async fn scrape() -> impl Responder {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(render())
}

/// Which API a path belongs to; a bounded label set, whatever the path.
fn endpoint(path: &str) -> &'static str {
    if path == "/v2" || path == "/v2/" {
        "version"
    } else if path.starts_with("/v2/") && path.contains("/manifests/") {
        "manifests"
    } else if path.starts_with("/v2/") && path.contains("/blobs/") {
        "blobs"
    } else if path.starts_with("/cmd/") {
        "admin"
    } else if path == "/metrics" {
        "metrics"
    } else {
        "other"
    }
}

/// Counts each request by endpoint, method and status, and the body bytes it is answered with.
pub async fn count(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let endpoint = endpoint(req.path());
    let method = req.method().clone();
    let res = next.call(req).await?;
    let m = metrics();
    m.http_requests
        .get_or_create(&Request {
            endpoint,
            method: method.as_str().to_string(),
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
    use super::endpoint;

    #[test]
    fn endpoints_are_a_small_fixed_set() {
        assert_eq!(endpoint("/v2/"), "version");
        assert_eq!(endpoint("/v2/a/b/manifests/1"), "manifests");
        assert_eq!(endpoint("/v2/a/blobs/sha256:x"), "blobs");
        assert_eq!(endpoint("/cmd/stop"), "admin");
        assert_eq!(endpoint("/metrics"), "metrics");
        assert_eq!(endpoint("/../../etc/passwd"), "other");
    }
}
