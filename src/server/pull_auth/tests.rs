//! The middleware and the token endpoint in an in-process app: the decision table (no
//! `pullAuth`, every pull private, some registries private × no, wrong and right credentials,
//! as Basic credentials and as tokens), the limiter and the cache as a client sees them.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpResponse};
use base64::Engine as _;

use super::*;

const PRIVATE: &str = "private.example";

/// bcrypt at cost 4, made once: the format `htpasswd -B` writes, cheap enough for many checks.
fn users() -> Htpasswd {
    static FILE: OnceLock<String> = OnceLock::new();
    let text = FILE.get_or_init(|| {
        let hash = |pw: &str| {
            bcrypt::hash_with_result(pw, 4)
                .expect("hash")
                .format_for_version(bcrypt::Version::TwoY)
        };
        format!("alice:{}\nbob:{}\n", hash("right-pass"), hash("bobs-pass"))
    });
    Htpasswd::parse(text).expect("test htpasswd")
}

fn settings(private: &[&str]) -> PullAuthSettings {
    PullAuthSettings {
        htpasswd: "/etc/ociregistry/htpasswd".into(),
        users: users(),
        realm: "test realm".into(),
        private: private.iter().map(|p| p.to_string()).collect(),
    }
}

fn auth_with(private: &[&str], policy: Policy) -> web::Data<PullAuth> {
    web::Data::new(PullAuth::with_policy(&settings(private), None, policy).expect("token key"))
}

/// Limits high enough that the table's wrong guesses never trip them.
const LENIENT: Policy = Policy {
    max_failures: 1000,
    ..limiter::DEFAULT_POLICY
};

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// One request through the guard, as the distribution routes wrap it.
async fn call(
    auth: Option<&web::Data<PullAuth>>,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    peer: &str,
) -> ServiceResponse {
    let mut app = App::new();
    if let Some(a) = auth {
        app = app.app_data(a.clone());
    }
    let app = app
        .service(web::resource(TOKEN_PATH).to(token_endpoint))
        .service(
            web::scope("/v2")
                .wrap(from_fn(guard))
                .default_service(web::to(|req: HttpRequest| async move {
                    let served = matches!(*req.method(), Method::GET | Method::HEAD);
                    match PullPath::parse(req.match_info().as_str()) {
                        Some(_) if served => HttpResponse::Ok().body("served"),
                        Some(_) => HttpResponse::MethodNotAllowed().finish(),
                        None => HttpResponse::NotFound().finish(),
                    }
                })),
        );
    let service = test::init_service(app).await;
    let mut req = TestRequest::default()
        .method(method)
        .uri(path)
        .peer_addr(format!("{peer}:40000").parse().expect("peer address"));
    if let Some(a) = authorization {
        req = req.insert_header((header::AUTHORIZATION, a));
    }
    test::call_service(&service, req.to_request()).await
}

async fn status(
    auth: Option<&web::Data<PullAuth>>,
    path: &str,
    authorization: Option<&str>,
) -> u16 {
    call(auth, Method::GET, path, authorization, "192.0.2.1")
        .await
        .status()
        .as_u16()
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Absent,
    AllPrivate,
    SomePrivate,
}

const VERSION: &str = "/v2/";
const PRIVATE_IN_PATH: &str = "/v2/private.example/team/app/manifests/v1";
const PRIVATE_BY_NS: &str = "/v2/team/app/manifests/v1?ns=Private.Example";
const OPEN: &str = "/v2/open.example/team/app/manifests/v1";
const UNROUTABLE: &str = "/v2/team/app/manifests/v1?ns=a&ns=b";

