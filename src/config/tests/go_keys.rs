//! Keys, flags and spellings of the Go server 1.8 that a drop-in replacement must take with the
//! same meaning: its `Configuration` struct key by key, its case-insensitive levels and types,
//! `pruneConfig.count: 0`, `listConfig`, `load --pull-timeout`.

use super::*;

/// Every key of the Go server 1.8's configuration, as its own struct spells them, with values
/// it accepts.
const GO_EVERY_KEY_YAML: &str = r#"
logLevel: INFO
logFile: /var/log/ociregistry.log
configFile: /etc/ociregistry/config.yaml
imagePath: /var/lib/ociregistry
preloadImages: /etc/ociregistry/preload
imageFile: /etc/ociregistry/images
port: 8080
os: linux
arch: arm64
pullTimeout: 30000
health: 8081
alwaysPullLatest: false
airGapped: false
helloWorld: false
registries:
- name: quay.io
  description: the public one
  scheme: https
  auth:
    user: someone
    password: secret
  tls:
    insecureSkipVerify: true
  opts:
    url: quay.io
    scheme: https
    ostype: linux
    archtype: amd64
pruneConfig:
  enabled: true
  duration: 30d
  type: Accessed
  frequency: 5h
  count: 0
  expr: calico
  dryrun: true
listConfig:
  header: true
  expr: calico,cilium
serverTlsConfig:
  cert:
  key:
  ca:
  clientAuth: NONE
"#;

#[test]
fn a_config_file_using_every_go_1_8_key_loads_with_the_same_meaning() {
    let c = load_yaml(GO_EVERY_KEY_YAML).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.image_path, PathBuf::from("/var/lib/ociregistry"));
    assert_eq!(c.pull_timeout, Duration::from_millis(30_000));
    assert_eq!(c.ops.health, Some(8081));
    assert_eq!(c.registries.len(), 1);
    assert!(c.registries[0].tls.insecure_skip_verify);
    let p = c.ops.prune.expect("pruneConfig.enabled");
    assert_eq!(p.kind, PruneKind::Accessed);
    assert_eq!(p.count, None, "count 0 is no limit");
    assert!(p.dry_run);
    assert_eq!(
        c.list,
        ListSettings {
            header: true,
            pattern: Some("calico,cilium".into())
        }
    );
    assert_eq!(c.server_tls, None);
}

#[test]
fn keys_without_effect_here_are_each_named_once_in_a_notice() {
    let c = load_yaml(GO_EVERY_KEY_YAML).unwrap();
    assert_eq!(c.notices.len(), 2, "{:?}", c.notices);
    assert!(
        c.notices[0].contains("\"configFile\" has no effect"),
        "{:?}",
        c.notices
    );
    assert!(
        c.notices[1].contains("\"registries[0].opts\" has no effect"),
        "{:?}",
        c.notices
    );
    let plain = load_yaml("port: 8080\nregistries:\n- name: quay.io\n").unwrap();
    assert!(plain.notices.is_empty(), "{:?}", plain.notices);
}

#[test]
fn log_levels_are_taken_in_any_case_from_the_file_and_the_command_line() {
    for (name, level) in [
        ("DEBUG", LogLevel::Debug),
        ("Info", LogLevel::Info),
        ("wArN", LogLevel::Warn),
        ("error", LogLevel::Error),
        ("TRACE", LogLevel::Trace),
    ] {
        let c = load_yaml(&format!("logLevel: {name}\n")).unwrap();
        assert_eq!(c.log_level, level, "file {name}");
        let c = load(&cli(&["--log-level", name, "serve"])).unwrap();
        assert_eq!(c.log_level, level, "--log-level {name}");
    }
    load_err("logLevel: loud\n", &["logLevel", "\"loud\""]);
    assert!(Cli::try_parse_from(["ociregistry", "--log-level", "loud", "serve"]).is_err());
}

#[test]
fn prune_count_zero_is_no_limit_and_types_are_taken_in_any_case() {
    let c = load_yaml("pruneConfig:\n  enabled: true\n  count: 0\n  type: CREATED\n").unwrap();
    let p = c.ops.prune.unwrap();
    assert_eq!((p.count, p.kind), (None, PruneKind::Created));
    let c = load_yaml("pruneConfig:\n  enabled: true\n  count: 3\n").unwrap();
    assert_eq!(c.ops.prune.unwrap().count, Some(3));
}

#[test]
fn list_config_sets_the_defaults_of_list_and_its_options_override_them() {
    let f = write_yaml("listConfig:\n  header: true\n  expr: calico\n");
    let path = f.path().to_str().unwrap();
    let c = load(&cli(&["--config-file", path, "list"])).unwrap();
    assert_eq!(
        c.list,
        ListSettings {
            header: true,
            pattern: Some("calico".into())
        }
    );
    let c = load(&cli(&[
        "--config-file",
        path,
        "list",
        "--pattern",
        "cilium",
    ]))
    .unwrap();
    assert_eq!(c.list.pattern.as_deref(), Some("cilium"));
    let c = load(&cli(&["list", "--header"])).unwrap();
    assert_eq!(
        c.list,
        ListSettings {
            header: true,
            pattern: None
        }
    );
    load_err("listConfig:\n  expr: \"(\"\n", &["listConfig.expr"]);
    unknown_key("listConfig:\n  columns: 3\n", "listConfig.columns");
}

#[test]
fn load_takes_the_pull_timeout_in_milliseconds_over_the_file() {
    let f = write_yaml("pullTimeout: 1500\n");
    let path = f.path().to_str().unwrap();
    let c = load(&cli(&["--config-file", path, "load", "--image-file", "x"])).unwrap();
    assert_eq!(c.pull_timeout, Duration::from_millis(1500));
    let c = load(&cli(&[
        "--config-file",
        path,
        "load",
        "--image-file",
        "x",
        "--pull-timeout",
        "250",
    ]))
    .unwrap();
    assert_eq!(c.pull_timeout, Duration::from_millis(250));
    assert!(Cli::try_parse_from(["ociregistry", "load", "--pull-timeout", "0"]).is_err());
}
