//! The configuration tests: loading (defaults < file < command line), errors and unknown keys
//! here; the operations keys, pull credentials, TLS and upstream registries in the files below
//! `tests/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actors::config::{EngineConfig, FreeSpace};
use clap::Parser;

use super::file::{field_names, FileConfig, FileRegistryTls};
use super::*;

mod go_keys;
mod ops;
mod pull_auth;
mod storage;
mod tls;
mod upstreams;

/// The Go server's "full configuration file showing all the defaults", verbatim.
const SEED_DEFAULTS_YAML: &str = r#"
imagePath: /var/lib/ociregistry
logLevel: error
# empty means log to stderr
logFile:
# empty means don't preload
preloadImages:
# ignored unless preloadImages specified
imageFile:
port: 8080
# OS and arch default to the host running the server
#os: linux
#arch: amd64
pullTimeout: 60000
# if true, then whenever a latest tag is pulled, the server will always pull
# from the upstream - in other words it acts like a basic proxy. Useful when
# supporting dev environments where latest is frequently changing.
alwaysPullLatest: false
# If true, will not pull from an upstream when an image is requested that
# is not cached.
airGapped: false
# For testing. Only serves 'docker.io/hello-world:latest' from embedded blobs
# and manifests
helloWorld: false
# A port number to run a /health endpoint on for Kubernetes liveness and
# readiness. By default, the server doesn't listen on a health port. The
# Helm chart enables this by default when running the server as a cluster
# workload.
health:
# see further down for registry configuration
registries: []
# see further down for prune configuration
pruneConfig:
  # disabled by default
  enabled: false
  # see 'type'
  duration: 30d
  # if accessed, then prune if not pulled in duration. If
  # created, then prune if create date is older than duration
  type: accessed
  # run the prune with this frequency
  frequency: 1d
  # no limit to the number of pruned images in a run
  count: -1
  # if true, just log messages, don't actually prune
  dryRun: false
# configure TLS with downstream (client) pullers, e.g. containerd.
# see server tls configuration further down in this README.
serverTlsConfig:
  cert:
  key:
  ca:
  clientAuth:
"#;

fn write_yaml(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f.flush().expect("flush");
    f
}

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("ociregistry").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn load_yaml(text: &str) -> Result<Config, ConfigError> {
    let f = write_yaml(text);
    let path = f.path().to_str().unwrap().to_string();
    load(&cli(&["--config-file", &path, "serve"]))
}

/// Loads `text`, expects an error, and checks it names the file and every needle.
fn load_err(text: &str, needles: &[&str]) -> ConfigError {
    let f = write_yaml(text);
    let path = f.path().to_str().unwrap().to_string();
    let err = load(&cli(&["--config-file", &path, "serve"]))
        .expect_err(&format!("expected an error for:\n{text}"));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("config file {path}")),
        "error does not name the file: {msg}"
    );
    for needle in needles {
        assert!(msg.contains(needle), "error lacks {needle:?}: {msg}");
    }
    err
}

fn unknown_key(text: &str, key: &str) {
    let err = load_err(text, &[&format!("unknown key \"{key}\"")]);
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
}

#[test]
fn defaults_without_a_config_file() {
    let config = load(&cli(&["serve"])).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.image_path, PathBuf::from("/var/lib/ociregistry"));
    assert_eq!(config.log_level, LogLevel::Error);
    assert_eq!(config.log_file, None);
    assert_eq!(config.port, 8080);
    assert_eq!(config.host, "0.0.0.0");
    assert_eq!(config.pull_timeout, Duration::from_millis(60_000));
    assert!(!config.always_pull_latest);
    assert!(!config.air_gapped);
    assert_eq!(config.default_ns, None);
    assert!(config.registries.is_empty());
    assert_eq!(config.config_file, None);
}

#[test]
fn help_texts_state_the_same_defaults_as_the_code() {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let top = cmd.render_long_help().to_string();
    assert!(top.contains(&format!("[default: {DEFAULT_IMAGE_PATH}]")));
    assert!(top.contains(&format!("[default: {}]", LogLevel::default())));
    let serve = cmd.find_subcommand_mut("serve").unwrap();
    let serve = serve.render_long_help().to_string();
    assert!(serve.contains(&format!("[default: {DEFAULT_PORT}]")));
    assert!(serve.contains(&format!("[default: {DEFAULT_HOST}]")));
    assert!(serve.contains(&format!("[default: {DEFAULT_PULL_TIMEOUT_MS}]")));
}

