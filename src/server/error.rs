//! The one place engine errors become OCI error responses
//! (`{"errors":[{"code":..,"message":..,"detail":..}]}`), so every failure a client sees has a
//! status, a code from the distribution spec and a message that names the cause.

use std::fmt;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use actors::oci::OciError;
use actors::upstream::UpstreamError;
use actors::EngineError;
use serde::{Serialize, Serializer};

/// The `Retry-After` of a 503 for a shared store that failed a request (down, or a blob
/// another replica is still fetching): the store client's own retries took about this long
/// already, and most outages of a store are short.
const STORE_RETRY_AFTER_SECS: u32 = 5;

/// The codes this server answers with: the distribution spec's, plus `UNKNOWN` and
/// `UNAVAILABLE`, which the distribution registry also sends and clients already know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    Unsupported,
    Unauthorized,
    Denied,
    TooManyRequests,
    Unavailable,
    Unknown,
}

impl ErrorCode {
    /// The code as clients match it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The response body: the spec allows several errors, we always report one.
#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    code: ErrorCode,
    message: &'a str,
    /// Always `null`: the message already names the cause.
    detail: Option<()>,
}

/// What a request was after, so "not found" gets the right code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Manifest,
    Blob,
    Other,
}

/// An error response: status, OCI code, message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Seconds for a `Retry-After` header: the upstream's own, when it rate-limits us or is
    /// unavailable, so our clients back off as it asked.
    pub retry_after: Option<u32>,
    /// A `WWW-Authenticate` challenge: docker and skopeo send the credentials they hold only
    /// after one names the scheme, so every 401 carries it.
    pub challenge: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// 401 `UNAUTHORIZED` with `challenge` as its `WWW-Authenticate` value.
    pub fn unauthorized(challenge: String, message: impl Into<String>) -> Self {
        ApiError {
            challenge: Some(challenge),
            ..ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
        }
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            message,
        )
    }

    pub fn from_engine(e: EngineError, target: Target) -> Self {
        let unknown = match target {
            Target::Manifest => ErrorCode::ManifestUnknown,
            Target::Blob => ErrorCode::BlobUnknown,
            Target::Other => ErrorCode::NameUnknown,
        };
        let msg = e.to_string();
        let mut retry_after = None;
        let (status, code) = match &e {
            EngineError::Invalid(o) => return o.clone().into(),
            EngineError::NotCached(_) => (StatusCode::NOT_FOUND, unknown),
            EngineError::UpstreamNotAllowed(_) => (StatusCode::FORBIDDEN, ErrorCode::Denied),
            EngineError::Upstream { source, .. } => match source {
                UpstreamError::NotFound => (StatusCode::NOT_FOUND, unknown),
                UpstreamError::Denied(_) => (StatusCode::BAD_GATEWAY, ErrorCode::Denied),
                UpstreamError::TooManyRequests { retry_after: r, .. } => {
                    retry_after = r.map(|r| r.seconds());
                    (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests)
                }
                UpstreamError::Unavailable { retry_after: r, .. } => {
                    retry_after = r.map(|r| r.seconds());
                    (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
                }
                UpstreamError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, ErrorCode::Unknown),
                _ => (StatusCode::BAD_GATEWAY, ErrorCode::Unknown),
            },
            EngineError::PullTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, ErrorCode::Unknown),
            EngineError::UpstreamUnreachable {
                retry_after_secs, ..
            } => {
                retry_after = Some(*retry_after_secs);
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
            }
            EngineError::DigestMismatch { .. }
            | EngineError::SizeMismatch { .. }
            | EngineError::BlobTooLarge { .. } => (StatusCode::BAD_GATEWAY, ErrorCode::Unknown),
            EngineError::InsufficientStorage(_) => {
                (StatusCode::INSUFFICIENT_STORAGE, ErrorCode::Unavailable)
            }
            EngineError::Store(s) if s.is_unavailable() => {
                retry_after = Some(STORE_RETRY_AFTER_SECS);
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
            }
            EngineError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Unknown),
            EngineError::NotSupported(_) => (StatusCode::BAD_REQUEST, ErrorCode::Unsupported),
            EngineError::FetchedElsewhere(_) => {
                retry_after = Some(STORE_RETRY_AFTER_SECS);
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
            }
            EngineError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
            }
            EngineError::Busy(_) => {
                retry_after = Some(STORE_RETRY_AFTER_SECS);
                (StatusCode::CONFLICT, ErrorCode::Unavailable)
            }
        };
        ApiError {
            retry_after,
            ..ApiError::new(status, code, msg)
        }
    }
}

