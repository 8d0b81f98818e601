//! Real pull clients: skopeo, containerd (`ctr`), podman and the Docker Engine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::image::ImageTree;
use super::proc::{run, ChildGuard, Output};
use super::{sha256_file, wait_for, RUN_ALL};

const PULL_TIMEOUT: Duration = Duration::from_secs(180);

/// Panics with an installation hint unless `tool` (a name on PATH or an absolute path) exists.
pub fn require_tool(tool: &str) {
    let found = if tool.starts_with('/') {
        Path::new(tool).is_file()
    } else {
        std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
            .unwrap_or(false)
    };
    assert!(
        found,
        "`{tool}` is required by the end-to-end tests but was not found. \
         Run `{RUN_ALL}` (as root), which installs the test dependencies and runs the tests."
    );
}

fn require_root(what: &str) {
    let uid = run(Command::new("id").arg("-u"), Duration::from_secs(10))
        .expect_success()
        .stdout;
    assert_eq!(
        uid.trim(),
        "0",
        "{what} needs root; run `{RUN_ALL}` as root."
    );
}

// ---------------------------------------------------------------------------------------------
// skopeo

/// A `skopeo copy --all ... dir:OUT` copy, which keeps every manifest and blob byte for byte.
pub struct SkopeoDir {
    dir: TempDir,
}

impl SkopeoDir {
    pub fn new() -> SkopeoDir {
        require_tool("skopeo");
        SkopeoDir {
            dir: tempfile::Builder::new()
                .prefix("e2e-skopeo-")
                .tempdir()
                .expect("skopeo temp dir"),
        }
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("image")
    }

    /// `skopeo copy --all --src-tls-verify=false docker://REFERENCE dir:OUT`.
    pub fn copy_all(&self, reference: &str) -> Output {
        self.copy_all_with(reference, &[])
    }