#[test]
fn seed_full_defaults_file_loads_as_defaults() {
    let f = write_yaml(SEED_DEFAULTS_YAML);
    let config = Config::from_file(f.path()).unwrap();
    let expected = Config {
        config_file: Some(f.path().to_path_buf()),
        ..Config::default()
    };
    assert_eq!(config, expected);
}

#[test]
fn example_config_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yaml");
    let config = Config::from_file(&path).unwrap();
    assert_eq!(config.port, DEFAULT_PORT);
    assert_eq!(config.registries.len(), 3);
    let engine = config.engine_config();
    assert_eq!(
        engine.upstream("docker.io").base_url(),
        "http://127.0.0.1:5000"
    );
    assert!(engine
        .upstream("registry.internal.example:5000")
        .auth
        .is_some());
}

#[test]
fn example_config_file_shows_the_operations_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yaml");
    let config = Config::from_file(&path).unwrap();
    assert_eq!(config.ops, OpsConfig::default());
    let text = std::fs::read_to_string(path).unwrap();
    for key in [
        "preloadImages:",
        "helloWorld:",
        "pruneConfig:",
        "  dryRun:",
        "maxCacheSize:",
        "pin:",
        "adminApi:",
    ] {
        assert!(text.contains(&format!("\n{key}")), "example lacks {key}");
    }
}

#[test]
fn empty_file_gives_defaults() {
    let config = load_yaml("").unwrap();
    assert_eq!(config.port, DEFAULT_PORT);
    let config = load_yaml("# only a comment\n").unwrap();
    assert_eq!(config.image_path, PathBuf::from(DEFAULT_IMAGE_PATH));
}

#[test]
fn camel_case_keys_are_read_from_the_file() {
    let config = load_yaml(
        "imagePath: /data/img\nlogLevel: debug\nlogFile: /var/log/o.log\nport: 5000\n\
         host: 127.0.0.1\npullTimeout: 1500\nalwaysPullLatest: true\nairGapped: true\n\
         defaultNs: docker.io\n",
    )
    .unwrap();
    assert_eq!(config.image_path, PathBuf::from("/data/img"));
    assert_eq!(config.log_level, LogLevel::Debug);
    assert_eq!(config.log_file, Some(PathBuf::from("/var/log/o.log")));
    assert_eq!(config.port, 5000);
    assert_eq!(config.host, "127.0.0.1");
    assert_eq!(config.pull_timeout, Duration::from_millis(1500));
    assert!(config.always_pull_latest);
    assert!(config.air_gapped);
    assert_eq!(config.default_ns.as_deref(), Some("docker.io"));
}

#[test]
fn command_line_overrides_file_and_absent_options_keep_file_values() {
    let f = write_yaml(
        "imagePath: /file/img\nlogLevel: warn\nlogFile: /file.log\nport: 5000\n\
         host: 127.0.0.1\npullTimeout: 1500\nalwaysPullLatest: true\nairGapped: true\n\
         defaultNs: file.example\n",
    );
    let path = f.path().to_str().unwrap();

    let kept = load(&cli(&["--config-file", path, "serve"])).unwrap();
    assert_eq!(kept.port, 5000);
    assert_eq!(kept.log_level, LogLevel::Warn);
    assert!(kept.air_gapped);

    let over = load(&cli(&[
        "--config-file",
        path,
        "--image-path",
        "/cli/img",
        "--log-level",
        "trace",
        "--log-file",
        "/cli.log",
        "serve",
        "--port",
        "6000",
        "--host",
        "::1",
        "--pull-timeout",
        "250",
        "--air-gapped=false",
        "--always-pull-latest=false",
        "--default-ns",
        "cli.example:5000",
    ]))
    .unwrap();
    assert_eq!(over.image_path, PathBuf::from("/cli/img"));
    assert_eq!(over.log_level, LogLevel::Trace);
    assert_eq!(over.log_file, Some(PathBuf::from("/cli.log")));
    assert_eq!(over.port, 6000);
    assert_eq!(over.host, "::1");
    assert_eq!(over.pull_timeout, Duration::from_millis(250));
    assert!(!over.air_gapped);
    assert!(!over.always_pull_latest);
    assert_eq!(over.default_ns.as_deref(), Some("cli.example:5000"));
}

#[test]
fn bool_flag_presence_turns_a_file_false_into_true() {
    let f = write_yaml("airGapped: false\nalwaysPullLatest: false\n");
    let path = f.path().to_str().unwrap();
    let config = load(&cli(&[
        "--config-file",
        path,
        "serve",
        "--air-gapped",
        "--always-pull-latest",
    ]))
    .unwrap();
    assert!(config.air_gapped);
    assert!(config.always_pull_latest);
}

