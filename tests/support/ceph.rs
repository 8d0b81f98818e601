//! A real S3-compatible object store on loopback: Debian's Ceph (one monitor, one OSD on
//! `memstore`, one radosgw), started once per test binary in a temporary directory.
//!
//! Ceph takes about 15 s to come up, so every test of a binary shares one cluster and gives
//! itself a bucket of its own ([`Ceph::bucket`]). The daemons run in the foreground as children
//! of the test process; a static is never dropped, so a watchdog shell stops them (and removes
//! the directory) once the test process is gone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::proc::{run, run_ok, ChildGuard};
use super::{free_port, require_tool, tail_of, wait_for};

/// The S3 user every test talks as.
pub const ACCESS_KEY: &str = "fleetkey";
pub const SECRET_KEY: &str = "fleetsecret";
pub const REGION: &str = "us-east-1";

/// The running cluster: its radosgw's port and where its files and logs are.
pub struct Ceph {
    pub port: u16,
    dir: PathBuf,
    /// Held so the handles stay owned; the watchdog does the stopping.
    _daemons: Vec<ChildGuard>,
    /// Outlives this process by design; reaped by init.
    _watchdog: std::process::Child,
}

const TOOLS: [&str; 6] = [
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
    "ceph-authtool",
    "monmaptool",
];

