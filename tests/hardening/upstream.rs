//! A hostile upstream: a fault-injecting proxy in front of the real registry sends wrong bytes,
//! cut and stalled bodies, an oversized manifest, a redirect loop, error statuses and reset
//! connections. Whatever it does, a client gets an OCI error or the right bytes, nothing wrong
//! enters the cache, the next request after the fault clears succeeds, and a cached tag is
//! served while the upstream fails. An upstream's 429 or 503 reaches the client with its
//! `Retry-After`, and a blob body longer than the manifest naming it states (one without end,
//! say) fails as soon as it passes that size; one that no manifest states a size for is held
//! to `maxBlobSize` the same way. While an upstream's `Retry-After` runs, it is not asked.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use support::checks::{
    assert_cache_sound, assert_server_alive, cached_manifest_digests, temp_files,
};
use support::http::{self, MANIFEST_ACCEPT};
use support::{
    hex_of, sha256_hex, wait_for, Fault, FaultProxy, ImageTree, LocalImage, Server, ServerOptions,
    Upstream,
};

const REPO: &str = "e2e/hostile";
/// Short enough that a stalled transfer fails within the test, long enough for loopback.
const IDLE_TIMEOUT_MS: u64 = 1500;

struct World {
    upstream: Upstream,
    proxy: FaultProxy,
    tree: ImageTree,
}

fn world() -> World {
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["600K"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let proxy = FaultProxy::start(upstream.port);
    World {
        upstream,
        proxy,
        tree,
    }
}

fn server_behind(proxy: &FaultProxy) -> Server {
    Server::start_with(ServerOptions {
        extra_yaml: format!("upstreamIdleTimeout: {IDLE_TIMEOUT_MS}\npullTimeout: 10000\n"),
        ..ServerOptions::new(&proxy.url())
    })
}

/// What the client saw of one request.
enum Outcome {
    /// A complete response.
    Complete(http::Response),
    /// The connection broke before the response was complete (status line, or body shorter
    /// than announced): what a client sees when a stream fails after its head went out.
    Broken(String),
}

fn fetch(port: u16, target: &str, manifest: bool) -> Outcome {
    let accept = [("Accept", MANIFEST_ACCEPT)];
    let headers: &[(&str, &str)] = if manifest { &accept } else { &[] };
    match http::request(port, "GET", target, headers) {
        Ok(r) => Outcome::Complete(r),
        Err(e) => Outcome::Broken(e.to_string()),
    }
}

/// [`fetch`], given up after `within` (the request goes on in the background).
fn fetch_within(port: u16, target: &str, manifest: bool, within: Duration) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    let target_owned = target.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(fetch(port, &target_owned, manifest));
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("GET {target}: no complete answer within {within:?}"))
}

/// A complete 200 must carry exactly `expected`; an error must be an OCI error body with one
/// of `statuses`. Returns a description for the failure report.
fn assert_no_wrong_bytes(
    outcome: &Outcome,
    expected: &[u8],
    statuses: &[u16],
    context: &str,
    server: &Server,
) -> String {
    match outcome {
        Outcome::Complete(r) if r.status == 200 => {
            assert!(
                r.body == expected,
                "{context}: a complete 200 response carried wrong bytes (sha256 {} instead of \
                 {}, {} bytes)\n--- server log ---\n{}",
                sha256_hex(&r.body),
                sha256_hex(expected),
                r.body.len(),
                server.log_tail()
            );
            "200 with the right bytes".into()
        }
        Outcome::Complete(r) => {
            assert!(
                statuses.contains(&r.status),
                "{context}: status {} is not one of {statuses:?}: {}\n--- server log ---\n{}",
                r.status,
                r.summary(),
                server.log_tail()
            );
            assert!(
                r.oci_error_codes().is_some(),
                "{context}: error without an OCI error body: {}",
                r.summary()
            );
            format!("{} {:?}", r.status, r.oci_error_codes())
        }
        Outcome::Broken(e) => format!("connection broken: {e}"),
    }
}

/// After the fault is gone, the same request succeeds with the right bytes (a stalled download
/// may need the idle timeout to pass first).
fn assert_recovers(server: &Server, target: &str, manifest: bool, expected: &[u8], ctx: &str) {
    wait_for(
        &format!("{ctx}: a successful request once the fault is cleared"),
        Duration::from_secs(20),
        Duration::from_millis(250),
        || match fetch(server.port, target, manifest) {
            Outcome::Complete(r) if r.status == 200 => {
                assert!(r.body == expected, "{ctx}: wrong bytes after recovery");
                Some(())
            }
            _ => None,
        },
    );
}

