//! Talking to secured upstreams: TLS with a private CA or without verification, client
//! certificates, basic auth, and bearer tokens from a real token service; plus the allowlist
//! that keeps clients from sending us to arbitrary upstreams.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use support::http::{self, MANIFEST_ACCEPT};
use support::secure::{Pki, SecureOptions, SecureUpstream, TokenOptions, TokenService};
use support::{ImageTree, LocalImage, Server, ServerOptions, SkopeoDir, Upstream};

const REPO: &str = "e2e/secure";
const PRIVATE_REPO: &str = "e2e/private";
const USER: &str = "puller";
const PASSWORD: &str = "s3cret-pass";

/// A plain upstream holding one image under `REPO:v1` (and `PRIVATE_REPO:v1`).
fn storage_with_image() -> (Upstream, ImageTree) {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["128K", "64K"]);
    let tree = upstream.push_oci(&image, REPO, "v1");
    upstream.push_oci(&image, PRIVATE_REPO, "v1");
    (upstream, tree)
}

fn server_for(upstream_url: &str, registry_yaml: &str) -> Server {
    Server::start_with(ServerOptions {
        registry_yaml: registry_yaml.to_string(),
        ..ServerOptions::new(upstream_url)
    })
}

fn get_manifest(server: &Server, repo: &str) -> http::Response {
    http::get_with(
        server.port,
        &server.manifest_path(repo, "v1"),
        &[("Accept", MANIFEST_ACCEPT)],
    )
}

/// Pulls the whole image through the server and checks every byte.
fn assert_pull_works(server: &Server, tree: &ImageTree) {
    let copy = SkopeoDir::new();
    copy.copy_all(&server.in_path_ref(&tree.repo, "v1"))
        .expect_success();
    copy.assert_matches(tree);
}

fn assert_gateway_error(r: &http::Response, code: &str, needles: &[&str]) {
    assert_eq!(r.status, 502, "{}", r.summary());
    assert_eq!(
        r.oci_error_codes(),
        Some(vec![code.to_string()]),
        "{}",
        r.summary()
    );
    let text = r.text();
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
}

#[test]
fn tls_upstream_with_basic_auth_is_pulled_with_its_ca_or_without_verification() {
    let (plain, tree) = storage_with_image();
    let pki = Pki::new();
    let secured = SecureUpstream::start(
        &plain.storage_dir(),
        SecureOptions {
            tls: Some(&pki),
            basic_auth: Some((USER, PASSWORD)),
            ..Default::default()
        },
    );
    let auth = format!("auth:\n  user: {USER}\n  password: {PASSWORD}\n");

    let with_ca = server_for(
        &secured.url(),
        &format!("{auth}tls:\n  ca: {}\n", pki.file("ca.crt")),
    );
    assert_pull_works(&with_ca, &tree);

    let skip = server_for(
        &secured.url(),
        &format!("{auth}tls:\n  insecureSkipVerify: true\n"),
    );
    assert_pull_works(&skip, &tree);

    // Neither: the test CA is not in the OS trust store.
    let neither = server_for(&secured.url(), &auth);
    let r = get_manifest(&neither, REPO);
    assert_gateway_error(
        &r,
        "UNKNOWN",
        &["upstream.test", "TLS", "certificate", "tls.ca"],
    );

    // A CA that did not sign the upstream's certificate.
    let wrong_ca = server_for(
        &secured.url(),
        &format!("{auth}tls:\n  ca: {}\n", pki.file("other-ca.crt")),
    );
    let r = get_manifest(&wrong_ca, REPO);
    assert_gateway_error(&r, "UNKNOWN", &["upstream.test", "certificate"]);

    // Trusted, but the wrong password: the upstream refused our credentials.
    let wrong_password = server_for(
        &secured.url(),
        &format!(
            "auth:\n  user: {USER}\n  password: nope\ntls:\n  ca: {}\n",
            pki.file("ca.crt")
        ),
    );
    let r = get_manifest(&wrong_password, REPO);
    assert_gateway_error(&r, "DENIED", &["upstream.test", "refused our credentials"]);
    let r2 = get_manifest(&wrong_password, REPO);
    assert_eq!(r2.status, 502);
    let log = wrong_password.log_text();
    assert_eq!(
        log.matches("refused our credentials (user puller)").count(),
        1,
        "a refusal is logged once per upstream:\n{log}"
    );
    assert!(
        !log.contains("nope"),
        "the password leaked into the log:\n{log}"
    );
}

