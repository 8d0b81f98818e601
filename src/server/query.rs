//! The query string of the pull endpoints, parsed once per request into one type, so the same
//! malformed query string gets the same answer (400 `NAME_INVALID`) on every endpoint, before
//! the cache or any upstream is asked.

use actix_web::error::QueryPayloadError;
use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::web;
use actors::oci::Reference;
use serde::Deserialize;

use super::error::{ApiError, ErrorCode};

/// `?ns=&n=&last=&artifactType=`; other parameters are ignored. A parameter given twice is
/// refused (serde's duplicate-field check): with two `ns`, keeping either would fetch from an
/// upstream the client may not have meant, and which one depends on the parser.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullQuery {
    /// The upstream, as containerd names it when it uses us as a mirror.
    pub ns: Option<String>,
    /// `tags/list`: at most this many tags.
    pub n: Option<usize>,
    /// `tags/list`: the page starts after this tag (checked to be a tag).
    pub last: Option<String>,
    /// `referrers`: only referrers of this artifact type.
    pub artifact_type: Option<String>,
    /// The `X-Registry` request header: the upstream, as some clients of the Go server name
    /// it. Not a query parameter; see [`PullQuery::from_parts`].
    #[serde(skip)]
    pub x_registry: Option<String>,
}

/// The header that names the upstream when the query has no `ns`.
pub const X_REGISTRY: &str = "x-registry";

impl PullQuery {
    /// Parses `query` (the part after `?`, without it).
    pub fn parse(query: &str) -> Result<PullQuery, ApiError> {
        let parsed = web::Query::<PullQuery>::from_query(query)
            .map(web::Query::into_inner)
            .map_err(|e| match e {
                QueryPayloadError::Deserialize(e) => malformed(e.to_string()),
                other => malformed(other.to_string()),
            })?;
        if let Some(last) = &parsed.last {
            match Reference::parse(last) {
                Ok(Reference::Tag(_)) => {}
                Ok(Reference::Digest(_)) => {
                    return Err(malformed(format!(
                        "last={last:?} must be a tag, not a digest"
                    )))
                }
                Err(e) => return Err(malformed(format!("last={last:?}: {e}"))),
            }
        }
        Ok(parsed)
    }

    /// Parses `query` and takes the `X-Registry` header from `headers`; the header given twice
    /// (or not text) is refused like a repeated `ns`.
    pub fn from_parts(query: &str, headers: &HeaderMap) -> Result<PullQuery, ApiError> {
        let mut parsed = PullQuery::parse(query)?;
        let mut values = headers.get_all(X_REGISTRY);
        if let Some(value) = values.next() {
            if values.next().is_some() {
                return Err(malformed_header(
                    "X-Registry is given more than once".into(),
                ));
            }
            let value = value
                .to_str()
                .map_err(|_| malformed_header("X-Registry is not a registry host name".into()))?;
            parsed.x_registry = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        }
        Ok(parsed)
    }

    /// The upstream the request names: `ns`, else `X-Registry`; `None` leaves routing to the
    /// path and `defaultNs`.
    pub fn upstream(&self) -> Option<&str> {
        self.ns
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.x_registry.as_deref())
    }
}

fn malformed_header(why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::NameInvalid, why)
}

fn malformed(why: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::NameInvalid,
        format!("query string: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(query: &str) -> ApiError {
        let e = PullQuery::parse(query).expect_err(query);
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, ErrorCode::NameInvalid),
            "{query}"
        );
        e
    }

    #[test]
    fn every_parameter_is_read_and_decoded() {
        assert_eq!(PullQuery::parse("").unwrap(), PullQuery::default());
        let q = PullQuery::parse(
            "ns=quay.io&n=5&last=v1&artifactType=application%2Fvnd.example%2Bjson",
        )
        .unwrap();
        assert_eq!(
            q,
            PullQuery {
                ns: Some("quay.io".into()),
                n: Some(5),
                last: Some("v1".into()),
                artifact_type: Some("application/vnd.example+json".into()),
                x_registry: None,
            }
        );
    }

    #[test]
    fn x_registry_names_the_upstream_when_ns_does_not() {
        use actix_web::http::header::{HeaderName, HeaderValue};
        let mut headers = HeaderMap::new();
        let name = HeaderName::from_static(X_REGISTRY);
        headers.insert(name.clone(), HeaderValue::from_static("quay.io"));
        let q = PullQuery::from_parts("", &headers).unwrap();
        assert_eq!(q.upstream(), Some("quay.io"));
        let q = PullQuery::from_parts("ns=registry.k8s.io", &headers).unwrap();
        assert_eq!(q.upstream(), Some("registry.k8s.io"), "ns comes first");
        assert_eq!(
            PullQuery::from_parts("", &HeaderMap::new())
                .unwrap()
                .upstream(),
            None
        );
        headers.append(name, HeaderValue::from_static("ghcr.io"));
        let e = PullQuery::from_parts("", &headers).expect_err("given twice");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn unknown_parameters_are_ignored_even_when_repeated() {
        let q = PullQuery::parse("x=1&x=2&ns=quay.io&&&=&").unwrap();
        assert_eq!(q.ns.as_deref(), Some("quay.io"));
        // A bare `ns` is an empty one, left to the routing rules to refuse or not.
        assert_eq!(PullQuery::parse("ns").unwrap().ns.as_deref(), Some(""));
    }

    #[test]
    fn naming_the_upstream_twice_is_refused() {
        for query in ["ns=a.io&ns=b.io", "ns=a.io&ns=a.io", "ns=&ns=a.io"] {
            let e = refused(query);
            assert!(e.message.contains("ns"), "{query}: {}", e.message);
        }
    }

    #[test]
    fn malformed_values_and_repeats_are_refused_alike() {
        for query in [
            "n=many",
            "n=-1",
            "n=",
            "n=1&n=2",
            "last=v1&last=v2",
            "artifactType=a&artifactType=b",
        ] {
            refused(query);
        }
        let digest = format!("sha256:{}", "a".repeat(64));
        let e = refused(&format!("last={digest}"));
        assert!(e.message.contains("must be a tag"), "{}", e.message);
        refused("last=not%20a%20tag");
    }

    #[test]
    fn a_request_naming_two_upstreams_is_refused() {
        let req = actix_web::test::TestRequest::with_uri("/v2/a/manifests/v1?ns=a.io&ns=b.io")
            .to_http_request();
        let e = PullQuery::from_parts(req.query_string(), req.headers()).expect_err("two ns");
        assert_eq!(e.code, ErrorCode::NameInvalid);
    }
}
