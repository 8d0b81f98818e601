//! The pull side of the OCI distribution API: `/v2/`, manifests and blobs, GET and HEAD.
//! Everything else under `/v2/` is refused as unsupported: this is a pull-only cache.

use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use actors::manifest_index::CachedManifest;
use actors::oci::{accepted_types, Digest, ImageRef, Reference, RepoName, MANIFEST_MEDIA_TYPES};
use actors::Engine;

use super::error::{api_version, ApiError, ErrorCode, Target};
use super::pull_auth;
use super::pull_path::PullPath;
use super::query::PullQuery;
use super::range::{parse_range, ByteRange, RangeRequest};

/// `OCI-Namespace`: the upstream the request was routed to. This header and the next are
/// named by constants, like [`api_version`]: a name given as text is parsed and copied on
/// every response.
fn namespace(registry: &str) -> (HeaderName, &str) {
    (HeaderName::from_static("oci-namespace"), registry)
}

/// `Docker-Content-Digest` and the `ETag` (the digest quoted), both from one spelling of the
/// digest: they go into every hit's answer.
fn digest_headers(b: &mut HttpResponseBuilder, digest: &Digest) {
    let plain = digest.to_string();
    let mut quoted = String::with_capacity(plain.len() + 2);
    quoted.push('"');
    quoted.push_str(&plain);
    quoted.push('"');
    b.insert_header((HeaderName::from_static("docker-content-digest"), plain))
        .insert_header((header::ETAG, quoted));
}

/// The pull routes; `guarded`: pull credentials are configured and checked on each of them
/// (otherwise the check is not even in the chain: every cache hit goes through here).
///
/// The token paths come first; every other path under `/v2`, the version check included, goes
/// to [`pull`], which splits it by hand ([`PullPath`]): a `/v2` scope is matched by its prefix
/// alone, where patterns such as `/v2/{name:.+}/manifests/{reference}` would cost a regex
/// capture per request.
pub fn routes(guarded: bool) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        token_route(cfg);
        cfg.service(
            web::scope("/v2")
                .wrap(Condition::new(guarded, from_fn(pull_auth::guard)))
                .default_service(web::to(pull)),
        );
    }
}

/// Where pull clients get their tokens (see [`pull_auth`]).
fn token_route(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(pull_auth::TOKEN_PATH)
            .route(web::get().to(pull_auth::token_endpoint))
            .route(web::head().to(pull_auth::token_endpoint))
            .default_service(web::to(unsupported)),
    )
    .service(
        web::resource(pull_auth::GO_AUTH_PATH)
            .route(web::get().to(pull_auth::go_auth_endpoint))
            .route(web::head().to(pull_auth::go_auth_endpoint))
            .default_service(web::to(unsupported)),
    );
}

/// A path under `/v2` other than the token's: answered by its handler for GET and HEAD
/// (pull credentials, when configured, were checked by `pull_auth::guard` on the way, which
/// splits the path the same way), refused as unsupported otherwise. The query is read only
/// for a path that is served, so that a push gets its 405 whatever its query says.
async fn pull(req: HttpRequest, engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let served = matches!(*req.method(), Method::GET | Method::HEAD);
    let Some(path) = PullPath::parse(req.match_info().as_str()).filter(|_| served) else {
        return Ok(unsupported(req).await);
    };
    let query = PullQuery::from_parts(req.query_string(), req.headers())?;
    match path {
        PullPath::Version => Ok(version_check().await),
        PullPath::Manifest { name, reference } => {
            manifest(&req, name, reference, &query, &engine).await
        }
        PullPath::Blob { name, digest } => blob(&req, name, digest, &query, &engine).await,
        PullPath::Referrers { name, digest } => referrers(name, digest, &query, &engine).await,
        PullPath::Tags { name } => tags(name, &query, &engine).await,
    }
}

async fn version_check() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(api_version())
        .content_type("application/json")
        .body("{}")
}

/// Writes (push, delete, uploads) and endpoints a pull-through cache does not serve.
pub async fn unsupported(req: HttpRequest) -> HttpResponse {
    let e = if req.method() == Method::GET || req.method() == Method::HEAD {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::Unsupported,
            format!("{} is not served by this pull-only cache", req.path()),
        )
    } else {
        ApiError::unsupported(format!(
            "{} {}: this is a pull-only cache; pushing, deleting and uploading are not supported",
            req.method(),
            req.path()
        ))
    };
    actix_web::ResponseError::error_response(&e)
}

/// The upstream and repository a request for `name` is for (see `ImageRef::route`).
fn route(name: &str, query: &PullQuery, engine: &Engine) -> Result<(String, RepoName), ApiError> {
    Ok(ImageRef::route(
        name,
        query.upstream(),
        engine.config().default_ns.as_deref(),
    )?)
}

async fn manifest(
    req: &HttpRequest,
    name: &str,
    reference: &str,
    query: &PullQuery,
    engine: &Engine,
) -> Result<HttpResponse, ApiError> {
    let (registry, repo) = route(name, query, engine)?;
    let reference = Reference::parse(reference)?;
    let image = ImageRef {
        registry,
        repo,
        reference,
    };
    let m = engine
        .manifest(&image)
        .await
        .map_err(|e| ApiError::from_engine(e, Target::Manifest))?;
    check_accept(req, &m)?;
    let mut ok = HttpResponse::Ok();
    ok.insert_header(api_version())
        .insert_header(namespace(&image.registry));
    digest_headers(&mut ok, &m.digest);
    Ok(ok
        .insert_header((header::CONTENT_TYPE, m.media_type()))
        .body(m.bytes.clone()))
}

