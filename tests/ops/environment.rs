//! Options from `OCIREGISTRY_<NAME>` environment variables, as containers are configured:
//! the config file < the environment < the command line.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::proc::{run, ChildGuard};
use support::{free_port, http, wait_for};

const BINARY: &str = env!("CARGO_BIN_EXE_ociregistry");

/// `ociregistry --config-file CONFIG --image-path CACHE serve` with `env` set, until `GET /v2/`
/// answers on `port`.
fn serve(dir: &Path, env: &[(&str, String)], args: &[String], port: u16) -> ChildGuard {
    let mut cmd = Command::new(BINARY);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .arg("--config-file")
        .arg(dir.join("config.yaml"))
        .arg("--image-path")
        .arg(dir.join("cache"))
        .arg("serve")
        .args(args);
    let mut child = ChildGuard::spawn("ociregistry", &mut cmd, &dir.join("server.log"));
    wait_for(
        "the server to answer on the port its options name",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            if let Some(status) = child.exited() {
                panic!("the server exited with {status}");
            }
            match http::request(port, "GET", "/v2/", &[]) {
                Ok(r) if r.status == 200 => Some(()),
                _ => None,
            }
        },
    );
    child
}

#[test]
fn variables_override_the_config_file_and_the_command_line_overrides_them() {
    let dir = tempfile::Builder::new()
        .prefix("e2e-env-")
        .tempdir()
        .expect("temp dir");
    let (file_port, env_port, cli_port) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.path().join("config.yaml"),
        format!("port: {file_port}\nhost: 127.0.0.1\nlogLevel: error\n"),
    )
    .unwrap();

    // The environment over the file: its port, its log level and format.
    let env = [
        ("OCIREGISTRY_PORT", env_port.to_string()),
        ("OCIREGISTRY_LOG_LEVEL", "info".to_string()),
        ("OCIREGISTRY_LOG_FORMAT", "json".to_string()),
        ("OCIREGISTRY_AIR_GAPPED", "true".to_string()),
    ];
    let mut server = serve(dir.path(), &env, &[], env_port);
    assert!(http::request(file_port, "GET", "/v2/", &[]).is_err());
    let miss = http::get(env_port, "/v2/upstream.test/a/manifests/v1");
    assert_eq!(
        miss.status,
        404,
        "air-gapped from the environment: {}",
        miss.summary()
    );
    server.terminate(Duration::from_secs(30));
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let access = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "actix_web::middleware::logger")
        .count();
    assert!(
        access >= 2,
        "JSON access lines at info from the environment:\n{log}"
    );

    // The command line over the environment.
    let mut server = serve(
        dir.path(),
        &env,
        &["--port".to_string(), cli_port.to_string()],
        cli_port,
    );
    assert!(http::request(env_port, "GET", "/v2/", &[]).is_err());
    server.terminate(Duration::from_secs(30));
}

#[test]
fn a_bad_value_in_a_variable_is_refused_at_start_naming_the_option_and_the_variable() {
    let dir = tempfile::Builder::new()
        .prefix("e2e-env-")
        .tempdir()
        .expect("temp dir");
    std::fs::write(dir.path().join("config.yaml"), "logLevel: error\n").unwrap();
    let out = run(
        Command::new(BINARY)
            .env("OCIREGISTRY_PORT", "eighty")
            .arg("--config-file")
            .arg(dir.path().join("config.yaml"))
            .arg("--image-path")
            .arg(dir.path().join("cache"))
            .arg("serve"),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains("--port") && out.stderr.contains("eighty"),
        "{out}"
    );
    assert!(
        out.stderr.contains("environment variable OCIREGISTRY_PORT"),
        "{out}"
    );
}
