//! The administrative API under `/cmd/`: prune the running cache, list images, manifests and
//! blobs, show the cache's weight against its bound, stop the server. Handlers only check access, parse the query and send engine
//! messages.
//!
//! Access: a client is answered when its address is in `adminApi.allow` (default 127.0.0.1 and
//! ::1) or it sends `Authorization: Bearer <adminApi token>`. Anyone else gets 403, and the
//! refusal is logged. Answers are whitespace-separated columns with a header line (pipe them
//! through `column -t`), or JSON when the request's `Accept` names `application/json`. The
//! tables are rendered by `crate::listing`, which the `list` command shares.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use actors::manifest_index::IndexEntry;
use actors::prune::{parse_age, parse_patterns, PruneRule};
use actors::store::now_local;
use actors::Engine;
use regex::Regex;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::config::AdminConfig;
use crate::listing::{self, BlobRow, ImageRow, ManifestRow};

/// `count` of `/cmd/prune` when the query has none.
pub const DEFAULT_PRUNE_COUNT: usize = 5;

/// What the admin handlers need besides the engine.
#[derive(Clone, Default)]
pub struct Admin {
    /// Default: loopback clients only, no token.
    pub access: AdminConfig,
    /// Notified by `/cmd/stop`; whoever runs the server stops it gracefully.
    pub stop: Arc<Notify>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/cmd")
            .route("/prune", web::delete().to(prune))
            .route("/image/list", web::get().to(image_list))
            .route("/blob/list", web::get().to(blob_list))
            .route("/manifest/list", web::get().to(manifest_list))
            .route("/cache/stats", web::get().to(cache_stats))
            .route("/stop", web::get().to(stop))
            .route("/stop", web::post().to(stop))
            .default_service(web::to(not_found)),
    );
}

