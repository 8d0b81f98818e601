//! Our server over HTTPS (`serverTlsConfig`): one-way TLS and mTLS (`clientAuth: verify`),
//! with curl, skopeo and containerd as clients, and start-up errors for bad files.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use support::proc::run;
use support::secure::{curl, curl_status, Pki};
use support::{Containerd, ImageTree, LocalImage, Server, ServerOptions, SkopeoDir, Upstream};

const REPO: &str = "e2e/tls";

fn upstream_with_image() -> (Upstream, ImageTree) {
    let upstream = Upstream::start();
    let image = LocalImage::generate(&["128K"]);
    let tree = upstream.push_oci(&image, REPO, "v1");
    (upstream, tree)
}

fn tls_server(upstream: &Upstream, pki: &Pki, verify_clients: bool) -> Server {
    let mut tls = format!(
        "serverTlsConfig:\n  cert: {}\n  key: {}\n",
        pki.file("server.crt"),
        pki.file("server.key")
    );
    if verify_clients {
        tls.push_str(&format!(
            "  ca: {}\n  clientAuth: verify\n",
            pki.file("ca.crt")
        ));
    }
    Server::start_with(ServerOptions {
        extra_yaml: tls,
        https: true,
        ..ServerOptions::new(&upstream.url())
    })
}

fn url(server: &Server, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", server.port)
}

fn skopeo_copy(server: &Server, copy: &SkopeoDir, cert_dir: Option<&str>) -> bool {
    let mut cmd = Command::new("skopeo");
    cmd.args(["--insecure-policy", "copy", "--all"]);
    match cert_dir {
        Some(dir) => cmd.args(["--src-cert-dir", dir]),
        None => cmd.arg("--src-tls-verify=true"),
    };
    cmd.arg(format!("docker://{}", server.in_path_ref(REPO, "v1")))
        .arg(format!("dir:{}", copy.out().display()));
    run(&mut cmd, Duration::from_secs(120)).success()
}

fn containerd_hosts(server: &Server, pki: &Pki, client_cert: bool) -> String {
    let mut toml = format!(
        "[host.\"https://127.0.0.1:{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{}\"\n",
        server.port,
        pki.file("ca.crt")
    );
    if client_cert {
        toml.push_str(&format!(
            "  client = [[\"{}\", \"{}\"]]\n",
            pki.file("client.crt"),
            pki.file("client.key")
        ));
    }
    toml
}

#[test]
fn one_way_tls_serves_curl_skopeo_and_containerd_that_trust_the_ca() {
    let (upstream, tree) = upstream_with_image();
    let pki = Pki::new();
    let server = tls_server(&upstream, &pki, false);
    assert!(
        server.log_text().contains("(TLS;"),
        "the banner says TLS is on:\n{}",
        server.log_tail()
    );

    let ca = pki.file("ca.crt");
    let ok = curl(&url(&server, "/v2/"), &["--cacert", &ca]);
    assert_eq!(curl_status(&ok), 200, "{ok:?}");
    let h2 = curl(
        &url(&server, "/v2/"),
        &[
            "--cacert",
            &ca,
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
        ],
    );
    assert!(h2.stdout.ends_with('2'), "HTTP/2 by ALPN: {h2:?}");
    let untrusted = curl(&url(&server, "/v2/"), &[]);
    assert!(
        !untrusted.success(),
        "curl must refuse the unknown CA: {untrusted:?}"
    );
    let plain = curl(&format!("http://127.0.0.1:{}/v2/", server.port), &[]);
    assert_ne!(
        curl_status(&plain),
        200,
        "plain HTTP is not served: {plain:?}"
    );

    let copy = SkopeoDir::new();
    assert!(
        !skopeo_copy(&server, &copy, None),
        "skopeo must refuse the unknown CA"
    );
    assert!(skopeo_copy(&server, &copy, Some(&pki.file("certs.d"))));
    copy.assert_matches(&tree);

    let containerd = Containerd::start();
    containerd.set_hosts_toml("_default", &containerd_hosts(&server, &pki, false));
    containerd
        .pull(&format!("upstream.test/{REPO}:v1"), None)
        .expect_success();
}

