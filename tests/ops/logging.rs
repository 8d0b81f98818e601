//! Logs as operators consume them: JSON lines for log pipelines, and a log file that a
//! rotation renames away and SIGHUP reopens.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use support::proc::run;
use support::{http, wait_for, LocalImage, Server, ServerOptions, SkopeoDir, Upstream};

const REPO: &str = "e2e/logging";

#[test]
fn json_log_format_writes_one_object_a_line_with_an_access_line_per_request() {
    let upstream = Upstream::start();
    upstream.push_oci(&LocalImage::generate(&["1M"]), REPO, "v1");
    let mut options = ServerOptions::new(&upstream.url());
    options.extra_args = vec!["--log-format".into(), "json".into()];
    let server = Server::start_with(options);
    SkopeoDir::new()
        .copy_all(&server.in_path_ref(REPO, "v1"))
        .expect_success();
    let missing = http::get(server.port, &server.manifest_path(REPO, "nope"));
    assert_eq!(missing.status, 404);

    let log = server.log_text();
    let mut lines = 0;
    let mut access = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{log}"));
        for key in ["time", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} missing: {line}");
        }
        lines += 1;
        if v["target"] == "actix_web::middleware::logger" {
            access.push(v["message"].as_str().unwrap_or_default().to_string());
        }
    }
    assert!(lines >= 3, "{log}");
    let manifest = server.manifest_path(REPO, "nope");
    assert!(
        access
            .iter()
            .any(|m| m.contains(&format!("\"GET {manifest} HTTP/1.1\" 404"))),
        "an access line for the 404: {access:#?}"
    );
}

#[test]
fn sighup_reopens_the_log_file_a_rotation_renamed() {
    let upstream = Upstream::start();
    let dir = tempfile::Builder::new()
        .prefix("e2e-logs-")
        .tempdir()
        .expect("log dir");
    let log = dir.path().join("ociregistry.log");
    let rotated = dir.path().join("ociregistry.log.1");
    let mut options = ServerOptions::new(&upstream.url());
    options.extra_args = vec!["--log-file".into(), log.display().to_string()];
    let mut server = Server::start_with(options);

    http::get(server.port, "/v2/before-rotation/tags/list");
    std::fs::rename(&log, &rotated).expect("rotate the log");
    http::get(server.port, "/v2/renamed/tags/list");
    let pid = server.pid().expect("server pid").to_string();
    run(
        Command::new("kill").args(["-HUP", &pid]),
        Duration::from_secs(10),
    )
    .expect_success();
    wait_for(
        "the server to reopen its log file",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || log.exists().then_some(()),
    );
    http::get(server.port, "/v2/after-rotation/tags/list");

    let old = std::fs::read_to_string(&rotated).expect("read the rotated log");
    let new = wait_for(
        "the request after the rotation in the new log",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("/v2/after-rotation/").then_some(text)
        },
    );
    assert!(
        old.contains("/v2/before-rotation/") && old.contains("/v2/renamed/"),
        "{old}"
    );
    assert!(!old.contains("/v2/after-rotation/"), "{old}");
    assert!(new.contains("SIGHUP: log file"), "{new}");
    assert!(!new.contains("/v2/before-rotation/"), "{new}");
    assert!(server.exited().is_none(), "SIGHUP must not stop the server");
    assert_eq!(http::get(server.port, "/v2/").status, 200);
}

#[test]
fn a_commands_final_error_is_printed_once_whatever_the_log_level() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.tar");
    for level in ["error", "warn", "info", "debug"] {
        let out = run(
            Command::new(env!("CARGO_BIN_EXE_ociregistry"))
                .args(["--log-level", level, "--image-path"])
                .arg(dir.path().join("cache"))
                .arg("import")
                .arg(&missing),
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(1), "{out}");
        let said = out.stderr.matches("missing.tar: no such file").count();
        assert_eq!(said, 1, "--log-level {level}: {out}");
    }
}
