//! `registries` (names, schemes, endpoints, credentials), `allowedUpstreams`, `defaultNs` and
//! `tagFreshness`.

use actors::config::{Credentials, Scheme, Ttl, UpstreamConfig, UpstreamTls};

use super::*;
use crate::config::validate::{check_registry_host, parse_endpoint};

#[test]
fn password_from_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-file\n").unwrap();
    // A variable only this test sets.
    std::env::set_var("OCIREGISTRY_TEST_PASSWORD_A", "from-env");
    let config = load_yaml(&format!(
        "registries:\n- name: a.io\n  auth:\n    user: u\n    \
         passwordFromEnv: OCIREGISTRY_TEST_PASSWORD_A\n- name: b.io\n  auth:\n    \
         user: v\n    passwordFile: {}\n",
        secret.display()
    ))
    .unwrap();
    let a = config.registries[0].auth.as_ref().unwrap();
    assert_eq!((a.user.as_str(), a.password.as_str()), ("u", "from-env"));
    let b = config.registries[1].auth.as_ref().unwrap();
    assert_eq!((b.user.as_str(), b.password.as_str()), ("v", "from-file"));
    assert!(!format!("{config:?}").contains("from-env"));
    assert!(!format!("{config:?}").contains("from-file"));
}

#[test]
fn password_sources_are_exclusive_and_must_exist() {
    load_err(
        "registries:\n- name: a.io\n  auth:\n    user: u\n    password: p\n    \
         passwordFromEnv: X\n",
        &["registries[0].auth.password", "exactly one"],
    );
    load_err(
        "registries:\n- name: a.io\n  auth:\n    user: u\n    passwordFile: /x\n    \
         passwordFromEnv: X\n",
        &["exactly one"],
    );
    load_err(
        "registries:\n- name: a.io\n  auth:\n    user: u\n    \
         passwordFromEnv: OCIREGISTRY_TEST_PASSWORD_UNSET\n",
        &[
            "registries[0].auth.passwordFromEnv",
            "OCIREGISTRY_TEST_PASSWORD_UNSET",
        ],
    );
    load_err(
        "registries:\n- name: a.io\n  auth:\n    user: u\n    \
         passwordFile: /nonexistent/ociregistry-secret\n",
        &[
            "registries[0].auth.passwordFile",
            "/nonexistent/ociregistry-secret",
            "cannot read",
        ],
    );
    load_err(
        "registries:\n- name: a.io\n  auth:\n    passwordFile: /x\n",
        &["registries[0].auth.user"],
    );
}

#[test]
fn allowed_upstreams_are_parsed_and_reach_the_engine() {
    let config = load_yaml("allowedUpstreams:\n- quay.io\n- \"*.k8s.io\"\n- myreg:5000\n").unwrap();
    let engine = config.engine_config();
    assert!(engine.upstream_allowed("quay.io"));
    assert!(engine.upstream_allowed("registry.k8s.io"));
    assert!(engine.upstream_allowed("myreg:5000"));
    assert!(!engine.upstream_allowed("evil.example"));
    assert!(!engine.upstream_allowed("myreg"));
    let all = load_yaml("port: 8080\n").unwrap().engine_config();
    assert!(all.upstream_allowed("anything.example"));
    load_err(
        "allowedUpstreams: []\n",
        &["allowedUpstreams", "empty list"],
    );
    load_err(
        "allowedUpstreams:\n- https://quay.io\n",
        &["allowedUpstreams", "https://quay.io"],
    );
    load_err("allowedUpstreams: quay.io\n", &["allowedUpstreams"]);
}

#[test]
fn default_ns_must_be_a_registry_host() {
    for bad in [
        "https://docker.io",
        "docker.io/library",
        "my reg",
        "a.io:0",
        "a.io:x",
    ] {
        load_err(&format!("defaultNs: \"{bad}\"\n"), &["key \"defaultNs\""]);
        let err = load(&cli(&["serve", "--default-ns", bad])).unwrap_err();
        assert!(err.to_string().contains("--default-ns"), "{err}");
    }
    let config = load_yaml("defaultNs: myreg:5000\n").unwrap();
    assert_eq!(config.default_ns.as_deref(), Some("myreg:5000"));
}

#[test]
fn registry_name_is_required_and_must_be_a_host() {
    load_err(
        "registries:\n- scheme: http\n",
        &["key \"registries[0].name\"", "required"],
    );
    load_err(
        "registries:\n- name: \"\"\n",
        &["key \"registries[0].name\"", "required"],
    );
    load_err(
        "registries:\n- name: upstream one\n",
        &["key \"registries[0].name\"", "whitespace"],
    );
    load_err(
        "registries:\n- name: http://quay.io\n",
        &["key \"registries[0].name\"", "scheme"],
    );
}

#[test]
fn duplicate_registry_names_are_rejected() {
    let err = load_err(
        "registries:\n- name: quay.io\n- name: docker.io\n- name: quay.io\n",
        &["registries[2].name", "quay.io", "more than once"],
    );
    assert!(
        matches!(err, ConfigError::DuplicateRegistry { .. }),
        "{err:?}"
    );
}

#[test]
fn registry_scheme_must_be_http_or_https() {
    load_err(
        "registries:\n- name: a.io\n  scheme: ftp\n",
        &["key \"registries[0].scheme\"", "ftp"],
    );
}

