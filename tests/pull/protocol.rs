//! The distribution protocol as clients see it: response headers, the three ways to name the
//! upstream, byte ranges, and OCI error bodies for everything malformed.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use support::http::{self, MANIFEST_ACCEPT};
use support::{
    sha256_hex, wait_for, ImageTree, LocalImage, Server, ServerOptions, Upstream, UPSTREAM_NAME,
};

const REPO: &str = "e2e/proto";

fn upstream_with_image() -> (Upstream, ImageTree) {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["256K"]);
    let tree = upstream.push_oci(&image, REPO, "v1");
    (upstream, tree)
}

fn assert_manifest_response(r: &http::Response, digest: &str, media_type: &str, head: bool) {
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(digest),
        "{}",
        r.summary()
    );
    assert_eq!(
        r.header("Content-Type"),
        Some(media_type),
        "{}",
        r.summary()
    );
    assert_eq!(
        r.header("OCI-Namespace"),
        Some(UPSTREAM_NAME),
        "{}",
        r.summary()
    );
    let length: usize = r
        .header("Content-Length")
        .unwrap_or_else(|| panic!("no Content-Length: {}", r.summary()))
        .parse()
        .expect("numeric Content-Length");
    if !head {
        assert_eq!(length, r.body.len());
        assert_eq!(format!("sha256:{}", sha256_hex(&r.body)), digest);
    }
}

#[test]
fn a_manifest_whose_type_the_accept_headers_leave_out_is_404_and_served_when_listed_in_any_case() {
    let (upstream, tree) = upstream_with_image();
    let server = Server::start(&upstream.url());
    let path = server.manifest_path(REPO, "v1");
    let image_types_only = "application/vnd.oci.image.manifest.v1+json, \
                            application/vnd.docker.distribution.manifest.v2+json;q=0.9";

    // Cached first, so every answer below is a cache hit.
    let r = http::get_manifest(server.port, &path);
    assert_eq!(r.status, 200, "{}", r.summary());

    let r = http::get_with(server.port, &path, &[("Accept", image_types_only)]);
    r.assert_oci_error(404, "MANIFEST_UNKNOWN");

    for headers in [
        // The index's type in a second header, as c/image clients send them, in other case.
        vec![
            ("Accept", image_types_only),
            ("Accept", "Application/VND.OCI.Image.Index.v1+JSON; q=0.5"),
        ],
        vec![("Accept", image_types_only), ("Accept", "*/*")],
        vec![("Accept", "text/html")],
        vec![],
    ] {
        let r = http::get_with(server.port, &path, &headers);
        assert_eq!(r.status, 200, "{headers:?}: {}", r.summary());
        assert_eq!(r.header("Docker-Content-Digest"), Some(tree.top.as_str()));
    }
}

#[test]
fn manifests_and_blobs_carry_digest_type_length_and_namespace_headers() {
    let (upstream, tree) = upstream_with_image();
    let server = Server::start(&upstream.url());
    let index_type = "application/vnd.oci.image.index.v1+json";
    let accept = [("Accept", MANIFEST_ACCEPT)];

    for method in ["HEAD", "GET"] {
        let r = http::request(
            server.port,
            method,
            &server.manifest_path(REPO, "v1"),
            &accept,
        )
        .expect("manifest by tag");
        assert_manifest_response(&r, &tree.top, index_type, method == "HEAD");
        let r = http::request(
            server.port,
            method,
            &server.manifest_path(REPO, &tree.top),
            &accept,
        )
        .expect("manifest by digest");
        assert_manifest_response(&r, &tree.top, index_type, method == "HEAD");
    }
    let amd64 = tree.platform("amd64");
    let r = http::get_manifest(server.port, &server.manifest_path(REPO, &amd64.manifest));
    assert_manifest_response(
        &r,
        &amd64.manifest,
        "application/vnd.oci.image.manifest.v1+json",
        false,
    );

    let layer = &amd64.layers[0];
    let expected = upstream.blob(REPO, layer);
    let r = http::get(server.port, &server.blob_path(REPO, layer));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.body, expected, "blob bytes differ from the upstream's");
    assert_eq!(r.header("Docker-Content-Digest"), Some(layer.as_str()));
    assert_eq!(
        r.header("Content-Length"),
        Some(expected.len().to_string().as_str())
    );
    assert_eq!(r.header("OCI-Namespace"), Some(UPSTREAM_NAME));
    let r =
        http::request(server.port, "HEAD", &server.blob_path(REPO, layer), &[]).expect("blob HEAD");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("Docker-Content-Digest"), Some(layer.as_str()));
    assert_eq!(
        r.header("Content-Length"),
        Some(expected.len().to_string().as_str())
    );
}