impl Ceph {
    /// The cluster of this test binary, started on first use.
    pub fn shared() -> &'static Ceph {
        static CEPH: OnceLock<Ceph> = OnceLock::new();
        CEPH.get_or_init(Ceph::start)
    }

    /// `http://127.0.0.1:PORT`, radosgw's S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new, empty bucket with a name no other test of this binary uses.
    pub fn bucket(&self, what: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let out = self.s3(&["-X", "PUT"], &format!("/{name}"));
        assert!(
            out.starts_with("200"),
            "creating bucket {name}: {out}\n{}",
            self.rgw_log_tail()
        );
        name
    }

    /// Keys in `bucket` under `prefix`, from a ListObjectsV2 (at most 1000, enough for tests).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        // Query values URI-encoded as SigV4's canonical form has them, parameters in order.
        let encoded = prefix.replace('/', "%2F");
        let out = self.s3(&[], &format!("/{bucket}?list-type=2&prefix={encoded}"));
        assert!(out.starts_with("200"), "listing {bucket}/{prefix}: {out}");
        out.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// One object's bytes (`None`: no such object).
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().expect("temp dir for an object");
        let file = dir.path().join("object");
        let out = self.s3(
            &["-o", file.to_str().expect("utf-8 path")],
            &format!("/{bucket}/{key}"),
        );
        out.starts_with("200")
            .then(|| std::fs::read(&file).expect("read fetched object"))
    }

    /// Writes an object (for tests that prepare a bucket by hand).
    pub fn put(&self, bucket: &str, key: &str, body: &Path) {
        let sha = super::sha256_file(body);
        let out = self.s3_with_sha(
            &[
                "-X",
                "PUT",
                "--data-binary",
                &format!("@{}", body.display()),
            ],
            &format!("/{bucket}/{key}"),
            &sha,
        );
        assert!(out.starts_with("200"), "PUT {bucket}/{key}: {out}");
    }

    /// Deletes an object.
    pub fn delete(&self, bucket: &str, key: &str) {
        let out = self.s3(&["-X", "DELETE"], &format!("/{bucket}/{key}"));
        assert!(out.starts_with("204"), "DELETE {bucket}/{key}: {out}");
    }

    /// The end of radosgw's log, for failure messages.
    pub fn rgw_log_tail(&self) -> String {
        tail_of(&self.dir.join("log/rgw.out"), 4096)
    }

    /// A signed request with an empty body; returns `STATUS` then the body (unless `-o`).
    fn s3(&self, args: &[&str], path: &str) -> String {
        const EMPTY_SHA256: &str =
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        self.s3_with_sha(args, path, EMPTY_SHA256)
    }

    fn s3_with_sha(&self, args: &[&str], path: &str, sha: &str) -> String {
        // curl signs with SigV4 itself; radosgw wants the payload hash header as well.
        let out = run(
            Command::new("curl")
                .args(["-s", "-w", "\n%{http_code}"])
                .args(args)
                .args(["-H", &format!("x-amz-content-sha256: {sha}")])
                .args(["--aws-sigv4", &format!("aws:amz:{REGION}:s3")])
                .args(["-u", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
                .arg(format!("{}{path}", self.endpoint())),
            Duration::from_secs(30),
        );
        // The status is the last line; put it first so callers can match on it.
        let text = out.stdout.trim_end();
        match text.rsplit_once('\n') {
            Some((body, status)) => format!("{status}\n{body}"),
            None => text.to_string(),
        }
    }

    fn start() -> Ceph {
        for tool in TOOLS {
            require_tool(tool);
        }
        let dir = tempfile::Builder::new()
            .prefix("e2e-ceph-")
            .tempdir()
            .expect("ceph temp dir")
            .keep();
        for sub in ["run", "log", "mon.a", "osd.0", "rgw"] {
            std::fs::create_dir_all(dir.join(sub)).expect("ceph subdirectory");
        }
        let fsid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .expect("a uuid from the kernel")
            .trim()
            .to_string();
        let (mon_port, rgw_port) = (free_port(), free_port());
        std::fs::write(dir.join("ceph.conf"), conf(&dir, &fsid, mon_port, rgw_port))
            .expect("write ceph.conf");
        let conf_path = dir.join("ceph.conf");
        let conf_arg = conf_path.to_str().expect("utf-8 temp path").to_string();
        let tool = |program: &str, args: &[&str]| {
            run_ok(
                Command::new(program).current_dir(&dir).args(args),
                Duration::from_secs(60),
            )
        };
        tool(
            "ceph-authtool",
            &[
                "--create-keyring",
                "keyring",
                "--gen-key",
                "-n",
                "mon.",
                "--cap",
                "mon",
                "allow *",
            ],
        );
        tool(
            "ceph-authtool",
            &[
                "keyring",
                "--gen-key",
                "-n",
                "client.admin",
                "--cap",
                "mon",
                "allow *",
                "--cap",
                "osd",
                "allow *",
                "--cap",
                "mgr",
                "allow *",
            ],
        );
        tool(
            "ceph-authtool",
            &[
                "keyring",
                "--gen-key",
                "-n",
                "client.rgw.a",
                "--cap",
                "mon",
                "allow rw",
                "--cap",
                "osd",
                "allow rwx",
            ],
        );
        let monaddr = format!("[v2:127.0.0.1:{mon_port}]");
        tool(
            "monmaptool",
            &[
                "--create", "--addv", "a", &monaddr, "--fsid", &fsid, "monmap",
            ],
        );
        tool(
            "ceph-mon",
            &[
                "-c",
                &conf_arg,
                "--mkfs",
                "-i",
                "a",
                "--monmap",
                "monmap",
                "--keyring",
                "keyring",
            ],
        );
        let mut daemons = Vec::new();
        let daemon = |name: &str, program: &str, args: &[&str]| {
            let mut cmd = Command::new(program);
            cmd.current_dir(&dir).args(args).arg("-f");
            ChildGuard::spawn(name, &mut cmd, &dir.join(format!("log/{name}.out")))
        };
        daemons.push(daemon("mon", "ceph-mon", &["-c", &conf_arg, "-i", "a"]));
        let osd_id = tool("ceph", &["-c", &conf_arg, "osd", "create"]);
        assert_eq!(osd_id.trim(), "0", "ceph osd create");
        tool("ceph-osd", &["-c", &conf_arg, "-i", "0", "--mkfs"]);
        daemons.push(daemon("osd", "ceph-osd", &["-c", &conf_arg, "-i", "0"]));
        daemons.push(daemon(
            "rgw",
            "radosgw",
            &[
                "-c",
                &conf_arg,
                "-n",
                "client.rgw.a",
                "--keyring",
                "keyring",
            ],
        ));
        let watchdog = watchdog(&dir, &daemons);
        let ceph = Ceph {
            port: rgw_port,
            dir: dir.clone(),
            _daemons: daemons,
            _watchdog: watchdog,
        };
        wait_for(
            "radosgw to answer",
            Duration::from_secs(90),
            Duration::from_millis(250),
            || {
                run(
                    Command::new("curl").args(["-s", "-o", "/dev/null", &ceph.endpoint()]),
                    Duration::from_secs(10),
                )
                .success()
                .then_some(())
            },
        );
        tool(
            "radosgw-admin",
            &[
                "-c",
                &conf_arg,
                "-n",
                "client.admin",
                "user",
                "create",
                "--uid=fleet",
                "--display-name=fleet",
                &format!("--access-key={ACCESS_KEY}"),
                &format!("--secret={SECRET_KEY}"),
            ],
        );
        ceph
    }
}

/// Stops the daemons and removes `dir` once this test process has exited (it never drops
/// the static that owns them).
fn watchdog(dir: &Path, daemons: &[ChildGuard]) -> std::process::Child {
    let pids: Vec<String> = daemons
        .iter()
        .filter_map(|d| d.pid())
        .map(|p| p.to_string())
        .collect();
    let pids = pids.join(" ");
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
         kill {pids} 2>/dev/null; sleep 3; kill -9 {pids} 2>/dev/null; rm -rf '{dir}'",
        parent = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the ceph watchdog")
}

/// A single-node cluster on loopback, no authentication inside it (radosgw still checks S3
/// signatures), data in RAM. `$name` and `$id` are Ceph's own metavariables.
fn conf(dir: &Path, fsid: &str, mon_port: u16, rgw_port: u16) -> String {
    let d = dir.display();
    format!(
        "[global]
ms mon client mode = crc secure
ms client mode = crc secure
client mount timeout = 15
rados mon op timeout = 15
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon_max_pg_per_osd = 1000
mon data avail warn = 1
osd crush chooseleaf type = 0
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
pid file = {d}/run/$name.pid
keyring = {d}/keyring
mon data = {d}/mon.$id
osd data = {d}/osd.$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd max object size = 134217728
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {d}/rgw
rgw dns name = localhost
"
    )
}
