//! Pull credentials (`pullAuth`): users of an htpasswd file of bcrypt hashes, who present
//! their password as HTTP Basic credentials or trade it for a Bearer token at `/v2/token`. A
//! middleware on the pull routes checks them before the handler runs.
//!
//! Who must present credentials:
//!
//! * `GET /v2/` (the version check) answers 200 only to a user with valid credentials. Clients
//!   send the credentials they hold only after a challenge there (their first request), so a
//!   `/v2/` that answered 200 to anonymous clients would make `docker login` "succeed" without
//!   checking anything and leave every later pull anonymous. A 401 there does not stop an
//!   anonymous client: all of them go on (containerd does not ask `/v2/` at all).
//! * Without any `private: true` registry, every pull endpoint needs valid credentials.
//! * With some, only requests routed to those upstreams need them; a request whose upstream
//!   cannot be told (a malformed name or query) needs them too, so a mistake fails closed.
//!   The cache shares content by digest across upstreams, so a request by digest (a blob, a
//!   manifest by digest, a referrers list) for content that only private upstreams' cached
//!   manifests are or name needs them too, whichever upstream it names. Content that no cached
//!   manifest names (a blob fetched by digest alone) carries no record of where it came from.
//!
//! The challenge is Bearer (`realm` = our `/v2/token`), not Basic: after a Basic challenge
//! Docker refuses to send any request without credentials ("no basic auth credentials"), so
//! anonymous Docker pulls of open upstreams would fail; after a Bearer challenge it fetches a
//! token, anonymously or with the `docker login` credentials ([`token`]). skopeo, podman and
//! containerd (`ctr --user`) do the same. Basic credentials sent directly are accepted too
//! (curl, scripts).
//!
//! Credentials that are presented are always checked, even where none are needed: a wrong
//! password is a 401, never quietly taken as anonymous, so a client learns at once that it
//! holds stale credentials. Empty Basic credentials (`Og==`, which skopeo sends when it has
//! none) and other schemes count as none. A wrong user and a wrong password get the same 401
//! after the same bcrypt work ([`htpasswd::Htpasswd::decoy_hash`]).
//!
//! bcrypt runs on the blocking pool, never on an HTTP worker, and a success is remembered for a
//! few minutes ([`verified`]). Failed checks are logged and limited per client address
//! ([`limiter`]): past the limit, credentials from that address get 429 `TOOMANYREQUESTS` with
//! `Retry-After`, unchecked.

pub mod htpasswd;
pub mod limiter;
pub mod token;
pub mod verified;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use actors::oci::ImageRef;
use actors::Engine;
use base64::Engine as _;

use super::error::{ApiError, ErrorCode, Target as ErrorTarget};
use super::pull_path::PullPath;
use super::query::PullQuery;
pub use htpasswd::Htpasswd;
use limiter::{AttemptLimiter, Policy};
use token::{Holder, TokenSigner};
use verified::VerifiedCache;

/// `pullAuth.realm` unless configured.
pub const DEFAULT_REALM: &str = "ociregistry";

/// `pullAuth` and the `private` registries, as the config file resolved them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullAuthSettings {
    /// `pullAuth.htpasswd`, for messages.
    pub htpasswd: PathBuf,
    /// Its users, read and checked at start.
    pub users: Htpasswd,
    /// `pullAuth.realm`, shown in the challenge.
    pub realm: String,
    /// Registries marked `private: true`, as requests are routed to them
    /// ([`registry_key`]); empty: every pull needs credentials.
    pub private: Vec<String>,
}

/// The realm is written into a quoted header value unescaped, so it must need no escaping.
pub fn check_realm(realm: &str) -> Result<(), String> {
    let ok = !realm.is_empty()
        && realm.len() <= 128
        && realm
            .chars()
            .all(|c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{realm:?} is not a realm: use 1 to 128 printable ASCII characters without quotes \
             or backslashes"
        ))
    }
}

/// A registry name as request routing spells it (lower case, Docker Hub's aliases as
/// `docker.io`), so that `private: true` on `Index.Docker.io` protects what clients pull as
/// `docker.io`. `None` when the name is not a registry host.
pub fn registry_key(name: &str) -> Option<String> {
    ImageRef::route("x", Some(name), None).ok().map(|(r, _)| r)
}

/// What a request is for, as far as credentials go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/v2/`: where clients learn whether to send credentials.
    VersionCheck,
    /// A pull endpoint routed to this upstream; `None` when it cannot be routed.
    Upstream(Option<&'a str>),
}

/// Whether a request may go on without credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Nothing,
    Credentials,
}