#[test]
fn upstream_is_chosen_by_ns_parameter_in_path_host_or_default_namespace() {
    let (upstream, tree) = upstream_with_image();
    let options = ServerOptions {
        default_ns: Some(UPSTREAM_NAME.to_string()),
        ..ServerOptions::new(&upstream.url())
    };
    let server = Server::start_with(options);
    let targets = [
        format!("/v2/{REPO}/manifests/v1?ns={UPSTREAM_NAME}"),
        format!("/v2/{UPSTREAM_NAME}/{REPO}/manifests/v1"),
        format!("/v2/{REPO}/manifests/v1"),
    ];
    for target in &targets {
        let r = http::get_manifest(server.port, target);
        assert_eq!(r.status, 200, "{target}: {}", r.summary());
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(tree.top.as_str()),
            "{target}"
        );
        assert_eq!(r.header("OCI-Namespace"), Some(UPSTREAM_NAME), "{target}");
    }
    let layer = &tree.platform("arm64").layers[0];
    let r = http::get(
        server.port,
        &format!("/v2/{REPO}/blobs/{layer}?ns={UPSTREAM_NAME}"),
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(format!("sha256:{}", sha256_hex(&r.body)), *layer);
}

#[test]
fn naming_the_upstream_twice_is_refused_before_any_upstream_request() {
    let (upstream, tree) = upstream_with_image();
    let server = Server::start(&upstream.url());
    let mark = upstream.log_mark();
    let up = UPSTREAM_NAME;
    let unknown_blob = format!("sha256:{}", "1".repeat(64));
    for query in [
        format!("?ns={up}&ns=localhost"),
        format!("?ns={up}&ns={up}"),
    ] {
        for target in [
            format!("/v2/{REPO}/manifests/v1{query}"),
            format!("/v2/{REPO}/blobs/{unknown_blob}{query}"),
            format!("/v2/{REPO}/tags/list{query}"),
            format!("/v2/{REPO}/referrers/{}{query}", tree.top),
        ] {
            let r = http::get_manifest(server.port, &target);
            assert_eq!(r.status, 400, "{target}: {}", r.summary());
            assert_eq!(
                r.oci_error_codes(),
                Some(vec!["NAME_INVALID".to_string()]),
                "{target}: {}",
                r.summary()
            );
        }
    }

    // Named once, the upstream is asked; once the upstream has logged that request, every
    // earlier one would be in its log too.
    let amd64 = &tree.platform("amd64").manifest;
    let r = http::get_manifest(
        server.port,
        &format!("/v2/{REPO}/manifests/{amd64}?ns={up}"),
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    let seen = wait_for(
        "the upstream to log the manifest fetch",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let seen = upstream.requests_since(mark);
            seen.iter()
                .any(|e| e.path.contains(amd64.as_str()))
                .then_some(seen)
        },
    );
    let refused = [
        format!("/{REPO}/manifests/v1"),
        unknown_blob,
        format!("/{REPO}/tags/list"),
        format!("/{REPO}/referrers/"),
    ];
    assert!(
        !seen
            .iter()
            .any(|e| refused.iter().any(|r| e.path.contains(r.as_str()))),
        "a refused request reached the upstream: {seen:?}"
    );
}