#[test]
fn mtls_upstream_needs_our_client_certificate() {
    let (plain, tree) = storage_with_image();
    let pki = Pki::new();
    let secured = SecureUpstream::start(
        &plain.storage_dir(),
        SecureOptions {
            tls: Some(&pki),
            client_certs: true,
            ..Default::default()
        },
    );
    let with_cert = server_for(
        &secured.url(),
        &format!(
            "tls:\n  ca: {}\n  cert: {}\n  key: {}\n",
            pki.file("ca.crt"),
            pki.file("client.crt"),
            pki.file("client.key")
        ),
    );
    assert_pull_works(&with_cert, &tree);

    // mTLS without verifying the server works too.
    let skip = server_for(
        &secured.url(),
        &format!(
            "tls:\n  insecureSkipVerify: true\n  cert: {}\n  key: {}\n",
            pki.file("client.crt"),
            pki.file("client.key")
        ),
    );
    assert_eq!(get_manifest(&skip, REPO).status, 200);

    let without = server_for(
        &secured.url(),
        &format!("tls:\n  ca: {}\n", pki.file("ca.crt")),
    );
    let r = get_manifest(&without, REPO);
    assert_eq!(r.status, 502, "{}", r.summary());
    assert!(r.text().contains("upstream.test"), "{}", r.summary());
}

fn token_upstream(plain: &Upstream, token: &TokenService) -> SecureUpstream {
    SecureUpstream::start(
        &plain.storage_dir(),
        SecureOptions {
            token: Some(token),
            ..Default::default()
        },
    )
}

#[test]
fn bearer_tokens_anonymous_with_credentials_and_refused() {
    let (plain, tree) = storage_with_image();
    let token = TokenService::start(TokenOptions {
        ttl_secs: 300,
        users: &[(USER, PASSWORD)],
        private_repos: &[PRIVATE_REPO],
        get_refuses_credentials: false,
    });
    let secured = token_upstream(&plain, &token);

    // Anonymous: public repository yes, private no.
    let anonymous = server_for(&secured.url(), "");
    assert_pull_works(&anonymous, &tree);
    let r = get_manifest(&anonymous, PRIVATE_REPO);
    assert_gateway_error(&r, "DENIED", &["upstream.test"]);

    // With credentials, the password read from a file.
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    let with_creds = server_for(
        &secured.url(),
        &format!(
            "auth:\n  user: {USER}\n  passwordFile: {}\n",
            secret.display()
        ),
    );
    let private_tree = ImageTree {
        repo: PRIVATE_REPO.to_string(),
        ..tree.clone()
    };
    assert_pull_works(&with_creds, &private_tree);
    assert!(token.count("issued", "GET") >= 1);

    // Wrong password: a clear refusal naming the upstream.
    let wrong = server_for(
        &secured.url(),
        &format!("auth:\n  user: {USER}\n  password: wrong\n"),
    );
    let r = get_manifest(&wrong, REPO);
    assert_gateway_error(
        &r,
        "DENIED",
        &["upstream.test", "refused our credentials", "token service"],
    );
    assert!(!r.text().contains("wrong"), "{}", r.summary());
}

#[test]
fn password_grant_is_used_when_the_token_get_refuses_credentials() {
    let (plain, tree) = storage_with_image();
    let token = TokenService::start(TokenOptions {
        ttl_secs: 300,
        users: &[(USER, PASSWORD)],
        private_repos: &[PRIVATE_REPO],
        get_refuses_credentials: true,
    });
    let secured = token_upstream(&plain, &token);
    // The server inherits this process's environment; the variable is used by this test only.
    std::env::set_var("E2E_UPSTREAM_PASSWORD", PASSWORD);
    let server = Server::start_with(ServerOptions {
        registry_yaml: format!("auth:\n  user: {USER}\n  passwordFromEnv: E2E_UPSTREAM_PASSWORD\n"),
        ..ServerOptions::new(&secured.url())
    });
    let private_tree = ImageTree {
        repo: PRIVATE_REPO.to_string(),
        ..tree
    };
    assert_pull_works(&server, &private_tree);
    assert!(token.count("refused", "GET") >= 1, "{:?}", token.requests());
    assert!(token.count("issued", "POST") >= 1, "{:?}", token.requests());
}

