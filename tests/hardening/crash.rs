//! Power loss, over and over: the server is killed with SIGKILL at random moments while
//! several clients pull several images cold through a throttled link, then started again on
//! the same cache. After every start the cache holds only verified blobs, no temporary file,
//! and every indexed manifest's blobs are there or are fetched again; at the end every image
//! pulls byte-identical to the upstream.
//!
//! Between rounds part of the cache is evicted (as a prune would), so every round has cold
//! content to download. Set `HARDENING_SEED` to repeat a run.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::checks::{
    assert_cache_sound, assert_server_alive, holder_bytes, manifest_blob_digests, manifest_files,
    temp_files,
};
use support::http;
use support::{
    sha256_hex, ImageTree, LocalImage, Relay, Rng, Server, SkopeoDir, Upstream, UPSTREAM_NAME,
};

const ROUNDS: usize = 24;
const CLIENTS: usize = 4;
/// Per connection: a 700 KiB layer takes about a second, so kills land mid-download.
const THROTTLE: u64 = 768 * 1024;

#[test]
fn random_sigkills_during_concurrent_cold_pulls_never_corrupt_or_lose_the_cache() {
    let started = Instant::now();
    let mut rng = Rng::from_env("HARDENING_SEED");
    let upstream = Upstream::start();
    let mut trees = Vec::new();
    for i in 0..3 {
        let image = LocalImage::generate(&["150K", "700K"]);
        trees.push(upstream.push_oci(&image, &format!("e2e/crash-{i}"), "v1"));
    }
    let relay = Relay::start(upstream.port, THROTTLE);
    let mut server = Server::start(&relay.url());
    let mut kills_mid_download = 0;

    for round in 0..ROUNDS {
        let ctx = format!("round {round}");
        relay.set_rate(THROTTLE);
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let tree = rng.pick(&trees).clone();
                let (port, stop, seed) = (server.port, stop.clone(), rng.next_u64());
                thread::spawn(move || pull(port, &tree, &stop, seed))
            })
            .collect();
        thread::sleep(Duration::from_millis(rng.range(50, 900)));
        let partial = temp_files(server.cache_dir());
        kills_mid_download += usize::from(!partial.is_empty());
        server.crash();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            let served_wrong = c.join().expect("client thread");
            assert!(
                served_wrong.is_empty(),
                "{ctx}: complete responses with wrong bytes: {served_wrong:?}"
            );
        }
        assert_cache_sound(&server, &format!("{ctx}, at the kill"));

        evict(server.cache_dir(), &mut rng);
        let at_kill = temp_files(server.cache_dir());
        server.restart();
        // The new server may already be downloading (blobs cached images lack are fetched at
        // start): only the files the killed server left behind must be gone.
        let left: Vec<_> = temp_files(server.cache_dir())
            .into_iter()
            .filter(|f| at_kill.contains(f))
            .collect();
        assert!(
            left.is_empty(),
            "{ctx}: temporary files survived the start: {left:?}"
        );
        assert_cache_sound(&server, &format!("{ctx}, after the restart"));
        relay.set_rate(0);
        refetch_missing_blobs(&server, &ctx);
        assert_server_alive(&mut server, &ctx);
    }
    eprintln!(
        "{ROUNDS} rounds, {kills_mid_download} kills with downloads in progress, {:?}",
        started.elapsed()
    );
    assert!(
        kills_mid_download >= ROUNDS / 4,
        "only {kills_mid_download} of {ROUNDS} kills landed during a download; the throttle \
         is not slowing the pulls down"
    );

    relay.set_rate(0);
    for tree in &trees {
        let copy = SkopeoDir::new();
        let out = copy.copy_all(&format!(
            "{}/{UPSTREAM_NAME}/{}:{}",
            server.addr(),
            tree.repo,
            tree.tag
        ));
        assert!(
            out.success(),
            "{out}\n--- server log ---\n{}",
            server.log_tail()
        );
        copy.assert_matches(tree);
    }
    assert_cache_sound(&server, "after the final pulls");
    assert_server_alive(&mut server, "after the final pulls");
}

/// Pulls `tree` the way a client does (index, platform manifests, blobs) until done or told
/// to stop. Returns every complete 200 response whose bytes did not match its digest.
fn pull(port: u16, tree: &ImageTree, stop: &AtomicBool, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut wrong = Vec::new();
    let mut check = |target: String, digest: &str| -> bool {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let accept = [("Accept", http::MANIFEST_ACCEPT)];
        match http::request(port, "GET", &target, &accept) {
            Ok(r) if r.status == 200 => {
                if !digest.is_empty() && format!("sha256:{}", sha256_hex(&r.body)) != digest {
                    wrong.push(target);
                }
                true
            }
            _ => false,
        }
    };
    let base = format!("/v2/{UPSTREAM_NAME}/{}", tree.repo);
    if !check(format!("{base}/manifests/{}", tree.tag), "") {
        return wrong;
    }
    let mut platforms = tree.platforms.clone();
    if rng.chance(50) {
        platforms.reverse();
    }
    for p in &platforms {
        if !check(format!("{base}/manifests/{}", p.manifest), &p.manifest) {
            return wrong;
        }
        let mut blobs = p.blobs();
        if rng.chance(50) {
            blobs.reverse();
        }
        for b in blobs {
            if !check(format!("{base}/blobs/{b}"), &b) {
                return wrong;
            }
        }
    }
    wrong
}

/// Deletes about half the blobs and a third of the manifest files, with the server stopped.
fn evict(cache: &Path, rng: &mut Rng) {
    let blobs: Vec<PathBuf> = std::fs::read_dir(cache.join("blobs"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for b in blobs {
        if rng.chance(50) {
            std::fs::remove_file(&b).expect("evict a blob");
        }
    }
    for m in manifest_files(cache) {
        if rng.chance(33) {
            std::fs::remove_file(&m).expect("evict a manifest");
        }
    }
}

/// Every blob named by an indexed image manifest is on disk or is fetched again, with the
/// right bytes, through the server.
fn refetch_missing_blobs(server: &Server, ctx: &str) {
    let present: BTreeSet<String> = server.cached_blobs().into_iter().collect();
    for file in manifest_files(server.cache_dir()) {
        let holder: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read manifest file"))
                .expect("holder JSON");
        let url = holder["imageUrl"].as_str().unwrap_or_default();
        let repo = repo_of_image_url(url);
        for digest in manifest_blob_digests(&holder_bytes(&file)) {
            if present.contains(support::hex_of(&digest)) {
                continue;
            }
            let target = server.blob_path(&repo, &digest);
            let r = http::get(server.port, &target);
            assert_eq!(
                r.status,
                200,
                "{ctx}: blob {digest} of indexed manifest {file:?} cannot be fetched again: {}\n\
                 --- server log ---\n{}",
                r.summary(),
                server.log_tail()
            );
            assert_eq!(
                format!("sha256:{}", sha256_hex(&r.body)),
                digest,
                "{ctx}: wrong bytes for {digest}"
            );
        }
    }
}

/// `upstream.test/e2e/crash-0:v1` or `...@sha256:...` -> `e2e/crash-0`.
fn repo_of_image_url(url: &str) -> String {
    let name = url
        .strip_prefix(&format!("{UPSTREAM_NAME}/"))
        .unwrap_or(url);
    let name = name.split('@').next().unwrap_or(name);
    match name.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n.to_string(),
        _ => name.to_string(),
    }
}
