//! The query string of the pull endpoints, parsed once per request into one type, so the same
//! malformed query string gets the same answer (400 `NAME_INVALID`) on every endpoint, before
//! the cache or any upstream is asked.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::error::QueryPayloadError;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
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
}

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
}

fn malformed(why: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::NameInvalid,
        format!("query string: {why}"),
    )
}

/// Lets handlers take the parsed query as an argument, so no handler reads the raw string.
impl FromRequest for PullQuery {
    type Error = ApiError;
    type Future = Ready<Result<PullQuery, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(PullQuery::parse(req.query_string()))
    }
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
            }
        );
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
    fn the_extractor_refuses_before_the_handler_runs() {
        let req = actix_web::test::TestRequest::with_uri("/v2/a/manifests/v1?ns=a.io&ns=b.io")
            .to_http_request();
        let e = PullQuery::extract(&req).into_inner().expect_err("two ns");
        assert_eq!(e.code, ErrorCode::NameInvalid);
    }
}