/// What the request's `Authorization` header holds.
#[derive(Clone, PartialEq, Eq)]
pub enum Presented {
    /// No header, empty Basic credentials, or a scheme other than Basic and Bearer.
    Nothing,
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
    /// A Basic header that does not decode to `user:password`.
    Malformed,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Presented::Nothing => f.write_str("Nothing"),
            Presented::Basic { user, .. } => write!(f, "Basic({user:?}, <redacted>)"),
            Presented::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Presented::Malformed => f.write_str("Malformed"),
        }
    }
}

impl Presented {
    pub fn from_headers(headers: &HeaderMap) -> Presented {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Presented::Nothing;
        };
        let Ok(value) = value.to_str() else {
            return Presented::Malformed;
        };
        let Some((scheme, rest)) = value.trim().split_once(' ') else {
            return Presented::Nothing;
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            return Presented::Bearer(rest.trim().to_string());
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Presented::Nothing;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some(("", "")) => Presented::Nothing,
            Some((user, password)) => Presented::Basic {
                user: user.to_string(),
                password: password.to_string(),
            },
            None => Presented::Malformed,
        }
    }
}

/// Why presented credentials were not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    /// A wrong user or password, or a malformed Basic header.
    Credentials(&'static str),
    /// A token this server did not sign, or one that expired.
    Token,
    /// The address used up its attempts: `Retry-After` seconds.
    TooMany(u32),
    /// The check itself could not run.
    Failed(ApiError),
}

/// The running check: users, policy, the per-address limiter, the cache of successes and the
/// token key.
pub struct PullAuth {
    users: Htpasswd,
    realm: String,
    /// `None`: every pull needs credentials.
    private: Option<BTreeSet<String>>,
    default_ns: Option<String>,
    limiter: AttemptLimiter,
    verified: VerifiedCache,
    tokens: TokenSigner,
    /// bcrypt verifications run, for the tests of the cache.
    checks: AtomicU64,
}

impl PullAuth {
    /// `default_ns` routes requests that name no upstream, as the handlers do.
    pub fn new(
        settings: &PullAuthSettings,
        default_ns: Option<String>,
    ) -> Result<PullAuth, String> {
        PullAuth::with_policy(settings, default_ns, limiter::DEFAULT_POLICY)
    }

    pub fn with_policy(
        settings: &PullAuthSettings,
        default_ns: Option<String>,
        policy: Policy,
    ) -> Result<PullAuth, String> {
        Ok(PullAuth {
            users: settings.users.clone(),
            realm: settings.realm.clone(),
            private: (!settings.private.is_empty())
                .then(|| settings.private.iter().cloned().collect()),
            default_ns,
            limiter: AttemptLimiter::new(policy),
            verified: VerifiedCache::new(verified::DEFAULT_TTL, verified::DEFAULT_CAPACITY),
            tokens: TokenSigner::new()?,
            checks: AtomicU64::new(0),
        })
    }