#[test]
fn valid_ranges_on_a_cached_blob_get_206_with_the_right_bytes() {
    let (upstream, tree) = upstream_with_image();
    let server = Server::start(&upstream.url());
    let layer = &tree.platform("amd64").layers[0];
    let path = server.blob_path(REPO, layer);
    let full = http::get(server.port, &path);
    assert_eq!(full.status, 200, "{}", full.summary());
    let body = full.body;
    let size = body.len();
    assert!(size > 1000);

    let cases: [(String, usize, usize); 5] = [
        ("bytes=0-99".into(), 0, 99),
        ("bytes=100-".into(), 100, size - 1),
        ("bytes=-100".into(), size - 100, size - 1),
        ("bytes=7-7".into(), 7, 7),
        (format!("bytes=500-{}", size + 1000), 500, size - 1),
    ];
    for (range, first, last) in cases {
        let r = http::get_with(server.port, &path, &[("Range", &range)]);
        assert_eq!(r.status, 206, "Range {range}: {}", r.summary());
        assert_eq!(
            r.body,
            &body[first..=last],
            "Range {range}: wrong bytes ({} bytes received)",
            r.body.len()
        );
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes {first}-{last}/{size}").as_str()),
            "Range {range}"
        );
        assert_eq!(
            r.header("Content-Length"),
            Some((last - first + 1).to_string().as_str()),
            "Range {range}"
        );
    }
}

/// One malformed request and what it must get.
struct Case {
    what: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    statuses: &'static [u16],
    /// Acceptable OCI error codes; empty means any code (the body must still be an OCI error).
    codes: &'static [&'static str],
}

fn case(
    what: &'static str,
    method: &'static str,
    target: String,
    statuses: &'static [u16],
    codes: &'static [&'static str],
) -> Case {
    Case {
        what,
        method,
        target,
        headers: Vec::new(),
        statuses,
        codes,
    }
}

