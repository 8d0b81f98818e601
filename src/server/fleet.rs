//! The internal route replicas of a shared bucket stream each other's downloads on
//! (`actors::proxy::peer`): `GET /internal/fleet/blobs/<digest>`, answered only to a caller
//! showing the fleet secret, and only with what this replica has or is fetching. Closed (404)
//! without a fleet secret.

use actix_web::body::SizedStream;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use actors::oci::Digest;
use actors::proxy::peer::ROUTE;
use actors::{Engine, EngineError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(&format!("{ROUTE}{{digest}}"), web::get().to(blob));
}

fn plain(status: StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{text}\n"))
}

async fn blob(req: HttpRequest, engine: web::Data<Engine>) -> HttpResponse {
    let Some(secret) = engine.config().fleet_secret.as_ref() else {
        return plain(StatusCode::NOT_FOUND, "no fleet secret is configured");
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given
        .is_some_and(|g| super::admin::constant_time_eq(g.as_bytes(), secret.expose().as_bytes()))
    {
        log::warn!(
            "fleet: refused {} from {}: no valid fleet secret",
            req.uri(),
            req.peer_addr()
                .map_or(String::new(), |a| a.ip().to_string())
        );
        return plain(StatusCode::UNAUTHORIZED, "the fleet secret is required");
    }
    let digest = match Digest::parse(req.match_info().get("digest").unwrap_or_default()) {
        Ok(d) => d,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match engine.fleet_blob(&digest).await {
        Ok(Some(reader)) => {
            let size = reader.size();
            let body = match reader.stream(0, size).await {
                Ok(body) => body,
                // Stored here once, and gone since: the follower reads the shared store.
                Err(EngineError::NotCached(_)) => return plain(StatusCode::NOT_FOUND, "not here"),
                Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            };
            let mut ok = HttpResponse::Ok();
            ok.content_type("application/octet-stream");
            match size {
                Some(size) => ok.body(SizedStream::new(size, body)),
                None => ok.streaming(body),
            }
        }
        Ok(None) => plain(StatusCode::NOT_FOUND, "not here"),
        Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
