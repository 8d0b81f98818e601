//! Pull credentials (`pullAuth`): an htpasswd file made by `htpasswd -B`, a registry marked
//! `private: true` beside an open one, and real clients: skopeo with `--src-creds`, the Docker
//! Engine after `docker login`, podman after `podman login`, containerd with `ctr --user`
//! through its mirror; then the per-address limit on wrong passwords.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use support::http;
use support::ops::curl_from;
use support::proc::{run, Output};
use support::{
    require_tool, Containerd, ImageTree, LocalImage, Podman, Server, ServerOptions, SkopeoDir,
    Upstream, UPSTREAM_NAME,
};
use tempfile::TempDir;

const REPO: &str = "e2e/app";
/// A second name for the same upstream, marked `private: true`; `upstream.test` stays open.
const PRIVATE: &str = "private.test";
/// An image only ever pulled through the private name.
const SECRET_REPO: &str = "e2e/secret";
const USER: &str = "puller";
const PASSWORD: &str = "e2e-Pull-secret-1";
const WRONG: &str = "not-the-password";
const REALM: &str = "e2e pulls";

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// An upstream holding one image, our server with `pullAuth` over it under two names.
struct World {
    server: Server,
    tree: ImageTree,
    upstream: Upstream,
    _htpasswd: TempDir,
}

impl World {
    fn start() -> World {
        require_tool("htpasswd");
        let upstream = Upstream::start();
        let image = LocalImage::generate(&["64K"]);
        let tree = upstream.push_oci(&image, REPO, "v1");
        let dir = tempfile::Builder::new()
            .prefix("e2e-htpasswd-")
            .tempdir()
            .expect("htpasswd dir");
        let file = dir.path().join("htpasswd");
        let mut cmd = Command::new("htpasswd");
        cmd.arg("-Bbc").arg(&file).args([USER, PASSWORD]);
        run(&mut cmd, Duration::from_secs(30)).expect_success();
        let server = Server::start_with(ServerOptions {
            more_registries_yaml: format!(
                "- name: {PRIVATE}\n  scheme: http\n  endpoint: {}\n  private: true\n",
                upstream.url()
            ),
            extra_yaml: format!(
                "pullAuth:\n  htpasswd: {}\n  realm: {REALM}\n",
                file.display()
            ),
            probe_authorization: Some(basic(USER, PASSWORD)),
            ..ServerOptions::new(&upstream.url())
        });
        World {
            server,
            tree,
            upstream,
            _htpasswd: dir,
        }
    }

    /// `127.0.0.1:PORT/private.test/e2e/app:v1`.
    fn private_ref(&self) -> String {
        format!("{}/{PRIVATE}/{REPO}:v1", self.server.addr())
    }

    fn private_manifest_path(&self) -> String {
        format!("/v2/{PRIVATE}/{REPO}/manifests/v1")
    }
}

fn get(port: u16, target: &str, authorization: Option<&str>) -> http::Response {
    let mut headers = vec![("Accept", http::MANIFEST_ACCEPT)];
    if let Some(a) = authorization {
        headers.push(("Authorization", a));
    }
    http::get_with(port, target, &headers)
}

/// A 401 that sends the client to our token endpoint.
fn assert_challenge(port: u16, r: &http::Response) {
    assert_eq!(r.status, 401, "{}", r.summary());
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(
            format!("Bearer realm=\"http://127.0.0.1:{port}/v2/token\",service=\"{REALM}\"")
                .as_str()
        ),
        "{}",
        r.summary()
    );
    assert_eq!(
        r.oci_error_codes(),
        Some(vec!["UNAUTHORIZED".to_string()]),
        "{}",
        r.summary()
    );
}

/// `skopeo copy --all` into `copy`, with `--src-creds` or, without, strictly anonymous (no
/// credentials from an auth file either).
fn skopeo_copy(copy: &SkopeoDir, reference: &str, creds: Option<&str>) -> Output {
    match creds {
        Some(c) => copy.copy_all_with(reference, &["--src-creds", c]),
        None => copy.copy_all_with(reference, &["--src-no-creds"]),
    }
}

