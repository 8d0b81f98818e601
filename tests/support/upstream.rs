//! The upstream: Debian's `docker-registry` (CNCF distribution 2.8), filesystem storage in a
//! temporary directory, plain HTTP on loopback, access log enabled.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::http;
use super::image::{ImageTree, LocalImage, PlatformImage};
use super::proc::{run, ChildGuard};
use super::{free_port, require_tool, sha256_hex, wait_for};

pub(super) const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How [`start_registry`] tells that a `docker-registry` it started is ready.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// `GET /v2/` answers 200: plain HTTP without authentication.
    V2Ok,
    /// The port accepts TCP connections: for TLS or authentication in front of `/v2/`.
    Connect,
}

/// Runs `docker-registry serve CONFIG` (output appended to `log`) and waits until the registry
/// on `port` passes `probe`; panics with the log's tail if the process exits first.
pub fn start_registry(
    name: &str,
    config: &Path,
    log: &Path,
    port: u16,
    probe: Probe,
) -> ChildGuard {
    let mut cmd = Command::new(REGISTRY_BIN);
    cmd.arg("serve").arg(config);
    let mut process = ChildGuard::spawn(name, &mut cmd, log);
    let what = match probe {
        Probe::V2Ok => format!("the {name} to answer GET /v2/"),
        Probe::Connect => format!("the {name} to accept connections"),
    };
    wait_for(
        &what,
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            if let Some(status) = process.exited() {
                panic!(
                    "docker-registry exited with {status}:\n{}",
                    super::tail_of(log, 4096)
                );
            }
            match probe {
                Probe::V2Ok => match http::request(port, "GET", "/v2/", &[]) {
                    Ok(r) if r.status == 200 => Some(()),
                    _ => None,
                },
                Probe::Connect => TcpStream::connect(("127.0.0.1", port))
                    .is_ok()
                    .then_some(()),
            }
        },
    );
    process
}

/// One line of the upstream's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub method: String,
    pub path: String,
    pub status: u16,
}

pub struct Upstream {
    // Dropped first (fields drop in declaration order): the process goes before its files.
    process: Option<ChildGuard>,
    pub port: u16,
    dir: TempDir,
    config: PathBuf,
    log: PathBuf,
}