#[test]
fn malformed_requests_get_oci_errors_and_the_server_keeps_serving() {
    let (upstream, tree) = upstream_with_image();
    let server = Server::start(&upstream.url());
    // A cached blob for the range cases.
    let layer = tree.platform("amd64").layers[0].clone();
    let blob = server.blob_path(REPO, &layer);
    let primed = http::get(server.port, &blob);
    assert_eq!(primed.status, 200, "{}", primed.summary());

    let up = UPSTREAM_NAME;
    let good_hex = support::hex_of(&layer).to_string();
    let long_component = "a".repeat(300);
    let long_tag = "t".repeat(129);
    const NAME: &[&str] = &["NAME_INVALID"];
    const DIGEST: &[&str] = &["DIGEST_INVALID"];
    // A malformed digest in the manifest position is invalid as a digest and as a reference.
    const MANIFEST_DIGEST: &[&str] = &["DIGEST_INVALID", "MANIFEST_INVALID"];
    const MANIFEST: &[&str] = &["MANIFEST_INVALID"];
    const UNSUPPORTED: &[&str] = &["UNSUPPORTED"];
    const ANY: &[&str] = &[];

    let mut cases = vec![
        // Names.
        case(
            "upper-case name",
            "GET",
            format!("/v2/{up}/E2e/Proto/manifests/v1"),
            &[400],
            NAME,
        ),
        case(
            "`..` segment",
            "GET",
            format!("/v2/{up}/e2e/../proto/manifests/v1"),
            &[400],
            NAME,
        ),
        case(
            "`..` as the whole repository",
            "GET",
            format!("/v2/{up}/../manifests/v1"),
            &[400],
            NAME,
        ),
        case(
            "`//` after the host",
            "GET",
            format!("/v2/{up}//proto/manifests/v1"),
            &[400],
            NAME,
        ),
        case(
            "empty middle segment",
            "GET",
            format!("/v2/{up}/e2e//proto/manifests/v1"),
            &[400],
            NAME,
        ),
        case(
            "empty last segment",
            "GET",
            format!("/v2/{up}/e2e/proto//manifests/v1"),
            &[400],
            NAME,
        ),
        case(
            "300-character component",
            "GET",
            format!("/v2/{up}/{long_component}/manifests/v1"),
            &[400],
            NAME,
        ),
        case(
            "leading separator",
            "GET",
            format!("/v2/{up}/-proto/manifests/v1"),
            &[400],
            NAME,
        ),
        case(
            "trailing separator",
            "GET",
            format!("/v2/{up}/proto./manifests/v1"),
            &[400],
            NAME,
        ),
        case(
            "bad name on a blob",
            "GET",
            format!("/v2/{up}/Bad/blobs/{layer}"),
            &[400],
            NAME,
        ),
        // Digests.
        case(
            "sha256 with non-hex",
            "GET",
            format!("/v2/{up}/{REPO}/blobs/sha256:xyz"),
            &[400],
            DIGEST,
        ),
        case(
            "md5 algorithm",
            "GET",
            format!("/v2/{up}/{REPO}/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"),
            &[400],
            DIGEST,
        ),
        case(
            "too short",
            "GET",
            format!("/v2/{up}/{REPO}/blobs/sha256:abc123"),
            &[400],
            DIGEST,
        ),
        case(
            "too long",
            "GET",
            format!("/v2/{up}/{REPO}/blobs/sha256:{good_hex}00"),
            &[400],
            DIGEST,
        ),
        case(
            "upper-case hex",
            "GET",
            format!("/v2/{up}/{REPO}/blobs/sha256:{}", good_hex.to_uppercase()),
            &[400],
            DIGEST,
        ),
        case(
            "no algorithm",
            "GET",
            format!("/v2/{up}/{REPO}/blobs/{good_hex}"),
            &[400],
            DIGEST,
        ),
        case(
            "HEAD with bad digest",
            "HEAD",
            format!("/v2/{up}/{REPO}/blobs/sha256:xyz"),
            &[400],
            ANY,
        ),
        case(
            "manifest by bad digest",
            "GET",
            format!("/v2/{up}/{REPO}/manifests/sha256:xyz"),
            &[400],
            MANIFEST_DIGEST,
        ),
        case(
            "manifest by md5 digest",
            "GET",
            format!("/v2/{up}/{REPO}/manifests/md5:d41d8cd98f00b204e9800998ecf8427e"),
            &[400],
            MANIFEST_DIGEST,
        ),
        // References.
        case(
            "tag with spaces",
            "GET",
            format!("/v2/{up}/{REPO}/manifests/tag%20with%20space"),
            &[400],
            MANIFEST,
        ),
        case(
            "129-character tag",
            "GET",
            format!("/v2/{up}/{REPO}/manifests/{long_tag}"),
            &[400],
            MANIFEST,
        ),
        case(
            "tag starting with a dot",
            "GET",
            format!("/v2/{up}/{REPO}/manifests/.v1"),
            &[400],
            MANIFEST,
        ),
        // Not found upstream.
        case(
            "unknown tag",
            "GET",
            format!("/v2/{up}/{REPO}/manifests/no-such-tag"),
            &[404],
            &["MANIFEST_UNKNOWN"],
        ),
        case(
            "unknown repository",
            "GET",
            format!("/v2/{up}/e2e/no-such-repo/manifests/v1"),
            &[404],
            &["MANIFEST_UNKNOWN", "NAME_UNKNOWN"],
        ),
        case(
            "unknown blob",
            "GET",
            format!("/v2/{up}/{REPO}/blobs/sha256:{}", "0".repeat(64)),
            &[404],
            &["BLOB_UNKNOWN"],
        ),
        // Upstream that does not resolve.
        case(
            "unresolvable upstream host",
            "GET",
            "/v2/nonexistent.invalid/e2e/proto/manifests/v1".to_string(),
            &[502, 504],
            ANY,
        ),
        // Write methods.
        case(
            "PUT manifest",
            "PUT",
            format!("/v2/{up}/{REPO}/manifests/v1"),
            &[405],
            UNSUPPORTED,
        ),
        case(
            "DELETE manifest",
            "DELETE",
            format!("/v2/{up}/{REPO}/manifests/v1"),
            &[405],
            UNSUPPORTED,
        ),
        case("DELETE blob", "DELETE", blob.clone(), &[405], UNSUPPORTED),
        case(
            "POST upload",
            "POST",
            format!("/v2/{up}/{REPO}/blobs/uploads/"),
            &[405],
            UNSUPPORTED,
        ),
        case(
            "PATCH upload",
            "PATCH",
            format!("/v2/{up}/{REPO}/blobs/uploads/some-session"),
            &[405],
            UNSUPPORTED,
        ),
        case(
            "PUT upload",
            "PUT",
            format!("/v2/{up}/{REPO}/blobs/uploads/some-session?digest={layer}"),
            &[405],
            UNSUPPORTED,
        ),
    ];
    for (what, range) in [
        ("reversed range", "bytes=10-5"),
        ("range past the end", "bytes=999999999-"),
    ] {
        let mut c = case(what, "GET", blob.clone(), &[416], ANY);
        c.headers.push(("Range", range.to_string()));
        cases.push(c);
    }

    let mut failures = Vec::new();
    for c in &cases {
        let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = match http::request(server.port, c.method, &c.target, &headers) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!(
                    "{}: {} {} -> I/O error {e}",
                    c.what, c.method, c.target
                ));
                continue;
            }
        };
        let mut problems = Vec::new();
        if !c.statuses.contains(&r.status) {
            problems.push(format!("status {} (expected {:?})", r.status, c.statuses));
        }
        if c.method != "HEAD" {
            match r.oci_error_codes() {
                None => problems.push("body is not an OCI error".to_string()),
                Some(codes) => {
                    if !c.codes.is_empty()
                        && !codes.iter().any(|code| c.codes.contains(&code.as_str()))
                    {
                        problems.push(format!("codes {codes:?} (expected one of {:?})", c.codes));
                    }
                }
            }
            let ct = r.header("Content-Type").unwrap_or("");
            if !ct.contains("json") {
                problems.push(format!("Content-Type {ct:?} is not JSON"));
            }
        }
        if c.what == "unresolvable upstream host" && !r.text().contains("nonexistent.invalid") {
            problems.push("error does not name the upstream".to_string());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} {} -> {}; got {}",
                c.what,
                c.method,
                c.target,
                problems.join(", "),
                r.summary()
            ));
        }
        let alive = http::get(server.port, "/v2/");
        if alive.status != 200 {
            failures.push(format!("after {}: GET /v2/ -> {}", c.what, alive.summary()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed requests were not answered as specified:\n{}\n--- server log ---\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        server.log_tail()
    );
}

#[test]
fn a_tls_handshake_on_the_plain_http_port_is_refused_with_one_debug_line_naming_the_client() {
    // Docker tries TLS first against every registry: that must not log an ERROR each time.
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--log-level".into(), "debug".into()],
        ..ServerOptions::new("http://127.0.0.1:1")
    });
    let url = format!("https://127.0.0.1:{}/v2/", server.port);
    let out = support::proc::run(
        std::process::Command::new("curl").args(["-sk", "--max-time", "5", &url]),
        Duration::from_secs(10),
    );
    assert!(
        !out.success(),
        "a TLS client was answered on the plain-HTTP port"
    );
    assert_eq!(http::get(server.port, "/v2/").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log_text();
    assert!(
        !log.contains(" ERROR "),
        "a TLS handshake logged an error:\n{}",
        server.log_tail()
    );
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS handshake") || l.contains("parse error"))
        .collect();
    assert!(
        lines.len() == 1
            && lines[0].contains(" DEBUG ")
            && lines[0].contains("127.0.0.1 sent a TLS handshake to this plain-HTTP port"),
        "not one debug line naming the client: {lines:#?}"
    );
}
