//! The client side: one [`UpstreamClient`] per upstream registry, owned by the puller pool.
//!
//! Each client keeps its own connection pool (awc), TLS settings and bearer tokens. awc's client
//! is not `Send`, so clients live on the puller pool's arbiter and never cross threads; bytes
//! leave this module as a stream that the pool writes to disk.

mod auth;
pub mod config;
pub mod tls;

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use awc::http::header::{
    HeaderMap, HeaderValue, HttpDate, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use awc::http::{Method, StatusCode};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::oci::{Digest, Reference, RepoName, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES};
pub use auth::{parse_challenges, Challenge};
use auth::{TokenCache, TokenResponse, MAX_TOKEN_RESPONSE};
use config::UpstreamConfig;

/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a response head once the request is sent.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a response body may stall before the download is abandoned, unless configured
/// otherwise ([`UpstreamClient::with_idle_timeout`]).
const IDLE_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of an error body kept for the message.
const ERROR_BODY_SNIPPET: usize = 512;

/// Why an upstream request failed. Cloneable: a single-flight fetch hands the same outcome to
/// every waiter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream has no such manifest or blob")]
    NotFound,
    #[error("upstream refused our credentials: {0}")]
    Denied(String),
    /// 429: the upstream rate-limits us; `retry_after` is what it asked us to wait.
    #[error("upstream rate limit: {detail}")]
    TooManyRequests {
        detail: String,
        retry_after: Option<RetryAfter>,
    },
    /// 503: the upstream is down for now; `retry_after` as for a 429.
    #[error("upstream unavailable: {detail}")]
    Unavailable {
        detail: String,
        retry_after: Option<RetryAfter>,
    },
    #[error("upstream answered {0}")]
    Status(String),
    #[error("cannot reach upstream: {0}")]
    Connect(String),
    #[error("TLS with upstream failed: {0}")]
    Tls(String),
    #[error("upstream timed out: {0}")]
    Timeout(String),
    #[error("bad response from upstream: {0}")]
    Protocol(String),
    #[error("upstream client setup: {0}")]
    Config(String),
}

/// How long an upstream asked us to wait before trying again (`Retry-After` on a 429 or 503,
/// RFC 9110 §10.2.3), in whole seconds from when its answer arrived. Passed on to our clients,
/// so that they back off as the upstream asked rather than retrying into its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(u32);

impl RetryAfter {
    /// The longest wait passed on. A client honouring a day or a year (a broken or hostile
    /// upstream, or a date from a wrong clock) would stop pulling for that long; after an hour
    /// it asks again and hears the upstream's current answer.
    pub const MAX_SECONDS: u32 = 3600;

    /// Reads a `Retry-After` value: delta-seconds, or an HTTP-date (any of the three formats)
    /// measured from `now`. Anything else (a sign, a fraction, words, an impossible date) is
    /// `None`: better no advice than wrong advice. A date already past is 0; a wait longer than
    /// [`Self::MAX_SECONDS`] is capped to it.
    pub fn parse(value: &str, now: SystemTime) -> Option<RetryAfter> {
        let value = value.trim();
        let seconds = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // Too many digits for a u64 is still just a very long wait.
            value.parse::<u64>().unwrap_or(u64::MAX)
        } else {
            let at: SystemTime = value.parse::<HttpDate>().ok()?.into();
            match at.duration_since(now) {
                // Rounded up: never tell a client to come back before the upstream said.
                Ok(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
                Err(_) => 0,
            }
        };
        let capped = seconds.min(u64::from(Self::MAX_SECONDS));
        Some(RetryAfter(
            u32::try_from(capped).unwrap_or(Self::MAX_SECONDS),
        ))
    }

    /// The `Retry-After` of a response. The field is a singleton: a response carrying it more
    /// than once says nothing reliable, so it counts as absent.
    fn of(headers: &HeaderMap, now: SystemTime) -> Option<RetryAfter> {
        let mut values = headers.get_all(RETRY_AFTER);
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        RetryAfter::parse(value.to_str().ok()?, now)
    }

    pub fn seconds(self) -> u32 {
        self.0
    }
}

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, awc::error::PayloadError>>>>;

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: BodyStream,
    idle_timeout: Duration,
}

