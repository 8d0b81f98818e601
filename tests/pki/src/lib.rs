//! The one test PKI: the certificates of every TLS test in the workspace (the configuration's
//! unit tests in `src/config/tests/`, the upstream client's in `actors/src/upstream/tls.rs` and
//! the end-to-end tests through `tests/support/secure.rs`), made with the `openssl` command
//! line tool in a temporary directory that goes with the value.
//!
//! A dev-dependency only: nothing here reaches the server's build.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long one `openssl` run may take (RSA key generation is the slow part).
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(60);

/// A CA and the certificates it signed, as files in a temporary directory:
///
/// - `ca.crt`, `ca.key`: the CA;
/// - `server.crt`, `server.key`: for server authentication, SAN `IP:127.0.0.1` and
///   `DNS:localhost`;
/// - `client.crt`, `client.key`: for client authentication, SAN `DNS:ociregistry-client`;
/// - `other-ca.crt`, `other-ca.key`: a second CA that signed nothing here, for negative tests;
/// - `certs.d/`: `ca.crt`, `client.cert`, `client.key`, the layout of skopeo's
///   `--*-cert-dir` and of containers' `certs.d`;
/// - `junk.pem`: a file that is not PEM (so are `server.ext` and `client.ext`, the openssl
///   extension files the leaves were signed with).
///
/// Keys are unencrypted RSA 2048; certificates are valid for two days.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("test-pki-")
            .tempdir()
            .expect("pki temp dir");
        let pki = Pki { dir };
        pki.make_ca("ca");
        pki.make_ca("other-ca");
        pki.make_leaf(
            "server",
            "serverAuth",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        );
        pki.make_leaf(
            "client",
            "clientAuth",
            "subjectAltName=DNS:ociregistry-client",
        );
        let certs = pki.path("certs.d");
        std::fs::create_dir_all(&certs).expect("cert dir");
        for (from, to) in [
            ("ca.crt", "ca.crt"),
            ("client.crt", "client.cert"),
            ("client.key", "client.key"),
        ] {
            std::fs::copy(pki.path(from), certs.join(to)).expect("copy into cert dir");
        }
        std::fs::write(pki.path("junk.pem"), "not a pem file\n").expect("write junk.pem");
        pki
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The path of one of the files (which need not exist: `missing.crt` is a path with no file).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// [`Pki::path`] as a string, for configuration files.
    pub fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn make_ca(&self, name: &str) {
        req_x509(
            self.dir(),
            name,
            &format!("/CN=ociregistry test {name}"),
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    fn make_leaf(&self, name: &str, usage: &str, san: &str) {
        openssl(
            self.dir(),
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(
            self.path(&format!("{name}.ext")),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage={usage}\n{san}\n"
            ),
        )
        .expect("write extensions");
        openssl(
            self.dir(),
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

/// A self-signed certificate `NAME.crt` and its key `NAME.key` in `dir`, with the subject
/// `subject` (`/CN=...`) and openssl's default extensions: a signing key with its certificate,
/// such as a token service's.
pub fn self_signed(dir: &Path, name: &str, subject: &str) {
    req_x509(dir, name, subject, &[]);
}

fn req_x509(dir: &Path, name: &str, subject: &str, extra: &[&str]) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", &key, "-out",
        &crt, "-subj", subject,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}

/// Runs `openssl ARGS` in `dir`, for at most [`OPENSSL_TIMEOUT`]; panics, with its output,
/// when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let log_path = dir.join("openssl.log");
    let log = File::create(&log_path).expect("create openssl.log");
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("openssl.log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "the TLS tests need the openssl command line tool ({e}); \
                 tests/run-all.sh installs it"
            )
        });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for openssl") {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            assert!(status.success(), "openssl {args:?}: {status}\n{output}");
            return;
        }
        if start.elapsed() > OPENSSL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openssl {args:?} took more than {OPENSSL_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