impl Upstream {
    /// Starts a fresh, empty upstream on a free port and waits until it answers.
    pub fn start() -> Upstream {
        require_tool(REGISTRY_BIN);
        let dir = tempfile::Builder::new()
            .prefix("e2e-upstream-")
            .tempdir()
            .expect("upstream temp dir");
        let port = free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("upstream storage dir");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: e2e-test-secret\n",
                storage.display()
            ),
        )
        .expect("write upstream config");
        let log = dir.path().join("registry.log");
        let mut upstream = Upstream {
            port,
            dir,
            config,
            log,
            process: None,
        };
        upstream.restart();
        upstream
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The registry's storage, which another registry process may serve as well.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Stops the registry (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.terminate(Duration::from_secs(5));
        }
        wait_for(
            "the stopped upstream to release its port",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                http::request(self.port, "GET", "/v2/", &[])
                    .is_err()
                    .then_some(())
            },
        );
    }

    /// (Re)starts the registry on the same port and storage, and waits until `GET /v2/` is 200.
    pub fn restart(&mut self) {
        if self.process.is_some() {
            self.stop();
        }
        self.process = Some(start_registry(
            "upstream docker-registry",
            &self.config,
            &self.log,
            self.port,
            Probe::V2Ok,
        ));
    }

    /// Every request in the access log so far.
    pub fn access_log(&self) -> Vec<AccessEntry> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(parse_access_line).collect()
    }

    /// Number of access-log entries so far; pass it to [`Upstream::requests_since`].
    pub fn log_mark(&self) -> usize {
        self.access_log().len()
    }

    /// Access-log entries after `mark`.
    pub fn requests_since(&self, mark: usize) -> Vec<AccessEntry> {
        self.access_log().into_iter().skip(mark).collect()
    }

    /// How many requests with this method had a path containing `path_part`.
    pub fn count_requests(&self, method: &str, path_part: &str) -> usize {
        self.access_log()
            .iter()
            .filter(|e| e.method == method && e.path.contains(path_part))
            .count()
    }

    /// Pushes `image` (its OCI index and everything below) as `repo:tag`, unchanged.
    pub fn push_oci(&self, image: &LocalImage, repo: &str, tag: &str) -> ImageTree {
        self.push(image, repo, tag, &[]);
        let tree = self.image_tree(repo, tag);
        assert_eq!(
            tree.top, image.index_digest,
            "the upstream must serve the pushed OCI index unchanged"
        );
        tree
    }

    /// Pushes `image` converted by skopeo to a Docker manifest list (schema 2) as `repo:tag`.
    pub fn push_docker_list(&self, image: &LocalImage, repo: &str, tag: &str) -> ImageTree {
        self.push(image, repo, tag, &["--format", "v2s2"]);
        let tree = self.image_tree(repo, tag);
        assert_eq!(
            tree.media_type, "application/vnd.docker.distribution.manifest.list.v2+json",
            "skopeo --format v2s2 must produce a Docker manifest list"
        );
        tree
    }

    fn push(&self, image: &LocalImage, repo: &str, tag: &str, extra: &[&str]) {
        require_tool("skopeo");
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--all", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:{}", image.dir().display(), image.tag))
            .arg(format!("docker://{}/{repo}:{tag}", self.addr()));
        run(&mut cmd, Duration::from_secs(120)).expect_success();
    }

    /// Walks `repo:tag` on the upstream: the top manifest (index or list), then every image
    /// manifest below it, recording every digest a pull touches.
    pub fn image_tree(&self, repo: &str, tag: &str) -> ImageTree {
        let (top, media_type, body) = self.fetch_manifest(repo, tag);
        let list: serde_json::Value = serde_json::from_slice(&body).expect("top manifest JSON");
        let entries = list["manifests"]
            .as_array()
            .unwrap_or_else(|| panic!("{repo}:{tag} is not an index or list: {list}"));
        let mut platforms = Vec::new();
        for entry in entries {
            let digest = entry["digest"].as_str().expect("entry digest").to_string();
            let (got, _, body) = self.fetch_manifest(repo, &digest);
            assert_eq!(got, digest);
            let manifest: serde_json::Value =
                serde_json::from_slice(&body).expect("image manifest JSON");
            platforms.push(PlatformImage {
                os: entry["platform"]["os"].as_str().unwrap_or("").to_string(),
                architecture: entry["platform"]["architecture"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                manifest: digest,
                config: manifest["config"]["digest"]
                    .as_str()
                    .expect("config digest")
                    .to_string(),
                layers: manifest["layers"]
                    .as_array()
                    .expect("layers")
                    .iter()
                    .map(|l| l["digest"].as_str().expect("layer digest").to_string())
                    .collect(),
                layer_sizes: manifest["layers"]
                    .as_array()
                    .expect("layers")
                    .iter()
                    .map(|l| l["size"].as_u64().expect("layer size"))
                    .collect(),
            });
        }
        ImageTree {
            repo: repo.to_string(),
            tag: tag.to_string(),
            top,
            media_type,
            platforms,
        }
    }

    /// `(digest, media type, bytes)` of a manifest, verified against its digest.
    /// `(digest, media type, bytes)` of a manifest as the upstream serves it.
    pub fn fetch_manifest(&self, repo: &str, reference: &str) -> (String, String, Vec<u8>) {
        let r = http::get_manifest(self.port, &format!("/v2/{repo}/manifests/{reference}"));
        assert_eq!(
            r.status,
            200,
            "upstream manifest {repo}:{reference}: {}",
            r.summary()
        );
        let digest = format!("sha256:{}", sha256_hex(&r.body));
        assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
        let media_type = r.header("Content-Type").unwrap_or_default().to_string();
        (digest, media_type, r.body)
    }

    /// Bytes of a blob as the upstream stores them.
    pub fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let r = http::get(self.port, &format!("/v2/{repo}/blobs/{digest}"));
        assert_eq!(r.status, 200, "upstream blob {digest}: {}", r.summary());
        r.body
    }
}

/// Parses a combined-log-format line: `IP - - [date] "METHOD PATH PROTO" STATUS SIZE ...`.
pub fn parse_access_line(line: &str) -> Option<AccessEntry> {
    let rest = line.split_once("] \"")?.1;
    let (request, after) = rest.split_once('"')?;
    let mut parts = request.split(' ');
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let status = after.split_whitespace().next()?.parse().ok()?;
    if !path.starts_with('/') {
        return None;
    }
    Some(AccessEntry {
        method,
        path,
        status,
    })
}
