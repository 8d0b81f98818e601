//! The administrative API under `/cmd/`: prune the running cache, list images, manifests and
//! blobs, show the cache's weight against its bound, stop the server. Handlers only check access, parse the query and send engine
//! messages.
//!
//! Access: a client is answered when its address is in `adminApi.allow` (default 127.0.0.1 and
//! ::1) or it sends `Authorization: Bearer <adminApi token>`. Anyone else gets 403, and the
//! refusal is logged. The lists answer in the Go server's columns, defaults (50 rows) and words
//! for an empty result, so scripts written for it keep working; or in JSON, with more detail,
//! when the request's `Accept` names `application/json`. The tables are rendered by
//! `crate::listing`, which the `list` command shares.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use actors::manifest_index::IndexEntry;
use actors::preload::{PlatformSpec, Platforms};
use actors::prune::{parse_patterns, parse_size, PruneRule, Selector};
use actors::pruner::PruneReport;
use actors::store::{format_time, now_local, parse_time, FsStore};
use actors::Engine;
use regex::Regex;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::commands::load;
use crate::commands::progress::Board;
use crate::commands::summary::LoadEvent;
use crate::config::AdminConfig;
use crate::listing::{self, BlobRow, GoManifestLine, ImageRow, ManifestRow};

/// `count` of `/cmd/prune` when the query has none.
pub const DEFAULT_PRUNE_COUNT: usize = 5;

/// `count` of the list endpoints when the query has none: the Go server's, which keeps an
/// answer about a big cache short unless a script asks for more.
pub const DEFAULT_LIST_COUNT: usize = 50;

/// What the admin handlers need besides the engine.
#[derive(Clone)]
pub struct Admin {
    /// Default: loopback clients only, no token.
    pub access: AdminConfig,
    /// Notified by `/cmd/stop`; whoever runs the server stops it gracefully.
    pub stop: Arc<Notify>,
    /// What `/cmd/load` takes from lists when the request names no platform.
    pub platforms: Platforms,
    /// The cache directory `/cmd/import` writes into; `None` with a bucket (`storage.s3`).
    pub cache_dir: Option<PathBuf>,
    /// Requests come through the admin socket in the cache directory (see
    /// [`super::run_admin_socket`]): the socket file's permissions are the access rule.
    pub through_socket: bool,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/cmd")
            .route("/prune", web::delete().to(prune))
            .route("/image/list", web::get().to(image_list))
            .route("/blob/list", web::get().to(blob_list))
            .route("/manifest/list", web::get().to(manifest_list))
            .route("/cache/stats", web::get().to(cache_stats))
            .route("/load", web::post().to(load))
            .route("/import", web::post().to(import))
            .route("/stop", web::get().to(stop))
            .route("/stop", web::post().to(stop))
            .default_service(web::to(not_found)),
    );
}

impl Default for Admin {
    /// Loopback clients only, no token; the host's platform.
    fn default() -> Self {
        Admin {
            access: AdminConfig::default(),
            stop: Arc::default(),
            platforms: Platforms::Only(vec![PlatformSpec::host()]),
            cache_dir: None,
            through_socket: false,
        }
    }
}

