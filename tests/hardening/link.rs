//! A link that silently drops packets (connections accepted, nothing answered), the way edge
//! links fail for hours. The first pull that meets it waits out its timeout once; from then on
//! the upstream's breaker is open: every pull of a cached tag is served at once, also when its
//! freshness rule asks for a check, and a miss fails at once with 503 and `Retry-After`. When
//! the link is back, the breaker's own probe notices and misses are fetched again.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::relay::Relay;
use support::{http, wait_for, LocalImage, Server, ServerOptions, Upstream};

const REPO: &str = "e2e/link";
/// How long one upstream request may take: the price of finding the link down, paid once.
const PULL_TIMEOUT_MS: u64 = 2000;

fn manifest(server: &Server, tag: &str) -> (http::Response, Duration) {
    let started = Instant::now();
    let r = http::get_manifest(server.port, &server.manifest_path(REPO, tag));
    (r, started.elapsed())
}

#[test]
fn after_one_timeout_a_dropping_link_costs_pulls_nothing_and_its_return_is_noticed() {
    let upstream = Upstream::start();
    let cached = upstream.push_oci(&LocalImage::generate(&["64K"]), REPO, "v1");
    let later = upstream.push_oci(&LocalImage::generate(&["64K"]), REPO, "v2");
    let link = Relay::start(upstream.port, 0);
    let server = Server::start_with(ServerOptions {
        extra_yaml: format!(
            "pullTimeout: {PULL_TIMEOUT_MS}\nupstreamIdleTimeout: {PULL_TIMEOUT_MS}\n\
             tagFreshness:\n  - match: \"upstream\\\\.test/e2e/.*\"\n    ttl: 1s\n"
        ),
        ..ServerOptions::new(&link.url())
    });
    let (r, _) = manifest(&server, "v1");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("docker-content-digest"), Some(cached.top.as_str()));

    link.set_dropping(true);
    std::thread::sleep(Duration::from_millis(1200));
    // The first check of the stale tag meets the dead link and waits its timeout, once; the
    // cached copy is served.
    let (r, took) = manifest(&server, "v1");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("docker-content-digest"), Some(cached.top.as_str()));
    assert!(
        took >= Duration::from_millis(PULL_TIMEOUT_MS / 2),
        "the first check did not meet the dropping link ({took:?})"
    );
    wait_for(
        "the log to say the upstream is unreachable, once",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || server.log_text().contains("unreachable").then_some(()),
    );

    // From now on: cached tags at once, though each is due a check; misses at once.
    let mut report = Vec::new();
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(1100));
        let (r, took) = manifest(&server, "v1");
        assert_eq!(r.status, 200, "round {round}: {}", r.summary());
        assert_eq!(r.header("docker-content-digest"), Some(cached.top.as_str()));
        assert!(
            took < Duration::from_millis(500),
            "round {round}: a cached tag took {took:?} with the link down"
        );
        let (miss, miss_took) = manifest(&server, "v2");
        assert_eq!(miss.status, 503, "round {round}: {}", miss.summary());
        assert_eq!(
            miss.oci_error_codes(),
            Some(vec!["UNAVAILABLE".to_string()]),
            "{}",
            miss.summary()
        );
        let retry: u64 = miss
            .header("Retry-After")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: no Retry-After: {}", miss.summary()));
        assert!(
            (1..=60).contains(&retry),
            "round {round}: Retry-After {retry}"
        );
        assert!(
            miss_took < Duration::from_millis(500),
            "round {round}: a miss took {miss_took:?} with the link down"
        );
        report.push(format!("round {round}: hit {took:?}, miss {miss_took:?}"));
    }
    let opened = server.log_text().matches("unreachable (").count();
    assert!(
        opened <= 6,
        "the breaker's state changes flood the log ({opened} lines):\n{}",
        server.log_tail()
    );

    // The link is back: a probe notices, and the miss is fetched.
    link.set_dropping(false);
    wait_for(
        "the breaker to close and the miss to be fetched",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            let (r, _) = manifest(&server, "v2");
            (r.status == 200).then_some(r)
        },
    );
    let (r, _) = manifest(&server, "v2");
    assert_eq!(r.header("docker-content-digest"), Some(later.top.as_str()));
    assert!(
        server.log_text().contains("reachable again"),
        "no log line for the breaker closing"
    );
    eprintln!("{}", report.join("\n"));
}
