//! Shared end-to-end harness: real upstream registry, our real binary, real clients.
//!
//! Every test builds its own world (upstream, server, ports, directories) so tests can run in
//! parallel. Every process is owned by a guard that kills it on drop, so a failing test leaves
//! nothing running. Every wait is bounded in attempts and in time, and every target is 127.0.0.1.

// Each test file uses a different subset of the harness.
#![allow(dead_code, unused_imports)]

pub mod ceph;
pub mod checks;
pub mod clients;
pub mod container;
pub mod fault_proxy;
pub mod fleet;
pub mod helm;
pub mod http;
pub mod image;
pub mod ops;
pub mod proc;
pub mod relay;
pub mod rng;
pub mod secure;
pub mod server;
pub mod upstream;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

pub use clients::{require_tool, Containerd, DockerImage, Podman, SkopeoDir};
pub use fault_proxy::{Fault, FaultProxy};
pub use http::Response;
pub use image::{ImageTree, LocalImage, PlatformImage};
pub use relay::Relay;
pub use rng::Rng;
pub use server::{Server, ServerOptions};
pub use upstream::Upstream;

/// The name under which tests address the upstream registry. Image references cannot carry a
/// `host:port` inside their path, so the server's configuration maps this name to the real
/// address of the test upstream.
pub const UPSTREAM_NAME: &str = "upstream.test";

/// The command that installs the tools these tests drive.
pub const RUN_ALL: &str = "tests/run-all.sh";

/// Hands out a free loopback port. Ports handed out by this process are never handed out again,
/// so parallel tests in one binary cannot collide with each other.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
        let port = listener.local_addr().expect("local address").port();
        drop(listener);
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found after 100 attempts");
}

/// Polls `check` every `interval` until it returns `Some`, for at most `timeout` (and at most
/// `timeout / interval + 1` attempts). Panics with `what` when time runs out.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    let max_attempts = (timeout.as_millis() / interval.as_millis().max(1)) as usize + 1;
    for _ in 0..max_attempts {
        if let Some(value) = check() {
            return value;
        }
        if start.elapsed() >= timeout {
            break;
        }
        thread::sleep(interval);
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Lowercase hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Lowercase hex sha256 of a file's content.
pub fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {} for hashing: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

/// The hex part of a `sha256:<hex>` digest.
pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// True when `name` is 64 lowercase hex characters, the only file names allowed in the cache's
/// content directories.
pub fn is_sha256_hex(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Last `max_bytes` of a text file, for failure messages.
pub fn tail_of(path: &Path, max_bytes: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max_bytes);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
