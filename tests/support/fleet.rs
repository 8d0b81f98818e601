//! Replicas of our binary sharing one bucket of the test's Ceph ([`super::ceph`]).

use std::process::Command;
use std::time::Duration;

use super::ceph::{Ceph, ACCESS_KEY, REGION, SECRET_KEY};
use super::proc::{run, Output};
use super::{free_port, Server, ServerOptions, UPSTREAM_NAME};

const BINARY: &str = env!("CARGO_BIN_EXE_ociregistry");

/// The `storage` section naming `bucket` with the given credentials.
pub fn storage_yaml(ceph: &Ceph, bucket: &str, access_key: &str, secret_key: &str) -> String {
    format!(
        "storage:\n  s3:\n    endpoint: {}\n    bucket: {bucket}\n    region: {REGION}\n    \
         accessKeyId: {access_key}\n    secretAccessKey: {secret_key}\n",
        ceph.endpoint()
    )
}

/// Options of a replica on `bucket`, with `upstream.test` at `upstream_endpoint`.
pub fn replica_options(upstream_endpoint: &str, ceph: &Ceph, bucket: &str) -> ServerOptions {
    ServerOptions {
        extra_yaml: storage_yaml(ceph, bucket, ACCESS_KEY, SECRET_KEY),
        ..ServerOptions::new(upstream_endpoint)
    }
}

/// The fleet secret of the tests' replicas.
pub const FLEET_SECRET: &str = "fleet-secret-for-the-tests";

/// Options of a replica on `bucket` that advertises itself on its port and shares the fleet
/// secret, so that the others follow its downloads.
pub fn advertised_replica_options(
    upstream_endpoint: &str,
    ceph: &Ceph,
    bucket: &str,
) -> ServerOptions {
    let port = free_port();
    let mut options = replica_options(upstream_endpoint, ceph, bucket);
    options.port = Some(port);
    options.extra_yaml.push_str(&format!(
        "advertise: http://127.0.0.1:{port}\nfleetSecret: {FLEET_SECRET}\n"
    ));
    options
}

/// `n` replicas on `bucket`, each its own process with its own scratch directory.
pub fn start_replicas(n: usize, upstream_endpoint: &str, ceph: &Ceph, bucket: &str) -> Vec<Server> {
    (0..n)
        .map(|_| Server::start_with(replica_options(upstream_endpoint, ceph, bucket)))
        .collect()
}

/// Runs `serve` with `yaml` as its config file (after the `upstream.test` registry) and
/// expects it to stop by itself within a minute: for configurations refused at start.
pub fn serve_expecting_failure(upstream_endpoint: &str, yaml: &str) -> Output {
    let dir = tempfile::Builder::new()
        .prefix("e2e-fleet-fail-")
        .tempdir()
        .expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - name: {UPSTREAM_NAME}\n    scheme: http\n    endpoint: \
             {upstream_endpoint}\n{yaml}"
        ),
    )
    .expect("write config");
    let out = run(
        Command::new(BINARY)
            .arg("--image-path")
            .arg(dir.path().join("cache"))
            .arg("--config-file")
            .arg(&config)
            .args(["serve", "--host", "127.0.0.1", "--port"])
            .arg(free_port().to_string()),
        Duration::from_secs(60),
    );
    assert!(!out.success(), "the server started: {out}");
    out
}
