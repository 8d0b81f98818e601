//! Replicas of our binary sharing one bucket of the test's Ceph ([`super::ceph`]).

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use super::ceph::{Ceph, ACCESS_KEY, REGION, SECRET_KEY};
use super::proc::{run, Output};
use super::{free_port, http, sha256_hex, ImageTree, Server, ServerOptions, UPSTREAM_NAME};

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

/// Every manifest and blob of `tree` in `repo`, fetched over plain HTTP from `port`, each
/// checked against its digest; the failures, as text.
pub fn pull_repo_over_http(port: u16, repo: &str, tree: &ImageTree) -> Vec<String> {
    let mut failures = Vec::new();
    let top = format!("/v2/{}/{}/manifests/{}", UPSTREAM_NAME, repo, tree.tag);
    let r = http::get_manifest(port, &top);
    if r.status != 200 || format!("sha256:{}", sha256_hex(&r.body)) != tree.top {
        failures.push(format!("{top}: {}", r.summary()));
    }
    for p in &tree.platforms {
        let path = format!("/v2/{}/{repo}/manifests/{}", UPSTREAM_NAME, p.manifest);
        let r = http::get_manifest(port, &path);
        if r.status != 200 || format!("sha256:{}", sha256_hex(&r.body)) != p.manifest {
            failures.push(format!("{path}: {}", r.summary()));
        }
        for blob in p.blobs() {
            let path = format!("/v2/{}/{repo}/blobs/{blob}", UPSTREAM_NAME);
            match http::request(port, "GET", &path, &[]) {
                Ok(r) if r.status == 200 => {
                    let got = format!("sha256:{}", sha256_hex(&r.body));
                    if got != blob {
                        failures.push(format!("{path}: bytes hash to {got}"));
                    }
                }
                Ok(r) => failures.push(format!("{path}: {}", r.summary())),
                Err(e) => failures.push(format!("{path}: {e}")),
            }
        }
    }
    failures
}

/// `per_replica` clients on each of `replicas`, started together, each running `client` on
/// its replica's port; every failure they report.
pub fn all_at_once(
    replicas: &[Server],
    per_replica: usize,
    client: impl Fn(u16) -> Vec<String> + Send + Sync + 'static,
) -> Vec<String> {
    let clients = replicas.len() * per_replica;
    let barrier = Arc::new(Barrier::new(clients));
    let client = Arc::new(client);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let port = replicas[i % replicas.len()].port;
            let (barrier, client) = (barrier.clone(), client.clone());
            thread::spawn(move || {
                barrier.wait();
                client(port)
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect()
}

/// Asserts that no lease is left in `bucket` once the work under way has ended: downloads a
/// client started, or that a manifest set going (the rest of its image), end their leases
/// after the client has its answer. Waits at most 30 s for them; a loop of its own rather than
/// [`super::wait_for`], so that a failure lists the leases still there.
pub fn no_leases_left(ceph: &Ceph, bucket: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut left = ceph.keys(bucket, "leases/");
    while !left.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        left = ceph.keys(bucket, "leases/");
    }
    assert!(
        left.is_empty(),
        "leases left 30 s after the work ended: {left:?}"
    );
}