#[test]
fn mtls_requires_a_client_certificate_signed_by_the_ca() {
    let (upstream, tree) = upstream_with_image();
    let pki = Pki::new();
    let server = tls_server(&upstream, &pki, true);
    assert!(
        server.log_text().contains("mTLS"),
        "the banner says mTLS is on:\n{}",
        server.log_tail()
    );

    let ca = pki.file("ca.crt");
    let (cert, key) = (pki.file("client.crt"), pki.file("client.key"));
    let ok = curl(
        &url(&server, "/v2/"),
        &["--cacert", &ca, "--cert", &cert, "--key", &key],
    );
    assert_eq!(curl_status(&ok), 200, "{ok:?}");
    let no_cert = curl(&url(&server, "/v2/"), &["--cacert", &ca]);
    assert_ne!(curl_status(&no_cert), 200, "{no_cert:?}");
    // A certificate from another CA is refused as well.
    let other = curl(
        &url(&server, "/v2/"),
        &[
            "--cacert",
            &ca,
            "--cert",
            &pki.file("other-ca.crt"),
            "--key",
            &pki.file("other-ca.key"),
        ],
    );
    assert_ne!(curl_status(&other), 200, "{other:?}");

    let copy = SkopeoDir::new();
    assert!(skopeo_copy(&server, &copy, Some(&pki.file("certs.d"))));
    copy.assert_matches(&tree);
    let ca_only = tempfile::tempdir().unwrap();
    std::fs::copy(pki.path("ca.crt"), ca_only.path().join("ca.crt")).unwrap();
    let refused = SkopeoDir::new();
    assert!(
        !skopeo_copy(
            &server,
            &refused,
            Some(&ca_only.path().display().to_string())
        ),
        "skopeo without a client certificate must be refused"
    );

    let containerd = Containerd::start();
    containerd.set_hosts_toml("_default", &containerd_hosts(&server, &pki, false));
    let out = containerd.pull(&format!("upstream.test/{REPO}:v1"), None);
    assert!(
        !out.success(),
        "containerd without a client certificate: {out:?}"
    );
    containerd.set_hosts_toml("_default", &containerd_hosts(&server, &pki, true));
    containerd
        .pull(&format!("upstream.test/{REPO}:v1"), None)
        .expect_success();
}

#[test]
fn bad_tls_files_fail_start_up_naming_the_file() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.key");
    let cases = [
        (
            format!(
                "serverTlsConfig:\n  cert: {}\n  key: {}\n",
                pki.file("server.crt"),
                missing.display()
            ),
            missing.display().to_string(),
        ),
        (
            format!(
                "serverTlsConfig:\n  cert: {}\n  key: {}\n",
                pki.file("server.ext"),
                pki.file("server.key")
            ),
            pki.file("server.ext"),
        ),
        (
            format!(
                "registries:\n  - name: upstream.test\n    tls:\n      ca: {}\n",
                missing.display()
            ),
            missing.display().to_string(),
        ),
    ];
    for (yaml, file) in cases {
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, &yaml).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ociregistry"));
        cmd.arg("--image-path")
            .arg(dir.path().join("cache"))
            .arg("--config-file")
            .arg(&config)
            .args(["serve", "--host", "127.0.0.1", "--port", "0"]);
        let out = run(&mut cmd, Duration::from_secs(30));
        assert!(!out.success(), "start-up must fail for:\n{yaml}");
        assert!(
            out.stderr.contains(&file),
            "the error names {file}: {}",
            out.stderr
        );
    }
}

#[test]
fn commands_beside_an_mtls_server_reach_it_through_the_admin_socket_of_its_cache() {
    use std::os::unix::fs::PermissionsExt as _;
    let (upstream, tree) = upstream_with_image();
    let pki = Pki::new();
    let ws = support::ops::Workspace::new(&upstream.url());
    let server = Server::start_with(ServerOptions {
        extra_yaml: format!(
            "serverTlsConfig:\n  cert: {}\n  key: {}\n  ca: {}\n  clientAuth: verify\n",
            pki.file("server.crt"),
            pki.file("server.key"),
            pki.file("ca.crt")
        ),
        https: true,
        cache_dir: Some(ws.cache.clone()),
        ..ServerOptions::new(&upstream.url())
    });
    let socket = ws.cache.join("ociregistry.sock");
    let mode = std::fs::metadata(&socket)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", socket.display(), server.log_tail()))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "only the cache's owner may use the socket"
    );

    let name = format!("{}/{REPO}:v1", support::UPSTREAM_NAME);
    let list = ws.file("images", &format!("{name}\n"));
    let out = ws.run(&["load", "--image-file", list.to_str().unwrap()]);
    assert!(out.success(), "{out}\n{}", server.log_tail());
    assert!(out.stderr.contains("loading through it (unix:"), "{out}");
    assert!(
        out.stdout
            .ends_with("1 loaded, 0 already cached, 0 failed\n"),
        "{out}"
    );
    let out = ws.run(&["list", "--pattern", REPO]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains(&name), "{out}");
    let out = ws.run(&["prune", "--pattern", REPO, "--dry-run"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("would remove"), "{out}");

    // Loaded into the server's own engine: served over mTLS with the upstream gone.
    let mut upstream = upstream;
    upstream.stop();
    let manifest = format!("/v2/{}/{REPO}/manifests/v1", support::UPSTREAM_NAME);
    let fetched = curl(
        &url(&server, &manifest),
        &[
            "--cacert",
            &pki.file("ca.crt"),
            "--cert",
            &pki.file("client.crt"),
            "--key",
            &pki.file("client.key"),
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json",
        ],
    );
    assert_eq!(
        curl_status(&fetched),
        200,
        "{fetched}\n{}",
        server.log_tail()
    );
    let body = fetched.stdout.rsplit_once('\n').map_or("", |(b, _)| b);
    assert_eq!(
        format!("sha256:{}", support::sha256_hex(body.as_bytes())),
        tree.top
    );
}
