//! Secured counterparts for the security tests: the test PKI (made with openssl), an upstream
//! registry behind TLS / basic auth / bearer tokens / client certificates, the token service
//! that signs its tokens, and curl as an HTTPS client.
//!
//! A secured upstream serves the storage of a plain [`super::Upstream`], so images are pushed
//! to the plain one with the usual helpers and pulled from the secured one.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::proc::{run, ChildGuard, Output};
use super::upstream::{parse_access_line, start_registry, AccessEntry, Probe, REGISTRY_BIN};
use super::{free_port, require_tool, tail_of, wait_for};

/// The test PKI (`tests/pki/`): a CA, the `server` and `client` certificates it signed, a
/// second CA, skopeo's `certs.d` layout; shared with the unit tests of both crates.
pub use test_pki::Pki;

/// How a [`SecureUpstream`] is protected.
#[derive(Default)]
pub struct SecureOptions<'a> {
    /// Serve HTTPS with the PKI's server certificate.
    pub tls: Option<&'a Pki>,
    /// Require client certificates signed by the PKI's CA (needs `tls`).
    pub client_certs: bool,
    /// htpasswd basic auth with this user and password.
    pub basic_auth: Option<(&'a str, &'a str)>,
    /// Bearer tokens from this service.
    pub token: Option<&'a TokenService>,
}

/// A docker-registry serving another registry's storage behind TLS and/or authentication.
pub struct SecureUpstream {
    process: Option<ChildGuard>,
    pub port: u16,
    pub https: bool,
    dir: TempDir,
    log: PathBuf,
}

impl SecureUpstream {
    pub fn start(storage: &Path, options: SecureOptions<'_>) -> SecureUpstream {
        require_tool(REGISTRY_BIN);
        let dir = tempfile::Builder::new()
            .prefix("e2e-secure-upstream-")
            .tempdir()
            .expect("secure upstream temp dir");
        let port = free_port();
        let mut http = format!("http:\n  addr: 127.0.0.1:{port}\n  secret: e2e-test-secret\n");
        if let Some(pki) = options.tls {
            http.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                pki.file("server.crt"),
                pki.file("server.key")
            ));
            if options.client_certs {
                http.push_str(&format!("    clientcas:\n      - {}\n", pki.file("ca.crt")));
            }
        }
        let mut auth = String::new();
        if let Some((user, password)) = options.basic_auth {
            require_tool("htpasswd");
            let htpasswd = dir.path().join("htpasswd");
            let mut cmd = Command::new("htpasswd");
            cmd.args(["-Bbc"]).arg(&htpasswd).args([user, password]);
            run(&mut cmd, Duration::from_secs(30)).expect_success();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: e2e-realm\n    path: {}\n",
                htpasswd.display()
            );
        }
        if let Some(token) = options.token {
            auth = format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                 rootcertbundle: {}\n",
                token.realm(),
                TokenService::SERVICE,
                TokenService::ISSUER,
                token.cert.display()
            );
        }
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 {http}{auth}",
                storage.display()
            ),
        )
        .expect("write secure upstream config");
        let log = dir.path().join("registry.log");
        let process = start_registry(
            "secured docker-registry",
            &config,
            &log,
            port,
            Probe::Connect,
        );
        SecureUpstream {
            process: Some(process),
            port,
            https: options.tls.is_some(),
            dir,
            log,
        }
    }

    /// `https://127.0.0.1:PORT` (or `http://`).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn access_log(&self) -> Vec<AccessEntry> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(parse_access_line).collect()
    }

    pub fn log_tail(&self) -> String {
        tail_of(&self.log, 4096)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SecureUpstream {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }
}

/// The project's token service (`token_service.py`): RS256 JWTs the registry verifies.
pub struct TokenService {
    process: Option<ChildGuard>,
    pub port: u16,
    cert: PathBuf,
    dir: TempDir,
    log: PathBuf,
}

/// Settings of a [`TokenService`].
pub struct TokenOptions<'a> {
    /// Token lifetime in seconds (also the `expires_in` sent).
    pub ttl_secs: u64,
    pub users: &'a [(&'a str, &'a str)],
    /// Repositories anonymous clients may not pull.
    pub private_repos: &'a [&'a str],
    /// Refuse GET requests with basic credentials: clients must use the password grant.
    pub get_refuses_credentials: bool,
}

impl TokenService {
    pub const SERVICE: &'static str = "e2e-registry";
    pub const ISSUER: &'static str = "e2e-token-issuer";

    pub fn start(options: TokenOptions<'_>) -> TokenService {
        require_tool("python3");
        let dir = tempfile::Builder::new()
            .prefix("e2e-token-")
            .tempdir()
            .expect("token temp dir");
        test_pki::self_signed(dir.path(), "signer", "/CN=e2e token signer");
        let key = dir.path().join("signer.key");
        let cert = dir.path().join("signer.crt");
        let port = free_port();
        let users: Vec<String> = options
            .users
            .iter()
            .map(|(u, p)| format!("{u}:{p}"))
            .collect();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/token_service.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(port.to_string())
            .arg(&key)
            .arg(&cert)
            .arg(Self::ISSUER)
            .arg(options.ttl_secs.to_string())
            .arg(users.join(","))
            .arg(options.private_repos.join(","));
        if options.get_refuses_credentials {
            cmd.arg("--get-refuses-credentials");
        }
        let log = dir.path().join("token.log");
        let mut process = ChildGuard::spawn("token service", &mut cmd, &log);
        wait_for(
            "the token service to listen",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                if let Some(status) = process.exited() {
                    panic!(
                        "token service exited with {status}:\n{}",
                        tail_of(&log, 4096)
                    );
                }
                TcpStream::connect(("127.0.0.1", port))
                    .is_ok()
                    .then_some(())
            },
        );
        TokenService {
            process: Some(process),
            port,
            cert,
            dir,
            log,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// One JSON object per request the service answered.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("outcome").is_some())
            .collect()
    }

    /// Requests with this outcome (`issued`, `refused`) and method.
    pub fn count(&self, outcome: &str, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|v| v["outcome"] == outcome && v["method"] == method)
            .count()
    }
}

impl Drop for TokenService {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }
}

/// `curl` to `url` with extra arguments; `-w` appends the status code after the body.
pub fn curl(url: &str, args: &[&str]) -> Output {
    require_tool("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url);
    run(&mut cmd, Duration::from_secs(90))
}

/// The status code curl printed (0 when the request failed before any response).
pub fn curl_status(out: &Output) -> u16 {
    out.stdout
        .rsplit('\n')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
