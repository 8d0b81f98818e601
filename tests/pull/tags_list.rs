//! `tags/list`: passed through while the upstream answers, answered from the cached tags when
//! it does not, paginated with `n` and `last` either way.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use support::{http, LocalImage, Server, Upstream};

const REPO: &str = "e2e/tags";

fn tags_of(r: &support::Response) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.summary());
    r.json()["tags"]
        .as_array()
        .expect("tags array")
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tag_lists_come_from_the_upstream_then_from_the_cache_when_it_is_gone() {
    let mut upstream = Upstream::start();
    let image = LocalImage::generate(&["64K"]);
    for tag in ["v1", "v2", "v3"] {
        upstream.push_oci(&image, REPO, tag);
    }
    let server = Server::start(&upstream.url());
    let list = format!("/v2/upstream.test/{REPO}/tags/list");

    let all = http::get(server.port, &list);
    assert_eq!(tags_of(&all), ["v1", "v2", "v3"]);
    assert_eq!(all.json()["name"], format!("upstream.test/{REPO}"));
    let page = http::get(server.port, &format!("{list}?n=2"));
    assert_eq!(tags_of(&page), ["v1", "v2"]);
    let link = page.header("link").expect("a Link to the next page");
    assert!(
        link.contains("last=v2") && link.contains("rel=\"next\""),
        "{link}"
    );

    // Cache two of the three, then lose the upstream.
    for tag in ["v1", "v2"] {
        let m = http::get_manifest(server.port, &server.manifest_path(REPO, tag));
        assert_eq!(m.status, 200);
    }
    upstream.stop();
    let cached = http::get(server.port, &list);
    assert_eq!(tags_of(&cached), ["v1", "v2"]);
    assert!(
        cached.header("warning").is_some(),
        "no sign the list is the cache's"
    );
    let first = http::get(server.port, &format!("{list}?n=1"));
    assert_eq!(tags_of(&first), ["v1"]);
    assert!(first.header("link").unwrap().contains("last=v1"));
    let second = http::get(server.port, &format!("{list}?n=1&last=v1"));
    assert_eq!(tags_of(&second), ["v2"]);
    assert!(
        second.header("link").is_none(),
        "a Link after the last page"
    );

    // A repository with nothing cached and no upstream: an error, not an empty list.
    let unknown = http::get(server.port, "/v2/upstream.test/e2e/never/tags/list");
    assert!(unknown.status >= 400, "{}", unknown.summary());
    let bad = http::get(server.port, &format!("{list}?n=many"));
    assert_eq!(bad.status, 400, "{}", bad.summary());
}