/// Whether the client may use the API: its address is allowed, or it presents the token.
/// A client whose address is the one the server answered it on (`local`) is on this machine
/// (a server listening on one address of the host is reached from that address), and counts
/// as loopback: allowed when a loopback address is.
pub fn allowed(
    access: &AdminConfig,
    peer: Option<IpAddr>,
    local: Option<IpAddr>,
    authorization: Option<&str>,
) -> bool {
    if let Some(ip) = peer.map(|ip| ip.to_canonical()) {
        if access.allow.iter().any(|a| a.to_canonical() == ip) {
            return true;
        }
        let this_machine = local.is_some_and(|l| l.to_canonical() == ip);
        if this_machine && access.allow.iter().any(|a| a.to_canonical().is_loopback()) {
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
            // Another replica of the shared store is pruning it.
            Refusal::Engine(actors::EngineError::Busy(_)) => StatusCode::CONFLICT,
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
    if admin.through_socket {
        return Ok(());
    }
    let peer = req.peer_addr().map(|a| a.ip());
    let local = Some(req.app_config().local_addr().ip());
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if allowed(&admin.access, peer, local, auth) {
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

/// `count`: at most this many (0 selects nothing, as with the Go server), `-1` for no limit.
fn count(v: Option<i64>, default: Option<usize>) -> Result<Option<usize>, Refusal> {
    match v {
        None => Ok(default),
        Some(-1) => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as usize)),
        Some(n) => Err(bad_request(format!(
            "count={n}: use a number from 0, or -1 for no limit"
        ))),
    }
}

/// A boolean as Go's `strconv.ParseBool` reads it, the Go server's parser for `dryRun`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
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
    dry_run: Option<String>,
    /// `type=size`: the bound to evict down to (default: `maxCacheSize`).
    size: Option<String>,
    /// `type=date`, or with `type=pattern`: first cached before this local time
    /// (`YYYY-MM-DDTHH:MM:SS`), as `prune --date`.
    before: Option<String>,
}

/// `DELETE /cmd/prune?type=accessed|created|pattern&dur=30d&expr=a,b&count=5&dryRun=false`,
/// or `?type=size&size=50GiB`: an eviction now, down to `size` (default `maxCacheSize`).
async fn prune(
    req: HttpRequest,
    q: web::Query<PruneQuery>,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let dur = || {
        let d = q.dur.as_deref().unwrap_or("");
        actors::duration::parse(d).map_err(|m| bad_request(format!("dur: {m}")))
    };
    let dry_run = match q.dry_run.as_deref() {
        None => false,
        Some(v) => parse_bool(v).ok_or_else(|| {
            bad_request(format!(
                "dryRun={v}: use true or false (or 1, t, T, TRUE, True, 0, f, F, FALSE, False)"
            ))
        })?,
    };
    // Any case, as the Go server reads it.
    let kind = q.kind.as_deref().map(str::to_ascii_lowercase);
    if kind.as_deref() == Some("size") {
        let size = match q.size.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(parse_size(s).map_err(|m| bad_request(format!("size: {m}")))?),
        };
        let report = engine.evict_to(size, dry_run).await.ok_or_else(|| {
            bad_request(
                "type=size needs size=<bytes, e.g. 50GiB> when maxCacheSize is not configured"
                    .into(),
            )
        })??;
        return prune_answer(&req, report);
    }
    let before = match q.before.as_deref().map(str::trim) {
        None => None,
        Some(b) => match parse_time(b) {
            Some(t) if b.len() == 19 => Some(t),
            _ => {
                return Err(bad_request(format!(
                    "before={b}: use a local time YYYY-MM-DDTHH:MM:SS"
                )))
            }
        },
    };
    let who = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let count = count(q.count, Some(DEFAULT_PRUNE_COUNT))?;
    if kind.as_deref() == Some("date") {
        let Some(before) = before else {
            return Err(bad_request(
                "type=date needs before=YYYY-MM-DDTHH:MM:SS".into(),
            ));
        };
        let selector = Selector {
            created_before: Some(before),
            ..Selector::default()
        };
        let why = format!(
            "admin prune from {who} (created before {})",
            format_time(before)
        );
        let report = engine.prune(selector, count, dry_run, why).await?;
        return prune_answer(&req, report);
    }
    let rule = match kind.as_deref() {
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
            "type={}: use accessed, created, pattern, date or size",
            other.unwrap_or("")
        ))),
    };
    let rule = rule?;
    let mut selector = rule.selector(now_local());
    let mut why = format!("admin prune from {who} ({rule}");
    if let Some(before) = before {
        if !matches!(rule, PruneRule::Pattern(_)) {
            return Err(bad_request(
                "before= goes with type=pattern or type=date".into(),
            ));
        }
        selector.created_before = Some(before);
        why.push_str(&format!(", created before {}", format_time(before)));
    }
    why.push(')');
    let report = engine.prune(selector, count, dry_run, why).await?;
    prune_answer(&req, report)
}

