//! Container images with the machine's Docker Engine: the Debian base the `Containerfile` starts
//! from (made locally when missing, since no registry can be pulled from), our image built from
//! the binary under test, and a container running it. Every image and container gets a name
//! unique to this process and is removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::proc::{run, Output};
use super::{http, require_tool, wait_for, RUN_ALL};

/// Where `debootstrap` fetches the base system; `OCIREGISTRY_TEST_DEBIAN_MIRROR` overrides it.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const DEBIAN_SUITE: &str = "bookworm";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A name unique to this test process: `PREFIX-PID-N`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `docker ARGS`, bounded by `timeout`.
pub fn docker(args: &[&str], timeout: Duration) -> Output {
    run(Command::new("docker").args(args), timeout)
}

/// Panics with a hint unless the Docker Engine answers.
pub fn require_docker() {
    require_tool("docker");
    let info = docker(
        &["info", "--format", "{{.ServerVersion}}"],
        Duration::from_secs(30),
    );
    assert!(
        info.success(),
        "the Docker Engine is not reachable; start it (or run `{RUN_ALL}`): {info}"
    );
}

/// The image the `Containerfile`'s (only) `FROM` line names.
pub fn containerfile_base() -> String {
    let text =
        std::fs::read_to_string(repo_root().join("Containerfile")).expect("read Containerfile");
    let froms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FROM "))
        .collect();
    assert_eq!(froms.len(), 1, "the Containerfile has one stage: {froms:?}");
    froms[0]
        .split_whitespace()
        .next()
        .expect("FROM names an image")
        .to_string()
}

/// Makes sure the Docker Engine holds `name`: when it does not, builds a minimal Debian root
/// file system with `debootstrap --variant=minbase` and imports it under that name. The
/// engine's image store is shared by every test process, so an image present is never replaced.
pub fn ensure_base_image(name: &str) {
    if docker(&["image", "inspect", name], Duration::from_secs(30)).success() {
        return;
    }
    require_tool("debootstrap");
    let uid = run(Command::new("id").arg("-u"), Duration::from_secs(10)).stdout;
    assert_eq!(
        uid.trim(),
        "0",
        "creating the base image {name} with debootstrap needs root; run `{RUN_ALL}` as root"
    );
    let mirror = std::env::var("OCIREGISTRY_TEST_DEBIAN_MIRROR")
        .unwrap_or_else(|_| DEFAULT_MIRROR.to_string());
    let dir = tempfile::Builder::new()
        .prefix("e2e-rootfs-")
        .tempdir()
        .expect("rootfs temp dir");
    let rootfs = dir.path().join("rootfs");
    let out = run(
        Command::new("debootstrap")
            .args(["--variant=minbase", DEBIAN_SUITE])
            .arg(&rootfs)
            .arg(&mirror),
        Duration::from_secs(900),
    );
    assert!(
        out.success(),
        "debootstrap of Debian {DEBIAN_SUITE} from {mirror} failed \
         (set OCIREGISTRY_TEST_DEBIAN_MIRROR to a reachable mirror): {out}"
    );
    // The downloaded packages are already installed; the image does not need them twice.
    if let Ok(entries) = std::fs::read_dir(rootfs.join("var/cache/apt/archives")) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "deb") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let out = run(
        Command::new("bash")
            .args([
                "-o",
                "pipefail",
                "-c",
                "tar -C \"$1\" -c . | docker import \
                 --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                 --change 'CMD [\"bash\"]' - \"$2\"",
                "import",
            ])
            .arg(&rootfs)
            .arg(name),
        Duration::from_secs(300),
    );
    assert!(out.success(), "docker import of the base image: {out}");
}

/// An image built by `docker build`; removed on drop.
pub struct BuiltImage {
    pub tag: String,
    /// What `docker build` printed.
    pub output: Output,
}

