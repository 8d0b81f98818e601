//! A user of the Go server 1.8 switching over: their config file, their flags, the headers and
//! endpoints their clients use, and the admin API their scripts read.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::http;
use support::ops::{write_go18_manifest, Workspace};
use support::{LocalImage, Server, ServerOptions, Upstream, UPSTREAM_NAME};

const MANIFEST_ACCEPT: &str = support::http::MANIFEST_ACCEPT;

#[test]
fn a_go_config_file_serves_and_go_clients_headers_and_endpoints_are_answered() {
    let upstream = Upstream::start();
    let tree = upstream.push_oci(&LocalImage::generate(&["20K"]), "e2e/compat-go", "v1");
    let server = Server::start_with(ServerOptions {
        // The Go server's own keys: one without effect here in each place it can appear.
        registry_yaml: "opts:\n  scheme: http\n".into(),
        extra_yaml:
            "configFile: /etc/ociregistry/config.yaml\nlogLevel: INFO\n\
                     listConfig:\n  header: true\n  expr: compat-go\n\
                     pruneConfig:\n  enabled: false\n  type: Accessed\n  count: 0\n  dryrun: true\n"
                .into(),
        ..ServerOptions::new(&upstream.url())
    });
    let log = server.log_text();
    for key in ["\"configFile\"", "\"registries[0].opts\""] {
        let said = log
            .lines()
            .filter(|l| l.contains(key) && l.contains("has no effect here"))
            .count();
        assert_eq!(said, 1, "{key} is named once at start:\n{log}");
    }

    // X-Registry names the upstream for a path that does not.
    let path = "/v2/e2e/compat-go/manifests/v1";
    let r = http::get_with(
        server.port,
        path,
        &[("Accept", MANIFEST_ACCEPT), ("X-Registry", UPSTREAM_NAME)],
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("Docker-Content-Digest"), Some(tree.top.as_str()));
    assert_eq!(r.header("OCI-Namespace"), Some(UPSTREAM_NAME));
    let r = http::get_with(server.port, path, &[("Accept", MANIFEST_ACCEPT)]);
    assert_eq!(r.status, 400, "no upstream named: {}", r.summary());
    // `ns` comes first.
    let r = http::get_with(
        server.port,
        &format!("{path}?ns={UPSTREAM_NAME}"),
        &[
            ("Accept", MANIFEST_ACCEPT),
            ("X-Registry", "nowhere.invalid"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    let r = http::get_with(
        server.port,
        path,
        &[("X-Registry", UPSTREAM_NAME), ("X-Registry", "other.test")],
    );
    assert_eq!(r.status, 400, "named twice: {}", r.summary());
    // Blobs follow the header too.
    let layer = &tree.platform("amd64").layers[0];
    let r = http::get_with(
        server.port,
        &format!("/v2/e2e/compat-go/blobs/{layer}"),
        &[("X-Registry", UPSTREAM_NAME)],
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(format!("sha256:{}", support::sha256_hex(&r.body)), *layer);

    // GET /v2/auth: a token to a client that presents credentials, as the Go server answers.
    let r = http::get_with(
        server.port,
        "/v2/auth?scope=repository:x:pull&service=ociregistry",
        &[("Authorization", "Basic dXNlcjpwYXNz")],
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.json()["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(
        r.header("Cache-Control"),
        Some("no-cache, no-store, must-revalidate")
    );
    let r = http::get(server.port, "/v2/auth");
    assert_eq!(r.status, 400, "{}", r.summary());

    // `list` takes its defaults from listConfig: a header, only the matching manifests.
    let ws = Workspace::with_config(&upstream.url(), "");
    std::fs::write(
        &ws.config,
        "listConfig:\n  header: true\n  expr: compat-go\n",
    )
    .expect("write list config");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ociregistry"));
    cmd.arg("--image-path")
        .arg(server.cache_dir())
        .arg("--config-file")
        .arg(&ws.config)
        .arg("list");
    let out = support::proc::run(&mut cmd, std::time::Duration::from_secs(60)).expect_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "URL TYPE CREATED PULLED", "{out}");
    assert!(lines.len() > 1, "{out}");
    assert!(lines[1..].iter().all(|l| l.contains("compat-go")), "{out}");
}

#[test]
fn load_takes_the_go_flags_pull_timeout_and_an_upper_case_log_level() {
    let upstream = Upstream::start();
    upstream.push_oci(&LocalImage::generate(&["20K"]), "e2e/compat-load", "v1");
    let ws = Workspace::new(&upstream.url());
    let list = ws.file("images", &format!("{UPSTREAM_NAME}/e2e/compat-load:v1\n"));
    let out = ws.run(&[
        "--log-level",
        "DEBUG",
        "load",
        "--image-file",
        list.to_str().unwrap(),
        "--pull-timeout",
        "30000",
    ]);
    assert!(out.success(), "{out}");
    assert!(!ws.files("blobs").is_empty(), "{out}");
    let out = ws.run(&[
        "load",
        "--image-file",
        list.to_str().unwrap(),
        "--pull-timeout",
        "0",
    ]);
    assert_eq!(support::ops::code(&out), 2, "{out}");
}

/// The hand-written cache the admin fixtures describe: an OCI index by tag with its image
/// manifest by digest, and an image manifest by tag sharing a layer with it.
fn write_fixture_cache(cache: &std::path::Path) {
    let fixture = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/ops/fixtures/go-admin")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let oci_index = "application/vnd.oci.image.index.v1+json";
    let oci_image = "application/vnd.oci.image.manifest.v1+json";
    let image_a = fixture("image-a.json");
    let a_url = format!(
        "{UPSTREAM_NAME}/e2e/fixture-a@sha256:{}",
        support::sha256_hex(&image_a)
    );
    for (url, media_type, file, created, pulled) in [
        (
            format!("{UPSTREAM_NAME}/e2e/fixture-a:v1"),
            oci_index,
            "index.json",
            "2024-03-01T10:00:00",
            "2024-03-02T10:00:00",
        ),
        (
            a_url,
            oci_image,
            "image-a.json",
            "2024-03-01T10:00:01",
            "2024-03-02T10:00:00",
        ),
        (
            format!("{UPSTREAM_NAME}/e2e/fixture-b:v2"),
            oci_image,
            "image-b.json",
            "2024-03-05T08:30:00",
            "2024-03-06T09:15:42",
        ),
    ] {
        write_go18_manifest(cache, &url, media_type, &fixture(file), created, pulled);
    }
    std::fs::create_dir_all(cache.join("blobs")).expect("blobs dir");
    for blob in ["layer-one", "layer-two", "config-a", "config-b"] {
        let bytes = fixture(&format!("blob-{blob}"));
        std::fs::write(cache.join("blobs").join(support::sha256_hex(&bytes)), bytes)
            .expect("write blob");
    }
}

fn expected(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ops/fixtures/go-admin")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn admin_lists_answer_byte_for_byte_as_the_go_server_and_json_keeps_the_detail() {
    let dir = tempfile::Builder::new()
        .prefix("e2e-compat-admin-")
        .tempdir()
        .expect("temp dir");
    let cache = dir.path().join("cache");
    write_fixture_cache(&cache);
    let server = Server::start_with(ServerOptions {
        cache_dir: Some(cache.clone()),
        air_gapped: true,
        ..ServerOptions::new("http://127.0.0.1:9")
    });
    let port = server.port;
    let text = |target: &str| {
        let r = http::get(port, target);
        assert_eq!(r.status, 200, "{target}: {}", r.summary());
        r.text()
    };
    for (target, file) in [
        ("/cmd/manifest/list", "expect-manifest-list.txt"),
        (
            "/cmd/manifest/list?pattern=fixture",
            "expect-manifest-list.txt",
        ),
        ("/cmd/image/list", "expect-image-list.txt"),
        (
            "/cmd/image/list?digest=f337c0e7",
            "expect-image-list-by-digest.txt",
        ),
        ("/cmd/blob/list", "expect-blob-list.txt"),
        (
            "/cmd/manifest/list?pattern=nothing-like-it",
            "expect-empty.txt",
        ),
        ("/cmd/manifest/list?count=0", "expect-empty.txt"),
        ("/cmd/image/list?digest=ffffffffff", "expect-empty.txt"),
        ("/cmd/blob/list?substr=ffffffffff", "expect-empty.txt"),
    ] {
        assert_eq!(text(target), expected(file), "{target} against {file}");
    }
    assert_eq!(text("/cmd/manifest/list?count=1").lines().count(), 2);

    // JSON keeps the richer rows.
    let json = [("Accept", "application/json")];
    let rows = http::get_with(port, "/cmd/manifest/list", &json).json();
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r["type"].is_string() && r["mediaType"].is_string()));
    let blobs = http::get_with(port, "/cmd/blob/list", &json).json();
    assert!(blobs.as_array().unwrap().iter().all(|b| b["size"].is_u64()));

    // dryRun in every spelling of Go's ParseBool; anything else is refused.
    for spelling in ["T", "1", "True", "TRUE", "t", "true"] {
        let r = http::request(
            port,
            "DELETE",
            &format!("/cmd/prune?type=PATTERN&expr=fixture-b&dryRun={spelling}"),
            &[],
        )
        .expect("prune");
        assert_eq!(r.status, 200, "{spelling}: {}", r.summary());
    }
    assert_eq!(
        text("/cmd/manifest/list"),
        expected("expect-manifest-list.txt")
    );
    let r = http::request(
        port,
        "DELETE",
        "/cmd/prune?type=pattern&expr=fixture-b&dryRun=yes",
        &[],
    )
    .expect("prune");
    assert_eq!(r.status, 400, "{}", r.summary());
    let r = http::request(port, "DELETE", "/cmd/prune?type=size", &[]).expect("prune");
    assert_eq!(
        r.status,
        400,
        "no size and no maxCacheSize: {}",
        r.summary()
    );
    let r = http::request(
        port,
        "DELETE",
        "/cmd/prune?type=pattern&expr=fixture-b&dryRun=0",
        &[],
    )
    .expect("prune");
    assert_eq!(r.status, 200, "{}", r.summary());
    let after = text("/cmd/manifest/list");
    assert_eq!(after.lines().count(), 3, "{after}");
    assert!(!after.contains("fixture-b"), "{after}");
}

#[test]
fn admin_lists_stop_at_fifty_rows_unless_count_says_otherwise() {
    let dir = tempfile::Builder::new()
        .prefix("e2e-compat-fifty-")
        .tempdir()
        .expect("temp dir");
    let cache = dir.path().join("cache");
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_hex = support::sha256_hex(config);
    std::fs::create_dir_all(cache.join("blobs")).unwrap();
    std::fs::write(cache.join("blobs").join(&config_hex), config).unwrap();
    for i in 0..55 {
        let manifest = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\
             \"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\
             \"digest\":\"sha256:{config_hex}\",\"size\":{}}},\"layers\":[],\
             \"annotations\":{{\"n\":\"{i}\"}}}}",
            config.len()
        );
        write_go18_manifest(
            &cache,
            &format!("{UPSTREAM_NAME}/e2e/many-{i:02}:v1"),
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
            "2024-03-01T10:00:00",
            "2024-03-01T10:00:00",
        );
    }
    let server = Server::start_with(ServerOptions {
        cache_dir: Some(cache),
        air_gapped: true,
        ..ServerOptions::new("http://127.0.0.1:9")
    });
    let lines = |target: &str| http::get(server.port, target).text().lines().count();
    assert_eq!(lines("/cmd/manifest/list"), 1 + 50);
    assert_eq!(lines("/cmd/image/list"), 1 + 50 * 2);
    assert_eq!(lines("/cmd/manifest/list?count=-1"), 1 + 55);
    assert_eq!(lines("/cmd/manifest/list?count=55"), 1 + 55);
    assert_eq!(lines("/cmd/manifest/list?count=7"), 1 + 7);
    let first = http::get(server.port, "/cmd/manifest/list?count=1").text();
    assert!(
        first
            .lines()
            .nth(1)
            .unwrap_or("")
            .starts_with("upstream.test/e2e/many-00:v1 "),
        "in URL order: {first}"
    );
}

/// A blob file no cached manifest names, as an older cache or a pull by digest leaves it.
fn write_stray(cache: &std::path::Path, size: usize, seed: u8) -> String {
    let bytes: Vec<u8> = (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let hex = support::sha256_hex(&bytes);
    std::fs::write(cache.join("blobs").join(&hex), bytes).expect("write stray blob");
    hex
}

#[test]
fn stray_blobs_go_with_prune_on_disk_eviction_and_the_admin_prune_and_type_size_evicts() {
    let upstream = Upstream::start();
    upstream.push_oci(&LocalImage::generate(&["20K"]), "e2e/compat-stray", "v1");
    let ws = Workspace::with_config(&upstream.url(), "evictionGrace: 1s\n");
    let list = ws.file("images", &format!("{UPSTREAM_NAME}/e2e/compat-stray:v1\n"));
    ws.run(&["load", "--image-file", list.to_str().unwrap()])
        .expect_success();
    let image_blobs = ws.files("blobs");

    // On disk: a dry run names the stray, a prune removes it and nothing else.
    let stray = write_stray(&ws.cache, 64 * 1024, 1);
    let out = ws.run(&["prune", "--pattern", "nothing-matches-this", "--dry-run"]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .contains(&format!("would remove blob sha256:{stray} (65536 bytes)")),
        "{out}"
    );
    assert!(ws.files("blobs").contains(&stray));
    let out = ws.run(&["prune", "--pattern", "nothing-matches-this"]);
    assert!(out.success(), "{out}");
    assert_eq!(ws.files("blobs"), image_blobs, "{out}");

    // Served with a bound the strays alone break: eviction at start takes them, not the image.
    let big = write_stray(&ws.cache, 300 * 1024, 2);
    let mut server = Server::start_with(ServerOptions {
        cache_dir: Some(ws.cache.clone()),
        extra_yaml: "maxCacheSize: 200KiB\nevictionGrace: 1s\n".into(),
        ..ServerOptions::new(&upstream.url())
    });
    support::wait_for(
        "eviction to remove the stray blob",
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(100),
        || (!server.cached_blobs().contains(&big)).then_some(()),
    );
    assert_eq!(server.cached_blobs(), image_blobs, "{}", server.log_tail());

    // The admin prune takes a stray found at start, whatever it selects.
    server.kill();
    let small = write_stray(&ws.cache, 1024, 3);
    server.restart_with(ServerOptions {
        cache_dir: Some(ws.cache.clone()),
        extra_yaml: "maxCacheSize: 100MiB\nevictionGrace: 1s\n".into(),
        ..ServerOptions::new(&upstream.url())
    });
    let r = http::request(
        server.port,
        "DELETE",
        "/cmd/prune?type=pattern&expr=nothing-matches-this",
        &[],
    )
    .expect("prune");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(
        r.text().contains(&format!("removed blob sha256:{small}")),
        "{}",
        r.text()
    );
    assert_eq!(server.cached_blobs(), image_blobs);

    // type=size: under maxCacheSize nothing goes; below a size given, a dry run changes
    // nothing, then the image (pulled longer ago than the eviction grace) goes.
    let prune = |target: &str| http::request(server.port, "DELETE", target, &[]).expect("prune");
    let r = prune("/cmd/prune?type=size");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(server.cached_blobs(), image_blobs, "{}", r.text());
    // Pull times are kept to the second: past the 1 s grace for sure.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let r = prune("/cmd/prune?type=SIZE&size=1&dryRun=true");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.text().contains("would remove"), "{}", r.text());
    assert_eq!(server.cached_blobs(), image_blobs);
    let r = prune("/cmd/prune?type=size&size=1");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(server.cached_blobs().is_empty(), "{}", r.text());
    assert_eq!(
        http::get(server.port, "/cmd/manifest/list").text(),
        "no manifests found\n"
    );
}

#[test]
fn a_tag_request_alone_leaves_the_platform_image_whole_for_an_export_after_the_upstream_stops() {
    let mut upstream = Upstream::start();
    let repo = "e2e/compat-whole";
    let tree = upstream.push_oci(&LocalImage::generate(&["120K", "80K"]), repo, "v1");
    let ws = Workspace::new(&upstream.url());
    let mut server = Server::start_with(ServerOptions {
        cache_dir: Some(ws.cache.clone()),
        ..ServerOptions::new(&upstream.url())
    });
    // A client that asks for the list by tag and nothing more.
    let mark = upstream.log_mark();
    let r = http::get_manifest(server.port, &server.manifest_path(repo, "v1"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("Docker-Content-Digest"), Some(tree.top.as_str()));

    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no test image for {other}"),
    };
    let host = tree.platform(arch);
    support::wait_for(
        "the host platform's image manifest and blobs to be cached",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(100),
        || {
            let cached = server.cached_blobs();
            let whole = support::ops::manifest_file(&ws.cache, &host.manifest).is_some()
                && host
                    .blobs()
                    .iter()
                    .all(|b| cached.iter().any(|c| c == support::hex_of(b)));
            whole.then_some(())
        },
    );
    // Only the configured platform (the host's): the other stays upstream.
    for other in tree.platforms.iter().filter(|p| p.architecture != arch) {
        assert!(
            support::ops::manifest_file(&ws.cache, &other.manifest).is_none(),
            "{} was fetched too",
            other.architecture
        );
    }
    // Once: the upstream was asked for the host's image manifest a single time.
    let asked = upstream
        .requests_since(mark)
        .iter()
        .filter(|e| e.method == "GET" && e.path.contains(&host.manifest))
        .count();
    assert_eq!(asked, 1, "image manifest fetched {asked} times");

    server.kill();
    upstream.stop();
    let list = ws.file("images", &format!("{UPSTREAM_NAME}/{repo}:v1\n"));
    let out_dir = export_dir();
    let (_, out) = export(&ws, &list, &out_dir, "whole.tar");
    assert!(out.success(), "export with the upstream gone: {out}");
    assert!(out.stdout.contains("1 image(s) exported"), "{out}");
}

#[test]
fn load_beside_a_running_server_asks_it_and_the_image_is_served_at_once() {
    let mut upstream = Upstream::start();
    let repo = "e2e/compat-live";
    let tree = upstream.push_oci(&LocalImage::generate(&["90K"]), repo, "v1");
    let ws = Workspace::new(&upstream.url());
    let server = Server::start_with(ServerOptions {
        cache_dir: Some(ws.cache.clone()),
        ..ServerOptions::new(&upstream.url())
    });
    // A bad line fails the command as on disk (exit 1), the good one is loaded.
    let list = ws.file(
        "images",
        &format!("{UPSTREAM_NAME}/{repo}:v1\nnot//a reference\n"),
    );
    let out = ws.run(&["load", "--image-file", list.to_str().unwrap()]);
    assert_eq!(support::ops::code(&out), 1, "{out}");
    assert!(out.stderr.contains("loading through it"), "{out}");
    assert!(
        out.stdout
            .contains(&format!("loaded          {UPSTREAM_NAME}/{repo}:v1 (")),
        "{out}"
    );
    assert!(out.stdout.contains("failed          "), "{out}");
    assert!(
        out.stdout
            .ends_with("1 loaded, 0 already cached, 1 failed\n"),
        "{out}"
    );
    assert!(server.log_text().contains("admin: load of 1 image(s)"));

    // Served at once, with the upstream gone: the server loaded it into its own cache.
    upstream.stop();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no test image for {other}"),
    };
    let host = tree.platform(arch);
    let r = http::get_manifest(server.port, &server.manifest_path(repo, "v1"));
    assert_eq!(r.status, 200, "{}", r.summary());
    let r = http::get_manifest(server.port, &server.manifest_path(repo, &host.manifest));
    assert_eq!(r.status, 200, "{}", r.summary());
    for blob in host.blobs() {
        let r = http::get(server.port, &server.blob_path(repo, &blob));
        assert_eq!(r.status, 200, "{blob}: {}", r.summary());
        assert_eq!(format!("sha256:{}", support::sha256_hex(&r.body)), blob);
    }

    // list asks the server too (its pull times are newer than the files'), in the same columns.
    let out = ws.run(&["list", "--header", "--pattern", "compat-live"]);
    assert!(out.success(), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "URL TYPE CREATED PULLED", "{out}");
    assert_eq!(lines.len(), 1 + 2, "the list and the host's image: {out}");
    assert!(lines[1..].iter().all(|l| l.contains(repo)), "{out}");
    assert!(
        server.log_text().contains("\"GET /cmd/manifest/list?"),
        "{}",
        server.log_tail()
    );

    // Again: already cached, exit 0, as on disk.
    let list = ws.file("again", &format!("{UPSTREAM_NAME}/{repo}:v1\n"));
    let out = ws.run(&["load", "--image-file", list.to_str().unwrap()]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .ends_with("0 loaded, 1 already cached, 0 failed\n"),
        "{out}"
    );

    // export beside the server, the upstream still gone: the cached image is written and
    // imports into a fresh cache; one the cache lacks fails the export, as on disk.
    let out_dir = export_dir();
    let (bundle, out) = export(&ws, &list, &out_dir, "live.tar");
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("1 image(s) exported"), "{out}");
    let fresh = Workspace::new(&upstream.url());
    let out = fresh.run(&["import", bundle.to_str().unwrap()]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("1 loaded, 0 already cached, 0 failed"),
        "{out}"
    );
    let missing = ws.file("missing", &format!("{UPSTREAM_NAME}/{repo}:v2\n"));
    let (none, out) = export(&ws, &missing, &out_dir, "none.tar");
    assert_eq!(support::ops::code(&out), 1, "{out}");
    assert!(!none.exists(), "{out}");

    // import beside another running server, the upstream still gone: sent to the server,
    // which serves the image at once; again, it is already cached; junk is refused (exit 1).
    let other = Workspace::new(&upstream.url());
    let beside = Server::start_with(ServerOptions {
        cache_dir: Some(other.cache.clone()),
        ..ServerOptions::new(&upstream.url())
    });
    let out = other.run(&["import", bundle.to_str().unwrap()]);
    assert!(out.success(), "{out}\n{}", beside.log_tail());
    assert!(out.stderr.contains("importing through it"), "{out}");
    assert!(
        out.stdout
            .ends_with("1 loaded, 0 already cached, 0 failed\n"),
        "{out}"
    );
    assert!(beside.log_text().contains("admin: import of an archive of"));
    let r = http::get_manifest(beside.port, &beside.manifest_path(repo, "v1"));
    assert_eq!(r.status, 200, "{}", r.summary());
    for blob in host.blobs() {
        let r = http::get(beside.port, &beside.blob_path(repo, &blob));
        assert_eq!(r.status, 200, "{blob}: {}", r.summary());
        assert_eq!(format!("sha256:{}", support::sha256_hex(&r.body)), blob);
    }
    let out = other.run(&["load", "--archive", bundle.to_str().unwrap()]);
    assert!(
        out.stdout
            .ends_with("0 loaded, 1 already cached, 0 failed\n"),
        "{out}"
    );
    let junk = other.file("junk.tar", "not a tar archive");
    let out = other.run(&["import", junk.to_str().unwrap()]);
    assert_eq!(support::ops::code(&out), 1, "{out}");
    assert!(out.stderr.contains("refused the import: 400"), "{out}");
    assert!(beside.is_running());
}

/// Where the exports of one test go.
fn export_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("e2e-compat-export-")
        .tempdir()
        .expect("temp dir")
}

/// `export --image-file LIST -o DIR/NAME`: the archive's path and the command's output.
fn export(
    ws: &Workspace,
    list: &std::path::Path,
    dir: &tempfile::TempDir,
    name: &str,
) -> (std::path::PathBuf, support::proc::Output) {
    let archive = dir.path().join(name);
    let out = ws.run(&[
        "export",
        "--image-file",
        list.to_str().unwrap(),
        "-o",
        archive.to_str().unwrap(),
    ]);
    (archive, out)
}
