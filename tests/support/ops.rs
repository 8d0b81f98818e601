//! The operations side of the binary: one-shot subcommands (`load`, `list`, `prune`), a
//! client bound to another loopback address, and caches written by hand in the Go server's
//! 1.8 layout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use tempfile::TempDir;

use super::proc::{run, Output};
use super::{require_tool, UPSTREAM_NAME};

const BINARY: &str = env!("CARGO_BIN_EXE_ociregistry");

/// A cache directory and a config file mapping `upstream.test` to a test upstream, for running
/// subcommands against it.
pub struct Workspace {
    dir: TempDir,
    pub cache: PathBuf,
    pub config: PathBuf,
}

impl Workspace {
    pub fn new(upstream_endpoint: &str) -> Workspace {
        Workspace::with_config(upstream_endpoint, "")
    }

    /// `extra` is YAML appended to the config file.
    pub fn with_config(upstream_endpoint: &str, extra: &str) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("e2e-ops-")
            .tempdir()
            .expect("workspace temp dir");
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache).expect("cache dir");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "registries:\n  - name: {UPSTREAM_NAME}\n    scheme: http\n    endpoint: \
                 {upstream_endpoint}\n{extra}"
            ),
        )
        .expect("write config");
        Workspace { dir, cache, config }
    }

    /// A file in the workspace (e.g. an image list).
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write workspace file");
        path
    }

    /// `ociregistry --image-path CACHE --config-file CONFIG ARGS...`, bounded in time.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BINARY);
        cmd.arg("--image-path")
            .arg(&self.cache)
            .arg("--config-file")
            .arg(&self.config)
            .args(args);
        run(&mut cmd, Duration::from_secs(180))
    }

    /// [`Workspace::run`] on a terminal: under `script`, which gives the command a pseudo
    /// terminal and copies what it draws to standard output.
    pub fn run_in_terminal(&self, args: &[&str]) -> Output {
        require_tool("script");
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut line = vec![
            quote(BINARY),
            "--image-path".into(),
            quote(&self.cache.display().to_string()),
            "--config-file".into(),
            quote(&self.config.display().to_string()),
        ];
        line.extend(args.iter().map(|a| quote(a)));
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line.join(" "), "/dev/null"]);
        run(&mut cmd, Duration::from_secs(180))
    }

    /// Every file name under `sub` (`blobs`, `fat`, `img`), sorted.
    pub fn files(&self, sub: &str) -> Vec<String> {
        files_in(&self.cache.join(sub))
    }
}

/// Sorted file names in `dir` (empty when it does not exist).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The exit code of a finished command.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A request with curl from the source address `from` (e.g. `127.0.0.2`) to
/// `http://127.0.0.1:PORT/TARGET`: `(status, body)`.
pub fn curl_from(
    from: &str,
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    require_tool("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-m", "30", "--interface", from, "-X", method])
        .args(["-w", "\n%{http_code}"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(format!("http://127.0.0.1:{port}{target}"));
    let out = run(&mut cmd, Duration::from_secs(40)).expect_success();
    let (body, status) = out
        .stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl printed no status: {}", out.stdout));
    (
        status.trim().parse().expect("status code"),
        body.to_string(),
    )
}

/// Rewrites the `created` and `pulled` times of the manifest file `<cache>/<sub>/<hex>`.
pub fn set_times(path: &Path, created: &str, pulled: &str) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read manifest {}: {e}", path.display()));
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("manifest JSON");
    v["created"] = created.into();
    v["pulled"] = pulled.into();
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).expect("rewrite manifest");
}

/// Where a manifest with digest `sha256:<hex>` is in the cache (any layout), if anywhere.
pub fn manifest_file(cache: &Path, digest: &str) -> Option<PathBuf> {
    let hex = super::hex_of(digest);
    ["fat", "img", "lts"]
        .iter()
        .map(|d| cache.join(d).join(hex))
        .find(|p| p.is_file())
}

/// Writes one manifest in the Go 1.8 ManifestHolder format: lists in `fat/`, image manifests
/// in `img/`, every typed field present (the unused ones as empty objects, as Go writes zero
/// values), times as `YYYY-MM-DDTHH:MM:SS`.
pub fn write_go18_manifest(
    cache: &Path,
    image_url: &str,
    media_type: &str,
    bytes: &[u8],
    created: &str,
    pulled: &str,
) -> PathBuf {
    let hex = super::sha256_hex(bytes);
    let (kind, dir, field) = match media_type {
        "application/vnd.docker.distribution.manifest.list.v2+json" => {
            (0, "fat", "v2.docker.manifestList")
        }
        "application/vnd.docker.distribution.manifest.v2+json" => (1, "img", "v2.docker.manifest"),
        "application/vnd.oci.image.index.v1+json" => (2, "fat", "v1.oci.index"),
        "application/vnd.oci.image.manifest.v1+json" => (3, "img", "v1.oci.manifest"),
        other => panic!("not a manifest media type: {other}"),
    };
    let mut holder = serde_json::json!({
        "type": kind,
        "digest": hex,
        "imageUrl": image_url,
        "bytes": base64::engine::general_purpose::STANDARD.encode(bytes),
        "v1.oci.index": {},
        "v1.oci.manifest": {},
        "v2.docker.manifestList": {},
        "v2.docker.manifest": {},
        "created": created,
        "pulled": pulled,
    });
    holder[field] = serde_json::from_slice(bytes).expect("manifest JSON");
    let dir = cache.join(dir);
    std::fs::create_dir_all(&dir).expect("manifest dir");
    let path = dir.join(&hex);
    std::fs::write(&path, serde_json::to_vec(&holder).unwrap()).expect("write manifest");
    path
}