#[test]
fn global_options_apply_to_the_version_subcommand_too() {
    let config = load(&cli(&["--image-path", "/x", "version"])).unwrap();
    assert_eq!(config.image_path, PathBuf::from("/x"));
    assert_eq!(config.port, DEFAULT_PORT);
}

#[test]
fn missing_config_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    let err = load(&cli(&["--config-file", path.to_str().unwrap(), "serve"])).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
}

#[test]
fn invalid_yaml_is_an_error_naming_the_file() {
    let err = load_err("port: [1, 2\n", &[]);
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    let err = load_err("- just\n- a list\n", &[]);
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
}

#[test]
fn unknown_top_level_key_is_rejected() {
    unknown_key("port: 8080\nfrobnicate: 1\n", "frobnicate");
}

#[test]
fn lowercased_key_is_rejected_with_a_hint() {
    load_err(
        "imagepath: /x\n",
        &["unknown key \"imagepath\"", "did you mean \"imagePath\""],
    );
}

#[test]
fn unknown_nested_keys_are_rejected_with_their_path() {
    unknown_key(
        "pruneConfig:\n  enabled: false\n  every: 1d\n",
        "pruneConfig.every",
    );
    unknown_key(
        "serverTlsConfig:\n  certificate: /x\n",
        "serverTlsConfig.certificate",
    );
    unknown_key(
        "registries:\n- name: a.io\n- name: b.io\n  mirror: c.io\n",
        "registries[1].mirror",
    );
    unknown_key(
        "registries:\n- name: a.io\n  auth:\n    username: u\n",
        "registries[0].auth.username",
    );
    unknown_key(
        "registries:\n- name: a.io\n  tls:\n    skipVerify: true\n",
        "registries[0].tls.skipVerify",
    );
}

#[test]
fn wrong_types_are_rejected_naming_the_key() {
    let err = load_err("port: abc\n", &["key \"port\""]);
    assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err:?}");
    load_err("port: 70000\n", &["key \"port\""]);
    load_err("airGapped: maybe\n", &["key \"airGapped\""]);
    load_err("pullTimeout: soon\n", &["key \"pullTimeout\""]);
    load_err("registries: quay.io\n", &["key \"registries\"", "list"]);
    load_err("pruneConfig: 3\n", &["key \"pruneConfig\""]);
    load_err(
        "registries:\n- name: a.io\n  auth: [u, p]\n",
        &["key \"registries[0].auth\"", "mapping"],
    );
    load_err(
        "registries:\n- quay.io\n",
        &["key \"registries[0]\"", "mapping"],
    );
    load_err(
        "serverTlsConfig: [a]\n",
        &["key \"serverTlsConfig\"", "mapping"],
    );
}

#[test]
fn invalid_values_are_rejected_naming_the_key() {
    load_err("logLevel: verbose\n", &["key \"logLevel\"", "verbose"]);
    load_err("pullTimeout: 0\n", &["key \"pullTimeout\""]);
    load_err("imagePath: \"\"\n", &["key \"imagePath\""]);
    load_err("host: \"not a host\"\n", &["key \"host\""]);
}

#[test]
fn engine_config_of_defaults_matches_engine_defaults() {
    let ours = Config::default().engine_config();
    let theirs = EngineConfig::new(PathBuf::from(DEFAULT_IMAGE_PATH));
    assert_eq!(ours.pull_timeout, theirs.pull_timeout);
    assert_eq!(ours.upstream_idle_timeout, theirs.upstream_idle_timeout);
    assert_eq!(ours.air_gapped, theirs.air_gapped);
    assert_eq!(ours.always_pull_latest, theirs.always_pull_latest);
    assert_eq!(ours.default_ns, theirs.default_ns);
    assert_eq!(ours.upstreams, theirs.upstreams);
    assert_eq!(
        ours.max_concurrent_per_upstream,
        theirs.max_concurrent_per_upstream
    );
}

#[test]
fn max_connections_comes_from_the_file_or_the_command_line_and_is_bounded() {
    assert_eq!(Config::default().max_connections, DEFAULT_MAX_CONNECTIONS);
    let config = load_yaml("maxConnections: 500\n").unwrap();
    assert_eq!(config.max_connections, 500);
    load_err(
        "maxConnections: 0\n",
        &["key \"maxConnections\"", "1 to 1000000"],
    );
    load_err("maxConnections: 1000001\n", &["key \"maxConnections\""]);
    load_err("maxConnections: many\n", &["maxConnections"]);
    let over = load(&cli(&["serve", "--max-connections", "64"])).unwrap();
    assert_eq!(over.max_connections, 64);
    for bad in ["0", "1000001"] {
        let err = load(&cli(&["serve", "--max-connections", bad])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("max-connections") && msg.contains("1 to 1000000"),
            "{msg}"
        );
    }
}