/// `GET /v2/<name>/tags/list[?n=&last=]`: the upstream's list while it answers, the tags
/// this cache holds otherwise.
async fn tags(name: &str, query: &PullQuery, engine: &Engine) -> Result<HttpResponse, ApiError> {
    let (registry, repo) = route(name, query, engine)?;
    let page = engine
        .tags(&registry, &repo, query.n, query.last.as_deref())
        .await
        .map_err(|e| ApiError::from_engine(e, Target::Other))?;
    let mut ok = HttpResponse::Ok();
    ok.insert_header(api_version())
        .insert_header(namespace(&registry));
    if page.from_cache {
        ok.insert_header((
            "Warning",
            "199 - \"tags held by the cache; the upstream did not answer\"",
        ));
    }
    if let (true, Some(last_tag)) = (page.more, page.tags.last()) {
        let mut next = format!("/v2/{name}/tags/list?last={last_tag}");
        if let Some(n) = query.n {
            next.push_str(&format!("&n={n}"));
        }
        if let Some(ns) = &query.ns {
            next.push_str(&format!("&ns={ns}"));
        }
        ok.insert_header((header::LINK, format!("<{next}>; rel=\"next\"")));
    }
    Ok(ok.json(serde_json::json!({ "name": name, "tags": page.tags })))
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]`: the subject's referrers as an OCI
/// image index, kept so that signatures and SBOMs can be found in the air gap too.
async fn referrers(
    name: &str,
    digest: &str,
    query: &PullQuery,
    engine: &Engine,
) -> Result<HttpResponse, ApiError> {
    let (registry, repo) = route(name, query, engine)?;
    let subject = Digest::parse(digest)?;
    let found = engine
        .referrers(&registry, &repo, &subject, query.artifact_type.as_deref())
        .await
        .map_err(|e| ApiError::from_engine(e, Target::Manifest))?;
    let mut ok = HttpResponse::Ok();
    ok.insert_header(api_version())
        .insert_header(namespace(&registry))
        .insert_header((header::CONTENT_TYPE, actors::oci::OCI_INDEX));
    if found.filtered {
        ok.insert_header(("OCI-Filters-Applied", "artifactType"));
    }
    if found.from_cache {
        ok.insert_header((
            "Warning",
            "199 - \"referrers kept by the cache; the upstream did not answer\"",
        ));
    }
    Ok(ok.body(found.index))
}

/// A client that lists manifest types in `Accept` and not the one we have gets a 404, as from
/// the distribution registry, instead of a document it cannot parse. Clients that send no
/// manifest types (or `*/*`) take whatever there is.
fn check_accept(req: &HttpRequest, m: &Arc<CachedManifest>) -> Result<(), ApiError> {
    let accepted = accepted_types(
        req.headers()
            .get_all(header::ACCEPT)
            .filter_map(|v| v.to_str().ok()),
    );
    // One pass that stops at the first type that takes ours: clients list theirs first.
    let mut names_types = false;
    for a in accepted {
        if a == "*/*" || a.eq_ignore_ascii_case(m.media_type()) {
            return Ok(());
        }
        names_types = names_types
            || MANIFEST_MEDIA_TYPES
                .iter()
                .any(|t| t.eq_ignore_ascii_case(a));
    }
    if !names_types {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ManifestUnknown,
        format!(
            "the manifest is {}, which the request's Accept header does not include",
            m.media_type()
        ),
    ))
}

async fn blob(
    req: &HttpRequest,
    name: &str,
    digest: &str,
    query: &PullQuery,
    engine: &Engine,
) -> Result<HttpResponse, ApiError> {
    let (registry, repo) = route(name, query, engine)?;
    let digest = Digest::parse(digest)?;
    let reader = engine
        .blob(&registry, &repo, &digest)
        .await
        .map_err(|e| ApiError::from_engine(e, Target::Blob))?;
    let range_header = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let mut ok = blob_headers(&registry, &digest);
    let engine_error = |e| ApiError::from_engine(e, Target::Blob);
    let Some(size) = reader.size() else {
        // No Content-Length from upstream: stream to the end, chunked, ranges ignored.
        let body = reader.stream(0, None).await.map_err(engine_error)?;
        return Ok(ok.streaming(body));
    };
    let range = match parse_range(range_header, size) {
        RangeRequest::Unsatisfiable => return Ok(unsatisfiable(size)),
        RangeRequest::Full => ByteRange {
            start: 0,
            end: size,
        },
        RangeRequest::Partial(r) => {
            partial(&mut ok, r, size);
            r
        }
    };
    // Opened before the head goes out: a blob gone from the store is an error answer (or a
    // new download), not a body cut after its first byte.
    let body = reader
        .stream(range.start, Some(range.end))
        .await
        .map_err(engine_error)?;
    Ok(ok.body(SizedStream::new(range.end - range.start, body)))
}

fn blob_headers(registry: &str, digest: &Digest) -> HttpResponseBuilder {
    let mut b = HttpResponse::Ok();
    b.insert_header(api_version())
        .insert_header(namespace(registry));
    digest_headers(&mut b, digest);
    b.insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"));
    b
}

fn partial(b: &mut HttpResponseBuilder, r: ByteRange, size: u64) {
    b.status(StatusCode::PARTIAL_CONTENT).insert_header((
        header::CONTENT_RANGE,
        format!("bytes {}-{}/{size}", r.start, r.end - 1),
    ));
}

fn unsatisfiable(size: u64) -> HttpResponse {
    let e = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::BlobUnknown,
        format!("requested range is not satisfiable for a blob of {size} bytes"),
    );
    let mut resp = actix_web::ResponseError::error_response(&e);
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    resp
}
