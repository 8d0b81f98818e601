//! Our binary, `ociregistry serve`, on a free loopback port with its own cache directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::proc::ChildGuard;
use super::{free_port, http, tail_of, wait_for, UPSTREAM_NAME};

const BINARY: &str = env!("CARGO_BIN_EXE_ociregistry");

#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Where `upstream.test` really is, e.g. `http://127.0.0.1:5000`.
    pub upstream_endpoint: String,
    pub air_gapped: bool,
    pub default_ns: Option<String>,
    /// Serve this cache directory instead of a fresh one (e.g. one prepared by the test).
    pub cache_dir: Option<PathBuf>,
    /// More `serve` options, e.g. `["--health", "8081"]`.
    pub extra_args: Vec<String>,
    /// YAML lines added under the `upstream.test` registry entry (indented by 4 spaces), e.g.
    /// `tls:` or `auth:` settings.
    pub registry_yaml: String,
    /// YAML list items added to `registries` after the `upstream.test` entry (indented by 2
    /// spaces), e.g. a second name for an upstream.
    pub more_registries_yaml: String,
    /// YAML added at the top level of the config file, e.g. `serverTlsConfig:`.
    pub extra_yaml: String,
    /// `Authorization` of the readiness probe's `GET /v2/`, for a server that asks for pull
    /// credentials.
    pub probe_authorization: Option<String>,
    /// The server speaks HTTPS: readiness is a TCP connection, not `GET /v2/` over HTTP.
    pub https: bool,
    /// Listen on this port (one from [`super::free_port`]), for a configuration that names
    /// it; `None`: a free one.
    pub port: Option<u16>,
}

impl ServerOptions {
    pub fn new(upstream_endpoint: &str) -> ServerOptions {
        ServerOptions {
            upstream_endpoint: upstream_endpoint.to_string(),
            ..ServerOptions::default()
        }
    }
}

pub struct Server {
    pub port: u16,
    pub options: ServerOptions,
    dir: TempDir,
    cache: PathBuf,
    config: PathBuf,
    log: PathBuf,
    process: Option<ChildGuard>,
}

impl Server {
    /// Starts the server with `upstream.test` mapped to `upstream_endpoint`.
    pub fn start(upstream_endpoint: &str) -> Server {
        Server::start_with(ServerOptions::new(upstream_endpoint))
    }

