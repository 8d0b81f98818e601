//! Hostile clients: a generated table of more than a thousand malformed or odd requests, raw
//! protocol abuse (HTTP/1.0, pipelining, huge headers, garbage), clients that send one byte a
//! second, and thousands of idle connections. The server answers with 4xx OCI errors or
//! correct answers (5xx only as 502/504 for an upstream that really fails), never panics,
//! keeps serving everyone else, and reads or writes nothing outside its cache root.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::checks::{assert_cache_sound, assert_server_alive};
use support::http::{self, MANIFEST_ACCEPT};
use support::{sha256_hex, ImageTree, LocalImage, Server, ServerOptions, Upstream, UPSTREAM_NAME};

const REPO: &str = "e2e/clients";
const SENTINEL: &str = "sentinel.txt";

fn world() -> (Upstream, ImageTree, Server) {
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["64K"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let server = Server::start(&upstream.url());
    // Warm the cache so the table also meets cached content.
    for target in [
        server.manifest_path(REPO, "v1"),
        server.manifest_path(REPO, &tree.platform("amd64").manifest),
        server.blob_path(REPO, &tree.platform("amd64").layers[0]),
    ] {
        let r = http::get_manifest(server.port, &target);
        assert_eq!(r.status, 200, "{target}: {}", r.summary());
    }
    (upstream, tree, server)
}

/// One request of the table.
struct Case {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
}

fn case(method: &'static str, target: String) -> Case {
    Case {
        method,
        target,
        headers: vec![("Accept", MANIFEST_ACCEPT.to_string())],
    }
}

fn table(tree: &ImageTree) -> Vec<Case> {
    let amd64 = tree.platform("amd64");
    let layer = amd64.layers[0].clone();
    let hex = layer.trim_start_matches("sha256:").to_string();
    let long = "a".repeat(300);
    let names: Vec<String> = vec![
        format!("{UPSTREAM_NAME}/{REPO}"),
        format!("{UPSTREAM_NAME}/E2E/clients"),
        format!("{UPSTREAM_NAME}/../cache"),
        format!("{UPSTREAM_NAME}/%2e%2e/{SENTINEL}"),
        format!("{UPSTREAM_NAME}/%2E%2E%2F%2E%2E"),
        format!("{UPSTREAM_NAME}/e2e%2fclients"),
        format!("{UPSTREAM_NAME}/./e2e"),
        format!("{UPSTREAM_NAME}//e2e"),
        format!("{UPSTREAM_NAME}/e2e/"),
        format!("{UPSTREAM_NAME}/{long}"),
        format!("{UPSTREAM_NAME}/a%20b"),
        format!("{UPSTREAM_NAME}/a%00b"),
        format!("{UPSTREAM_NAME}/%C3%BC"),
        format!("{UPSTREAM_NAME}/a..b"),
        format!("{UPSTREAM_NAME}/-a"),
        format!("{UPSTREAM_NAME}/a___b"),
        format!("{UPSTREAM_NAME}/a%5c..%5cb"),
        "..".to_string(),
        "../..".to_string(),
        "%2e%2e".to_string(),
        "%2e%2e%2f%2e%2e".to_string(),
        REPO.to_string(),
        "x".to_string(),
        "localhost/x".to_string(),
        "127.0.0.1:1/x".to_string(),
        format!("{UPSTREAM_NAME}:99999/x"),
        "127.0.0.1:0/x".to_string(),
        "%00/x".to_string(),
        format!("{UPSTREAM_NAME}/{REPO}/manifests/v1"),
        format!("{UPSTREAM_NAME}/{REPO}/blobs/{layer}"),
    ];
    let queries: Vec<String> = vec![
        String::new(),
        format!("?ns={UPSTREAM_NAME}"),
        "?ns=".into(),
        "?ns".into(),
        "?ns=..".into(),
        "?ns=../..".into(),
        "?ns=%2e%2e".into(),
        "?ns=a%2fb".into(),
        "?ns=http://x".into(),
        "?ns=127.0.0.1:1".into(),
        format!("?ns={UPSTREAM_NAME}&ns=localhost"),
        "?ns=%ZZ".into(),
        "?&&&=&".into(),
        format!("?ns={long}"),
        "?ns=UPSTREAM.TEST".into(),
        "?ns=%00".into(),
        "?ns=-bad-.x".into(),
    ];
    let mut cases = Vec::new();
    for name in &names {
        for q in &queries {
            cases.push(case("GET", format!("/v2/{name}/manifests/v1{q}")));
            cases.push(case("HEAD", format!("/v2/{name}/blobs/{layer}{q}")));
        }
    }
    let references: Vec<String> = vec![
        "v1".into(),
        ".".into(),
        "..".into(),
        "%2e%2e".into(),
        format!("..%2f..%2f{SENTINEL}"),
        "a".repeat(128),
        "a".repeat(129),
        "-x".into(),
        "_x".into(),
        "sha256:".into(),
        "sha256:zz".into(),
        format!("sha256:{}", &hex[..63]),
        format!("sha256:{hex}0"),
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha512:{hex}{hex}"),
        format!("md5:{}", &hex[..32]),
        "sha256:..%2f..".into(),
        "%00".into(),
        "v1%20".into(),
        "v1;rm".into(),
        amd64.manifest.clone(),
        tree.top.clone(),
        layer.clone(),
    ];
    for r in &references {
        for q in ["", "?ns=upstream.test"] {
            cases.push(case(
                "GET",
                format!("/v2/{UPSTREAM_NAME}/{REPO}/manifests/{r}{q}"),
            ));
            cases.push(case("HEAD", format!("/v2/{REPO}/manifests/{r}{q}")));
        }
    }
    let algorithms = [
        "sha256",
        "SHA256",
        "sha512",
        "sha384",
        "md5",
        "blake3",
        "sha256+b64u",
        "",
        "sha-256",
    ];
    for algo in algorithms {
        for len in [0usize, 1, 32, 63, 64, 65, 96, 128, 129] {
            let digits: String = hex.chars().cycle().take(len).collect();
            for d in [digits.clone(), digits.to_uppercase()] {
                for method in ["GET", "HEAD"] {
                    cases.push(case(
                        method,
                        format!("/v2/{UPSTREAM_NAME}/{REPO}/blobs/{algo}:{d}"),
                    ));
                }
            }
        }
    }
    for d in [
        format!("sha256:../../{SENTINEL}"),
        format!("sha256:%2e%2e%2f%2e%2e%2f{SENTINEL}"),
        format!("sha256:{hex}%2f.."),
        format!("sha256:{hex}/.."),
        hex.clone(),
        format!("sha256:{hex}:{hex}"),
        format!("sha256%3a{hex}"),
    ] {
        cases.push(case("GET", format!("/v2/{UPSTREAM_NAME}/{REPO}/blobs/{d}")));
    }
    let ranges = [
        "bytes=0-0",
        "bytes=-1",
        "bytes=0-",
        "bytes=5-2",
        "bytes=999999999999999999999-",
        "bytes=-0",
        "bytes=0-1,3-4",
        "bytes=--1",
        "bytes=1-1-1",
        "items=0-1",
        "bytes= 0 - 1 ",
        "bytes=18446744073709551615-18446744073709551615",
        "bytes=0-18446744073709551616",
        "bytes=-18446744073709551615",
        "bytes=",
        "bytes",
        "",
    ];
    for range in ranges {
        for method in ["GET", "HEAD"] {
            let mut c = case(method, format!("/v2/{UPSTREAM_NAME}/{REPO}/blobs/{layer}"));
            c.headers.push(("Range", range.to_string()));
            cases.push(c);
        }
    }
    for method in [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW", "CONNECT",
    ] {
        for target in [
            "/v2/".to_string(),
            format!("/v2/{UPSTREAM_NAME}/{REPO}/manifests/v1"),
            format!("/v2/{UPSTREAM_NAME}/{REPO}/blobs/uploads/"),
            format!("/v2/{UPSTREAM_NAME}/{REPO}/blobs/{layer}"),
        ] {
            cases.push(case(method, target));
        }
    }
    for target in [
        "/".to_string(),
        "/v2".to_string(),
        "/v2/_catalog".to_string(),
        format!("/v2/{UPSTREAM_NAME}/{REPO}/tags/list"),
        format!("/v2/../{SENTINEL}"),
        format!("/v2/%2e%2e/%2e%2e/{SENTINEL}"),
        format!("/%2e%2e/{SENTINEL}"),
        "//v2/".to_string(),
        "/v2/;/".to_string(),
    ] {
        cases.push(case("GET", target));
    }
    cases
}

/// Checks one answer; returns a note when it is a 502/504 (allowed: an upstream that fails) or
/// a 503 with `Retry-After` (an upstream that failed a moment ago, not asked again for now).
fn check_answer(c: &Case, r: &http::Response, sentinel: &str) -> Option<String> {
    let what = format!("{} {} {:?}", c.method, c.target, c.headers);
    assert!(
        !r.text().contains(sentinel),
        "{what}: the response carries the content of a file outside the cache"
    );
    if r.status >= 500 {
        let unreachable = r.status == 503 && r.header("Retry-After").is_some();
        assert!(
            r.status == 502 || r.status == 504 || unreachable,
            "{what}: server error {}",
            r.summary()
        );
        return Some(format!("{what} -> {}", r.status));
    }
    if r.status >= 400 && !r.body.is_empty() {
        assert!(
            r.oci_error_codes().is_some(),
            "{what}: error without an OCI error body: {}",
            r.summary()
        );
    }
    if r.status == 200 && c.method == "GET" {
        if let Some(d) = r.header("Docker-Content-Digest") {
            assert_eq!(
                format!("sha256:{}", sha256_hex(&r.body)),
                d,
                "{what}: body does not match Docker-Content-Digest"
            );
        }
    }
    None
}

#[test]
fn a_thousand_malformed_requests_get_4xx_or_correct_answers_and_touch_nothing_outside_the_cache() {
    let (_upstream, tree, mut server) = world();
    let sentinel_text = format!("SENTINEL-{}", std::process::id());
    let sentinel = server.work_dir().join(SENTINEL);
    std::fs::write(&sentinel, &sentinel_text).expect("write sentinel");
    let before = listing(server.work_dir());

    let cases = table(&tree);
    assert!(cases.len() >= 1000, "only {} cases", cases.len());
    let started = Instant::now();
    let mut gateway = Vec::new();
    let mut statuses = BTreeSet::new();
    for c in &cases {
        let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = http::request(server.port, c.method, &c.target, &headers).unwrap_or_else(|e| {
            panic!(
                "{} {}: no answer ({e})\n--- server log ---\n{}",
                c.method,
                c.target,
                server.log_tail()
            )
        });
        statuses.insert(r.status);
        gateway.extend(check_answer(c, &r, &sentinel_text));
    }
    eprintln!(
        "{} requests in {:?}; statuses {statuses:?}; {} gateway errors:\n{}",
        cases.len(),
        started.elapsed(),
        gateway.len(),
        gateway.join("\n")
    );
    // The one genuine upstream failure in the table: distribution answers 500 when asked for
    // a layer's digest as a manifest (it cannot parse the gzip bytes).
    let layer = &tree.platform("amd64").layers[0];
    for answer in gateway
        .iter()
        .filter(|a| !a.contains(&format!("/manifests/{layer}")))
    {
        assert!(
            !answer.contains(&format!("?ns={UPSTREAM_NAME} ")),
            "the healthy upstream was reported as failing: {answer}"
        );
    }

    raw_protocol_abuse(&server, &sentinel_text);

    assert_eq!(
        std::fs::read_to_string(&sentinel).expect("sentinel still there"),
        sentinel_text,
        "the file outside the cache was changed"
    );
    assert_eq!(
        listing(server.work_dir()),
        before,
        "files appeared or vanished outside the cache's directories"
    );
    assert_cache_sound(&server, "after the hostile table");
    assert_server_alive(&mut server, "after the hostile table");
    let r = http::get_manifest(server.port, &server.manifest_path(REPO, "v1"));
    assert_eq!(r.status, 200, "{}", r.summary());
}

/// Everything below `dir` except inside the cache's own content directories, which may grow.
fn listing(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
            let inside_content = ["cache/blobs/", "cache/fat/", "cache/img/", "cache/lts/"]
                .iter()
                .any(|c| rel.starts_with(c));
            if inside_content || rel.starts_with("cache/tmp/") {
                continue;
            }
            out.insert(rel);
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// Sends raw bytes, half-closes, and reads what comes back within five seconds.
fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Status codes of every response in `bytes` (several for pipelined requests).
fn statuses_in(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| {
            let line = &text[i..];
            let code = line.get(9..12)?;
            (line.get(8..9) == Some(" ")).then(|| code.parse().ok())?
        })
        .collect()
}

fn raw_protocol_abuse(server: &Server, sentinel: &str) {
    let port = server.port;
    let manifest = server.manifest_path(REPO, "v1");
    let big = "x".repeat(70 * 1024);
    let many_headers: String = (0..500).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let long_target = format!("/v2/{}", "a".repeat(100 * 1024));
    let pipelined = format!(
        "GET /v2/ HTTP/1.1\r\nHost: a\r\n\r\nGET {manifest} HTTP/1.1\r\nHost: a\r\nAccept: {MANIFEST_ACCEPT}\r\n\r\n\
         HEAD {manifest} HTTP/1.1\r\nHost: a\r\nAccept: {MANIFEST_ACCEPT}\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    );
    let cases: Vec<(String, Vec<u8>, Option<Vec<u16>>)> = vec![
        (
            "HTTP/1.0".into(),
            b"GET /v2/ HTTP/1.0\r\n\r\n".to_vec(),
            Some(vec![200]),
        ),
        (
            "HTTP/1.0 manifest".into(),
            format!("GET {manifest} HTTP/1.0\r\nAccept: {MANIFEST_ACCEPT}\r\n\r\n").into_bytes(),
            Some(vec![200]),
        ),
        (
            "pipelined".into(),
            pipelined.into_bytes(),
            Some(vec![200, 200, 200, 200]),
        ),
        (
            "huge header".into(),
            format!("GET /v2/ HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").into_bytes(),
            None,
        ),
        (
            "500 headers".into(),
            format!("GET /v2/ HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n").into_bytes(),
            None,
        ),
        (
            "100 KiB target".into(),
            format!("GET {long_target} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes(),
            None,
        ),
        (
            "absolute form".into(),
            b"GET http://127.0.0.1/v2/ HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            None,
        ),
        (
            "dot segments".into(),
            format!("GET /v2/../../{SENTINEL} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes(),
            None,
        ),
        ("asterisk".into(), b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), None),
        (
            "CONNECT".into(),
            b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            None,
        ),
        ("garbage".into(), b"GARBAGE\r\n\r\n".to_vec(), None),
        ("binary".into(), vec![0, 1, 2, 3, 255, 254, b'\r', b'\n', b'\r', b'\n'], None),
        ("HTTP/9.9".into(), b"GET /v2/ HTTP/9.9\r\n\r\n".to_vec(), None),
        ("bare LF".into(), b"GET /v2/ HTTP/1.1\nHost: a\n\n".to_vec(), None),
        (
            "negative length".into(),
            b"GET /v2/ HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n".to_vec(),
            None,
        ),
        (
            "length and chunked".into(),
            b"POST /v2/ HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            None,
        ),
        (
            "bad chunk".into(),
            b"POST /v2/x/blobs/uploads/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n".to_vec(),
            None,
        ),
        (
            "no host, two hosts".into(),
            b"GET /v2/ HTTP/1.1\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
            None,
        ),
        ("just a request line".into(), b"GET /v2/ HTTP/1.1\r\n".to_vec(), None),
    ];
    for (name, bytes, expected) in cases {
        let answer = raw(port, &bytes);
        let text = String::from_utf8_lossy(&answer);
        assert!(!text.contains(sentinel), "{name}: sentinel content served");
        let got = statuses_in(&answer);
        for s in &got {
            assert!(*s < 500, "{name}: server error {s}:\n{text}");
        }
        if let Some(expected) = expected {
            assert_eq!(got, expected, "{name}: {text}");
        }
    }
}

#[test]
fn ten_thousand_idle_and_slow_clients_do_not_stop_others_from_being_served() {
    let idle_count = idle_budget();
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["64K"], "linux/amd64");
    upstream.push_oci(&image, REPO, "v1");
    // Room for every socket of this test: the limit itself is pinned by the next test.
    let mut server = Server::start_with(ServerOptions {
        extra_args: vec!["--max-connections".into(), (idle_count + 100).to_string()],
        ..ServerOptions::new(&upstream.url())
    });
    let warm = http::get_manifest(server.port, &server.manifest_path(REPO, "v1"));
    assert_eq!(warm.status, 200, "{}", warm.summary());
    let port = server.port;
    let manifest = server.manifest_path(REPO, "v1");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    // Slow clients: a request head at one byte a second.
    let slow: Vec<_> = (0..16)
        .map(|_| {
            thread::spawn(move || {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
                let head = b"GET /v2/ HTTP/1.1\r\nHost: a\r\nX-Slow: yes\r\n\r\n";
                let started = Instant::now();
                for b in head.iter() {
                    if s.write_all(&[*b]).is_err() {
                        return started.elapsed();
                    }
                    thread::sleep(Duration::from_secs(1));
                    if started.elapsed() > Duration::from_secs(40) {
                        break;
                    }
                }
                started.elapsed()
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    // Idle connections: ten thousand, unless the descriptor limit cannot be raised that far.
    let mut idle = Vec::with_capacity(idle_count);
    for _ in 0..idle_count {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {} refused: {e}", idle.len()),
        }
    }
    let started = Instant::now();
    let r = http::get_manifest(port, &manifest);
    assert_eq!(r.status, 200, "{}", r.summary());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "with {idle_count} idle and 16 slow connections a cached manifest took {took:?}"
    );
    for _ in 0..20 {
        let r = http::get(port, "/v2/");
        assert_eq!(r.status, 200);
    }
    let open = open_descriptors(&server);
    assert!(
        open < idle_count + 16 + 600,
        "the server holds {open} descriptors for {idle_count} idle and 16 slow connections"
    );
    // The server drops connections that never send a complete request head.
    let mut closed = 0;
    thread::sleep(Duration::from_secs(8));
    for s in idle.iter_mut().take(200) {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            _ => closed += 1,
        }
    }
    assert!(
        closed == 200,
        "only {closed} of 200 idle connections were closed by the server after 8 s"
    );
    drop(idle);
    for t in slow {
        let lasted = t.join().expect("slow client");
        assert!(
            lasted < Duration::from_secs(20),
            "a slow client was kept for {lasted:?}"
        );
    }
    eprintln!("{idle_count} idle connections; cached manifest answered in {took:?}");
    assert_server_alive(&mut server, "after slow and idle clients");
}

/// How many idle sockets to open: 10,000, or fewer when this process cannot get the
/// descriptors (the server inherits the limit and raises its own soft limit to it).
fn idle_budget() -> usize {
    const WANTED: u64 = 10_000;
    let limit = raise_descriptor_limit(2 * WANTED + 4096);
    let budget = WANTED.min(limit.saturating_sub(512)) as usize;
    if budget < WANTED as usize {
        eprintln!(
            "descriptor limit {limit}: opening {budget} idle connections instead of {WANTED}"
        );
    }
    budget
}

/// Raises this process's open-file limit to `wanted` (the hard limit too when privileged, as
/// the test runs in CI), or as far as the hard limit allows; returns the soft limit now.
fn raise_descriptor_limit(wanted: u64) -> u64 {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE.get().unwrap_or((1024, 1024));
    if soft >= wanted {
        return soft;
    }
    if Resource::NOFILE.set(wanted, wanted.max(hard)).is_ok() {
        return wanted;
    }
    rlimit::increase_nofile_limit(wanted).unwrap_or(soft)
}

fn open_descriptors(server: &Server) -> usize {
    let pid = server.pid().expect("server running");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The connection limit the server reports in its start-up line ("at most N connections").
fn reported_connection_limit(server: &Server) -> usize {
    let log = server.log_text();
    let at = log
        .find("at most ")
        .unwrap_or_else(|| panic!("no connection limit in the start-up line:\n{log}"));
    log[at + "at most ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable connection limit:\n{log}"))
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot_instead_of_failing() {
    let upstream = Upstream::start();
    let mut server = Server::start_with(ServerOptions {
        extra_args: vec!["--max-connections".into(), "6".into()],
        ..ServerOptions::new(&upstream.url())
    });
    let limit = reported_connection_limit(&server);
    assert!(
        (6..6 + 64).contains(&limit),
        "limit {limit} for --max-connections 6"
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], server.port));
    let held: Vec<TcpStream> = (0..limit)
        .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect"))
        .collect();
    thread::sleep(Duration::from_millis(300));
    // One more: the kernel completes the handshake, the server does not take it up yet.
    let mut extra = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    extra
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .expect("send");
    extra
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut answer = Vec::new();
    let early = extra.read_to_end(&mut answer);
    assert!(
        answer.is_empty() && early.is_err(),
        "connection {} of a limit of {limit} was served at once: {:?}",
        limit + 1,
        String::from_utf8_lossy(&answer)
    );
    // A slot frees: the waiting connection is taken up and answered.
    drop(held);
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = extra.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "the waiting connection got: {text:?}"
    );
    let r = http::get(server.port, "/v2/");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_server_alive(&mut server, "after the connection limit was reached");
}