#[test]
fn expired_tokens_are_refreshed_transparently() {
    let (plain, tree) = storage_with_image();
    let token = TokenService::start(TokenOptions {
        ttl_secs: 2,
        users: &[],
        private_repos: &[],
        get_refuses_credentials: false,
    });
    let secured = token_upstream(&plain, &token);
    let server = server_for(&secured.url(), "");
    assert_eq!(get_manifest(&server, REPO).status, 200);
    let issued = token.count("issued", "GET");
    assert!(issued >= 1);
    std::thread::sleep(Duration::from_secs(4));
    // The cached token has expired; the tag list, which always asks the upstream (a list
    // fetched by tag has had its platform images completed in the background by now), needs
    // a new one.
    let r = http::get(server.port, &format!("/v2/upstream.test/{REPO}/tags/list"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.header("Warning").is_none(), "{}", r.summary());
    assert!(
        token.count("issued", "GET") > issued,
        "no new token was fetched: {:?}",
        token.requests()
    );
    assert_pull_works(&server, &tree);
}

#[test]
fn upstreams_outside_the_allowlist_are_refused_without_a_connection() {
    let (plain, tree) = storage_with_image();
    let refused = Server::start_with(ServerOptions {
        extra_yaml: "allowedUpstreams:\n  - quay.io\n  - \"*.example.com\"\n".into(),
        ..ServerOptions::new(&plain.url())
    });
    let mark = plain.log_mark();
    for target in [
        refused.manifest_path(REPO, "v1"),
        refused.blob_path(REPO, &tree.platforms[0].config),
        format!("/v2/{REPO}/manifests/v1?ns=upstream.test"),
    ] {
        let r = http::get_with(refused.port, &target, &[("Accept", MANIFEST_ACCEPT)]);
        assert_eq!(r.status, 403, "{target}: {}", r.summary());
        assert_eq!(r.oci_error_codes(), Some(vec!["DENIED".to_string()]));
        assert!(r.text().contains("upstream.test"), "{}", r.summary());
    }
    assert_eq!(
        plain.requests_since(mark),
        vec![],
        "a refused upstream must not be contacted"
    );
    assert!(refused.log_text().contains("not an allowed upstream"));

    let allowed = Server::start_with(ServerOptions {
        extra_yaml: "allowedUpstreams:\n  - upstream.test\n".into(),
        ..ServerOptions::new(&plain.url())
    });
    assert_pull_works(&allowed, &tree);
}

/// nginx in two roles in front of a real registry: an origin on `127.0.0.1` that wants our
/// Basic credentials and answers every blob GET with a 307 to a "CDN" on `127.0.0.2` (another
/// host, as registries send downloads to a CDN or a presigned URL), and that CDN, which serves
/// the registry's bytes. Both log the `Authorization` header of each request.
struct Redirector {
    origin_port: u16,
    dir: tempfile::TempDir,
    nginx: std::process::Child,
}

impl Redirector {
    fn start(registry_port: u16, basic: &str) -> Redirector {
        support::require_tool("nginx");
        let dir = tempfile::Builder::new()
            .prefix("e2e-redirector-")
            .tempdir()
            .expect("nginx dir");
        let (origin_port, cdn_port) = (support::free_port(), support::free_port());
        let d = dir.path().display();
        let conf = format!(
            r#"daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format auth '$request_method $uri "$http_authorization"';
    server {{
        listen 127.0.0.1:{origin_port};
        access_log {d}/origin.log auth;
        if ($http_authorization != "{basic}") {{ return 401; }}
        location ~ ^/v2/.+/blobs/ {{ return 307 http://127.0.0.2:{cdn_port}$request_uri; }}
        location / {{ proxy_pass http://127.0.0.1:{registry_port}; }}
    }}
    server {{
        listen 127.0.0.2:{cdn_port};
        access_log {d}/cdn.log auth;
        location / {{ proxy_pass http://127.0.0.1:{registry_port}; }}
    }}
}}
"#
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let nginx = std::process::Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nginx");
        let r = Redirector {
            origin_port,
            dir,
            nginx,
        };
        support::wait_for(
            "nginx to listen",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                let up = |addr: &str| std::net::TcpStream::connect(addr).is_ok();
                (up(&format!("127.0.0.1:{origin_port}")) && up(&format!("127.0.0.2:{cdn_port}")))
                    .then_some(())
            },
        );
        r
    }

    /// The blob requests one role logged, as `GET <path> "<Authorization or ->"` lines.
    fn blob_requests(&self, role: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(format!("{role}.log")))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("/blobs/"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        let _ = self.nginx.kill();
        let _ = self.nginx.wait();
    }
}

#[test]
fn a_blob_redirect_to_another_host_is_followed_without_the_upstream_credentials() {
    use base64::Engine as _;
    let (upstream, tree) = storage_with_image();
    let registry_port: u16 = upstream
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("upstream port");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let redirector = Redirector::start(registry_port, &basic);
    let server = server_for(
        &format!("http://127.0.0.1:{}", redirector.origin_port),
        &format!("auth:\n  user: {USER}\n  password: {PASSWORD}\n"),
    );
    assert_pull_works(&server, &tree);

    let origin = redirector.blob_requests("origin");
    let cdn = redirector.blob_requests("cdn");
    let blobs = tree.blob_digests();
    for digest in &blobs {
        assert!(
            origin
                .iter()
                .any(|l| l.contains(digest.as_str()) && l.ends_with(&format!("\"{basic}\""))),
            "the origin was not asked for {digest} with our credentials:\n{origin:#?}"
        );
        assert!(
            cdn.iter().any(|l| l.contains(digest.as_str())),
            "{digest} was not fetched from the redirect target:\n{cdn:#?}"
        );
    }
    assert!(
        cdn.iter().all(|l| l.ends_with("\"-\"")),
        "our credentials went to another host:\n{cdn:#?}"
    );
}
