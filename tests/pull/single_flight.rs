//! One upstream download per blob, however many clients ask at once, streamed to all of them
//! as it lands.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use support::{http, wait_for, LocalImage, Relay, Server, Upstream};

const REPO: &str = "e2e/flight";

#[test]
fn sixteen_concurrent_clients_of_a_cold_blob_get_correct_bytes_from_one_upstream_get() {
    const CLIENTS: usize = 20;
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["2M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let (layer, size) = tree.largest_layer();
    // About a second of download, so that every client arrives while it is in flight.
    let relay = Relay::start(upstream.port, 2 * 1024 * 1024);
    let server = Server::start(&relay.url());
    let path = server.blob_path(REPO, &layer);

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (barrier, path, port) = (barrier.clone(), path.clone(), server.port);
            thread::spawn(move || {
                barrier.wait();
                http::request(port, "GET", &path, &[])
            })
        })
        .collect();
    let mut failures = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        match h.join().expect("client thread") {
            Ok(r) if r.status == 200 => {
                let got = format!("sha256:{}", support::sha256_hex(&r.body));
                if got != layer || r.body.len() as u64 != size {
                    failures.push(format!(
                        "client {i}: {} bytes hashing to {got}, expected {size} bytes of {layer}",
                        r.body.len()
                    ));
                }
            }
            Ok(r) => failures.push(format!("client {i}: {}", r.summary())),
            Err(e) => failures.push(format!("client {i}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n--- server log ---\n{}",
        failures.join("\n"),
        server.log_tail()
    );
    let gets = upstream.count_requests("GET", &format!("/blobs/{layer}"));
    assert_eq!(
        gets, 1,
        "the upstream served {gets} GETs of the blob for {CLIENTS} concurrent clients"
    );
}

/// Times of one streaming download.
struct Download {
    started: Instant,
    first_byte: Option<Instant>,
    finished: Instant,
    bytes: u64,
    digest: String,
    status: u16,
}

fn download(port: u16, path: &str, progress: Option<Arc<AtomicU64>>) -> Download {
    let started = Instant::now();
    let mut first_byte = None;
    let mut bytes = 0u64;
    let mut hasher = Sha256::new();
    let (status, _) = http::request_streaming(port, "GET", path, &[], |chunk| {
        if first_byte.is_none() && !chunk.is_empty() {
            first_byte = Some(Instant::now());
        }
        bytes += chunk.len() as u64;
        hasher.update(chunk);
        if let Some(p) = &progress {
            p.store(bytes, Ordering::SeqCst);
        }
    })
    .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    Download {
        started,
        first_byte,
        finished: Instant::now(),
        bytes,
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        status,
    }
}

#[test]
fn client_joining_mid_download_gets_first_bytes_before_the_download_finishes() {
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["3M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let (layer, size) = tree.largest_layer();
    // About four seconds of download.
    let relay = Relay::start(upstream.port, 768 * 1024);
    let server = Server::start(&relay.url());
    let path = server.blob_path(REPO, &layer);

    let progress = Arc::new(AtomicU64::new(0));
    let first = {
        let (path, port, progress) = (path.clone(), server.port, progress.clone());
        thread::spawn(move || download(port, &path, Some(progress)))
    };
    // Join once the first client has received a part of the blob.
    wait_for(
        "the first client to receive 256 KiB",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || (progress.load(Ordering::SeqCst) >= 256 * 1024).then_some(()),
    );
    let second = download(server.port, &path, None);
    let first = first.join().expect("first client thread");

    for (name, d) in [("first", &first), ("second", &second)] {
        assert_eq!(d.status, 200, "{name} client status");
        assert_eq!(d.bytes, size, "{name} client byte count");
        assert_eq!(d.digest, layer, "{name} client bytes");
    }
    let first_byte = first.first_byte.expect("first client got bytes");
    assert!(
        first.finished - first_byte >= Duration::from_secs(1),
        "the first client was not streamed to while the blob downloaded: first byte after \
         {:?}, done after {:?}",
        first_byte - first.started,
        first.finished - first.started
    );
    let joined_first_byte = second.first_byte.expect("second client got bytes");
    assert!(
        joined_first_byte < first.finished,
        "the joining client's first byte came {:?} after it asked, but the download finished \
         {:?} after it asked",
        joined_first_byte - second.started,
        first.finished.saturating_duration_since(second.started)
    );
    assert_eq!(
        upstream.count_requests("GET", &format!("/blobs/{layer}")),
        1,
        "the joining client caused another upstream GET"
    );
}

#[test]
fn a_client_that_disconnects_mid_download_does_not_cancel_it() {
    use std::io::{Read, Write};
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["2M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let (layer, size) = tree.largest_layer();
    // About three seconds of download.
    let relay = Relay::start(upstream.port, 768 * 1024);
    let server = Server::start(&relay.url());
    let path = server.blob_path(REPO, &layer);

    let mut conn = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut got = 0usize;
    let mut buf = [0u8; 16 * 1024];
    while got < 128 * 1024 {
        let n = conn.read(&mut buf).expect("read from server");
        assert!(n > 0, "server closed the connection after {got} bytes");
        got += n;
    }
    drop(conn);

    let cached = server
        .cache_dir()
        .join("blobs")
        .join(support::hex_of(&layer));
    wait_for(
        "the abandoned download to complete in the cache",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || cached.exists().then_some(()),
    );
    assert_eq!(std::fs::metadata(&cached).unwrap().len(), size);
    assert_eq!(format!("sha256:{}", support::sha256_file(&cached)), layer);
    let full = http::get(server.port, &path);
    assert_eq!(full.status, 200);
    assert_eq!(format!("sha256:{}", support::sha256_hex(&full.body)), layer);
    assert_eq!(
        upstream.count_requests("GET", &format!("/blobs/{layer}")),
        1,
        "the download was restarted after the client went away"
    );
}