impl Response {
    fn header(&self, name: impl awc::http::header::AsHeaderName) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    async fn read_limited(&mut self, limit: usize) -> Result<Bytes, UpstreamError> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = next_chunk(&mut self.body, self.idle_timeout).await? {
            if buf.len() + chunk.len() > limit {
                return Err(UpstreamError::Protocol(format!(
                    "response body exceeds {limit} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// The start of an error body, for messages; never fails.
    async fn snippet(&mut self) -> String {
        let mut buf = Vec::new();
        while buf.len() < ERROR_BODY_SNIPPET {
            match next_chunk(&mut self.body, self.idle_timeout).await {
                Ok(Some(c)) => buf.extend_from_slice(&c),
                _ => break,
            }
        }
        buf.truncate(ERROR_BODY_SNIPPET);
        String::from_utf8_lossy(&buf).trim().to_string()
    }
}

async fn next_chunk(
    body: &mut BodyStream,
    idle_timeout: Duration,
) -> Result<Option<Bytes>, UpstreamError> {
    match tokio::time::timeout(idle_timeout, body.next()).await {
        Err(_) => Err(UpstreamError::Timeout(format!(
            "no data for {} ms",
            idle_timeout.as_millis()
        ))),
        Ok(None) => Ok(None),
        Ok(Some(Ok(b))) => Ok(Some(b)),
        Ok(Some(Err(e))) => Err(UpstreamError::Protocol(format!("reading body: {e}"))),
    }
}

/// A manifest as the upstream sent it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    /// The upstream's `Docker-Content-Digest`, checked against the bytes by the caller.
    pub digest_header: Option<String>,
}

/// A blob response body being received.
pub struct BlobBody {
    /// From `Content-Length`, when the upstream sent one.
    pub size: Option<u64>,
    body: BodyStream,
    idle_timeout: Duration,
}

impl BlobBody {
    /// The next chunk, `None` at the end; an error when the upstream stalls or breaks off.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        next_chunk(&mut self.body, self.idle_timeout).await
    }
}

/// Loads the OS trust store now, off the request path, so the first upstream request does
/// not pay for reading it.
pub fn warm_up() {
    let _ = tls::default_roots();
}

/// One upstream registry, as configured.
pub struct UpstreamClient {
    cfg: UpstreamConfig,
    base: String,
    client: awc::Client,
    tokens: RefCell<TokenCache>,
    /// Whether the current run of credential refusals has been logged: once per upstream
    /// until a request succeeds again, not once per request.
    denial_logged: Cell<bool>,
    idle_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(cfg: UpstreamConfig) -> Result<Self, UpstreamError> {
        let connector = awc::Connector::new()
            .timeout(CONNECT_TIMEOUT)
            .handshake_timeout(CONNECT_TIMEOUT)
            .rustls_0_23(tls::client_config(&cfg.tls)?);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(RESPONSE_TIMEOUT)
            .add_default_header((
                awc::http::header::USER_AGENT,
                concat!("ociregistry/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        Ok(UpstreamClient {
            base: cfg.base_url(),
            cfg,
            client,
            tokens: RefCell::new(TokenCache::default()),
            denial_logged: Cell::new(false),
            idle_timeout: IDLE_READ_TIMEOUT,
        })
    }

    /// Sets how long a response body may send nothing before the transfer is abandoned.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Fetches a manifest with every manifest media type in `Accept`.
    pub async fn manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<FetchedManifest, UpstreamError> {
        let url = format!("{}/v2/{}/manifests/{}", self.base, repo, reference);
        let mut resp = self.send(Method::GET, &url, repo, true).await?;
        let content_type = resp.header(CONTENT_TYPE);
        let digest_header = resp.header("docker-content-digest");
        let bytes = resp.read_limited(MAX_MANIFEST_BYTES).await?;
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest_header,
        })
    }

    /// Starts a blob download; the caller reads the body chunk by chunk.
    /// The digest a tag points at now, from a `HEAD` (registries do not count HEADs against
    /// pull rate limits). `None` when the upstream does not say (no `Docker-Content-Digest`).
    pub async fn manifest_digest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<Digest>, UpstreamError> {
        let url = format!("{}/v2/{}/manifests/{}", self.base, repo, reference);
        let resp = self.send(Method::HEAD, &url, repo, true).await?;
        Ok(resp
            .header("docker-content-digest")
            .and_then(|h| Digest::parse(&h).ok()))
    }

    /// The repository's tags, one page: `n` and `last` as the distribution spec defines them.
    /// The second value is whether the upstream says there are more (a `Link` header).
    pub async fn tags(
        &self,
        repo: &RepoName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<(Vec<String>, bool), UpstreamError> {
        let mut url = format!("{}/v2/{}/tags/list", self.base, repo);
        let mut sep = '?';
        if let Some(n) = n {
            url.push_str(&format!("{sep}n={n}"));
            sep = '&';
        }
        if let Some(last) = last {
            // Tags are [A-Za-z0-9_.-]: nothing to escape (checked by the caller).
            url.push_str(&format!("{sep}last={last}"));
        }
        let mut resp = self.send(Method::GET, &url, repo, false).await?;
        let more = resp
            .header(awc::http::header::LINK)
            .is_some_and(|l| l.contains("rel=\"next\""));
        let body = resp.read_limited(MAX_MANIFEST_BYTES).await?;
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let list: TagList = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Protocol(format!("tag list: {e}")))?;
        let mut tags = list.tags.unwrap_or_default();
        let listed = tags.len();
        tags.retain(|t| Reference::is_tag(t));
        if tags.len() < listed {
            log::warn!(
                "{}: the tag list of {repo} held {} entries that are not tags; left out",
                self.name(),
                listed - tags.len()
            );
        }
        Ok((tags, more))
    }

    /// The referrers of `subject` as an OCI image index: from the referrers API, or, where the
    /// upstream has none (404), from the referrers tag schema (`sha256-<hex>`); `None` when
    /// neither knows any.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> Result<Option<Bytes>, UpstreamError> {
        let url = format!("{}/v2/{}/referrers/{}", self.base, repo, subject);
        match self.send(Method::GET, &url, repo, true).await {
            Ok(mut resp) => return Ok(Some(resp.read_limited(MAX_MANIFEST_BYTES).await?)),
            Err(UpstreamError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let tag = Reference::Tag(format!("sha256-{}", subject.hex()));
        match self.manifest(repo, &tag).await {
            Ok(m) => Ok(Some(m.bytes)),
            Err(UpstreamError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn blob(&self, repo: &RepoName, digest: &Digest) -> Result<BlobBody, UpstreamError> {
        let url = format!("{}/v2/{}/blobs/{}", self.base, repo, digest);
        let resp = self.send(Method::GET, &url, repo, false).await?;
        let size = resp
            .header(CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok());
        Ok(BlobBody {
            size,
            body: resp.body,
            idle_timeout: self.idle_timeout,
        })
    }

    /// Whether the upstream answers at all: `GET /v2/`, whatever the status (a 401 asks for
    /// credentials, which proves it is there), unless it asks us to wait (429, 503). The
    /// breaker's probe: cheap, and never counted against a pull rate limit.
    pub async fn ping(&self) -> Result<(), UpstreamError> {
        let url = format!("{}/v2/", self.base);
        let sent = self.client.request(Method::GET, &url).send().await;
        let mut resp = into_response(sent.map_err(send_error)?, self.idle_timeout);
        match asked_to_wait(&mut resp).await {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// [`Self::send_authenticated`], logging a refusal of our credentials once per run of
    /// refusals rather than once per request (every request would fail the same way).
    async fn send(
        &self,
        method: Method,
        url: &str,
        repo: &RepoName,
        manifest: bool,
    ) -> Result<Response, UpstreamError> {
        let result = self.send_authenticated(method, url, repo, manifest).await;
        match &result {
            Err(UpstreamError::Denied(why)) => {
                if !self.denial_logged.replace(true) {
                    log::error!(
                        "upstream {} refused our credentials ({}): {why}",
                        self.cfg.name,
                        self.who()
                    );
                }
            }
            Ok(_) => self.denial_logged.set(false),
            Err(_) => {}
        }
        result
    }

    /// Who we authenticate as, for messages: the user name, never the password.
    fn who(&self) -> String {
        match &self.cfg.auth {
            Some(c) => format!("user {}", c.user),
            None => "anonymous".to_string(),
        }
    }

    /// Sends a request, answering one authentication challenge if the upstream poses one, and
    /// turns every non-success status into an [`UpstreamError`]. A cached token the upstream
    /// no longer accepts is replaced once; a second refusal is final.
    async fn send_authenticated(
        &self,
        method: Method,
        url: &str,
        repo: &RepoName,
        manifest: bool,
    ) -> Result<Response, UpstreamError> {
        let scope = format!("repository:{repo}:pull");
        let mut resp = self.send_once(&method, url, &scope, manifest).await?;
        if resp.status == StatusCode::UNAUTHORIZED {
            let challenge = resp.header(WWW_AUTHENTICATE).unwrap_or_default();
            let bearer = parse_challenges(&challenge)
                .into_iter()
                .find(|c| c.scheme == "bearer");
            if let Some(ch) = bearer {
                self.tokens.borrow_mut().forget(&scope);
                self.fetch_token(&ch, &scope).await?;
                resp = self.send_once(&method, url, &scope, manifest).await?;
            }
        }
        match resp.status {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => Err(UpstreamError::NotFound),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let s = resp.status;
                Err(UpstreamError::Denied(format!(
                    "{s} as {} {}",
                    self.who(),
                    resp.snippet().await
                )))
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                Err(asked_to_wait(&mut resp)
                    .await
                    .unwrap_or_else(|| UpstreamError::Status("429 or 503".into())))
            }
            s => Err(UpstreamError::Status(format!(
                "{s} {}",
                resp.snippet().await
            ))),
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        scope: &str,
        manifest: bool,
    ) -> Result<Response, UpstreamError> {
        let mut req = self.client.request(method.clone(), url);
        if manifest {
            req = req.insert_header((ACCEPT, MANIFEST_MEDIA_TYPES.join(", ")));
        }
        if let Some(auth) = self.authorization(scope) {
            req = req.insert_header((AUTHORIZATION, auth));
        }
        Ok(into_response(
            req.send().await.map_err(send_error)?,
            self.idle_timeout,
        ))
    }

    /// A cached bearer token for `scope`, else basic credentials when configured.
    fn authorization(&self, scope: &str) -> Option<HeaderValue> {
        let value = match self.tokens.borrow().get(scope) {
            Some(t) => format!("Bearer {t}"),
            None => auth::basic_header(self.cfg.auth.as_ref()?),
        };
        HeaderValue::from_str(&value).ok()
    }

    /// Asks the challenge's realm for a token and caches it for `scope`. Anonymous clients and
    /// clients with credentials first ask with GET (credentials as basic auth); when the token
    /// service refuses that with credentials, they try the OAuth2 password grant (POST), as
    /// containerd does, since some token services only accept that.
    async fn fetch_token(&self, ch: &Challenge, scope: &str) -> Result<(), UpstreamError> {
        let realm = ch
            .param("realm")
            .ok_or_else(|| UpstreamError::Protocol("bearer challenge without realm".into()))?;
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(UpstreamError::Protocol(format!(
                "bearer realm {realm:?} is not an http(s) URL"
            )));
        }
        let service = ch.param("service");
        let token_scope = ch.param("scope").unwrap_or(scope);
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        query.push(("scope", token_scope));
        let mut req = self
            .client
            .get(realm)
            .query(&query)
            .map_err(|e| UpstreamError::Protocol(format!("token request: {e}")))?;
        if let Some(c) = &self.cfg.auth {
            req = req.insert_header((AUTHORIZATION, auth::basic_header(c)));
        }
        let mut resp = into_response(req.send().await.map_err(send_error)?, self.idle_timeout);
        if !resp.status.is_success() {
            let get_status = resp.status;
            let get_detail = resp.snippet().await;
            let Some(creds) = &self.cfg.auth else {
                return Err(UpstreamError::Denied(format!(
                    "token service {realm} answered {get_status} to an anonymous request \
                     {get_detail}"
                )));
            };
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "password"),
                ("username", &creds.user),
                ("password", &creds.password),
                ("scope", token_scope),
                ("client_id", auth::CLIENT_ID),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            resp = into_response(
                self.client
                    .post(realm)
                    .send_form(&form)
                    .await
                    .map_err(send_error)?,
                self.idle_timeout,
            );
            if !resp.status.is_success() {
                let post_status = resp.status;
                let post_detail = resp.snippet().await;
                return Err(UpstreamError::Denied(format!(
                    "token service {realm} refused user {} (GET: {get_status} {get_detail}; \
                     POST: {post_status} {post_detail})",
                    creds.user
                )));
            }
        }
        let body = resp.read_limited(MAX_TOKEN_RESPONSE).await?;
        let tr: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Protocol(format!("token response from {realm}: {e}")))?;
        let token = tr
            .token
            .or(tr.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                UpstreamError::Protocol(format!("token response from {realm} has no token"))
            })?;
        self.tokens.borrow_mut().put(scope, token, tr.expires_in);
        Ok(())
    }
}

fn into_response(resp: awc::ClientResponse, idle_timeout: Duration) -> Response {
    Response {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: Box::pin(resp),
        idle_timeout,
    }
}

/// A 429 or 503: the upstream asks us to wait (with its `Retry-After`, if any); `None` for any
/// other status.
async fn asked_to_wait(resp: &mut Response) -> Option<UpstreamError> {
    let retry_after = RetryAfter::of(&resp.headers, SystemTime::now());
    match resp.status {
        StatusCode::TOO_MANY_REQUESTS => Some(UpstreamError::TooManyRequests {
            retry_after,
            detail: resp.snippet().await,
        }),
        s @ StatusCode::SERVICE_UNAVAILABLE => Some(UpstreamError::Unavailable {
            retry_after,
            detail: format!("{s} {}", resp.snippet().await),
        }),
        _ => None,
    }
}

fn send_error(e: awc::error::SendRequestError) -> UpstreamError {
    use awc::error::SendRequestError as E;
    match e {
        E::Timeout => UpstreamError::Timeout("no response head in time".into()),
        E::Connect(c) => classify_connect_error(c.to_string()),
        other => UpstreamError::Connect(other.to_string()),
    }
}

/// Tells TLS failures from other connection failures, with a hint at the setting that
/// usually fixes them.
fn classify_connect_error(msg: String) -> UpstreamError {
    let lower = msg.to_ascii_lowercase();
    let hint = if lower.contains("invalid peer certificate") {
        " (the upstream's certificate is not trusted: set this registry's tls.ca to its CA, or \
         tls.insecureSkipVerify for a test registry)"
    } else if lower.contains("certificaterequired") || lower.contains("handshakefailure") {
        " (the upstream may require a client certificate: set this registry's tls.cert and \
         tls.key)"
    } else if lower.contains("tls") || lower.contains("handshake") || lower.contains("alert") {
        ""
    } else {
        return UpstreamError::Connect(msg);
    };
    UpstreamError::Tls(format!("{msg}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06 08:49:37 UTC, the example date of RFC 9110.
    fn rfc_example_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    fn secs(value: &str) -> Option<u32> {
        RetryAfter::parse(value, rfc_example_time()).map(RetryAfter::seconds)
    }

    #[test]
    fn retry_after_delta_seconds_are_passed_on_and_huge_ones_capped_to_an_hour() {
        assert_eq!(secs("0"), Some(0));
        assert_eq!(secs("120"), Some(120));
        assert_eq!(secs(" 7 "), Some(7));
        assert_eq!(secs("3600"), Some(3600));
        assert_eq!(secs("3601"), Some(RetryAfter::MAX_SECONDS));
        assert_eq!(secs("31536000"), Some(RetryAfter::MAX_SECONDS));
        assert_eq!(
            secs("999999999999999999999999999999"),
            Some(RetryAfter::MAX_SECONDS)
        );
    }

    #[test]
    fn retry_after_dates_in_all_three_formats_count_from_now() {
        // Two minutes after the reference time, in IMF-fixdate, RFC 850 and asctime form.
        for later in [
            "Sun, 06 Nov 1994 08:51:37 GMT",
            "Sunday, 06-Nov-94 08:51:37 GMT",
            "Sun Nov  6 08:51:37 1994",
        ] {
            assert_eq!(secs(later), Some(120), "{later}");
        }
        assert_eq!(secs("Sun, 06 Nov 1994 08:49:37 GMT"), Some(0));
        assert_eq!(secs("Sat, 05 Nov 1994 08:49:37 GMT"), Some(0), "past");
        assert_eq!(
            secs("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(RetryAfter::MAX_SECONDS)
        );
        // Part of a second still to wait is a whole second.
        let just_before = rfc_example_time() - Duration::from_millis(1);
        assert_eq!(
            RetryAfter::parse("Sun, 06 Nov 1994 08:49:38 GMT", just_before).map(|r| r.seconds()),
            Some(2)
        );
    }

    #[test]
    fn malformed_retry_after_values_are_dropped() {
        for bad in [
            "",
            "  ",
            "-5",
            "+5",
            "1.5",
            "1e3",
            "0x10",
            "5 seconds",
            "soon",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "2024-01-01T00:00:00Z",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_response_with_more_than_one_retry_after_gives_no_advice() {
        let mut headers = HeaderMap::new();
        assert_eq!(RetryAfter::of(&headers, rfc_example_time()), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        assert_eq!(
            RetryAfter::of(&headers, rfc_example_time()),
            Some(RetryAfter(30))
        );
        headers.append(RETRY_AFTER, HeaderValue::from_static("60"));
        assert_eq!(RetryAfter::of(&headers, rfc_example_time()), None);
    }
}