/// Whether the client may use the API: its address is allowed, or it presents the token.
pub fn allowed(access: &AdminConfig, peer: Option<IpAddr>, authorization: Option<&str>) -> bool {
    if let Some(ip) = peer.map(|ip| ip.to_canonical()) {
        if access.allow.iter().any(|a| a.to_canonical() == ip) {
            return true;
        }
    }
    match (
        &access.token,
        authorization.and_then(|a| a.strip_prefix("Bearer ")),
    ) {
        (Some(token), Some(given)) => constant_time_eq(token.0.as_bytes(), given.trim().as_bytes()),
        _ => false,
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an admin request is not answered.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("forbidden: the admin API is not open to this address (see adminApi)")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Engine(#[from] actors::EngineError),
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        match self {
            Refusal::Forbidden => StatusCode::FORBIDDEN,
            Refusal::BadRequest(_) | Refusal::Engine(actors::EngineError::NotSupported(_)) => {
                StatusCode::BAD_REQUEST
            }
            Refusal::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .content_type("text/plain; charset=utf-8")
            .body(format!("{self}\n"))
    }
}

type Answer = Result<HttpResponse, Refusal>;

/// 403 for a client that may not use the API, logged.
fn check(req: &HttpRequest, admin: &Admin) -> Result<(), Refusal> {
    let peer = req.peer_addr().map(|a| a.ip());
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if allowed(&admin.access, peer, auth) {
        return Ok(());
    }
    log::warn!(
        "admin: refused {} {} from {}: address not allowed and no valid token",
        req.method(),
        req.uri(),
        peer.map(|p| p.to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    Err(Refusal::Forbidden)
}

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

fn text(body: String) -> Answer {
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body))
}

fn json_answer<T: serde::Serialize>(value: T) -> Answer {
    Ok(HttpResponse::Ok().json(value))
}

fn bad_request(msg: String) -> Refusal {
    Refusal::BadRequest(msg)
}

/// `count`: a positive number, or `-1` / absent for no limit.
fn count(v: Option<i64>, default: Option<usize>) -> Result<Option<usize>, Refusal> {
    match v {
        None => Ok(default),
        Some(-1) => Ok(None),
        Some(n) if n > 0 => Ok(Some(n as usize)),
        Some(n) => Err(bad_request(format!(
            "count={n}: use a positive number, or -1 for no limit"
        ))),
    }
}

fn patterns(p: Option<&str>) -> Result<Option<Vec<Regex>>, Refusal> {
    match p.filter(|p| !p.trim().is_empty()) {
        None => Ok(None),
        Some(p) => parse_patterns(p).map(Some).map_err(bad_request),
    }
}

fn matches(p: &Option<Vec<Regex>>, e: &IndexEntry) -> bool {
    match p {
        None => true,
        Some(p) => p
            .iter()
            .any(|re| re.is_match(&e.manifest.image_url) || e.tags.iter().any(|t| re.is_match(t))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PruneQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    dur: Option<String>,
    expr: Option<String>,
    count: Option<i64>,
    dry_run: Option<bool>,
}

/// `DELETE /cmd/prune?type=accessed|created|pattern&dur=30d&expr=a,b&count=5&dryRun=false`
async fn prune(
    req: HttpRequest,
    q: web::Query<PruneQuery>,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let dur = || {
        let d = q.dur.as_deref().unwrap_or("");
        parse_age(d).map_err(|m| bad_request(format!("dur: {m}")))
    };
    let rule = match q.kind.as_deref() {
        Some("accessed") => dur().map(PruneRule::Accessed),
        Some("created") => dur().map(PruneRule::Created),
        Some("pattern") => match patterns(q.expr.as_deref()) {
            Ok(Some(p)) => Ok(PruneRule::Pattern(p)),
            Ok(None) => Err(bad_request(
                "type=pattern needs expr=<regex>[,<regex>...]".into(),
            )),
            Err(r) => Err(r),
        },
        other => Err(bad_request(format!(
            "type={}: use accessed, created or pattern",
            other.unwrap_or("")
        ))),
    };
    let rule = rule?;
    let count = count(q.count, Some(DEFAULT_PRUNE_COUNT))?;
    let dry_run = q.dry_run.unwrap_or(false);
    let who = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let why = format!("admin prune from {who} ({rule})");
    let report = engine
        .prune(rule.selector(now_local()), count, dry_run, why)
        .await?;
    if wants_json(&req) {
        return json_answer(json!({
            "dryRun": report.dry_run,
            "manifests": report.manifests.iter().map(|m| json!({
                "url": m.url,
                "digest": m.digest.to_string(),
                "type": if m.is_list { "list" } else { "image" },
                "reason": m.reason,
            })).collect::<Vec<_>>(),
            "blobs": report.blobs.iter().map(|(d, s)| json!({
                "digest": d.to_string(), "size": s,
            })).collect::<Vec<_>>(),
            "keptBlobs": report.kept_blobs.iter().map(|(d, why)| json!({
                "digest": d.to_string(), "reason": why,
            })).collect::<Vec<_>>(),
        }));
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut out = String::new();
    for m in &report.manifests {
        out.push_str(&format!("{verb} {m}\n"));
    }
    for (d, s) in &report.blobs {
        let size = s.map(|s| s.to_string()).unwrap_or_else(|| "?".into());
        out.push_str(&format!("{verb} blob {d} ({size} bytes)\n"));
    }
    for (d, why) in &report.kept_blobs {
        out.push_str(&format!("kept blob {d}: {why}\n"));
    }
    out.push_str(&format!(
        "{}: {} manifest(s), {} blob(s)\n",
        if report.dry_run { "dry run" } else { "pruned" },
        report.manifests.len(),
        report.blobs.len()
    ));
    text(out)
}

#[derive(Deserialize)]
struct ImageQuery {
    pattern: Option<String>,
    digest: Option<String>,
    count: Option<i64>,
}

/// `GET /cmd/image/list?pattern=a,b&digest=<blob digest or part>&count=10`: image manifests
/// and the blobs each names.
async fn image_list(
    req: HttpRequest,
    q: web::Query<ImageQuery>,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let (p, n) = (patterns(q.pattern.as_deref())?, count(q.count, None)?);
    let (entries, blobs) = (engine.manifests().await?, engine.blobs().await?);
    let sizes: std::collections::HashMap<_, _> =
        blobs.into_iter().map(|b| (b.digest, b.size)).collect();
    let needle = q.digest.as_deref().unwrap_or("").trim();
    let mut images: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| !e.manifest.kind().is_list() && matches(&p, e))
        .filter(|e| {
            needle.is_empty()
                || e.manifest
                    .manifest
                    .children
                    .iter()
                    .any(|c| c.digest.to_string().contains(needle))
        })
        .collect();
    images.sort_by(|a, b| a.manifest.image_url.cmp(&b.manifest.image_url));
    if let Some(n) = n {
        images.truncate(n);
    }
    let rows: Vec<ImageRow> = images
        .iter()
        .map(|e| ImageRow::from_entry(e, |d| sizes.get(d).copied()))
        .collect();
    if wants_json(&req) {
        return json_answer(listing::to_json(&rows));
    }
    text(listing::images_text(&rows))
}

#[derive(Deserialize)]
struct BlobQuery {
    substr: Option<String>,
    count: Option<i64>,
}

/// `GET /cmd/blob/list?substr=56aebe9b&count=10`: blobs with size and reference count.
async fn blob_list(
    req: HttpRequest,
    q: web::Query<BlobQuery>,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let n = count(q.count, None)?;
    let mut blobs = engine.blobs().await?;
    let needle = q.substr.as_deref().unwrap_or("").trim();
    blobs.retain(|b| b.digest.to_string().contains(needle));
    if let Some(n) = n {
        blobs.truncate(n);
    }
    let rows: Vec<BlobRow> = blobs.iter().map(BlobRow::from_info).collect();
    if wants_json(&req) {
        return json_answer(listing::to_json(&rows));
    }
    text(listing::blobs_text(&rows))
}

#[derive(Deserialize)]
struct ManifestQuery {
    pattern: Option<String>,
    count: Option<i64>,
}

/// `GET /cmd/manifest/list?pattern=calico,cilium&count=10`: every manifest, as `list` shows.
async fn manifest_list(
    req: HttpRequest,
    q: web::Query<ManifestQuery>,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let (p, n) = (patterns(q.pattern.as_deref())?, count(q.count, None)?);
    let mut entries = engine.manifests().await?;
    entries.retain(|e| matches(&p, e));
    entries.sort_by(|a, b| {
        (a.created, &a.manifest.image_url).cmp(&(b.created, &b.manifest.image_url))
    });
    if let Some(n) = n {
        entries.truncate(n);
    }
    let rows: Vec<ManifestRow> = entries.iter().map(ManifestRow::from_entry).collect();
    if wants_json(&req) {
        return json_answer(listing::to_json(&rows));
    }
    text(listing::manifests_text(&rows, true))
}

/// `GET /cmd/cache/stats`: the bytes of blobs in the cache (with downloads under way at their
/// announced size), the bound (`maxCacheSize`, `none` when unbounded) and the images evicted
/// since start.
async fn cache_stats(
    req: HttpRequest,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let s = engine.cache_stats().await?;
    if wants_json(&req) {
        return json_answer(json!({
            "totalBytes": s.total_bytes,
            "blobs": s.blobs,
            "boundBytes": s.bound_bytes,
            "evictions": s.evictions,
        }));
    }
    let bound = s
        .bound_bytes
        .map(|b| b.to_string())
        .unwrap_or_else(|| "none".into());
    text(format!(
        "TOTAL_BYTES BLOBS BOUND_BYTES EVICTIONS\n{} {} {bound} {}\n",
        s.total_bytes, s.blobs, s.evictions
    ))
}

/// `GET|POST /cmd/stop`: stops the server gracefully (requests under way are finished).
async fn stop(req: HttpRequest, admin: web::Data<Admin>) -> Answer {
    check(&req, &admin)?;
    log::warn!(
        "admin: stop requested by {}",
        req.peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    );
    admin.stop.notify_one();
    text("stopping\n".into())
}

async fn not_found(req: HttpRequest, admin: web::Data<Admin>) -> Answer {
    check(&req, &admin)?;
    Ok(HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body(
            "unknown admin command; see DELETE /cmd/prune, GET /cmd/image/list, \
             /cmd/blob/list, /cmd/manifest/list, /cmd/cache/stats, /cmd/stop\n",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn loopback_is_allowed_by_default_and_others_need_the_token() {
        let mut access = AdminConfig::default();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(allowed(&access, ip("127.0.0.1"), None));
        assert!(allowed(&access, ip("::1"), None));
        assert!(allowed(&access, ip("::ffff:127.0.0.1"), None));
        assert!(!allowed(&access, ip("127.0.0.2"), None));
        assert!(!allowed(&access, ip("10.1.2.3"), Some("Bearer anything")));
        access.token = Some(Secret("0123456789abcdef".into()));
        assert!(allowed(
            &access,
            ip("10.1.2.3"),
            Some("Bearer 0123456789abcdef")
        ));
        assert!(!allowed(
            &access,
            ip("10.1.2.3"),
            Some("Bearer 0123456789abcdeX")
        ));
        assert!(!allowed(
            &access,
            ip("10.1.2.3"),
            Some("Basic 0123456789abcdef")
        ));
        assert!(!allowed(&access, None, None));
    }
}