#[test]
fn skopeo_needs_the_right_credentials_for_the_private_registry_and_none_for_the_open_one() {
    let w = World::start();
    let port = w.server.port;

    // The version check challenges until the credentials are right.
    assert_challenge(port, &get(port, "/v2/", None));
    assert_challenge(port, &get(port, "/v2/", Some(&basic(USER, WRONG))));
    assert_challenge(port, &get(port, "/v2/", Some(&basic("nobody", PASSWORD))));
    assert_eq!(get(port, "/v2/", Some(&basic(USER, PASSWORD))).status, 200);
    // The private registry's manifest, by path and by containerd's `ns`.
    let by_ns = format!("/v2/{REPO}/manifests/v1?ns={PRIVATE}");
    for path in [w.private_manifest_path(), by_ns] {
        assert_challenge(port, &get(port, &path, None));
        let r = get(port, &path, Some(&basic(USER, PASSWORD)));
        assert_eq!(r.status, 200, "{path}: {}", r.summary());
    }

    let copy = SkopeoDir::new();
    let open = skopeo_copy(&copy, &w.server.in_path_ref(REPO, "v1"), None);
    assert!(open.success(), "{open}\n{}", w.server.log_tail());
    copy.assert_matches(&w.tree);

    let anonymous = skopeo_copy(&copy, &w.private_ref(), None);
    assert!(!anonymous.success(), "anonymous pull of a private registry");
    let wrong = skopeo_copy(&copy, &w.private_ref(), Some(&format!("{USER}:{WRONG}")));
    assert!(!wrong.success(), "pull with a wrong password");
    let right = skopeo_copy(&copy, &w.private_ref(), Some(&format!("{USER}:{PASSWORD}")));
    assert!(right.success(), "{right}\n{}", w.server.log_tail());
    copy.assert_matches(&w.tree);

    let log = w.server.log_text();
    assert!(
        log.contains(&format!(
            "refused the credentials of user \"{USER}\" from 127.0.0.1"
        )),
        "failed attempts are logged with user and address:\n{log}"
    );
    assert!(
        !log.contains(WRONG) && !log.contains(PASSWORD),
        "a password leaked:\n{log}"
    );
}

#[test]
fn content_only_the_private_registry_served_is_refused_by_digest_under_the_open_name() {
    let w = World::start();
    let port = w.server.port;
    let secret = w.upstream.push_oci(
        &LocalImage::generate_for(&["32K"], "linux/amd64"),
        SECRET_REPO,
        "v1",
    );
    let copy = SkopeoDir::new();
    let open = skopeo_copy(&copy, &w.server.in_path_ref(REPO, "v1"), None);
    assert!(open.success(), "{open}\n{}", w.server.log_tail());
    let private_ref = format!("{}/{PRIVATE}/{SECRET_REPO}:v1", w.server.addr());
    let creds = format!("{USER}:{PASSWORD}");
    let cached = skopeo_copy(&SkopeoDir::new(), &private_ref, Some(&creds));
    assert!(cached.success(), "{cached}\n{}", w.server.log_tail());

    // Everything of the private image, by digest, named under the open registry: in the path
    // and by containerd's `ns`.
    let image = secret.platform("amd64");
    let mut addressed: Vec<String> = image
        .blobs()
        .iter()
        .map(|d| format!("/v2/{UPSTREAM_NAME}/{SECRET_REPO}/blobs/{d}"))
        .collect();
    for d in secret.manifest_digests() {
        addressed.push(format!("/v2/{UPSTREAM_NAME}/{SECRET_REPO}/manifests/{d}"));
    }
    addressed.push(format!(
        "/v2/{SECRET_REPO}/blobs/{}?ns={UPSTREAM_NAME}",
        image.layers[0]
    ));
    for path in &addressed {
        assert_challenge(port, &get(port, path, None));
        let r = get(port, path, Some(&basic(USER, PASSWORD)));
        assert_eq!(r.status, 200, "{path} with credentials: {}", r.summary());
    }
    let anonymous = skopeo_copy(
        &SkopeoDir::new(),
        &format!(
            "{}/{UPSTREAM_NAME}/{SECRET_REPO}@{}",
            w.server.addr(),
            secret.top
        ),
        None,
    );
    assert!(
        !anonymous.success(),
        "an anonymous client pulled a private image by digest under the open name"
    );

    // The open image's content stays open by digest.
    let public = w.tree.platform("amd64");
    let path = format!("/v2/{UPSTREAM_NAME}/{REPO}/blobs/{}", public.layers[0]);
    let r = get(port, &path, None);
    assert_eq!(r.status, 200, "{path}: {}", r.summary());
    let path = format!("/v2/{UPSTREAM_NAME}/{REPO}/manifests/{}", w.tree.top);
    assert_eq!(get(port, &path, None).status, 200, "{path}");
}