#[test]
fn download_bounds_come_from_the_file_or_the_command_line_with_safe_defaults() {
    let d = Config::default();
    assert_eq!(d.max_blob_size, 64 << 30);
    assert_eq!(d.min_free_space, FreeSpace::Percent(5));
    let engine = d.engine_config();
    assert_eq!(
        (engine.max_blob_size, engine.min_free_space),
        (64 << 30, FreeSpace::Percent(5))
    );
    let config = load_yaml("maxBlobSize: 2GiB\nminFreeSpace: 512MiB\n").unwrap();
    assert_eq!(config.max_blob_size, 2 << 30);
    assert_eq!(config.min_free_space, FreeSpace::Bytes(512 << 20));
    let config = load_yaml("minFreeSpace: 10%\n").unwrap();
    assert_eq!(config.min_free_space, FreeSpace::Percent(10));
    assert_eq!(
        load_yaml("minFreeSpace: \"0\"\n").unwrap().min_free_space,
        FreeSpace::Bytes(0)
    );
    load_err("maxBlobSize: 0\n", &["key \"maxBlobSize\"", "more than 0"]);
    load_err("maxBlobSize: lots\n", &["key \"maxBlobSize\""]);
    load_err(
        "minFreeSpace: 101%\n",
        &["key \"minFreeSpace\"", "0% to 100%"],
    );
    load_err(
        "minFreeSpace: 2.5%\n",
        &["key \"minFreeSpace\"", "whole percentage"],
    );
    let over = load(&cli(&[
        "serve",
        "--max-blob-size",
        "1MiB",
        "--min-free-space",
        "1%",
    ]))
    .unwrap();
    assert_eq!(over.max_blob_size, 1 << 20);
    assert_eq!(over.min_free_space, FreeSpace::Percent(1));
    for (flag, bad) in [("--max-blob-size", "0"), ("--min-free-space", "200%")] {
        let err = load(&cli(&["serve", flag, bad])).unwrap_err().to_string();
        assert!(err.contains(&flag[2..]), "{err}");
    }
}

#[test]
fn upstream_idle_timeout_is_read_in_milliseconds_and_must_be_positive() {
    let config = load_yaml("upstreamIdleTimeout: 1500\n").unwrap();
    assert_eq!(config.upstream_idle_timeout, Duration::from_millis(1500));
    assert_eq!(
        config.engine_config().upstream_idle_timeout,
        Duration::from_millis(1500)
    );
    load_err("upstreamIdleTimeout: 0\n", &["key \"upstreamIdleTimeout\""]);
}

#[test]
fn invalid_command_line_values_name_the_option() {
    let err = load(&cli(&["serve", "--host", "a b"])).unwrap_err();
    assert!(
        err.to_string().starts_with("command line option --host:"),
        "{err}"
    );
    let err = load(&cli(&[
        "serve",
        "--pull-timeout",
        "10",
        "--default-ns",
        "a/b",
    ]))
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("command line option --default-ns:"),
        "{err}"
    );
}

#[test]
fn field_names_reflect_serde_renames() {
    let top = field_names::<FileConfig>();
    for key in [
        "imagePath",
        "pullTimeout",
        "serverTlsConfig",
        "defaultNs",
        "host",
    ] {
        assert!(top.contains(&key), "{key} missing from {top:?}");
    }
    assert!(field_names::<super::ops::FilePruneConfig>().contains(&"type"));
    assert!(field_names::<super::ops::FilePruneConfig>().contains(&"dryrun"));
    assert!(field_names::<FileRegistryTls>().contains(&"insecureSkipVerify"));
}

#[test]
fn log_format_from_the_file_is_overridden_by_the_command_line_and_misspellings_named() {
    use crate::cli::LogFormat;
    assert_eq!(load_yaml("").unwrap().log_format, LogFormat::Text);
    let f = write_yaml("logFormat: json\n");
    let path = f.path().to_str().unwrap();
    let file = load(&cli(&["--config-file", path, "serve"])).unwrap();
    assert_eq!(file.log_format, LogFormat::Json);
    let over = load(&cli(&[
        "--config-file",
        path,
        "--log-format",
        "text",
        "serve",
    ]))
    .unwrap();
    assert_eq!(over.log_format, LogFormat::Text);
    load_err("logFormat: jsn\n", &["logFormat", "jsn", "text, json"]);
}