/// After a failed download of `layer`: no temp file is left, the blob is not cached, and once
/// the proxy's faults are cleared it is fetched and cached, the server none the worse.
fn assert_nothing_kept_then_recovers(
    w: &World,
    server: &mut Server,
    layer: &str,
    expected: &[u8],
    ctx: &str,
) {
    wait_for(
        &format!("{ctx}: no temp file left"),
        Duration::from_secs(5),
        Duration::from_millis(100),
        || temp_files(server.cache_dir()).is_empty().then_some(()),
    );
    assert!(
        !server.cached_blobs().contains(&hex_of(layer).to_string()),
        "{ctx}: the blob was cached although its download failed"
    );
    assert_cache_sound(server, ctx);
    w.proxy.clear_rules();
    let target = server.blob_path(REPO, layer);
    assert_recovers(server, &target, false, expected, ctx);
    assert!(server.cached_blobs().contains(&hex_of(layer).to_string()));
    assert_cache_sound(server, ctx);
    assert_server_alive(server, ctx);
}

#[test]
fn faulty_blob_downloads_give_errors_or_right_bytes_and_never_enter_the_cache() {
    let w = world();
    let layer = w.tree.platform("amd64").layers[0].clone();
    let expected = w.upstream.blob(REPO, &layer);
    let cases: Vec<(Fault, &[u16])> = vec![
        (Fault::FlipBytes, &[502]),
        (Fault::Truncate, &[502]),
        (Fault::Stall, &[502, 504]),
        (Fault::Reset, &[502]),
        (Fault::Status(500, None), &[502]),
        (Fault::Status(503, Some(3)), &[503]),
        (Fault::Status(429, Some(7)), &[429]),
        (Fault::RedirectLoop, &[502]),
    ];
    let mut report = Vec::new();
    for (fault, statuses) in cases {
        let ctx = format!("blob with {fault:?}");
        let mut server = server_behind(&w.proxy);
        let target = server.blob_path(REPO, &layer);
        w.proxy.add_rule(hex_of(&layer), fault.clone(), usize::MAX);
        let outcome = fetch(server.port, &target, false);
        let seen = assert_no_wrong_bytes(&outcome, &expected, statuses, &ctx, &server);
        assert!(
            w.proxy.faults_applied(&fault) > 0,
            "{ctx}: the fault was never applied: {:?}",
            w.proxy.seen()
        );
        // A stall fails only after the idle timeout; give it time to land before checking.
        if fault == Fault::Stall {
            std::thread::sleep(Duration::from_millis(IDLE_TIMEOUT_MS + 500));
        }
        assert_nothing_kept_then_recovers(&w, &mut server, &layer, &expected, &ctx);
        w.proxy.release_stalled();
        report.push(format!("{ctx}: {seen}"));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn faulty_manifest_responses_are_refused_and_never_indexed() {
    let w = world();
    let (_, index_bytes) = manifest_bytes(&w.upstream, "v1");
    let amd64 = w.tree.platform("amd64").manifest.clone();
    let (_, amd64_bytes) = manifest_bytes(&w.upstream, &amd64);
    let huge = 50 * 1024 * 1024;
    let cases: Vec<(&str, Fault, &[u16])> = vec![
        ("v1", Fault::FlipBytes, &[502]),
        (amd64.as_str(), Fault::FlipBytes, &[502]),
        ("v1", Fault::Truncate, &[502]),
        ("v1", Fault::Stall, &[502, 504]),
        ("v1", Fault::HugeManifest(huge), &[502]),
        (amd64.as_str(), Fault::HugeManifest(huge), &[502]),
        ("v1", Fault::RedirectLoop, &[502]),
        ("v1", Fault::Reset, &[502]),
        ("v1", Fault::Status(500, None), &[502]),
        ("v1", Fault::Status(503, Some(2)), &[503]),
        ("v1", Fault::Status(429, Some(7)), &[429]),
    ];
    let mut report = Vec::new();
    for (reference, fault, statuses) in cases {
        let ctx = format!("manifest {reference} with {fault:?}");
        let expected = if reference == "v1" {
            &index_bytes
        } else {
            &amd64_bytes
        };
        let mut server = server_behind(&w.proxy);
        let target = server.manifest_path(REPO, reference);
        w.proxy.add_rule(
            &format!("/manifests/{reference}"),
            fault.clone(),
            usize::MAX,
        );
        let started = std::time::Instant::now();
        let outcome = fetch(server.port, &target, true);
        let seen = assert_no_wrong_bytes(&outcome, expected, statuses, &ctx, &server);
        assert!(
            matches!(&outcome, Outcome::Complete(r) if r.status != 200),
            "{ctx}: expected an error response, got {seen}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{ctx}: the error took {:?}",
            started.elapsed()
        );
        assert_cache_sound(&server, &ctx);
        let indexed = cached_manifest_digests(server.cache_dir());
        assert!(
            indexed.is_empty(),
            "{ctx}: manifests were written although the fetch failed: {indexed:?}"
        );
        w.proxy.clear_rules();
        assert_recovers(&server, &target, true, expected, &ctx);
        assert_cache_sound(&server, &ctx);
        assert_server_alive(&mut server, &ctx);
        w.proxy.release_stalled();
        report.push(format!("{ctx}: {seen}"));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn an_upstream_asking_to_retry_later_passes_its_retry_after_on_and_is_left_alone_meanwhile() {
    let w = world();
    let layer = w.tree.platform("amd64").layers[0].clone();
    let expected_layer = w.upstream.blob(REPO, &layer);
    let (_, index_bytes) = manifest_bytes(&w.upstream, "v1");
    // (what is asked, upstream status, its Retry-After, the one our client must see). The
    // waits are short so that the cache's own hold ends within the test.
    let cases = [
        ("manifest", 429, 2, "2"),
        ("blob", 429, 3, "3"),
        ("manifest", 503, 2, "2"),
        ("blob", 503, 3, "3"),
        ("blob", 429, 86_400, "3600"),
    ];
    let mut report = Vec::new();
    for (what, status, retry_after, expected_header) in cases {
        let fault = Fault::Status(status, Some(retry_after));
        let ctx = format!("{what} with {fault:?}");
        // A fresh server each time: a manifest that recovered is cached and asks no upstream,
        // and the hold of one case must not carry over to the next.
        let mut server = server_behind(&w.proxy);
        let (rule, target, manifest, expected) = match what {
            "manifest" => (
                "/manifests/v1".to_string(),
                server.manifest_path(REPO, "v1"),
                true,
                &index_bytes,
            ),
            _ => (
                hex_of(&layer).to_string(),
                server.blob_path(REPO, &layer),
                false,
                &expected_layer,
            ),
        };
        w.proxy.add_rule(&rule, fault.clone(), usize::MAX);
        let r = match fetch(server.port, &target, manifest) {
            Outcome::Complete(r) => r,
            Outcome::Broken(e) => panic!("{ctx}: no complete error response: {e}"),
        };
        assert_eq!(r.status, status, "{ctx}: {}", r.summary());
        let code = if status == 429 {
            "TOOMANYREQUESTS"
        } else {
            "UNAVAILABLE"
        };
        assert_eq!(
            r.oci_error_codes(),
            Some(vec![code.to_string()]),
            "{ctx}: {}",
            r.summary()
        );
        assert_eq!(
            r.header("Retry-After"),
            Some(expected_header),
            "{ctx}: {}",
            r.summary()
        );
        let asked = w.proxy.faults_applied(&fault);
        assert!(
            asked > 0,
            "{ctx}: the fault was never applied: {:?}",
            w.proxy.seen()
        );

        // Meanwhile the upstream is not asked again: an answer at once, 503 with the time
        // left to wait.
        let again = match fetch(server.port, &target, manifest) {
            Outcome::Complete(r) => r,
            Outcome::Broken(e) => panic!("{ctx}: no complete answer during the hold: {e}"),
        };
        assert_eq!(
            again.status,
            503,
            "{ctx}: during the hold: {}",
            again.summary()
        );
        let left: u32 = again
            .header("Retry-After")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{ctx}: no Retry-After during the hold"));
        let cap = expected_header.parse::<u32>().unwrap_or(u32::MAX);
        assert!(
            left >= 1 && left <= cap,
            "{ctx}: Retry-After {left} during the hold"
        );
        assert_eq!(
            w.proxy.faults_applied(&fault),
            asked,
            "{ctx}: the upstream was asked again during its hold"
        );
        w.proxy.clear_rules();
        if retry_after <= 3 {
            assert_recovers(&server, &target, manifest, expected, &ctx);
            assert_cache_sound(&server, &ctx);
        }
        assert_server_alive(&mut server, &ctx);
        report.push(format!("{ctx}: {} Retry-After {expected_header}", r.status));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn blob_bodies_longer_than_their_manifest_states_fail_promptly_and_are_never_cached() {
    let w = world();
    let amd64 = w.tree.platform("amd64").clone();
    let layer = amd64.layers[0].clone();
    let expected = w.upstream.blob(REPO, &layer);
    let (_, manifest) = manifest_bytes(&w.upstream, &amd64.manifest);
    let mut report = Vec::new();
    for fault in [Fault::ExtraBytes(1000), Fault::Endless] {
        let ctx = format!("blob with {fault:?}");
        let mut server = server_behind(&w.proxy);
        let target = server.blob_path(REPO, &layer);
        w.proxy.add_rule(hex_of(&layer), fault.clone(), usize::MAX);
        // The image manifest first, so that the server knows the layer's size from its
        // descriptor (its prefetch of the layer meets the fault too).
        let manifest_target = server.manifest_path(REPO, &amd64.manifest);
        match fetch(server.port, &manifest_target, true) {
            Outcome::Complete(r) if r.status == 200 => {
                assert!(r.body == manifest, "{ctx}: wrong manifest bytes")
            }
            Outcome::Complete(r) => panic!("{ctx}: manifest: {}", r.summary()),
            Outcome::Broken(e) => panic!("{ctx}: manifest: {e}"),
        }
        let started = std::time::Instant::now();
        let outcome = fetch_within(server.port, &target, false, Duration::from_secs(30));
        let took = started.elapsed();
        let seen = assert_no_wrong_bytes(&outcome, &expected, &[502], &ctx, &server);
        assert!(
            !matches!(&outcome, Outcome::Complete(r) if r.status == 200),
            "{ctx}: the client got the blob although every body was wrong"
        );
        assert!(
            took < Duration::from_secs(10),
            "{ctx}: the error took {took:?}"
        );
        assert!(
            w.proxy.faults_applied(&fault) > 0,
            "{ctx}: the fault was never applied: {:?}",
            w.proxy.seen()
        );
        match &fault {
            Fault::ExtraBytes(extra) => {
                // Refused on its Content-Length, before any byte is written: an error status
                // naming both sizes.
                let Outcome::Complete(r) = &outcome else {
                    panic!("{ctx}: expected an error response, got {seen}");
                };
                let text = r.text();
                let announced = format!("Content-Length {}", expected.len() + extra);
                let stated = format!("state {} bytes", expected.len());
                assert!(
                    text.contains(&announced) && text.contains(&stated),
                    "{ctx}: the error does not name both sizes: {}",
                    r.summary()
                );
            }
            _ => {
                wait_for(
                    &format!("{ctx}: the server to stop reading the endless bodies"),
                    Duration::from_secs(10),
                    Duration::from_millis(100),
                    || (w.proxy.endless_bodies_open() == 0).then_some(()),
                );
                let sent = w.proxy.endless_bytes_sent();
                assert!(
                    sent < 64 * 1024 * 1024,
                    "{ctx}: the server read {sent} bytes of a {}-byte blob",
                    expected.len()
                );
            }
        }
        assert_nothing_kept_then_recovers(&w, &mut server, &layer, &expected, &ctx);
        report.push(format!("{ctx}: {seen} after {took:?}"));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn blobs_asked_for_by_digest_alone_are_held_to_max_blob_size_and_never_cached() {
    let w = world();
    let layer = w.tree.platform("amd64").layers[0].clone();
    let expected = w.upstream.blob(REPO, &layer);
    let limit = 1024 * 1024;
    assert!(expected.len() < limit, "the test layer must fit the bound");
    let mut report = Vec::new();
    for fault in [Fault::Endless, Fault::ExtraBytes(2 * limit)] {
        let ctx = format!("blob by digest with {fault:?}");
        // No manifest is asked first: nothing states the blob's size but maxBlobSize.
        let mut server = Server::start_with(ServerOptions {
            extra_yaml: format!("upstreamIdleTimeout: {IDLE_TIMEOUT_MS}\npullTimeout: 10000\n"),
            extra_args: vec!["--max-blob-size".into(), "1MiB".into()],
            ..ServerOptions::new(&w.proxy.url())
        });
        let target = server.blob_path(REPO, &layer);
        w.proxy.add_rule(hex_of(&layer), fault.clone(), usize::MAX);
        let started = std::time::Instant::now();
        let outcome = fetch_within(server.port, &target, false, Duration::from_secs(30));
        let took = started.elapsed();
        let seen = assert_no_wrong_bytes(&outcome, &expected, &[502], &ctx, &server);
        assert!(
            !matches!(&outcome, Outcome::Complete(r) if r.status == 200),
            "{ctx}: a body cut at the bound reached the client as a complete 200"
        );
        assert!(took < Duration::from_secs(10), "{ctx}: took {took:?}");
        match &fault {
            Fault::ExtraBytes(_) => {
                // Refused on its Content-Length, before a byte is written.
                let Outcome::Complete(r) = &outcome else {
                    panic!("{ctx}: expected an error response, got {seen}");
                };
                assert!(r.text().contains("maxBlobSize"), "{ctx}: {}", r.summary());
            }
            _ => {
                wait_for(
                    &format!("{ctx}: the server to stop reading the endless body"),
                    Duration::from_secs(10),
                    Duration::from_millis(100),
                    || (w.proxy.endless_bodies_open() == 0).then_some(()),
                );
                wait_for(
                    &format!("{ctx}: the log to name the bound"),
                    Duration::from_secs(10),
                    Duration::from_millis(100),
                    || server.log_text().contains("maxBlobSize").then_some(()),
                );
            }
        }
        assert_nothing_kept_then_recovers(&w, &mut server, &layer, &expected, &ctx);
        report.push(format!("{ctx}: {seen} after {took:?}"));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn a_cached_image_is_served_while_the_upstream_fails_in_every_way() {
    let w = world();
    let mut server = server_behind(&w.proxy);
    let amd64 = w.tree.platform("amd64").clone();
    let layer = amd64.layers[0].clone();
    let expected_layer = w.upstream.blob(REPO, &layer);
    let (_, index_bytes) = manifest_bytes(&w.upstream, "v1");
    let targets = [
        (server.manifest_path(REPO, "v1"), true, index_bytes),
        (
            server.manifest_path(REPO, &amd64.manifest),
            true,
            manifest_bytes(&w.upstream, &amd64.manifest).1,
        ),
        (server.blob_path(REPO, &layer), false, expected_layer),
    ];
    for (target, manifest, expected) in &targets {
        assert_recovers(&server, target, *manifest, expected, "warming the cache");
    }
    for fault in [
        Fault::Status(503, Some(1)),
        Fault::Status(500, None),
        Fault::Reset,
        Fault::Stall,
        Fault::FlipBytes,
    ] {
        w.proxy.add_rule("/v2/", fault.clone(), usize::MAX);
        for (target, manifest, expected) in &targets {
            match fetch(server.port, target, *manifest) {
                Outcome::Complete(r) => {
                    assert_eq!(r.status, 200, "{fault:?} {target}: {}", r.summary());
                    assert!(r.body == *expected, "{fault:?} {target}: wrong bytes");
                }
                Outcome::Broken(e) => panic!("{fault:?} {target}: cached answer broken: {e}"),
            }
        }
        w.proxy.clear_rules();
        w.proxy.release_stalled();
    }
    assert!(
        w.proxy.seen().iter().all(|s| s.fault.is_none()),
        "cached content needs no upstream request: {:?}",
        w.proxy.seen()
    );
    assert_cache_sound(&server, "after serving from cache");
    assert_server_alive(&mut server, "after serving from cache");
}

fn manifest_bytes(upstream: &Upstream, reference: &str) -> (String, Vec<u8>) {
    let r = http::get_manifest(upstream.port, &format!("/v2/{REPO}/manifests/{reference}"));
    assert_eq!(r.status, 200, "{}", r.summary());
    (format!("sha256:{}", sha256_hex(&r.body)), r.body)
}