/// The Docker CLI with its own configuration directory, so `docker login` leaves the machine's
/// credentials alone; logs out and removes what it pulled on drop.
struct DockerCli {
    config: TempDir,
    pulled: Vec<String>,
    registry: String,
}

impl DockerCli {
    fn new(registry: &str) -> DockerCli {
        require_tool("docker");
        let config = tempfile::Builder::new()
            .prefix("e2e-docker-")
            .tempdir()
            .expect("docker config dir");
        let cli = DockerCli {
            config,
            pulled: Vec::new(),
            registry: registry.to_string(),
        };
        let info = cli.run(&["info", "--format", "{{.ServerVersion}}"]);
        assert!(info.success(), "the Docker Engine is not reachable: {info}");
        cli
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", self.config.path()).args(args);
        run(&mut cmd, Duration::from_secs(180))
    }

    fn login(&self, user: &str, password: &str) -> Output {
        self.run(&["login", &self.registry, "-u", user, "-p", password])
    }

    fn pull(&mut self, reference: &str) -> Output {
        self.pulled.push(reference.to_string());
        self.run(&["pull", reference])
    }

    fn remove(&self, reference: &str) {
        let _ = self.run(&["image", "rm", "-f", reference]);
    }

    fn image_id(&self, reference: &str) -> String {
        let out = self.run(&["image", "inspect", "--format", "{{.Id}}", reference]);
        out.expect_success().stdout.trim().to_string()
    }
}

impl Drop for DockerCli {
    fn drop(&mut self) {
        let _ = self.run(&["logout", &self.registry]);
        for reference in &self.pulled {
            self.remove(reference);
        }
    }
}

#[test]
fn docker_pulls_the_open_registry_anonymously_and_the_private_one_after_docker_login() {
    let w = World::start();
    let mut docker = DockerCli::new(&w.server.addr());
    let amd64_config = w.tree.platform("amd64").config.clone();

    let open = w.server.in_path_ref(REPO, "v1");
    let out = docker.pull(&open);
    assert!(out.success(), "{out}\n{}", w.server.log_tail());
    assert_eq!(docker.image_id(&open), amd64_config);
    // Gone again, so the private pull below fetches the layers itself.
    docker.remove(&open);

    let out = docker.pull(&w.private_ref());
    assert!(
        !out.success(),
        "anonymous docker pull of a private registry"
    );

    let out = docker.login(USER, WRONG);
    assert!(!out.success(), "docker login with a wrong password: {out}");
    let out = docker.login(USER, PASSWORD);
    assert!(out.success(), "{out}\n{}", w.server.log_tail());
    assert!(out.stdout.contains("Login Succeeded"), "{out}");

    let out = docker.pull(&w.private_ref());
    assert!(out.success(), "{out}\n{}", w.server.log_tail());
    assert_eq!(docker.image_id(&w.private_ref()), amd64_config);

    let out = docker.run(&["logout", &w.server.addr()]);
    assert!(out.success(), "{out}");
}