impl BuiltImage {
    /// Runs `build_args` (a `docker build` command line without the leading `docker`, its
    /// context the last argument) in the checkout, after staging `binary` where the ignore file
    /// lets it into the context: `target/image-context/<unique>/ociregistry`, a hard link (or a
    /// copy) removed after the build. The build argument `BINARY` names it.
    pub fn build(build_args: &[String], tag: &str, binary: &Path) -> BuiltImage {
        let root = repo_root();
        let staging_root = root.join("target/image-context");
        std::fs::create_dir_all(&staging_root).expect("create target/image-context");
        let staging = tempfile::Builder::new()
            .prefix("e2e-")
            .tempdir_in(&staging_root)
            .expect("staging dir");
        let staged = staging.path().join("ociregistry");
        if std::fs::hard_link(binary, &staged).is_err() {
            std::fs::copy(binary, &staged).expect("copy the binary into the build context");
        }
        let relative = staged.strip_prefix(&root).expect("staged in the checkout");
        let (last, rest) = build_args.split_last().expect("a build command line");
        assert_eq!(
            last, ".",
            "the build context is the checkout: {build_args:?}"
        );
        let mut cmd = Command::new("docker");
        cmd.current_dir(&root)
            .args(rest)
            .arg("--build-arg")
            .arg(format!("BINARY={}", relative.display()))
            .arg(".");
        let output = run(&mut cmd, Duration::from_secs(600));
        drop(staging);
        let image = BuiltImage {
            tag: tag.to_string(),
            output,
        };
        assert!(image.output.success(), "docker build: {}", image.output);
        image
    }

    /// `docker image inspect`, first element.
    pub fn inspect(&self) -> serde_json::Value {
        let out =
            docker(&["image", "inspect", &self.tag], Duration::from_secs(30)).expect_success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
        v[0].clone()
    }
}

impl Drop for BuiltImage {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", "-f", &self.tag], Duration::from_secs(60));
    }
}

/// A detached container on the host's network (so it reaches the test upstream on 127.0.0.1);
/// removed with its anonymous volumes on drop. Its log is printed when a test fails.
pub struct Container {
    pub name: String,
}

impl Container {
    /// `docker run -d --network host DOCKER_ARGS IMAGE ARGS`.
    pub fn run(image: &str, docker_args: &[String], args: &[String]) -> Container {
        let name = unique_name("e2e-ociregistry");
        let mut cmd = Command::new("docker");
        cmd.args(["run", "-d", "--name", &name, "--network", "host"])
            .args(docker_args)
            .arg(image)
            .args(args);
        let out = run(&mut cmd, Duration::from_secs(120));
        let container = Container { name };
        assert!(out.success(), "docker run: {out}");
        container
    }

    pub fn logs(&self) -> String {
        let out = docker(&["logs", &self.name], Duration::from_secs(30));
        format!("{}{}", out.stdout, out.stderr)
    }

    /// `docker inspect`, first element.
    pub fn inspect(&self) -> serde_json::Value {
        let out = docker(&["inspect", &self.name], Duration::from_secs(30)).expect_success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
        v[0].clone()
    }

    /// `docker exec NAME ARGS`.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        docker(&all, Duration::from_secs(60))
    }

    /// Waits until `GET /v2/` on `port` answers 200, panicking with the container's log if it
    /// stops first.
    pub fn wait_ready(&self, port: u16) {
        wait_for(
            "the container's server to answer GET /v2/",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                if self.inspect()["State"]["Running"] != serde_json::Value::Bool(true) {
                    panic!("the container stopped during start-up:\n{}", self.logs());
                }
                match http::request(port, "GET", "/v2/", &[]) {
                    Ok(r) if r.status == 200 => Some(()),
                    _ => None,
                }
            },
        );
    }

    /// `docker stop -t GRACE`: SIGTERM, then SIGKILL after `grace` seconds. The exit code.
    pub fn stop(&self, grace_secs: u32) -> i64 {
        docker(
            &["stop", "-t", &grace_secs.to_string(), &self.name],
            Duration::from_secs(u64::from(grace_secs) + 60),
        )
        .expect_success();
        self.inspect()["State"]["ExitCode"]
            .as_i64()
            .expect("exit code")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs().into_bytes();
            let start = logs.len().saturating_sub(8192);
            eprintln!(
                "----- container {} log, last 8 KiB -----\n{}\n----- end of container log -----",
                self.name,
                String::from_utf8_lossy(&logs[start..])
            );
        }
        let _ = docker(&["rm", "-f", "-v", &self.name], Duration::from_secs(60));
    }
}