#[actix_web::test]
async fn the_decision_table() {
    // Statuses for no credentials, a wrong password, an unknown user, the right credentials.
    #[rustfmt::skip]
    let table: &[(Mode, &str, [u16; 4])] = &[
        (Mode::Absent,      VERSION,         [200, 200, 200, 200]),
        (Mode::Absent,      PRIVATE_IN_PATH, [200, 200, 200, 200]),
        (Mode::Absent,      OPEN,            [200, 200, 200, 200]),
        (Mode::AllPrivate,  VERSION,         [401, 401, 401, 200]),
        (Mode::AllPrivate,  PRIVATE_IN_PATH, [401, 401, 401, 200]),
        (Mode::AllPrivate,  OPEN,            [401, 401, 401, 200]),
        (Mode::SomePrivate, VERSION,         [401, 401, 401, 200]),
        (Mode::SomePrivate, PRIVATE_IN_PATH, [401, 401, 401, 200]),
        (Mode::SomePrivate, PRIVATE_BY_NS,   [401, 401, 401, 200]),
        (Mode::SomePrivate, OPEN,            [200, 401, 401, 200]),
        (Mode::SomePrivate, UNROUTABLE,      [401, 401, 401, 200]),
    ];
    let all = auth_with(&[], LENIENT);
    let some = auth_with(&[PRIVATE], LENIENT);
    let wrong = basic("alice", "wrong-pass");
    let unknown = basic("mallory", "right-pass");
    let right = basic("alice", "right-pass");
    for (mode, path, expected) in table {
        let auth = match mode {
            Mode::Absent => None,
            Mode::AllPrivate => Some(&all),
            Mode::SomePrivate => Some(&some),
        };
        let mut got = [0; 4];
        for (i, creds) in [None, Some(&wrong), Some(&unknown), Some(&right)]
            .into_iter()
            .enumerate()
        {
            got[i] = status(auth, path, creds.map(String::as_str)).await;
        }
        assert_eq!(&got, expected, "{mode:?} {path}");
    }
}

fn challenge(r: &ServiceResponse) -> Option<String> {
    let value = r.headers().get(header::WWW_AUTHENTICATE)?;
    Some(value.to_str().ok()?.to_string())
}

