//! The administrative API of a running server (`/cmd/...`), who may use it, and the health
//! listener.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use support::http;
use support::ops::curl_from;
use support::{hex_of, LocalImage, Server, ServerOptions, SkopeoDir, Upstream, UPSTREAM_NAME};

const TOKEN: &str = "e2e-admin-token-0123456789";

#[test]
fn admin_endpoints_answer_in_columns_and_json_and_only_to_allowed_clients() {
    let upstream = Upstream::start();
    let tree = upstream.push_oci(&LocalImage::generate(&["60K"]), "e2e/admin-a", "v1");
    let other = upstream.push_oci(&LocalImage::generate(&["40K"]), "e2e/admin-b", "v1");
    let health = support::free_port();
    let mut server = Server::start_with(ServerOptions {
        extra_yaml: format!("adminApi:\n  token: {TOKEN}\n"),
        extra_args: vec!["--health".into(), health.to_string()],
        ..ServerOptions::new(&upstream.url())
    });
    let h = http::get(health, "/health");
    assert_eq!((h.status, h.text().trim()), (200, "ok"));
    assert_eq!(http::get(health, "/health/ready").status, 200);
    for repo in ["e2e/admin-a", "e2e/admin-b"] {
        let copy = SkopeoDir::new();
        let out = copy.copy_all(&server.in_path_ref(repo, "v1"));
        assert!(out.success(), "{out}");
    }
    let port = server.port;
    let json = [("Accept", "application/json")];

    // manifest/list: the Go server's columns with a header, patterns, count, JSON (the exact
    // bytes are pinned by the `compat` tests' fixtures).
    let r = http::get(port, "/cmd/manifest/list");
    assert_eq!(r.status, 200, "{}", r.summary());
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "URL DIGEST CREATED PULLED");
    assert_eq!(lines.len(), 1 + 6, "{text}");
    let a_url = format!("{UPSTREAM_NAME}/e2e/admin-a:v1");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{a_url} {}  ", hex_of(&tree.top)))),
        "{text}"
    );
    let r = http::get(port, "/cmd/manifest/list?pattern=admin-b&count=2");
    assert_eq!(r.text().lines().count(), 1 + 2, "{}", r.text());
    let r = http::get_with(port, "/cmd/manifest/list?pattern=admin-a", &json);
    let rows = r.json();
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["url"] == a_url.as_str() && m["digest"] == tree.top.as_str()));
    assert_eq!(http::get(port, "/cmd/manifest/list?pattern=(").status, 400);

    // image/list: image manifests and their blobs, selectable by a blob digest.
    let layer = &tree.platform("arm64").layers[0];
    let part = &hex_of(layer)[..12];
    let r = http::get(port, &format!("/cmd/image/list?digest={part}"));
    let text = r.text();
    assert!(text.starts_with("URL DIGEST CREATED PULLED\n"), "{text}");
    assert!(
        text.contains(hex_of(&tree.platform("arm64").manifest)),
        "{text}"
    );
    assert!(
        !text.contains(hex_of(&tree.platform("amd64").manifest)),
        "{text}"
    );
    assert!(text.contains(&format!("\n- {layer}\n")), "{text}");
    let r = http::get_with(port, "/cmd/image/list?pattern=admin&count=3", &json);
    assert_eq!(r.json().as_array().unwrap().len(), 3);

    // blob/list: digest and references (and the size in JSON).
    let r = http::get(port, &format!("/cmd/blob/list?substr={part}"));
    let text = r.text();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.starts_with("URL REFCNT\n"), "{text}");
    assert!(text.contains(&format!("\n{} ", hex_of(layer))), "{text}");
    assert!(
        text.trim_end().ends_with(" 1"),
        "one image manifest names it: {text}"
    );
    let r = http::get_with(port, "/cmd/blob/list?count=2", &json);
    let blobs = r.json();
    assert_eq!(blobs.as_array().unwrap().len(), 2);
    assert!(blobs[0]["size"].as_u64().is_some() && blobs[0]["refs"].as_u64().is_some());

    // Access: 127.0.0.2 is not in the default list; the token opens the door.
    let (status, body) = curl_from("127.0.0.2", port, "GET", "/cmd/blob/list", &[]);
    assert_eq!(status, 403, "{body}");
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = curl_from(
        "127.0.0.2",
        port,
        "GET",
        "/cmd/manifest/list",
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = curl_from(
        "127.0.0.2",
        port,
        "GET",
        "/cmd/manifest/list",
        &[("Authorization", "Bearer wrong-token-0123456789ab")],
    );
    assert_eq!(status, 403);
    assert!(server
        .log_text()
        .contains("admin: refused GET /cmd/blob/list from 127.0.0.2"));

    // prune: dry run changes nothing; then b goes with its blobs, a stays.
    let before = server.cached_blobs();
    let r = http::request(
        port,
        "DELETE",
        "/cmd/prune?type=pattern&expr=admin-b&dryRun=true",
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(
        r.text().contains("would remove manifest list"),
        "{}",
        r.text()
    );
    assert_eq!(server.cached_blobs(), before);
    let r = http::request(
        port,
        "DELETE",
        "/cmd/prune?type=pattern&expr=admin-b&count=10",
        &[("Accept", "application/json")],
    )
    .unwrap();
    let report = r.json();
    assert_eq!(report["dryRun"], false);
    assert_eq!(report["manifests"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(
        report["blobs"].as_array().unwrap().len(),
        other.blob_digests().len(),
        "{report}"
    );
    let left = server.cached_blobs();
    for d in other.blob_digests() {
        assert!(!left.contains(&hex_of(&d).to_string()));
    }
    for d in tree.blob_digests() {
        assert!(left.contains(&hex_of(&d).to_string()));
    }
    let text = http::get(port, "/cmd/manifest/list").text();
    assert!(!text.contains("admin-b"), "{text}");
    assert!(server.log_text().contains("admin prune from 127.0.0.1"));
    let r = http::request(port, "DELETE", "/cmd/prune?type=accessed&dur=soon", &[]).unwrap();
    assert_eq!(r.status, 400);

    // stop: answered, then the server exits on its own.
    let (status, body) = curl_from("127.0.0.2", port, "GET", "/cmd/stop", &[]);
    assert_eq!(status, 403, "{body}");
    let r = http::get(port, "/cmd/stop");
    assert_eq!(r.status, 200);
    assert!(
        server.wait_exited(Duration::from_secs(20)),
        "the server did not stop"
    );
}
