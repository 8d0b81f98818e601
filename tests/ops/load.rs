//! `load --image-file` and `serve --preload-images`: images are complete in the cache when the
//! command says so, failures are reported with their reason, and the result pulls with the
//! upstream gone.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use indicatif::BinaryBytes;
use support::ops::{code, Workspace};
use support::{LocalImage, Relay, Server, ServerOptions, SkopeoDir, Upstream, UPSTREAM_NAME};

#[test]
fn load_reports_each_image_and_the_cache_serves_them_with_the_upstream_stopped() {
    let mut upstream = Upstream::start();
    let a = upstream.push_oci(&LocalImage::generate(&["300K", "200K"]), "e2e/load-a", "v1");
    let b_image = LocalImage::generate(&["100K"]);
    let b = upstream.push_docker_list(&b_image, "e2e/load-b", "v1");
    let c = upstream.push_oci(&LocalImage::generate(&["100K"]), "e2e/load-c", "v1");
    let c_amd64 = c.platform("amd64").manifest.clone();

    let ws = Workspace::new(&upstream.url());
    let list = ws.file(
        "images.txt",
        &format!(
            "# a multi-platform OCI index, a Docker manifest list, an image by digest\n\
             \n\
             {UPSTREAM_NAME}/e2e/load-a:v1\n\
             {UPSTREAM_NAME}/e2e/load-b:v1   # trailing comment\n\
             {UPSTREAM_NAME}/e2e/load-c@{c_amd64}\n\
             this is not a reference\n\
             {UPSTREAM_NAME}/e2e/missing:v9\n"
        ),
    );
    let list = list.to_str().unwrap();
    let platforms = "linux/amd64,linux/arm64";
    let out = ws.run(&["load", "--image-file", list, "--platform", platforms]);
    assert_eq!(code(&out), 1, "a failed line must fail the command: {out}");
    assert!(
        out.stdout.contains("3 loaded, 0 already cached, 2 failed"),
        "{out}"
    );
    assert!(
        out.stdout.contains("line 6"),
        "a bad line names its number: {out}"
    );
    let missing = out
        .stdout
        .lines()
        .find(|l| l.contains("e2e/missing:v9"))
        .unwrap_or_else(|| panic!("the missing image is reported: {out}"));
    assert!(missing.starts_with("failed"), "{missing}");

    // Everything is on disk: manifests and every blob of both platforms.
    let blobs = ws.files("blobs");
    for tree in [&a, &b] {
        for d in tree.blob_digests() {
            assert!(
                blobs.contains(&support::hex_of(&d).to_string()),
                "{d} missing"
            );
        }
    }
    for d in c.platform("amd64").blobs() {
        assert!(
            blobs.contains(&support::hex_of(&d).to_string()),
            "{d} missing"
        );
    }

    // A second run fetches nothing and says so.
    let mark = upstream.log_mark();
    let again = ws.run(&["load", "--image-file", list, "--platform", platforms]);
    assert!(
        again
            .stdout
            .contains("0 loaded, 3 already cached, 2 failed"),
        "{again}"
    );
    assert!(
        upstream
            .requests_since(mark)
            .iter()
            .all(|e| !e.path.contains("/blobs/")),
        "cached blobs were fetched again"
    );

    upstream.stop();
    let server = Server::start_with(ServerOptions {
        cache_dir: Some(ws.cache.clone()),
        ..ServerOptions::new(&upstream.url())
    });
    for (repo, tree) in [("e2e/load-a", &a), ("e2e/load-b", &b)] {
        let copy = SkopeoDir::new();
        let out = copy.copy_all(&server.in_path_ref(repo, "v1"));
        assert!(out.success(), "{repo} from the loaded cache: {out}");
        copy.assert_matches(tree);
    }
    let copy = SkopeoDir::new();
    let by_digest = format!("{}/{UPSTREAM_NAME}/e2e/load-c@{c_amd64}", server.addr());
    let out = copy.copy_all(&by_digest);
    assert!(
        out.success(),
        "image by digest from the loaded cache: {out}"
    );
}