#[test]
fn registry_auth_needs_user_and_password() {
    load_err(
        "registries:\n- name: a.io\n  auth:\n    user: u\n",
        &["key \"registries[0].auth.password\""],
    );
    load_err(
        "registries:\n- name: a.io\n  auth:\n    password: p\n",
        &["key \"registries[0].auth.user\""],
    );
    let config = load_yaml("registries:\n- name: a.io\n  auth: {}\n").unwrap();
    assert_eq!(config.registries[0].auth, None);
}

#[test]
fn registries_convert_to_upstream_configs() {
    let config = load_yaml(
        r#"
registries:
- name: quay.io
  description: public, defaults
- name: upstream.test
  description: a local test registry
  scheme: http
  endpoint: http://127.0.0.1:5000/
  auth:
    user: theuser
    password: thepass
  tls: {}
- name: myreg:5000
  scheme: https
  endpoint: https://[::1]:5443
defaultNs: upstream.test
pullTimeout: 2000
airGapped: true
alwaysPullLatest: true
imagePath: /data
"#,
    )
    .unwrap();
    let engine = config.engine_config();
    assert_eq!(engine.image_path, PathBuf::from("/data"));
    assert_eq!(engine.pull_timeout, Duration::from_millis(2000));
    assert!(engine.air_gapped);
    assert!(engine.always_pull_latest);
    assert_eq!(engine.default_ns.as_deref(), Some("upstream.test"));
    assert_eq!(
        engine.upstreams,
        vec![
            UpstreamConfig::anonymous("quay.io"),
            UpstreamConfig {
                name: "upstream.test".into(),
                scheme: Scheme::Http,
                endpoint: Some("http://127.0.0.1:5000".into()),
                auth: Some(Credentials {
                    user: "theuser".into(),
                    password: "thepass".into(),
                }),
                tls: UpstreamTls::default(),
            },
            UpstreamConfig {
                name: "myreg:5000".into(),
                scheme: Scheme::Https,
                endpoint: Some("https://[::1]:5443".into()),
                auth: None,
                tls: UpstreamTls::default(),
            },
        ]
    );
    assert_eq!(
        engine.upstream("upstream.test").base_url(),
        "http://127.0.0.1:5000"
    );
    assert_eq!(engine.upstream("quay.io").base_url(), "https://quay.io");
}

#[test]
fn invalid_endpoint_is_rejected() {
    for bad in [
        "127.0.0.1:5000",
        "ftp://a.io",
        "http://a.io/v2",
        "http://a.io?x=1",
        "http://a.io#frag",
        "http://user:pw@a.io",
        "http://",
        "http://a.io:0",
        "http://a.io:99999",
        "http://[::1",
        "http://a b",
    ] {
        load_err(
            &format!("registries:\n- name: a.io\n  endpoint: \"{bad}\"\n"),
            &["key \"registries[0].endpoint\""],
        );
    }
}

#[test]
fn endpoint_accepts_host_port_and_trailing_slash() {
    assert_eq!(parse_endpoint("http://a.io").unwrap(), "http://a.io");
    assert_eq!(
        parse_endpoint("https://a.io:443/").unwrap(),
        "https://a.io:443"
    );
    assert_eq!(
        parse_endpoint("http://127.0.0.1:5000").unwrap(),
        "http://127.0.0.1:5000"
    );
    assert_eq!(parse_endpoint("http://[::1]").unwrap(), "http://[::1]");
}

#[test]
fn registry_host_check() {
    for good in [
        "docker.io",
        "localhost",
        "myreg:5000",
        "a-b.c-d.io",
        "10.0.0.1:5000",
    ] {
        check_registry_host(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "",
        "a/b",
        "http://a.io",
        "a b",
        "a..b",
        "-a.io",
        "a.io:",
        ":5000",
        "a_b.io",
    ] {
        assert!(check_registry_host(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn credentials_are_not_printed_in_debug_output() {
    let config =
        load_yaml("registries:\n- name: a.io\n  auth:\n    user: u\n    password: s3cret\n")
            .unwrap();
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[test]
fn tag_freshness_rules_reach_the_engine_anchored_and_in_order() {
    let c = load_yaml(
        "tagFreshness:\n- match: \"quay.io/.*\"\n  ttl: 1h\n  latestTtl: 5m\n\
         - match: \".*\"\n  ttl: never\n",
    )
    .unwrap();
    let e = c.engine_config();
    let at = |s: &str| e.tag_ttl(&actors::oci::ImageRef::parse(s).unwrap());
    assert_eq!(at("quay.io/a/b:1"), Ttl::After(Duration::from_secs(3600)));
    assert_eq!(
        at("quay.io/a/b:latest"),
        Ttl::After(Duration::from_secs(300))
    );
    assert_eq!(at("notquay.io/a/b:1"), Ttl::Never);
    assert_eq!(at("docker.io/library/x:1"), Ttl::Never);
    let digest = format!("quay.io/a/b@sha256:{}", "a".repeat(64));
    assert_eq!(at(&digest), Ttl::Never, "digests are immutable");
}

#[test]
fn bad_tag_freshness_rules_are_rejected_naming_the_key() {
    load_err(
        "tagFreshness:\n- match: \"(\"\n  ttl: 1h\n",
        &["tagFreshness[0].match"],
    );
    load_err(
        "tagFreshness:\n- match: x\n  ttl: soon\n",
        &["tagFreshness[0].ttl"],
    );
    load_err("tagFreshness:\n- match: x\n", &["tagFreshness[0].ttl"]);
    load_err(
        "tagFreshness:\n- match: x\n  ttl: 1h\n  tll: 2h\n",
        &["tagFreshness[0].tll"],
    );
}
