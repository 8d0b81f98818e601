//! `storage.s3` and `advertise`: the bucket settings reach the engine, secrets come from the
//! file or a file they name, and every mistake names its key; the secret is never printed.

use super::*;

#[test]
fn storage_s3_reaches_the_engine_with_a_normalised_prefix() {
    let config = load_yaml(
        "storage:\n  s3:\n    endpoint: http://127.0.0.1:7480/\n    bucket: ocicache\n    \
         region: us-east-1\n    prefix: /team/cache/\n    accessKeyId: AKID\n    \
         secretAccessKey: s3cr3t\nadvertise: http://10.0.0.5:8080\n",
    )
    .unwrap();
    let s3 = config.engine_config().s3.expect("storage.s3");
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:7480"));
    assert_eq!(s3.bucket, "ocicache");
    assert_eq!(s3.region.as_deref(), Some("us-east-1"));
    assert_eq!(s3.prefix, "team/cache/");
    assert_eq!(s3.access_key_id.as_deref(), Some("AKID"));
    assert_eq!(s3.secret_access_key.as_deref(), Some("s3cr3t"));
    assert_eq!(s3.holder, "http://10.0.0.5:8080");
    assert!(!format!("{s3:?}").contains("s3cr3t"), "{s3:?}");
}

#[test]
fn without_storage_the_cache_is_the_directory_and_credentials_may_come_from_the_environment() {
    assert_eq!(load_yaml("port: 8080\n").unwrap().engine_config().s3, None);
    let s3 = load_yaml("storage:\n  s3:\n    bucket: ocicache\n")
        .unwrap()
        .storage
        .expect("storage.s3");
    assert_eq!(
        (s3.endpoint, s3.access_key_id, s3.secret_access_key),
        (None, None, None)
    );
    assert_eq!(s3.prefix, "");
}

#[test]
fn a_bucket_is_pruned_on_a_schedule_and_bounded_by_size() {
    let config = load_yaml(
        "storage:\n  s3:\n    bucket: ocicache\npruneConfig:\n  enabled: true\n  \
         duration: 30d\n  type: accessed\n  frequency: 1d\nmaxCacheSize: 10GiB\n",
    )
    .unwrap();
    assert!(config.ops.prune.is_some(), "pruneConfig with storage.s3");
    let bound = config
        .ops
        .cache_bound
        .expect("maxCacheSize with storage.s3");
    assert_eq!(bound.max_bytes, 10 << 30);
}

#[test]
fn the_secret_key_can_come_from_a_file() {
    let mut secret = tempfile::NamedTempFile::new().expect("temp file");
    secret.write_all(b"from-a-file\n").expect("write");
    let config = load_yaml(&format!(
        "storage:\n  s3:\n    bucket: ocicache\n    secretAccessKeyFile: {}\n",
        secret.path().display()
    ))
    .unwrap();
    let s3 = config.storage.expect("storage.s3");
    assert_eq!(s3.secret_access_key.as_deref(), Some("from-a-file"));
}

#[test]
fn storage_mistakes_are_refused_naming_the_key() {
    load_err(
        "storage:\n  s3:\n    region: us-east-1\n",
        &["key \"storage.s3.bucket\"", "is required"],
    );
    load_err(
        "storage:\n  s3:\n    bucket: Not_A_Bucket\n",
        &["key \"storage.s3.bucket\"", "Not_A_Bucket"],
    );
    load_err(
        "storage:\n  s3:\n    bucket: ocicache\n    endpoint: ftp://x\n",
        &["key \"storage.s3.endpoint\""],
    );
    load_err(
        "storage:\n  s3:\n    bucket: ocicache\n    secretAccessKey: a\n    \
         secretAccessKeyFile: /x\n",
        &["key \"storage.s3.secretAccessKeyFile\"", "once"],
    );
    load_err(
        "storage:\n  s3:\n    bucket: ocicache\n    secretAccessKeyFile: /no/such/file\n",
        &["key \"storage.s3.secretAccessKeyFile\"", "/no/such/file"],
    );
    load_err(
        "storage:\n  s3:\n    bucket: ocicache\n    secretKey: a\n",
        &["storage.s3.secretKey"],
    );
    load_err("storage:\n  gcs: {}\n", &["storage.gcs"]);
    load_err(
        "advertise: 10.0.0.5:8080\n",
        &["key \"advertise\"", "http://"],
    );
}

#[test]
fn the_fleet_secret_needs_a_bucket_and_an_address_and_is_never_printed() {
    let config = load_yaml(
        "storage:\n  s3:\n    bucket: ocicache\nadvertise: http://10.0.0.5:8080\n\
         fleetSecret: a-secret-of-enough-length\n",
    )
    .unwrap();
    let engine = config.engine_config();
    let secret = engine.fleet_secret.as_ref().expect("fleetSecret");
    assert_eq!(secret.expose(), "a-secret-of-enough-length");
    assert!(!format!("{engine:?}").contains("a-secret-of-enough-length"));
    load_err(
        "storage:\n  s3:\n    bucket: ocicache\nadvertise: http://10.0.0.5:8080\n\
         fleetSecret: short\n",
        &["key \"fleetSecret\"", "at least 16"],
    );
    load_err(
        "advertise: http://10.0.0.5:8080\nfleetSecret: a-secret-of-enough-length\n",
        &["key \"fleetSecret\"", "storage.s3"],
    );
    load_err(
        "advertise: http://10.0.0.5:8080\nfleetSecretFile: /no/such/secret\n",
        &["key \"fleetSecretFile\"", "/no/such/secret"],
    );
}

#[test]
fn serve_advertise_overrides_the_file_and_names_the_lease_holder() {
    let f = write_yaml("storage:\n  s3:\n    bucket: ocicache\nadvertise: http://10.0.0.5:8080\n");
    let path = f.path().to_str().unwrap().to_string();
    let config = load(&cli(&[
        "--config-file",
        &path,
        "serve",
        "--advertise",
        "http://10.0.0.9:8080/",
    ]))
    .unwrap();
    assert_eq!(config.advertise.as_deref(), Some("http://10.0.0.9:8080"));
    assert_eq!(
        config.storage.expect("storage.s3").holder,
        "http://10.0.0.9:8080"
    );
    let err = load(&cli(&[
        "--config-file",
        &path,
        "serve",
        "--advertise",
        "10.0.0.9",
    ]))
    .expect_err("an address without a scheme");
    assert!(err.to_string().contains("advertise"), "{err}");
}