#[test]
fn podman_pulls_the_private_registry_only_after_podman_login_and_the_open_one_anonymously() {
    let w = World::start();
    let amd64_config = support::hex_of(&w.tree.platform("amd64").config);

    let podman = Podman::new();
    let out = podman.pull(&w.private_ref());
    assert!(
        !out.success(),
        "anonymous podman pull of a private registry"
    );
    let out = podman.login(&w.server.addr(), USER, WRONG);
    assert!(!out.success(), "podman login with a wrong password: {out}");
    let out = podman.login(&w.server.addr(), USER, PASSWORD);
    assert!(out.success(), "{out}\n{}", w.server.log_tail());
    let out = podman.pull(&w.private_ref());
    assert!(out.success(), "{out}\n{}", w.server.log_tail());
    assert_eq!(
        podman.inspect(&w.private_ref())["Id"].as_str(),
        Some(amd64_config)
    );

    // Another podman, never logged in, still pulls the open name.
    let anonymous = Podman::new();
    let open = w.server.in_path_ref(REPO, "v1");
    let out = anonymous.pull(&open);
    assert!(out.success(), "{out}\n{}", w.server.log_tail());
    assert_eq!(anonymous.inspect(&open)["Id"].as_str(), Some(amd64_config));
}

#[test]
fn containerd_pulls_the_private_registry_through_the_mirror_with_ctr_user() {
    let w = World::start();
    let containerd = Containerd::start();
    containerd.set_default_mirror(&w.server.addr());

    let private = format!("{PRIVATE}/{REPO}:v1");
    let out = containerd.pull(&private, None);
    assert!(!out.success(), "anonymous ctr pull of a private registry");
    let out = containerd.pull_as(&private, &format!("{USER}:{WRONG}"));
    assert!(!out.success(), "ctr pull with a wrong password");
    let out = containerd.pull_as(&private, &format!("{USER}:{PASSWORD}"));
    assert!(out.success(), "{out}\n{}", w.server.log_tail());
    assert_eq!(containerd.image_digest(&private), w.tree.top);

    let open = format!("{UPSTREAM_NAME}/{REPO}:v1");
    let out = containerd.pull(&open, None);
    assert!(out.success(), "{out}\n{}", w.server.log_tail());
}

#[test]
fn wrong_passwords_from_one_address_get_429_with_retry_after_and_other_addresses_do_not() {
    let w = World::start();
    let port = w.server.port;
    let path = w.private_manifest_path();
    let wrong = basic(USER, WRONG);
    let right = basic(USER, PASSWORD);

    for attempt in 1..=10 {
        let r = get(port, &path, Some(&wrong));
        assert_eq!(r.status, 401, "attempt {attempt}: {}", r.summary());
    }
    for authorization in [&wrong, &right] {
        let r = get(port, &path, Some(authorization));
        assert_eq!(r.status, 429, "{}", r.summary());
        assert_eq!(
            r.oci_error_codes(),
            Some(vec!["TOOMANYREQUESTS".to_string()])
        );
        let retry: u32 = r
            .header("Retry-After")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After in seconds: {}", r.summary()));
        assert!((1..=300).contains(&retry), "Retry-After {retry}");
    }
    // Anonymous pulls of the open registry ask for no check and go on.
    let open = w.server.manifest_path(REPO, "v1");
    assert_eq!(get(port, &open, None).status, 200);
    // Another address is not held back.
    let (status, body) = curl_from(
        "127.0.0.2",
        port,
        "GET",
        &path,
        &[("Authorization", &right)],
    );
    assert_eq!(status, 200, "{body}");

    let log = w.server.log_text();
    assert_eq!(
        log.matches("refused the credentials of user").count(),
        10,
        "each failure is logged once:\n{log}"
    );
    assert!(
        log.contains("failed credential checks from 127.0.0.1"),
        "the lockout is logged:\n{log}"
    );
    assert!(!log.contains(WRONG), "a password leaked:\n{log}");
}