    pub fn start_with(options: ServerOptions) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("e2e-server-")
            .tempdir()
            .expect("server temp dir");
        let cache = options
            .cache_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("cache"));
        std::fs::create_dir_all(&cache).expect("cache dir");
        let mut server = Server {
            port: options.port.unwrap_or_else(free_port),
            options,
            config: dir.path().join("config.yaml"),
            log: dir.path().join("server.log"),
            cache,
            dir,
            process: None,
        };
        server.launch();
        server
    }

    /// `127.0.0.1:PORT`, the registry part of in-path image references.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/upstream.test/REPO:TAG`.
    pub fn in_path_ref(&self, repo: &str, tag: &str) -> String {
        format!("{}/{UPSTREAM_NAME}/{repo}:{tag}", self.addr())
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The end of the server's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        tail_of(&self.log, 6000)
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Waits up to `timeout` for the server to exit on its own (e.g. after `/cmd/stop`);
    /// `true` if it did.
    pub fn wait_exited(&mut self, timeout: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Some(p) = self.process.as_mut() {
                if p.exited().is_some() {
                    self.process = None;
                    return true;
                }
            } else {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }

    /// The directory holding the cache (unless placed elsewhere), config and log.
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `Some(status)` once the server process has exited (crashed, or failed to start).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.as_mut().and_then(|p| p.exited())
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.pid())
    }

    /// SIGKILL: no chance to clean up, as in a crash or an OOM kill, whatever is under way.
    pub fn crash(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGKILL once the blob downloads under way have landed in the cache ([`Self::settle`]):
    /// the server is gone at once, but not in the middle of work a test has already seen
    /// answered (a client gets a blob's last byte before the cache has made it durable).
    pub fn kill(&mut self) {
        self.settle();
        self.crash();
    }

    /// Waits, for at most 15 s, until the server runs no blob download: a blob a client has
    /// received is then in `blobs/`, fsynced, or its download has failed. Returns at once for
    /// a server that is not running or speaks HTTPS (its `/metrics` is not read here).
    pub fn settle(&self) {
        if self.process.is_none() || self.options.https {
            return;
        }
        const SERIES: &str = "ociregistry_fetches_in_flight{kind=\"blob\"}";
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            let busy = match super::http::request(self.port, "GET", "/metrics", &[]) {
                Ok(r) if r.status == 200 => r.text().lines().any(|l| {
                    l.strip_prefix(SERIES)
                        .is_some_and(|v| v.trim().parse::<f64>().map_or(true, |n| n > 0.0))
                }),
                // Not answering (stopping, crashed): nothing to wait for.
                _ => false,
            };
            if !busy {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, as a service manager stops it; the exit status if it stopped within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.process.take().and_then(|mut p| p.terminate(grace))
    }

    /// Kills the server if it runs and starts it again on the same cache and port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Restarts with other options (same cache and port).
    pub fn restart_with(&mut self, options: ServerOptions) {
        self.kill();
        self.options = options;
        self.launch();
    }

    fn launch(&mut self) {
        let registry_yaml: String = self
            .options
            .registry_yaml
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect();
        let more_registries: String = self
            .options
            .more_registries_yaml
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect();
        let scheme = if self.options.upstream_endpoint.starts_with("https:") {
            "https"
        } else {
            "http"
        };
        std::fs::write(
            &self.config,
            format!(
                "registries:\n  - name: {UPSTREAM_NAME}\n    scheme: {scheme}\n    endpoint: {}\n\
                 {registry_yaml}{more_registries}{}\n",
                self.options.upstream_endpoint, self.options.extra_yaml
            ),
        )
        .expect("write server config");
        let mut cmd = Command::new(BINARY);
        cmd.arg("--image-path")
            .arg(&self.cache)
            .arg("--config-file")
            .arg(&self.config)
            .args(["--log-level", "info", "serve", "--host", "127.0.0.1"])
            .args(["--port", &self.port.to_string()]);
        if self.options.air_gapped {
            cmd.arg("--air-gapped");
        }
        if let Some(ns) = &self.options.default_ns {
            cmd.args(["--default-ns", ns]);
        }
        cmd.args(&self.options.extra_args);
        let mut process =
            ChildGuard::spawn("ociregistry server", &mut cmd, &self.log).without_log_dump();
        let port = self.port;
        let log = self.log.clone();
        let https = self.options.https;
        let probe: Vec<(&str, &str)> = self
            .options
            .probe_authorization
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        wait_for(
            "the server to answer GET /v2/ with 200",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                if let Some(status) = process.exited() {
                    panic!(
                        "ociregistry exited with {status} during start-up:\n{}",
                        tail_of(&log, 6000)
                    );
                }
                if https {
                    return std::net::TcpStream::connect(("127.0.0.1", port))
                        .is_ok()
                        .then_some(());
                }
                match http::request(port, "GET", "/v2/", &probe) {
                    Ok(r) if r.status == 200 => Some(()),
                    _ => None,
                }
            },
        );
        self.process = Some(process);
    }

    /// Request target for a manifest of `upstream.test/REPO` in the in-path form.
    pub fn manifest_path(&self, repo: &str, reference: &str) -> String {
        format!("/v2/{UPSTREAM_NAME}/{repo}/manifests/{reference}")
    }

    /// Request target for a blob of `upstream.test/REPO` in the in-path form.
    pub fn blob_path(&self, repo: &str, digest: &str) -> String {
        format!("/v2/{UPSTREAM_NAME}/{repo}/blobs/{digest}")
    }

    /// Names in the cache's content directories (`blobs`, `fat`, `img`) that are not digests,
    /// e.g. temporary files of interrupted downloads.
    pub fn stray_cache_files(&self) -> Vec<PathBuf> {
        self.settle();
        let mut stray = Vec::new();
        for sub in ["blobs", "fat", "img"] {
            let Ok(entries) = std::fs::read_dir(self.cache.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !super::is_sha256_hex(&name) {
                    stray.push(entry.path());
                }
            }
        }
        stray
    }

    /// Files under `blobs/` whose sha256 does not equal their name: `(path, actual hex)`.
    pub fn corrupt_blobs(&self) -> Vec<(PathBuf, String)> {
        self.settle();
        let mut bad = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.cache.join("blobs")) else {
            return bad;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !super::is_sha256_hex(&name) {
                continue;
            }
            let actual = super::sha256_file(&path);
            if actual != name {
                bad.push((path, actual));
            }
        }
        bad
    }

    /// Digest hex names present in `blobs/`.
    pub fn cached_blobs(&self) -> Vec<String> {
        self.settle();
        let mut names: Vec<String> = std::fs::read_dir(self.cache.join("blobs"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| super::is_sha256_hex(n))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.crash();
        if std::thread::panicking() {
            eprintln!(
                "----- ociregistry server log ({}), last 6 KiB -----\n{}\n----- end of server log -----",
                self.log.display(),
                self.log_tail()
            );
        }
    }
}
