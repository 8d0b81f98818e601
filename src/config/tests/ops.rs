//! `preloadImages`, `os`/`arch`, `helloWorld`, `health`, `pruneConfig`, the size bound and
//! `adminApi`.

use std::net::IpAddr;

use super::*;

#[test]
fn preload_and_image_files_are_read() {
    let c = load_yaml("preloadImages: /tmp/list\nimageFile: /tmp/other\n").unwrap();
    assert_eq!(c.ops.preload_images, Some(PathBuf::from("/tmp/list")));
    assert_eq!(c.ops.image_file, Some(PathBuf::from("/tmp/other")));
    let c = load(&cli(&["serve", "--preload-images", "/x"])).unwrap();
    assert_eq!(c.ops.preload_images, Some(PathBuf::from("/x")));
    let c = load(&cli(&["load", "--image-file", "/y", "--jobs", "2"])).unwrap();
    assert_eq!(c.ops.image_file, Some(PathBuf::from("/y")));
    assert_eq!(c.ops.load_jobs, 2);
}

#[test]
fn os_and_arch_choose_the_platform_and_the_command_line_wins() {
    use actors::preload::{PlatformSpec, Platforms};
    let c = load_yaml("os: linux\narch: arm64\n").unwrap();
    assert_eq!(
        c.ops.platforms,
        Platforms::Only(vec!["linux/arm64".parse().unwrap()])
    );
    let c = load_yaml("os:\narch: \"\"\n").unwrap();
    assert_eq!(c.ops.platforms, Platforms::Only(vec![PlatformSpec::host()]));
    load_err("arch: \"x y\"\n", &["key \"arch\""]);
    let c = load(&cli(&["load", "--arch", "s390x"])).unwrap();
    let Platforms::Only(p) = &c.ops.platforms else {
        panic!()
    };
    assert_eq!(p[0].arch, "s390x");
    let c = load(&cli(&["load", "--platform", "linux/amd64,linux/arm64/v8"])).unwrap();
    assert_eq!(
        c.ops.platforms,
        Platforms::Only(vec![
            "linux/amd64".parse().unwrap(),
            "linux/arm64/v8".parse().unwrap()
        ])
    );
    let c = load(&cli(&["serve", "--all-platforms"])).unwrap();
    assert_eq!(c.ops.platforms, Platforms::All);
    assert!(load(&cli(&["load", "--platform", "linux"])).is_err());
}

#[test]
fn hello_world_and_health_are_read() {
    let c = load_yaml("helloWorld: true\nhealth: 8081\n").unwrap();
    assert!(c.ops.hello_world);
    assert_eq!(c.ops.health, Some(8081));
    load_err("health: http\n", &["key \"health\""]);
    let c = load(&cli(&["serve", "--hello-world", "--health", "9000"])).unwrap();
    assert!(c.ops.hello_world);
    assert_eq!(c.ops.health, Some(9000));
}

#[test]
fn prune_config_is_checked_and_read_when_enabled() {
    let c = load_yaml(
        "pruneConfig:\n  enabled: true\n  duration: 12h\n  type: created\n  frequency: 10m\n  \
         count: 5\n  dryrun: true\n",
    )
    .unwrap();
    let p = c.ops.prune.clone().unwrap();
    assert_eq!(p.kind, PruneKind::Created);
    assert_eq!(p.duration, Duration::from_secs(12 * 3600));
    assert_eq!(p.frequency, Duration::from_secs(600));
    assert_eq!(p.count, Some(5));
    assert!(p.dry_run);
    assert!(c.engine_config().prune.is_some());
    let c = load_yaml("pruneConfig:\n  enabled: true\n").unwrap();
    let p = c.ops.prune.unwrap();
    assert_eq!(
        (p.kind, p.count, p.dry_run),
        (PruneKind::Accessed, None, false)
    );
    assert_eq!(p.frequency, Duration::from_secs(86_400));
    load_err(
        "pruneConfig:\n  enabled: true\n  type: pattern\n",
        &["pruneConfig.expr"],
    );
    load_err("pruneConfig:\n  expr: \"(\"\n", &["pruneConfig.expr"]);
    load_err("pruneConfig:\n  duration: 3x\n", &["pruneConfig.duration"]);
    load_err(
        "pruneConfig:\n  frequency: 30\n",
        &["pruneConfig.frequency"],
    );
    load_err("pruneConfig:\n  type: sometimes\n", &["pruneConfig.type"]);
    load_err("pruneConfig:\n  count: -2\n", &["pruneConfig.count"]);
}

#[test]
fn prune_sub_keys_are_accepted_while_pruning_is_disabled() {
    let c = load_yaml(
        "pruneConfig:\n  duration: 5h\n  type: created\n  frequency: 2h\n  count: 10\n  \
         dryRun: true\n",
    )
    .unwrap();
    assert_eq!(c.ops.prune, None);
    load_yaml("pruneConfig:\n").unwrap();
    load_yaml("pruneConfig: {}\n").unwrap();
}

#[test]
fn cache_bound_reads_sizes_pins_and_grace() {
    let c = load_yaml(
        "maxCacheSize: 50GiB\npin:\n  - docker.io/library/nginx:.*\n  - calico\n\
         evictionGrace: 2m\n",
    )
    .unwrap();
    let b = c.ops.cache_bound.clone().unwrap();
    assert_eq!(b.max_bytes, 50 << 30);
    assert_eq!(b.pins.len(), 2);
    assert_eq!(b.grace, Duration::from_secs(120));
    let engine = c.engine_config().cache_bound.unwrap();
    assert!(engine.pins[1].is_match("quay.io/calico/node:v3"));
    let c = load_yaml("maxCacheSize: 1048576\n").unwrap();
    let b = c.ops.cache_bound.unwrap();
    assert_eq!((b.max_bytes, b.grace), (1 << 20, Duration::from_secs(60)));
    assert!(load_yaml("").unwrap().engine_config().cache_bound.is_none());
    // Checked without a bound too.
    load_err("pin: [\"(\"]\n", &["pin"]);
    load_err("evictionGrace: soon\n", &["evictionGrace"]);
    load_err("maxCacheSize: 50 gigs\n", &["maxCacheSize"]);
    load_err("maxCacheSize: 0\n", &["maxCacheSize"]);
}

#[test]
fn admin_access_defaults_to_loopback_and_reads_a_token() {
    let c = load_yaml("").unwrap();
    assert_eq!(c.ops.admin.allow.len(), 2);
    assert!(c.ops.admin.token.is_none());
    let c = load_yaml("adminApi:\n  allow: [10.0.0.1]\n  token: abcdefghijklmnopq\n").unwrap();
    assert_eq!(
        c.ops.admin.allow,
        vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(c.ops.admin.token, Some(Secret("abcdefghijklmnopq".into())));
    assert!(!format!("{c:?}").contains("abcdefghijklmnopq"));
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "from-a-file-0123456789").unwrap();
    let c = load_yaml(&format!("adminApi:\n  tokenFile: {}\n", f.path().display())).unwrap();
    assert_eq!(
        c.ops.admin.token,
        Some(Secret("from-a-file-0123456789".into()))
    );
    load_err("adminApi:\n  token: short\n", &["16 characters"]);
    load_err("adminApi:\n  allow: [localhost]\n", &["adminApi.allow"]);
    load_err(
        "adminApi:\n  tokenEnv: OCIREGISTRY_TEST_UNSET_VARIABLE\n",
        &["not set"],
    );
    unknown_key("adminApi:\n  tokens: x\n", "adminApi.tokens");
}