#[test]
fn load_fetches_only_the_chosen_platform_and_preload_fills_the_cache_before_serving() {
    let mut upstream = Upstream::start();
    let tree = upstream.push_oci(&LocalImage::generate(&["100K"]), "e2e/load-arm", "v1");
    let mark = upstream.log_mark();
    let ws = Workspace::new(&upstream.url());
    let list = ws.file("images.txt", &format!("{UPSTREAM_NAME}/e2e/load-arm:v1\n"));
    let out = ws.run(&[
        "load",
        "--image-file",
        list.to_str().unwrap(),
        "--platform",
        "linux/arm64/v8",
    ]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("1 loaded, 0 already cached, 0 failed"),
        "{out}"
    );
    let amd64 = &tree.platform("amd64").manifest;
    let arm64 = &tree.platform("arm64").manifest;
    let fetched = |d: &str| {
        upstream
            .requests_since(mark)
            .iter()
            .filter(|e| e.method == "GET" && e.path.contains(&format!("/manifests/{d}")))
            .count()
    };
    assert_eq!(fetched(amd64), 0, "the amd64 manifest was not asked for");
    assert_eq!(fetched(arm64), 1);
    let blobs = ws.files("blobs");
    for d in tree.platform("arm64").blobs() {
        assert!(blobs.contains(&support::hex_of(&d).to_string()));
    }
    for d in tree.platform("amd64").layers.iter() {
        assert!(!blobs.contains(&support::hex_of(d).to_string()));
    }

    // serve --preload-images: the server answers only once the image is complete, so the
    // upstream can go away right after it starts.
    let other = upstream.push_oci(&LocalImage::generate(&["100K"]), "e2e/preload", "v1");
    let preload = ws.file("preload.txt", &format!("{UPSTREAM_NAME}/e2e/preload:v1\n"));
    let mut server = Server::start_with(ServerOptions {
        extra_args: vec![
            "--preload-images".into(),
            preload.display().to_string(),
            "--all-platforms".into(),
        ],
        ..ServerOptions::new(&upstream.url())
    });
    upstream.stop();
    let copy = SkopeoDir::new();
    let out = copy.copy_all(&server.in_path_ref("e2e/preload", "v1"));
    assert!(
        out.success(),
        "preloaded image with the upstream stopped: {out}"
    );
    copy.assert_matches(&other);
    server.kill();
}

#[test]
fn load_shows_the_bytes_total_and_rate_of_each_image_on_a_terminal_and_in_its_report_line() {
    let upstream = Upstream::start();
    let repo = "e2e/load-bytes";
    let tree = upstream.push_oci(
        &LocalImage::generate_for(&["2M", "1M"], "linux/amd64"),
        repo,
        "v1",
    );
    let port: u16 = upstream
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("upstream port");
    // A slow link: the load lasts a few seconds, long enough to be drawn moving.
    let relay = Relay::start(port, 1024 * 1024);
    let name = format!("{UPSTREAM_NAME}/{repo}:v1");
    let args = |list: &str| -> Vec<String> {
        ["load", "--image-file", list, "--platform", "linux/amd64"]
            .map(str::to_string)
            .to_vec()
    };

    // Not on a terminal: the report's line for the image, with its bytes, time and rate.
    let ws = Workspace::new(&format!("http://127.0.0.1:{}", relay.port));
    let list = ws.file("images.txt", &format!("{name}\n"));
    let a = args(list.to_str().unwrap());
    let out = ws.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.success(), "{out}");
    let total: u64 = tree
        .platform("amd64")
        .blobs()
        .iter()
        .map(|d| {
            std::fs::metadata(ws.cache.join("blobs").join(support::hex_of(d)))
                .expect("loaded blob")
                .len()
        })
        .sum();
    let weight = BinaryBytes(total).to_string();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("loaded ") && l.contains(&name))
        .unwrap_or_else(|| panic!("no line for the image: {out}"));
    assert!(
        line.contains(&format!("{name} ({weight}; {weight} fetched in ")) && line.ends_with("/s)"),
        "the image's line lacks its bytes or rate: {line}"
    );

    // On a terminal: bars of bytes done out of the total, with a rate, while it runs.
    let ws = Workspace::new(&format!("http://127.0.0.1:{}", relay.port));
    let list = ws.file("images.txt", &format!("{name}\n"));
    let a = args(list.to_str().unwrap());
    let out = ws.run_in_terminal(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.success(), "{out}");
    let drawn = &out.stdout;
    assert!(
        drawn.contains(&format!("/{weight}")) && drawn.contains("iB/s"),
        "no bar of bytes out of {weight} with a rate was drawn: {drawn:?}"
    );
    assert!(
        drawn.contains(&name) && drawn.contains(&format!("{weight}; {weight} fetched in ")),
        "the image's line was not printed: {drawn:?}"
    );
}
