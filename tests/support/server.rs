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
    /// More top-level YAML for the config file, e.g. `"upstreamIdleTimeout: 2000\n"`.
    pub extra_config: String,
    /// Cache root instead of a fresh directory (e.g. on a small filesystem); must exist.
    pub cache_dir: Option<PathBuf>,
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
            port: free_port(),
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

    /// SIGKILL: no chance to clean up, as in a crash or an OOM kill.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
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
        std::fs::write(
            &self.config,
            format!(
                "registries:\n  - name: {UPSTREAM_NAME}\n    scheme: http\n    endpoint: {}\n{}",
                self.options.upstream_endpoint, self.options.extra_config
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
        let mut process =
            ChildGuard::spawn("ociregistry server", &mut cmd, &self.log).without_log_dump();
        let port = self.port;
        let log = self.log.clone();
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
                match http::request(port, "GET", "/v2/", &[]) {
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
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- ociregistry server log ({}), last 6 KiB -----\n{}\n----- end of server log -----",
                self.log.display(),
                self.log_tail()
            );
        }
    }
}