impl From<OciError> for ApiError {
    fn from(e: OciError) -> Self {
        let code = match e {
            OciError::NameInvalid(_) => ErrorCode::NameInvalid,
            OciError::DigestInvalid(_) => ErrorCode::DigestInvalid,
            OciError::ReferenceInvalid(_) | OciError::ManifestInvalid(_) => {
                ErrorCode::ManifestInvalid
            }
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
    }
}

/// `Docker-Distribution-Api-Version: registry/2.0`, on every answer of the pull API, errors
/// included; built from constants, since a header name given as text is parsed and copied on
/// every response.
pub fn api_version() -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static("docker-distribution-api-version"),
        HeaderValue::from_static("registry/2.0"),
    )
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header(api_version());
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(challenge) = &self.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
        }
        response.json(ErrorBody {
            errors: [ErrorEntry {
                code: self.code,
                message: &self.message,
                detail: None,
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_not_found_is_unknown_for_what_was_asked() {
        let e = EngineError::upstream("quay.io", UpstreamError::NotFound);
        let m = ApiError::from_engine(e.clone(), Target::Manifest);
        assert_eq!(
            (m.status, m.code),
            (StatusCode::NOT_FOUND, ErrorCode::ManifestUnknown)
        );
        let b = ApiError::from_engine(e, Target::Blob);
        assert_eq!(b.code, ErrorCode::BlobUnknown);
    }

    #[test]
    fn upstream_failures_are_gateway_errors_naming_the_upstream() {
        let e = EngineError::upstream("quay.io", UpstreamError::Connect("refused".into()));
        let a = ApiError::from_engine(e, Target::Manifest);
        assert_eq!(a.status, StatusCode::BAD_GATEWAY);
        assert!(a.message.contains("quay.io"), "{}", a.message);
        let t = ApiError::from_engine(
            EngineError::PullTimeout {
                upstream: "quay.io".into(),
                what: "x".into(),
                millis: 5,
            },
            Target::Manifest,
        );
        assert_eq!(t.status, StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn refused_upstreams_and_refused_credentials_are_denied() {
        let a = ApiError::from_engine(
            EngineError::UpstreamNotAllowed("evil.example".into()),
            Target::Manifest,
        );
        assert_eq!(
            (a.status, a.code),
            (StatusCode::FORBIDDEN, ErrorCode::Denied)
        );
        assert!(a.message.contains("evil.example"), "{}", a.message);
        let d = ApiError::from_engine(
            EngineError::upstream("quay.io", UpstreamError::Denied("401".into())),
            Target::Blob,
        );
        assert_eq!(
            (d.status, d.code),
            (StatusCode::BAD_GATEWAY, ErrorCode::Denied)
        );
        assert!(
            d.message.contains("refused our credentials"),
            "{}",
            d.message
        );
    }

    fn retry_after(seconds: &str) -> Option<actors::upstream::RetryAfter> {
        actors::upstream::RetryAfter::parse(seconds, std::time::SystemTime::now())
    }

    fn retry_after_header(a: &ApiError) -> Option<String> {
        let response = a.error_response();
        let value = response.headers().get(header::RETRY_AFTER)?;
        Some(value.to_str().ok()?.to_string())
    }

    #[test]
    fn an_upstream_rate_limit_is_a_429_carrying_its_retry_after() {
        let e = EngineError::upstream(
            "quay.io",
            UpstreamError::TooManyRequests {
                detail: "slow down".into(),
                retry_after: retry_after("42"),
            },
        );
        let a = ApiError::from_engine(e, Target::Blob);
        assert_eq!(
            (a.status, a.code),
            (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests)
        );
        assert_eq!(retry_after_header(&a).as_deref(), Some("42"));
        assert!(a.message.contains("quay.io"), "{}", a.message);

        let without = ApiError::from_engine(
            EngineError::upstream(
                "quay.io",
                UpstreamError::TooManyRequests {
                    detail: String::new(),
                    retry_after: None,
                },
            ),
            Target::Manifest,
        );
        assert_eq!(without.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after_header(&without), None);
    }

    #[test]
    fn a_blob_another_replica_still_fetches_is_a_503_to_retry_and_a_store_fault_a_500() {
        let e = EngineError::FetchedElsewhere("blob sha256:ab is still being fetched".into());
        let a = ApiError::from_engine(e, Target::Blob);
        assert_eq!(
            (a.status, a.code),
            (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
        );
        assert_eq!(
            retry_after_header(&a),
            Some(STORE_RETRY_AFTER_SECS.to_string())
        );
        // Not a failure to reach the store: trying again would not help.
        let e = EngineError::Store(actors::store::StoreError::Setup("bad object".into()));
        let a = ApiError::from_engine(e, Target::Blob);
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after_header(&a), None);
    }

    #[test]
    fn an_unavailable_upstream_is_a_503_carrying_its_retry_after() {
        let e = EngineError::upstream(
            "quay.io",
            UpstreamError::Unavailable {
                detail: "503 maintenance".into(),
                retry_after: retry_after("5000"),
            },
        );
        let a = ApiError::from_engine(e, Target::Manifest);
        assert_eq!(
            (a.status, a.code),
            (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
        );
        assert_eq!(retry_after_header(&a).as_deref(), Some("3600"), "capped");
    }

    #[test]
    fn other_errors_carry_no_retry_after() {
        let a = ApiError::from_engine(
            EngineError::upstream("quay.io", UpstreamError::Status("500 boom".into())),
            Target::Blob,
        );
        assert_eq!(retry_after_header(&a), None);
    }

    #[test]
    fn the_body_is_one_oci_error_with_the_code_as_clients_match_it() {
        let e = ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NameInvalid,
            "bad \"ns\"",
        );
        let response = e.error_response();
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .expect("a JSON body is ready at once")
            .expect("a body");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "errors": [{"code": "NAME_INVALID", "message": "bad \"ns\"", "detail": null}]
            })
        );
        assert_eq!(ErrorCode::TooManyRequests.to_string(), "TOOMANYREQUESTS");
    }

    #[test]
    fn a_401_carries_the_basic_challenge_and_the_unauthorized_code() {
        let a = ApiError::unauthorized(
            "Basic realm=\"ociregistry\"".to_string(),
            "credentials required",
        );
        let response = a.error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Basic realm=\"ociregistry\"")
        );
        assert_eq!(a.code.as_str(), "UNAUTHORIZED");
        let other = ApiError::new(StatusCode::NOT_FOUND, ErrorCode::BlobUnknown, "x");
        assert!(other
            .error_response()
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .is_none());
    }

    #[test]
    fn malformed_input_is_a_400_with_the_matching_code() {
        let a: ApiError = OciError::DigestInvalid("x".into()).into();
        assert_eq!(
            (a.status, a.code),
            (StatusCode::BAD_REQUEST, ErrorCode::DigestInvalid)
        );
        let a = ApiError::from_engine(OciError::NameInvalid("x".into()).into(), Target::Blob);
        assert_eq!(a.code, ErrorCode::NameInvalid);
    }
}