    /// For the start-up line.
    pub fn describe(&self) -> String {
        let n = self.users.len();
        let users = format!("{n} user{}", if n == 1 { "" } else { "s" });
        match &self.private {
            None => format!("pull credentials required ({users})"),
            Some(p) => format!(
                "pull credentials required for {} ({users})",
                p.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// bcrypt verifications run so far.
    pub fn bcrypt_checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Who must present credentials for `target` (see the module's documentation).
    pub fn need(&self, target: Target<'_>) -> Need {
        match (target, &self.private) {
            (Target::VersionCheck, _) | (_, None) | (Target::Upstream(None), _) => {
                Need::Credentials
            }
            (Target::Upstream(Some(registry)), Some(private)) if private.contains(registry) => {
                Need::Credentials
            }
            (Target::Upstream(Some(_)), Some(_)) => Need::Nothing,
        }
    }

    /// Whether content known from `sources` (the registries of the cached manifests that are it
    /// or name it) is private: some private upstream served it and no open one did. Content no
    /// cached manifest names is not: it can only have come by digest alone.
    pub fn only_private(&self, sources: &BTreeSet<String>) -> bool {
        match &self.private {
            Some(private) => !sources.is_empty() && sources.is_subset(private),
            None => false,
        }
    }

    /// The upstream a pull request is for, routed as the handlers route it.
    fn target<'a>(
        &self,
        name: Option<&str>,
        query: &str,
        headers: &HeaderMap,
        routed: &'a mut String,
    ) -> Target<'a> {
        let Some(name) = name else {
            return Target::VersionCheck;
        };
        let Ok(query) = PullQuery::from_parts(query, headers) else {
            return Target::Upstream(None);
        };
        match ImageRef::route(name, query.upstream(), self.default_ns.as_deref()) {
            Ok((registry, _)) => {
                *routed = registry;
                Target::Upstream(Some(routed.as_str()))
            }
            Err(_) => Target::Upstream(None),
        }
    }

    /// Who presented what: a user, or nobody; or why it was refused.
    async fn identify(&self, presented: Presented, peer: IpAddr) -> Result<Holder, Refused> {
        let (user, password) = match presented {
            Presented::Nothing => return Ok(Holder::Anonymous),
            Presented::Bearer(token) => {
                return self
                    .tokens
                    .verify(&token, SystemTime::now())
                    .ok_or(Refused::Token)
            }
            Presented::Malformed => (None, String::new()),
            Presented::Basic { user, password } => (Some(user), password),
        };
        let now = Instant::now();
        if let Err(blocked) = self.limiter.begin(peer, now) {
            if blocked.started {
                let p = self.limiter.policy();
                log::warn!(
                    "pull auth: {} failed credential checks from {} within {} s: its credentials \
                     are refused for {} s",
                    p.max_failures,
                    limiter::bucket(peer),
                    p.window.as_secs(),
                    p.lockout.as_secs()
                );
            }
            return Err(Refused::TooMany(blocked.retry_after_secs()));
        }
        let Some(user) = user else {
            log::warn!("pull auth: malformed Basic credentials from {peer}");
            return Err(Refused::Credentials("malformed Basic credentials"));
        };
        let known = self.verified.contains(&user, &password, now)
            || self
                .verify(&user, password)
                .await
                .map_err(Refused::Failed)?;
        if known {
            self.limiter.succeeded(peer);
            return Ok(Holder::User(user));
        }
        log::warn!(
            "pull auth: refused the credentials of user {:?} from {peer}",
            user.chars().take(64).collect::<String>()
        );
        Err(Refused::Credentials("invalid username or password"))
    }

    /// bcrypt on the blocking pool; an unknown user is checked against a decoy hash so that it
    /// takes as long as a wrong password.
    async fn verify(&self, user: &str, password: String) -> Result<bool, ApiError> {
        let known = self.users.hash_of(user);
        let hash = known.unwrap_or(self.users.decoy_hash()).to_string();
        self.checks.fetch_add(1, Ordering::Relaxed);
        let remember = password.clone();
        let matched =
            web::block(move || bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false))
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ErrorCode::Unavailable,
                        "the credential check could not run; try again",
                    )
                })?;
        let ok = matched && known.is_some();
        if ok {
            self.verified.insert(user, &remember, Instant::now());
        }
        Ok(ok)
    }

    /// Lets a pull request through, or says why not; `token_url` goes into the challenge.
    /// `private_content` is asked only for an anonymous client where nothing is needed: whether
    /// what the request addresses by digest is known only from private upstreams.
    pub async fn admit<F, Fut>(
        &self,
        need: Need,
        presented: Presented,
        peer: IpAddr,
        token_url: &str,
        private_content: F,
    ) -> Result<(), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<bool, ApiError>>,
    {
        let challenge = || format!("Bearer realm=\"{token_url}\",service=\"{}\"", self.realm);
        match self.identify(presented, peer).await {
            Ok(Holder::User(_)) => Ok(()),
            Ok(Holder::Anonymous) if need == Need::Nothing => {
                if private_content().await? {
                    return Err(ApiError::unauthorized(
                        challenge(),
                        "pull credentials required: this content was served by a private \
                         upstream; log in to this registry",
                    ));
                }
                Ok(())
            }
            Ok(Holder::Anonymous) => Err(ApiError::unauthorized(
                challenge(),
                "pull credentials required: log in to this registry",
            )),
            Err(Refused::Credentials(why)) => Err(ApiError::unauthorized(challenge(), why)),
            Err(Refused::Token) => Err(ApiError::unauthorized(
                challenge(),
                "the token is not valid here or has expired; fetch a new one",
            )),
            Err(Refused::TooMany(secs)) => Err(too_many(secs)),
            Err(Refused::Failed(e)) => Err(e),
        }
    }

    /// The token endpoint's answer: a token for a user with valid credentials, an anonymous one
    /// where anything is open to anonymous clients, otherwise a Basic challenge.
    pub async fn token(
        &self,
        presented: Presented,
        peer: IpAddr,
    ) -> Result<HttpResponse, ApiError> {
        let challenge = || format!("Basic realm=\"{}\"", self.realm);
        let holder = match self.identify(presented, peer).await {
            Ok(Holder::Anonymous) if self.private.is_none() => {
                return Err(ApiError::unauthorized(
                    challenge(),
                    "pull credentials required: log in to this registry",
                ))
            }
            Ok(holder) => holder,
            Err(Refused::Credentials(why)) => return Err(ApiError::unauthorized(challenge(), why)),
            Err(Refused::Token) => {
                return Err(ApiError::unauthorized(
                    challenge(),
                    "the token is not valid here or has expired",
                ))
            }
            Err(Refused::TooMany(secs)) => return Err(too_many(secs)),
            Err(Refused::Failed(e)) => return Err(e),
        };
        let now = SystemTime::now();
        let token = self.tokens.issue(&holder, now);
        let issued_at = time::OffsetDateTime::from(now)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({
                "token": token,
                "access_token": token,
                "expires_in": token::TOKEN_TTL.as_secs(),
                "issued_at": issued_at,
            })))
    }
}