#[actix_web::test]
async fn a_401_challenges_to_fetch_a_token_and_carries_an_oci_error_body() {
    let auth = auth_with(&[], LENIENT);
    for creds in [None, Some(basic("alice", "nope"))] {
        let r = call(
            Some(&auth),
            Method::GET,
            VERSION,
            creds.as_deref(),
            "192.0.2.1",
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&r).as_deref(),
            Some("Bearer realm=\"http://localhost:8080/v2/token\",service=\"test realm\"")
        );
        let body: serde_json::Value = test::read_body_json(r).await;
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{body}");
    }
    let head = call(Some(&auth), Method::HEAD, OPEN, None, "192.0.2.1").await;
    assert_eq!(head.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn empty_or_foreign_credentials_count_as_none_and_garbage_as_wrong() {
    let some = auth_with(&[PRIVATE], LENIENT);
    // skopeo sends `Basic Og==` (":") when it holds no credentials.
    let empty = "Basic Og==";
    assert_eq!(status(Some(&some), OPEN, Some(empty)).await, 200);
    assert_eq!(status(Some(&some), PRIVATE_IN_PATH, Some(empty)).await, 401);
    assert_eq!(status(Some(&some), OPEN, Some("Digest abc")).await, 200);
    assert_eq!(
        status(Some(&some), PRIVATE_IN_PATH, Some("Digest abc")).await,
        401
    );
    for garbage in ["Basic !!!", "Basic bm8tY29sb24=", "basic"] {
        let expected = if garbage == "basic" { 200 } else { 401 };
        assert_eq!(
            status(Some(&some), OPEN, Some(garbage)).await,
            expected,
            "{garbage}"
        );
    }
    // The scheme is case-insensitive.
    let lower = basic("alice", "right-pass").replace("Basic", "basic");
    assert_eq!(
        status(Some(&some), PRIVATE_IN_PATH, Some(&lower)).await,
        200
    );
}

#[actix_web::test]
async fn writes_go_on_to_their_refusal() {
    let all = auth_with(&[], LENIENT);
    let r = call(Some(&all), Method::PUT, OPEN, None, "192.0.2.1").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn paths_the_pull_api_does_not_serve_go_on_to_their_404_unchallenged() {
    let all = auth_with(&[], LENIENT);
    for path in ["/v2/a/blobs/uploads/", "/v2/a/b", "/v2//manifests/latest"] {
        let r = call(Some(&all), Method::GET, path, None, "192.0.2.1").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(status(Some(&all), OPEN, None).await, 401);
}

#[actix_web::test]
async fn repeated_failures_from_one_address_get_429_with_retry_after_unchecked() {
    let policy = Policy {
        max_failures: 3,
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(300),
        max_addresses: 100,
    };
    let some = auth_with(&[PRIVATE], policy);
    let guesser = "198.51.100.9";
    let wrong = basic("alice", "guess");
    for _ in 0..3 {
        let r = call(
            Some(&some),
            Method::GET,
            PRIVATE_IN_PATH,
            Some(&wrong),
            guesser,
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let checks = some.bcrypt_checks();
    let right = basic("alice", "right-pass");
    for creds in [&wrong, &right] {
        let r = call(
            Some(&some),
            Method::GET,
            PRIVATE_IN_PATH,
            Some(creds),
            guesser,
        )
        .await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .expect("Retry-After seconds");
        assert!((299..=300).contains(&retry), "{retry}");
        let body: serde_json::Value = test::read_body_json(r).await;
        assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS", "{body}");
    }
    assert_eq!(some.bcrypt_checks(), checks, "refused without bcrypt");
    // Anonymous pulls of open upstreams need no check and go on; other addresses too.
    let r = call(Some(&some), Method::GET, OPEN, None, guesser).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(
        Some(&some),
        Method::GET,
        PRIVATE_IN_PATH,
        Some(&right),
        "198.51.100.10",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[actix_web::test]
async fn a_success_is_remembered_so_a_pull_pays_one_bcrypt() {
    let all = auth_with(&[], LENIENT);
    let right = basic("bob", "bobs-pass");
    for _ in 0..10 {
        assert_eq!(status(Some(&all), OPEN, Some(&right)).await, 200);
    }
    assert_eq!(all.bcrypt_checks(), 1);
    // An unknown user costs a bcrypt check too (against the decoy), and is never admitted,
    // even with another user's password.
    assert_eq!(
        status(Some(&all), OPEN, Some(&basic("eve", "bobs-pass"))).await,
        401
    );
    assert_eq!(
        status(Some(&all), OPEN, Some(&basic("eve", "right-pass"))).await,
        401
    );
    assert_eq!(all.bcrypt_checks(), 3);
}

#[test]
fn registry_keys_follow_routing() {
    assert_eq!(
        registry_key("Private.Example:5000").as_deref(),
        Some("private.example:5000")
    );
    assert_eq!(
        registry_key("index.docker.io").as_deref(),
        Some("docker.io")
    );
    assert_eq!(registry_key("not a host"), None);
}

#[test]
fn realms_need_no_escaping() {
    assert!(check_realm("ociregistry").is_ok());
    assert!(check_realm("Pull cache (lab)").is_ok());
    for bad in ["", "a\"b", "a\\b", "tab\there", "é"] {
        assert!(check_realm(bad).is_err(), "{bad:?}");
    }
}

/// `GET /v2/token` with `authorization`: the status and, on 200, the token.
async fn fetch_token(
    auth: &web::Data<PullAuth>,
    authorization: Option<&str>,
) -> (u16, Option<String>) {
    let r = call(
        Some(auth),
        Method::GET,
        TOKEN_PATH,
        authorization,
        "192.0.2.1",
    )
    .await;
    let status = r.status().as_u16();
    if status != 200 {
        if status == 401 {
            assert_eq!(
                challenge(&r).as_deref(),
                Some("Basic realm=\"test realm\""),
                "the token endpoint asks for Basic credentials"
            );
        }
        return (status, None);
    }
    let body: serde_json::Value = test::read_body_json(r).await;
    assert_eq!(body["expires_in"], 300, "{body}");
    assert_eq!(body["token"], body["access_token"], "{body}");
    (status, body["token"].as_str().map(str::to_string))
}

#[actix_web::test]
async fn the_token_endpoint_trades_credentials_for_tokens_and_anonymous_ones_where_anything_is_open(
) {
    let all = auth_with(&[], LENIENT);
    let some = auth_with(&[PRIVATE], LENIENT);
    let right = basic("alice", "right-pass");
    let wrong = basic("alice", "wrong");
    // Every pull private: no anonymous token.
    assert_eq!(fetch_token(&all, None).await.0, 401);
    assert_eq!(fetch_token(&all, Some(&wrong)).await.0, 401);
    let (_, user) = fetch_token(&all, Some(&right)).await;
    let user = format!("Bearer {}", user.expect("a user token"));
    for path in [VERSION, OPEN, PRIVATE_IN_PATH] {
        assert_eq!(status(Some(&all), path, Some(&user)).await, 200, "{path}");
    }
    // Some private: anonymous tokens open what is open, and nothing else.
    assert_eq!(fetch_token(&some, Some(&wrong)).await.0, 401);
    let (_, anon) = fetch_token(&some, None).await;
    let anon = format!("Bearer {}", anon.expect("an anonymous token"));
    assert_eq!(status(Some(&some), OPEN, Some(&anon)).await, 200);
    assert_eq!(status(Some(&some), PRIVATE_IN_PATH, Some(&anon)).await, 401);
    assert_eq!(
        status(Some(&some), VERSION, Some(&anon)).await,
        401,
        "docker login"
    );
    // A token is only good on the server that signed it, and unaltered.
    assert_eq!(status(Some(&some), OPEN, Some(&user)).await, 401);
    assert_eq!(status(Some(&some), OPEN, Some("Bearer abc.def")).await, 401);
    let r = call(
        Some(&some),
        Method::GET,
        OPEN,
        Some("Bearer x"),
        "192.0.2.1",
    )
    .await;
    assert!(
        challenge(&r).is_some_and(|c| c.starts_with("Bearer realm=")),
        "a refused token is answered with a fresh challenge"
    );
    // Without pullAuth there is no token endpoint.
    let r = call(None, Method::GET, TOKEN_PATH, None, "192.0.2.1").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_token_endpoint_is_rate_limited_like_everything_else() {
    let policy = Policy {
        max_failures: 2,
        ..LENIENT
    };
    let some = auth_with(&[PRIVATE], policy);
    let wrong = basic("alice", "wrong");
    assert_eq!(fetch_token(&some, Some(&wrong)).await.0, 401);
    assert_eq!(fetch_token(&some, Some(&wrong)).await.0, 401);
    let r = call(
        Some(&some),
        Method::GET,
        TOKEN_PATH,
        Some(&wrong),
        "192.0.2.1",
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
}

#[test]
fn content_is_private_only_when_no_open_registry_names_it() {
    let names = |n: &[&str]| {
        n.iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<String>>()
    };
    let auth = auth_with(&["private.test"], limiter::DEFAULT_POLICY);
    assert!(auth.only_private(&names(&["private.test"])));
    assert!(!auth.only_private(&names(&["private.test", "docker.io"])));
    assert!(!auth.only_private(&names(&["docker.io"])));
    assert!(
        !auth.only_private(&names(&[])),
        "content no cached manifest names has no known source"
    );
    let everything = auth_with(&[], limiter::DEFAULT_POLICY);
    assert!(
        !everything.only_private(&names(&["private.test"])),
        "without private registries every pull needs credentials anyway"
    );
}
