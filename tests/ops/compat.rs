//! A user of the Go server 1.8 switching over: their config file, their flags, the headers and
//! endpoints their clients use, and the admin API their scripts read.

#[path = "../support/mod.rs"]
mod support;

use support::http;
use support::ops::Workspace;
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