    /// [`Self::copy_all`] with more `copy` options, e.g. `--src-creds USER:PASSWORD`.
    pub fn copy_all_with(&self, reference: &str, options: &[&str]) -> Output {
        let _ = std::fs::remove_dir_all(self.out());
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--all",
            "--src-tls-verify=false",
        ])
        .args(options)
        .arg(format!("docker://{reference}"))
        .arg(format!("dir:{}", self.out().display()));
        run(&mut cmd, PULL_TIMEOUT)
    }

    /// Asserts that the copy holds exactly the upstream's manifests and blobs, each file's
    /// sha256 equal to its digest.
    pub fn assert_matches(&self, tree: &ImageTree) {
        let out = self.out();
        let top = sha256_file(&out.join("manifest.json"));
        assert_eq!(
            format!("sha256:{top}"),
            tree.top,
            "top manifest copied through the server differs from the upstream's"
        );
        let mut manifests = BTreeSet::from([tree.top.clone()]);
        let mut blobs = BTreeSet::new();
        for entry in std::fs::read_dir(&out).expect("read copy dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_suffix(".manifest.json") {
                assert_eq!(
                    sha256_file(&entry.path()),
                    hex,
                    "manifest {name} does not hash to its name"
                );
                manifests.insert(format!("sha256:{hex}"));
            } else if super::is_sha256_hex(&name) {
                assert_eq!(
                    sha256_file(&entry.path()),
                    name,
                    "blob {name} does not hash to its name"
                );
                blobs.insert(format!("sha256:{name}"));
            }
        }
        assert_eq!(
            manifests,
            tree.manifest_digests(),
            "manifest digests differ from the upstream's"
        );
        assert_eq!(
            blobs,
            tree.blob_digests(),
            "blob digests differ from the upstream's"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// containerd

/// A private containerd daemon (own root, state and sockets; CRI disabled) and a hosts
/// directory whose `_default` mirror is our server.
pub struct Containerd {
    // Dropped first (fields drop in declaration order): the process goes before its files.
    process: Option<ChildGuard>,
    dir: TempDir,
    socket: PathBuf,
    hosts: PathBuf,
}

impl Containerd {
    pub const NAMESPACE: &'static str = "e2e";

    pub fn start() -> Containerd {
        require_tool("containerd");
        require_tool("ctr");
        require_root("containerd");
        // Short prefix: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("e2e-ctd-")
            .tempdir()
            .expect("containerd temp dir");
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let hosts = d.join("certs.d");
        std::fs::create_dir_all(hosts.join("_default")).expect("hosts dir");
        let config = d.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\n\
                 root = \"{root}\"\n\
                 state = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\", \
                 \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
                 \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\"]\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"{debug}\"\n  level = \"info\"\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = socket.display(),
                debug = d.join("debug.sock").display(),
                opt = d.join("opt").display(),
            ),
        )
        .expect("write containerd config");
        let log = d.join("containerd.log");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&config);
        let mut process = ChildGuard::spawn("containerd", &mut cmd, &log);
        let mut containerd = Containerd {
            dir,
            socket,
            hosts,
            process: None,
        };
        wait_for(
            "containerd to answer on its socket",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                if let Some(status) = process.exited() {
                    panic!(
                        "containerd exited with {status}:\n{}",
                        super::tail_of(&log, 4096)
                    );
                }
                let out = run(
                    containerd.ctr_command().arg("version"),
                    Duration::from_secs(10),
                );
                out.success().then_some(())
            },
        );
        containerd.process = Some(process);
        containerd
    }

    fn ctr_command(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["-n", Self::NAMESPACE]);
        cmd
    }

    /// Makes `http://MIRROR` (e.g. our server's `127.0.0.1:PORT`) the mirror of every registry.
    pub fn set_default_mirror(&self, mirror: &str) {
        std::fs::write(
            self.hosts.join("_default").join("hosts.toml"),
            format!("[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
        )
        .expect("write hosts.toml");
    }

    /// Writes `certs.d/<registry>/hosts.toml` (`_default` for every registry).
    pub fn set_hosts_toml(&self, registry: &str, toml: &str) {
        let dir = self.hosts.join(registry);
        std::fs::create_dir_all(&dir).expect("create hosts dir");
        std::fs::write(dir.join("hosts.toml"), toml).expect("write hosts.toml");
    }

    /// `ctr images pull` (with unpack, native snapshotter) through the mirror.
    pub fn pull(&self, reference: &str, platform: Option<&str>) -> Output {
        self.pull_with(reference, platform, None)
    }

    /// [`Self::pull`] with `--user USER:PASSWORD`, sent where a registry asks for credentials.
    pub fn pull_as(&self, reference: &str, user: &str) -> Output {
        self.pull_with(reference, None, Some(user))
    }

    fn pull_with(&self, reference: &str, platform: Option<&str>, user: Option<&str>) -> Output {
        let mut cmd = self.ctr_command();
        cmd.args(["images", "pull", "--snapshotter", "native", "--hosts-dir"])
            .arg(&self.hosts);
        if let Some(p) = platform {
            cmd.args(["--platform", p]);
        }
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        cmd.arg(reference);
        run(&mut cmd, PULL_TIMEOUT)
    }

    /// `ctr run --rm` of a pulled image (native snapshotter), as container `name`: what the
    /// container printed, and its exit status as `ctr`'s own.
    pub fn run_container(&self, reference: &str, name: &str) -> Output {
        let mut cmd = self.ctr_command();
        cmd.args(["run", "--rm", "--snapshotter", "native", reference, name]);
        run(&mut cmd, PULL_TIMEOUT)
    }

    /// The target digest recorded for `reference` by `ctr images ls`.
    pub fn image_digest(&self, reference: &str) -> String {
        let out = run(
            self.ctr_command().args(["images", "ls"]),
            Duration::from_secs(30),
        )
        .expect_success();
        out.stdout
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&reference))
            .and_then(|cols| cols.get(2).map(|d| d.to_string()))
            .unwrap_or_else(|| panic!("{reference} not in `ctr images ls`:\n{}", out.stdout))
    }

    /// Every digest in containerd's content store.
    pub fn content_digests(&self) -> BTreeSet<String> {
        let out = run(
            self.ctr_command().args(["content", "ls", "-q"]),
            Duration::from_secs(30),
        )
        .expect_success();
        out.stdout
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("sha256:"))
            .map(str::to_string)
            .collect()
    }

    /// Number of unpacked snapshots (native snapshotter).
    pub fn snapshot_count(&self) -> usize {
        let out = run(
            self.ctr_command()
                .args(["snapshots", "--snapshotter", "native", "ls"]),
            Duration::from_secs(30),
        )
        .expect_success();
        out.stdout
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .count()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // On a failing test the guard kills it and prints its log.
        if !std::thread::panicking() {
            if let Some(mut p) = self.process.take() {
                let _ = p.terminate(Duration::from_secs(5));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// podman

/// podman with private storage (vfs) and its own credentials file under a temporary directory.
pub struct Podman {
    dir: TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        require_tool("podman");
        require_root("podman");
        let dir = tempfile::Builder::new()
            .prefix("e2e-podman-")
            .tempdir()
            .expect("podman temp dir");
        std::fs::write(
            dir.path().join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("write registries.conf");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("podman tmp dir");
        // No credentials until `login` adds them (podman refuses a named file that is missing).
        std::fs::write(dir.path().join("auth.json"), "{}\n").expect("write auth.json");
        Podman { dir }
    }

    fn command(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("REGISTRY_AUTH_FILE", d.join("auth.json"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        cmd
    }

    /// `podman pull --tls-verify=false REFERENCE`.
    pub fn pull(&self, reference: &str) -> Output {
        let mut cmd = self.command();
        cmd.args(["pull", "--tls-verify=false", reference]);
        run(&mut cmd, PULL_TIMEOUT)
    }

    /// `podman login --tls-verify=false REGISTRY`; the credentials land in this podman's own
    /// file, never the machine's.
    pub fn login(&self, registry: &str, user: &str, password: &str) -> Output {
        let mut cmd = self.command();
        cmd.args([
            "login",
            "--tls-verify=false",
            "--username",
            user,
            "--password",
            password,
            registry,
        ]);
        run(&mut cmd, Duration::from_secs(60))
    }

    /// `podman image inspect REFERENCE`, first element.
    pub fn inspect(&self, reference: &str) -> serde_json::Value {
        let mut cmd = self.command();
        cmd.args(["image", "inspect", reference]);
        let out = run(&mut cmd, Duration::from_secs(60)).expect_success();
        let value: serde_json::Value =
            serde_json::from_str(&out.stdout).expect("podman inspect JSON");
        value[0].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Docker Engine

/// An image pulled by the machine's Docker Engine; removed again on drop.
pub struct DockerImage {
    pub reference: String,
}

impl DockerImage {
    /// `docker pull REFERENCE`. The daemon treats 127.0.0.0/8 registries as plain HTTP.
    pub fn pull(reference: &str) -> (DockerImage, Output) {
        require_tool("docker");
        let info = run(
            Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]),
            Duration::from_secs(30),
        );
        assert!(
            info.success(),
            "the Docker Engine is not reachable; start it (or run `{RUN_ALL}`): {info}"
        );
        let out = run(
            Command::new("docker").args(["pull", reference]),
            PULL_TIMEOUT,
        );
        (
            DockerImage {
                reference: reference.to_string(),
            },
            out,
        )
    }

    /// `docker run --rm REFERENCE` of the pulled image: what the container printed, and its
    /// exit status as `docker`'s own.
    pub fn run(&self) -> Output {
        run(
            Command::new("docker").args(["run", "--rm", "--pull", "never", &self.reference]),
            PULL_TIMEOUT,
        )
    }

    /// `docker image inspect REFERENCE`, first element.
    pub fn inspect(&self) -> serde_json::Value {
        let out = run(
            Command::new("docker").args(["image", "inspect", &self.reference]),
            Duration::from_secs(30),
        )
        .expect_success();
        let value: serde_json::Value =
            serde_json::from_str(&out.stdout).expect("docker inspect JSON");
        value[0].clone()
    }
}

impl Drop for DockerImage {
    fn drop(&mut self) {
        let _ = run(
            Command::new("docker").args(["image", "rm", "-f", &self.reference]),
            Duration::from_secs(60),
        );
    }
}