fn too_many(retry_after: u32) -> ApiError {
    ApiError {
        retry_after: Some(retry_after),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyRequests,
            "too many failed credential checks from this address; try again later",
        )
    }
}

fn peer_of(addr: Option<std::net::SocketAddr>) -> IpAddr {
    addr.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

/// Where clients fetch tokens, as they reached us (`Host`, or a proxy's `X-Forwarded-Host` and
/// `-Proto`): the challenge answers the client's own request, so it can only point that client
/// at what it asked for. Characters that would break the quoted header value fall back to the
/// server's own name.
fn token_url(info: &actix_web::dev::ConnectionInfo) -> String {
    let scheme = if info.scheme() == "https" {
        "https"
    } else {
        "http"
    };
    let host = info.host();
    let host = if !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
    {
        host
    } else {
        "localhost"
    };
    format!("{scheme}://{host}{TOKEN_PATH}")
}

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/v2/token";

/// The middleware on the pull routes. Without `pullAuth` (no [`PullAuth`] in the app's data)
/// it only passes requests on. Methods other than GET and HEAD, and paths the pull API does not
/// serve, go on to their 405 or 404: they serve nothing.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let auth = req.app_data::<web::Data<PullAuth>>().cloned();
    let path = PullPath::parse(req.match_info().as_str());
    let (Some(auth), Some(path)) = (
        auth.filter(|_| matches!(*req.method(), Method::GET | Method::HEAD)),
        path,
    ) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let mut routed = String::new();
    let target = auth.target(path.name(), req.query_string(), req.headers(), &mut routed);
    let need = auth.need(target);
    let presented = Presented::from_headers(req.headers());
    let url = token_url(&req.connection_info());
    // Only asked where some registries are open and others private: content is shared across
    // upstreams by digest, so naming an open upstream must not reach what only a private one
    // served.
    let (digest, engine) = match need {
        Need::Nothing => (path.digest(), req.app_data::<web::Data<Engine>>().cloned()),
        Need::Credentials => (None, None),
    };
    let private_content = || async {
        let (Some(digest), Some(engine)) = (digest, engine) else {
            return Ok(false);
        };
        let sources = engine
            .sources(&digest)
            .await
            .map_err(|e| ApiError::from_engine(e, ErrorTarget::Other))?;
        Ok(auth.only_private(&sources))
    };
    match auth
        .admit(
            need,
            presented,
            peer_of(req.peer_addr()),
            &url,
            private_content,
        )
        .await
    {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

/// `GET /v2/token`: Docker's token protocol, answered only with `pullAuth`.
pub async fn token_endpoint(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let Some(auth) = req.app_data::<web::Data<PullAuth>>() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::Unsupported,
            format!("{TOKEN_PATH} is served only when pullAuth is configured"),
        ));
    };
    let presented = Presented::from_headers(req.headers());
    auth.token(presented, peer_of(req.peer_addr())).await
}

/// Where the Go server hands out tokens; some clients probe it.
pub const GO_AUTH_PATH: &str = "/v2/auth";

/// The token the Go server hands out at [`GO_AUTH_PATH`]: without `pullAuth` nothing checks a
/// token, so any fixed value does; this one is the Go server's, for scripts that look for it.
const GO_AUTH_TOKEN: &str = "FROBOZZ";

/// `GET /v2/auth`. With `pullAuth`, the token endpoint under the Go server's path. Without,
/// the Go server's answer: to a request with one `Authorization` header (any value: there is
/// nothing to check) a token and headers that keep it out of caches; 400 to one without.
pub async fn go_auth_endpoint(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.app_data::<web::Data<PullAuth>>().is_some() {
        return token_endpoint(req).await;
    }
    if req.headers().get_all(header::AUTHORIZATION).count() != 1 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized,
            format!("{GO_AUTH_PATH} needs one Authorization header"),
        ));
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"))
        .insert_header((header::VARY, "Cookie"))
        .json(serde_json::json!({ "token": GO_AUTH_TOKEN })))
}

#[cfg(test)]
mod tests;