/// What a prune (or an eviction) did, in text or JSON.
fn prune_answer(req: &HttpRequest, report: PruneReport) -> Answer {
    if wants_json(req) {
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

/// `GET /cmd/image/list?pattern=a,b&digest=<blob digest or part>&count=10`: manifests and the
/// blobs each names.
async fn image_list(
    req: HttpRequest,
    q: web::Query<ImageQuery>,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let p = patterns(q.pattern.as_deref())?;
    let n = count(q.count, Some(DEFAULT_LIST_COUNT))?;
    let json = wants_json(&req);
    let entries = engine.manifests().await?;
    let needle = q.digest.as_deref().unwrap_or("").trim();
    // The Go server's text lists every manifest (a list with no blob lines) unless a blob
    // digest is asked for; the JSON lists image manifests only, as it always has.
    let mut selected: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| (!json || !e.manifest.kind().is_list()) && matches(&p, e))
        .filter(|e| {
            needle.is_empty()
                || (!e.manifest.kind().is_list()
                    && e.manifest
                        .manifest
                        .children
                        .iter()
                        .any(|c| c.digest.to_string().contains(needle)))
        })
        .collect();
    selected.sort_by(|a, b| a.manifest.image_url.cmp(&b.manifest.image_url));
    if let Some(n) = n {
        selected.truncate(n);
    }
    if !json {
        let lines: Vec<GoManifestLine> = selected
            .iter()
            .map(|e| GoManifestLine::from_entry(e, true))
            .collect();
        return text(listing::go_manifests_text(&lines));
    }
    let sizes: std::collections::HashMap<_, _> = engine
        .blobs()
        .await?
        .into_iter()
        .map(|b| (b.digest, b.size))
        .collect();
    let rows: Vec<ImageRow> = selected
        .iter()
        .map(|e| ImageRow::from_entry(e, |d| sizes.get(d).copied()))
        .collect();
    json_answer(listing::to_json(&rows))
}

#[derive(Deserialize)]
struct BlobQuery {
    substr: Option<String>,
    count: Option<i64>,
}

/// `GET /cmd/blob/list?substr=56aebe9b&count=10`: blobs with their reference counts (and
/// sizes in the JSON).
async fn blob_list(
    req: HttpRequest,
    q: web::Query<BlobQuery>,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let n = count(q.count, Some(DEFAULT_LIST_COUNT))?;
    let mut blobs = engine.blobs().await?;
    let needle = q.substr.as_deref().unwrap_or("").trim();
    blobs.retain(|b| b.digest.to_string().contains(needle));
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    if let Some(n) = n {
        blobs.truncate(n);
    }
    let rows: Vec<BlobRow> = blobs.iter().map(BlobRow::from_info).collect();
    if wants_json(&req) {
        return json_answer(listing::to_json(&rows));
    }
    text(listing::go_blobs_text(&rows))
}

#[derive(Deserialize)]
struct ManifestQuery {
    pattern: Option<String>,
    count: Option<i64>,
}

/// `GET /cmd/manifest/list?pattern=calico,cilium&count=10`: every manifest.
async fn manifest_list(
    req: HttpRequest,
    q: web::Query<ManifestQuery>,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let p = patterns(q.pattern.as_deref())?;
    let n = count(q.count, Some(DEFAULT_LIST_COUNT))?;
    let mut entries = engine.manifests().await?;
    entries.retain(|e| matches(&p, e));
    entries.sort_by(|a, b| a.manifest.image_url.cmp(&b.manifest.image_url));
    if let Some(n) = n {
        entries.truncate(n);
    }
    if wants_json(&req) {
        let rows: Vec<ManifestRow> = entries.iter().map(ManifestRow::from_entry).collect();
        return json_answer(listing::to_json(&rows));
    }
    let lines: Vec<GoManifestLine> = entries
        .iter()
        .map(|e| GoManifestLine::from_entry(e, false))
        .collect();
    text(listing::go_manifests_text(&lines))
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoadQuery {
    /// `os/arch[/variant]`, comma-separated; absent: the server's configured platforms.
    platform: Option<String>,
    all_platforms: Option<bool>,
    jobs: Option<usize>,
}

/// `POST /cmd/load?platform=linux/amd64&jobs=4` with an image list as the body: loads the
/// images into this server's cache through its engine, as `load` does on disk, so they are
/// served at once. `load` run beside the server sends it. Streams one JSON object a line
/// ([`LoadEvent`]): each image's line as it ends, then the summary. The load goes on if the
/// client goes away.
async fn load(
    req: HttpRequest,
    q: web::Query<LoadQuery>,
    body: String,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    check(&req, &admin)?;
    let platforms = match (q.all_platforms, q.platform.as_deref()) {
        (Some(true), _) => Platforms::All,
        (_, Some(list)) => Platforms::Only(
            list.split(',')
                .map(str::parse::<PlatformSpec>)
                .collect::<Result<_, _>>()
                .map_err(|m| bad_request(format!("platform: {m}")))?,
        ),
        (_, None) => admin.platforms.clone(),
    };
    let jobs = q.jobs.unwrap_or(4).clamp(1, 64);
    let (images, bad) = load::parse_image_list(&body);
    let source = load::ImageSource {
        label: "the request".into(),
        images,
        bad,
        unit: "line",
    };
    log::warn!(
        "admin: load of {} image(s) for {platforms} requested by {}",
        source.images.len(),
        req.peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let engine = engine.get_ref().clone();
    actix_web::rt::spawn(async move {
        let progress = tx.clone();
        let summary = load::load_images_reporting(
            &engine,
            source,
            &platforms,
            jobs,
            &Board::hidden(),
            |line, failed| {
                log::info!("admin load: {line}");
                let line = line.to_string();
                let _ = progress.send(LoadEvent::Progress { line, failed }.to_line());
            },
        )
        .await;
        let _ = tx.send(LoadEvent::Done(summary).to_line());
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, actix_web::Error>(bytes::Bytes::from(line)), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream))
}

/// `POST /cmd/import` with an OCI image layout tar archive as the body (what `export`
/// writes): imports it into this server's cache directory as `import` does on disk, every
/// digest verified, then has the engine pick up what was written, so the images are served at
/// once. `import` run beside the server sends it. Answers the per-image report in JSON; an
/// archive that is no image layout at all is a 400.
async fn import(
    req: HttpRequest,
    mut body: web::Payload,
    engine: web::Data<Engine>,
    admin: web::Data<Admin>,
) -> Answer {
    use futures_util::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    check(&req, &admin)?;
    let Some(dir) = admin.cache_dir.clone() else {
        return Err(Refusal::Engine(actors::EngineError::NotSupported(
            "import writes into a cache directory, and this server keeps its cache in a bucket \
             (storage.s3)"
                .into(),
        )));
    };
    let store = FsStore::read_only(&dir);
    let staging = store
        .staging_dir("import-upload")
        .map_err(actors::EngineError::from)?;
    let gone = |e: std::io::Error| bad_request(format!("receiving the archive: {e}"));
    let archive = staging.join("archive.tar");
    let received = async {
        let mut file = tokio::fs::File::create(&archive).await.map_err(gone)?;
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| bad_request(format!("receiving the archive: {e}")))?;
            bytes += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(gone)?;
        }
        file.flush().await.map_err(gone)?;
        Ok::<u64, Refusal>(bytes)
    }
    .await;
    let imported = match received {
        Ok(bytes) => {
            log::warn!(
                "admin: import of an archive of {bytes} bytes requested by {}",
                req.peer_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default()
            );
            let path = archive.clone();
            web::block(move || crate::commands::import::import_into(&store, &path, &|_| ()))
                .await
                .map_err(|e| bad_request(format!("import: {e}")))
                .and_then(|r| r.map_err(bad_request))
        }
        Err(e) => Err(e),
    };
    if let Err(e) = std::fs::remove_dir_all(&staging) {
        log::warn!("could not remove {}: {e}", staging.display());
    }
    let summary = imported?;
    engine.pick_up_stored().await?;
    json_answer(summary)
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
    fn dry_run_takes_every_spelling_of_gos_parse_bool_and_nothing_else() {
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(v), Some(true), "{v}");
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(v), Some(false), "{v}");
        }
        for v in ["", "yes", "tRUE", "2", " true"] {
            assert_eq!(parse_bool(v), None, "{v:?}");
        }
    }

    #[test]
    fn loopback_is_allowed_by_default_and_others_need_the_token() {
        let mut access = AdminConfig::default();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let here = ip("127.0.0.1");
        assert!(allowed(&access, ip("127.0.0.1"), here, None));
        assert!(allowed(&access, ip("::1"), here, None));
        assert!(allowed(&access, ip("::ffff:127.0.0.1"), here, None));
        assert!(!allowed(&access, ip("127.0.0.2"), here, None));
        assert!(!allowed(
            &access,
            ip("10.1.2.3"),
            here,
            Some("Bearer anything")
        ));
        access.token = Some(Secret("0123456789abcdef".into()));
        let bearer = Some("Bearer 0123456789abcdef");
        assert!(allowed(&access, ip("10.1.2.3"), here, bearer));
        let wrong = Some("Bearer 0123456789abcdeX");
        assert!(!allowed(&access, ip("10.1.2.3"), here, wrong));
        let basic = Some("Basic 0123456789abcdef");
        assert!(!allowed(&access, ip("10.1.2.3"), here, basic));
        assert!(!allowed(&access, None, here, None));
    }

    #[test]
    fn a_client_on_the_servers_own_address_is_this_machine_when_loopback_is_allowed() {
        let mut access = AdminConfig::default();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // A server listening on 10.0.0.5 only: `load` beside it connects from 10.0.0.5.
        let server = ip("10.0.0.5");
        assert!(allowed(&access, ip("10.0.0.5"), server, None));
        assert!(allowed(&access, ip("::ffff:10.0.0.5"), server, None));
        assert!(!allowed(&access, ip("10.0.0.6"), server, None));
        // Without loopback in the allow list, the host's own address is not let in either.
        access.allow = vec!["192.0.2.1".parse().unwrap()];
        assert!(!allowed(&access, ip("10.0.0.5"), server, None));
        assert!(!allowed(&access, ip("127.0.0.1"), ip("127.0.0.1"), None));
    }
}
