//! Several replicas of the server, separate processes, sharing one bucket of a real Ceph
//! radosgw: one upstream fetch per blob fleet-wide, the bucket as the index, clear errors at
//! start.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::ceph::{Ceph, ACCESS_KEY, SECRET_KEY};
use support::fleet::{
    advertised_replica_options, all_at_once, no_leases_left, pull_repo_over_http, replica_options,
    serve_expecting_failure, start_replicas, storage_yaml,
};
use support::{
    http, wait_for, Containerd, DockerImage, LocalImage, Relay, Server, SkopeoDir, Upstream,
};

const REPO: &str = "fleet/app";

/// Every manifest and blob of `tree` (in `REPO`), fetched over plain HTTP from `port`, each
/// checked against its digest; the failures, as text.
fn pull_over_http(port: u16, tree: &support::ImageTree) -> Vec<String> {
    pull_repo_over_http(port, REPO, tree)
}

#[test]
fn many_clients_over_three_replicas_pull_a_cold_image_with_one_upstream_get_per_blob() {
    const CLIENTS_PER_REPLICA: usize = 3;
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("cold");
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["3M", "1M"], "linux/amd64,linux/arm64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    // A second or so per layer: every replica asks while the first download is under way.
    let relay = Relay::start(upstream.port, 3 * 1024 * 1024);
    let replicas = start_replicas(3, &relay.url(), ceph, &bucket);

    let clients = replicas.len() * CLIENTS_PER_REPLICA;
    let pulled = tree.clone();
    let failures = all_at_once(&replicas, CLIENTS_PER_REPLICA, move |port| {
        pull_over_http(port, &pulled)
    });
    assert!(
        failures.is_empty(),
        "{}\n--- replica logs ---\n{}",
        failures.join("\n"),
        replicas
            .iter()
            .map(|r| r.log_tail())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    for r in &replicas {
        r.settle();
    }
    let mut gets: BTreeMap<String, usize> = BTreeMap::new();
    for blob in tree.blob_digests() {
        gets.insert(
            blob.clone(),
            upstream.count_requests("GET", &format!("/blobs/{blob}")),
        );
    }
    assert!(
        gets.values().all(|&n| n == 1),
        "upstream GETs per blob for {clients} clients over 3 replicas: {gets:?}"
    );
    let stored = ceph.keys(&bucket, "blobs/");
    for blob in tree.blob_digests() {
        let key = format!("blobs/{}", support::hex_of(&blob));
        assert!(
            stored.contains(&key),
            "{key} is not in the bucket: {stored:?}"
        );
    }
    no_leases_left(ceph, &bucket);
}

#[test]
fn a_manifest_asked_by_digest_on_every_replica_at_once_is_fetched_from_the_upstream_once() {
    const CLIENTS_PER_REPLICA: usize = 3;
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("bydigest");
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["256K"], "linux/amd64,linux/arm64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let replicas = start_replicas(3, &upstream.url(), ceph, &bucket);
    let digests: Vec<String> = tree.platforms.iter().map(|p| p.manifest.clone()).collect();
    // The push reads its manifests back: those GETs are not ours.
    let before: Vec<usize> = digests
        .iter()
        .map(|d| upstream.count_requests("GET", &format!("/manifests/{d}")))
        .collect();

    let clients = replicas.len() * CLIENTS_PER_REPLICA;
    let asked = digests.clone();
    let failures = all_at_once(&replicas, CLIENTS_PER_REPLICA, move |port| {
        let mut failures = Vec::new();
        for d in &asked {
            let path = format!("/v2/{}/{REPO}/manifests/{d}", support::UPSTREAM_NAME);
            let r = http::get_manifest(port, &path);
            if r.status != 200 || format!("sha256:{}", support::sha256_hex(&r.body)) != *d {
                failures.push(format!("{port} {path}: {}", r.summary()));
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{failures:?}");
    for (d, before) in digests.iter().zip(before) {
        let gets = upstream.count_requests("GET", &format!("/manifests/{d}")) - before;
        assert_eq!(
            gets, 1,
            "{d}: {gets} upstream GETs for {clients} clients on 3 replicas"
        );
    }
    no_leases_left(ceph, &bucket);
}

#[test]
fn an_eviction_asked_of_a_replica_weighs_the_whole_bucket_and_takes_the_least_recently_pulled() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("evict");
    let upstream = Upstream::start();
    let older = upstream.push_oci(
        &LocalImage::generate_for(&["1M"], "linux/amd64"),
        REPO,
        "old",
    );
    let newer = upstream.push_oci(
        &LocalImage::generate_for(&["1M"], "linux/amd64"),
        REPO,
        "new",
    );
    let replicas: Vec<Server> = (0..3)
        .map(|_| {
            let mut options = replica_options(&upstream.url(), ceph, &bucket);
            // A bound that never triggers by itself; its grace lets the images go at once.
            options
                .extra_yaml
                .push_str("maxCacheSize: 1TiB\nevictionGrace: 1s\n");
            Server::start_with(options)
        })
        .collect();
    assert_eq!(
        pull_over_http(replicas[0].port, &older),
        Vec::<String>::new()
    );
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        pull_over_http(replicas[1].port, &newer),
        Vec::<String>::new()
    );
    for r in &replicas {
        r.settle();
    }
    thread::sleep(Duration::from_millis(1500));

    // The replica that pulled nothing sees only the bucket: room for the newer image alone.
    let room: u64 = newer.platforms[0].layer_sizes.iter().sum::<u64>() + 64 * 1024;
    let path = format!("/cmd/prune?type=size&size={room}");
    let r = http::request(replicas[2].port, "DELETE", &path, &[]).expect("admin eviction");
    assert_eq!(r.status, 200, "{}\n{}", r.summary(), replicas[2].log_tail());
    let gone: Vec<String> = older.platforms[0].blobs();
    let kept: Vec<String> = newer.platforms[0].blobs();
    assert_eq!(
        keys_of(ceph, &bucket, "blobs/", &gone),
        Vec::<String>::new(),
        "{}",
        r.text()
    );
    assert_eq!(
        keys_of(ceph, &bucket, "blobs/", &kept).len(),
        kept.len(),
        "{}",
        r.text()
    );
    let manifests = |tree: &support::ImageTree| {
        let digests = vec![tree.top.clone(), tree.platforms[0].manifest.clone()];
        let mut k = keys_of(ceph, &bucket, "img/", &digests);
        k.extend(keys_of(ceph, &bucket, "fat/", &digests));
        k
    };
    assert_eq!(manifests(&older), Vec::<String>::new(), "{}", r.text());
    assert!(!manifests(&newer).is_empty(), "{}", r.text());
    no_leases_left(ceph, &bucket);
}

#[test]
fn a_fresh_replica_serves_everything_the_fleet_cached_with_the_upstream_stopped() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("fresh");
    let mut upstream = Upstream::start();
    let image = LocalImage::generate_for(&["1M", "512K"], "linux/amd64,linux/arm64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let first = Server::start_with(replica_options(&upstream.url(), ceph, &bucket));
    let copy = SkopeoDir::new();
    let out = copy.copy_all(&first.in_path_ref(REPO, "v1"));
    assert!(out.success(), "{out}\n{}", first.log_tail());
    first.settle();
    upstream.stop();

    let fresh = Server::start_with(replica_options(&upstream.url(), ceph, &bucket));
    let again = SkopeoDir::new();
    let out = again.copy_all(&fresh.in_path_ref(REPO, "v1"));
    assert!(out.success(), "{out}\n{}", fresh.log_tail());
    again.assert_matches(&tree);
    assert!(
        fresh.cached_blobs().is_empty(),
        "the fresh replica kept blobs on its own disk: {:?}",
        fresh.cached_blobs()
    );
}

/// The bucket's keys under `prefix` that name one of `digests` (`sha256:...`).
fn keys_of(ceph: &Ceph, bucket: &str, prefix: &str, digests: &[String]) -> Vec<String> {
    let wanted: Vec<String> = digests
        .iter()
        .map(|d| format!("{prefix}{}", support::hex_of(d)))
        .collect();
    ceph.keys(bucket, prefix)
        .into_iter()
        .filter(|k| wanted.contains(k))
        .collect()
}

#[test]
fn a_prune_on_one_replica_takes_the_fleets_lease_and_leaves_every_manifest_in_the_bucket_whole() {
    const OTHER: &str = "fleet/other";
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("prune");
    let upstream = Upstream::start();
    let kept = upstream.push_oci(
        &LocalImage::generate_for(&["1M", "512K"], "linux/amd64"),
        REPO,
        "v1",
    );
    let gone = upstream.push_oci(
        &LocalImage::generate_for(&["768K"], "linux/amd64"),
        OTHER,
        "v1",
    );
    let replicas = start_replicas(3, &upstream.url(), ceph, &bucket);
    assert_eq!(
        pull_over_http(replicas[0].port, &kept),
        Vec::<String>::new()
    );
    assert_eq!(
        pull_repo_over_http(replicas[1].port, OTHER, &gone),
        Vec::<String>::new()
    );
    for r in &replicas {
        r.settle();
    }
    let kept_manifests: Vec<String> = std::iter::once(kept.top.clone())
        .chain(kept.platforms.iter().map(|p| p.manifest.clone()))
        .collect();
    let gone_manifests: Vec<String> = std::iter::once(gone.top.clone())
        .chain(gone.platforms.iter().map(|p| p.manifest.clone()))
        .collect();
    let kept_blobs: Vec<String> = kept.blob_digests().into_iter().collect();
    let gone_blobs: Vec<String> = gone
        .blob_digests()
        .into_iter()
        .filter(|b| !kept_blobs.contains(b))
        .collect();
    let manifest_keys = |digests: &[String]| {
        let mut k = keys_of(ceph, &bucket, "img/", digests);
        k.extend(keys_of(ceph, &bucket, "fat/", digests));
        k
    };
    assert_eq!(manifest_keys(&gone_manifests).len(), gone_manifests.len());

    // Another replica holds the prune lease: refused with its name, nothing deleted.
    let lease = tempfile::NamedTempFile::new().expect("lease file");
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    std::fs::write(
        lease.path(),
        format!("{{\"holder\":\"replica-elsewhere\",\"expires\":{far}}}"),
    )
    .expect("write lease");
    let lease_key = "leases/prune/00000000000000000000";
    ceph.put(&bucket, lease_key, lease.path());
    let prune = format!("/cmd/prune?type=pattern&expr={OTHER}");
    let r = http::request(replicas[2].port, "DELETE", &prune, &[]).expect("admin prune");
    assert_eq!(r.status, 409, "{}", r.summary());
    assert!(r.text().contains("replica-elsewhere"), "{}", r.summary());
    assert_eq!(manifest_keys(&gone_manifests).len(), gone_manifests.len());
    ceph.delete(&bucket, lease_key);

    // A replica that never pulled either image prunes while another serves the kept one.
    let serving = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let server = {
        let (serving, kept, port) = (serving.clone(), kept.clone(), replicas[0].port);
        thread::spawn(move || {
            let mut failures = Vec::new();
            let mut rounds = 0;
            while serving.load(std::sync::atomic::Ordering::SeqCst) && rounds < 200 {
                failures.extend(pull_over_http(port, &kept));
                rounds += 1;
            }
            (rounds, failures)
        })
    };
    let r = http::request(replicas[2].port, "DELETE", &prune, &[]).expect("admin prune");
    serving.store(false, std::sync::atomic::Ordering::SeqCst);
    let (rounds, failures) = server.join().expect("serving thread");
    assert_eq!(r.status, 200, "{}\n{}", r.summary(), replicas[2].log_tail());
    assert!(rounds > 0 && failures.is_empty(), "{failures:?}");
    let report = r.text();
    for b in &gone_blobs {
        assert!(
            report.contains(b.as_str()),
            "{b} not in the report:\n{report}"
        );
    }

    assert_eq!(manifest_keys(&gone_manifests), Vec::<String>::new());
    assert_eq!(
        keys_of(ceph, &bucket, "blobs/", &gone_blobs),
        Vec::<String>::new()
    );
    // Every manifest left in the bucket is whole.
    assert_eq!(manifest_keys(&kept_manifests).len(), kept_manifests.len());
    assert_eq!(
        keys_of(ceph, &bucket, "blobs/", &kept_blobs).len(),
        kept_blobs.len()
    );
    no_leases_left(ceph, &bucket);

    // Until its next sync, the replica that had cached the pruned image counts its blobs
    // stored: asked for one, it finds the object gone and fetches it again, whole.
    let refetched = &gone_blobs[0];
    let path = format!("/v2/{}/{OTHER}/blobs/{refetched}", support::UPSTREAM_NAME);
    let r = http::get(replicas[1].port, &path);
    assert_eq!(r.status, 200, "{}\n{}", r.summary(), replicas[1].log_tail());
    assert_eq!(
        format!("sha256:{}", support::sha256_hex(&r.body)),
        *refetched,
        "a pruned blob asked of a replica that still counted it stored"
    );

    // The replica that had cached the pruned image drops it within the sync interval...
    let listed = |port: u16| {
        http::request(port, "GET", "/cmd/manifest/list", &[])
            .map(|r| r.text())
            .unwrap_or_default()
    };
    assert!(listed(replicas[1].port).contains(OTHER));
    wait_for(
        "the pruned image to leave the other replica's index",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || (!listed(replicas[1].port).contains(OTHER)).then_some(()),
    );
    // ...and pulls it again whole, from the upstream, though it held its blobs as stored.
    assert_eq!(
        pull_repo_over_http(replicas[1].port, OTHER, &gone),
        Vec::<String>::new()
    );
    for b in &gone_blobs {
        assert_eq!(
            upstream.count_requests("GET", &format!("/blobs/{b}")),
            2,
            "{b}"
        );
    }
}

#[test]
fn a_replica_finds_in_the_bucket_what_another_cached_after_it_started() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("later");
    let mut upstream = Upstream::start();
    let image = LocalImage::generate_for(&["1M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let replicas = start_replicas(2, &upstream.url(), ceph, &bucket);
    let failures = pull_over_http(replicas[0].port, &tree);
    assert!(
        failures.is_empty(),
        "{failures:?}\n{}",
        replicas[0].log_tail()
    );
    replicas[0].settle();
    upstream.stop();
    // Started before the image was cached: its miss looks in the bucket, not the upstream.
    let failures = pull_over_http(replicas[1].port, &tree);
    assert!(
        failures.is_empty(),
        "{failures:?}\n{}",
        replicas[1].log_tail()
    );
}

#[test]
fn a_tag_moved_through_one_replica_reaches_the_others_within_the_sync_interval() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("tagmove");
    let upstream = Upstream::start();
    let first = LocalImage::generate_for(&["256K"], "linux/amd64");
    let old = upstream.push_oci(&first, REPO, "v1");
    let mut watcher_options = replica_options(&upstream.url(), ceph, &bucket);
    // This replica checks its tags upstream; the other never does, so it can only learn
    // of the move from the bucket.
    watcher_options
        .extra_yaml
        .push_str("tagFreshness:\n  - match: \".*\"\n    ttl: 1s\n");
    let watcher = Server::start_with(watcher_options);
    let other = Server::start_with(replica_options(&upstream.url(), ceph, &bucket));
    let path = watcher.manifest_path(REPO, "v1");
    for server in [&watcher, &other] {
        let r = http::get_manifest(server.port, &path);
        assert_eq!(r.header("Docker-Content-Digest"), Some(old.top.as_str()));
    }

    let second = LocalImage::generate_for(&["256K"], "linux/amd64");
    let new = upstream.push_oci(&second, REPO, "v1");
    assert_ne!(old.top, new.top);
    wait_for(
        "the watching replica to see the tag move upstream",
        Duration::from_secs(20),
        Duration::from_millis(500),
        || {
            let r = http::get_manifest(watcher.port, &path);
            (r.header("Docker-Content-Digest") == Some(new.top.as_str())).then_some(())
        },
    );
    // The documented bound is one sync interval (10 s) plus a look at the bucket.
    wait_for(
        "the other replica to follow the moved tag",
        Duration::from_secs(25),
        Duration::from_millis(500),
        || {
            let r = http::get_manifest(other.port, &path);
            (r.header("Docker-Content-Digest") == Some(new.top.as_str())).then_some(())
        },
    );
}

#[test]
fn skopeo_containerd_and_docker_pull_through_any_replica() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("clients");
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["1M", "256K"], "linux/amd64,linux/arm64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let replicas = start_replicas(3, &upstream.url(), ceph, &bucket);

    let copy = SkopeoDir::new();
    let out = copy.copy_all(&replicas[0].in_path_ref(REPO, "v1"));
    assert!(out.success(), "{out}\n{}", replicas[0].log_tail());
    copy.assert_matches(&tree);

    let containerd = Containerd::start();
    for replica in &replicas[1..] {
        containerd.set_default_mirror(&replica.addr());
        let reference = format!("{}/{REPO}:v1", support::UPSTREAM_NAME);
        let out = containerd.pull(&reference, Some("linux/arm64"));
        assert!(out.success(), "{out}\n{}", replica.log_tail());
        assert_eq!(containerd.image_digest(&reference), tree.top);
    }
    let reference = replicas[2].in_path_ref(REPO, "v1");
    let (image, out) = DockerImage::pull(&reference);
    assert!(out.success(), "{out}\n{}", replicas[2].log_tail());
    // Docker's image ID is the digest of the (amd64) image config.
    assert_eq!(
        image.inspect()["Id"].as_str(),
        Some(tree.platform("amd64").config.as_str())
    );
    for blob in tree.blob_digests() {
        let gets = upstream.count_requests("GET", &format!("/blobs/{blob}"));
        assert!(gets <= 1, "{blob} was fetched {gets} times");
    }
}

#[test]
fn wrong_credentials_a_missing_bucket_or_a_store_down_stop_the_server_at_start_with_a_clear_error()
{
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("creds");
    let upstream = Upstream::start();

    let out = serve_expecting_failure(
        &upstream.url(),
        &storage_yaml(ceph, &bucket, ACCESS_KEY, "not-the-secret"),
    );
    assert!(
        out.stderr.contains("the credentials were refused") && out.stderr.contains(&bucket),
        "{out}"
    );

    let out = serve_expecting_failure(
        &upstream.url(),
        &storage_yaml(ceph, "no-such-bucket-here", ACCESS_KEY, SECRET_KEY),
    );
    assert!(
        out.stderr.contains("the bucket does not exist")
            && out.stderr.contains("no-such-bucket-here"),
        "{out}"
    );

    // Nothing listens there: the store is down at start.
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let out = serve_expecting_failure(
        &upstream.url(),
        &storage_yaml(ceph, &bucket, ACCESS_KEY, SECRET_KEY).replace(&ceph.endpoint(), &closed),
    );
    assert!(
        out.stderr.contains("storage.s3: cannot use") && out.stderr.contains(&closed),
        "{out}"
    );
}

#[test]
fn a_replica_killed_mid_download_is_taken_over_and_the_pull_completes() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("takeover");
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["2M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let (layer, size) = tree.largest_layer();
    // About four seconds per download: long enough to kill the holder in the middle.
    let relay = Relay::start(upstream.port, 512 * 1024);
    let mut replicas = start_replicas(2, &relay.url(), ceph, &bucket);
    let path = replicas[0].blob_path(REPO, &layer);

    let holder_port = replicas[0].port;
    let holder_path = path.clone();
    // Its client's connection dies with the holder; only the other replica's answer counts.
    let doomed = thread::spawn(move || http::request(holder_port, "GET", &holder_path, &[]));
    wait_for(
        "the first replica to hold the blob's lease",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || (!ceph.keys(&bucket, "leases/").is_empty()).then_some(()),
    );
    replicas[0].crash();
    let _ = doomed.join();

    let r = http::request(replicas[1].port, "GET", &path, &[]).expect("GET through the survivor");
    assert_eq!(r.status, 200, "{}\n{}", r.summary(), replicas[1].log_tail());
    assert_eq!(r.body.len() as u64, size);
    assert_eq!(format!("sha256:{}", support::sha256_hex(&r.body)), layer);
    assert!(
        replicas[1].log_text().contains("expired; taking it over"),
        "{}",
        replicas[1].log_tail()
    );
    replicas[1].settle();
    let key = format!("blobs/{}", support::hex_of(&layer));
    let stored = ceph.get(&bucket, &key).expect("the blob is in the bucket");
    assert_eq!(format!("sha256:{}", support::sha256_hex(&stored)), layer);
    no_leases_left(ceph, &bucket);
}

#[test]
fn a_store_that_goes_down_gives_503_with_retry_after_and_leaves_nothing_half_written() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("down");
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["1M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let (layer, _) = tree.largest_layer();
    let link = Relay::start(ceph.port, 0);
    let mut options = replica_options(&upstream.url(), ceph, &bucket);
    options.extra_yaml = options.extra_yaml.replace(&ceph.endpoint(), &link.url());
    let mut server = Server::start_with(options.clone());

    drop(link);
    let path = server.blob_path(REPO, &layer);
    let r = http::request(server.port, "GET", &path, &[]).expect("GET with the store down");
    let tag = http::get_manifest(server.port, &server.manifest_path(REPO, "v1"));
    for r in [&r, &tag] {
        assert_eq!(r.status, 503, "{}\n{}", r.summary(), server.log_tail());
        assert!(
            r.header("Retry-After")
                .is_some_and(|v| v.parse::<u32>().is_ok()),
            "{}",
            r.summary()
        );
        assert_eq!(
            r.oci_error_codes(),
            Some(vec!["UNAVAILABLE".to_string()]),
            "{}",
            r.summary()
        );
    }
    server.settle();
    for prefix in ["blobs/", "img/", "fat/", "leases/"] {
        assert!(
            ceph.keys(&bucket, prefix).is_empty(),
            "{prefix}: {:?}",
            ceph.keys(&bucket, prefix)
        );
    }
    assert!(
        support::checks::temp_files(server.cache_dir()).is_empty(),
        "{:?}",
        support::checks::temp_files(server.cache_dir())
    );

    // The store is back (behind a new link): the same request succeeds.
    let link = Relay::start(ceph.port, 0);
    options.extra_yaml =
        storage_yaml(ceph, &bucket, ACCESS_KEY, SECRET_KEY).replace(&ceph.endpoint(), &link.url());
    server.restart_with(options);
    let r = http::request(server.port, "GET", &path, &[]).expect("GET with the store back");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(format!("sha256:{}", support::sha256_hex(&r.body)), layer);
    let tag = http::get_manifest(server.port, &server.manifest_path(REPO, "v1"));
    assert_eq!(tag.header("Docker-Content-Digest"), Some(tree.top.as_str()));
}

#[test]
fn a_slow_store_from_the_start_serves_every_pull_whole_and_stores_every_blob() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("slow");
    let upstream = Upstream::start();
    let tree = upstream.push_oci(
        &LocalImage::generate_for(&["1M"], "linux/amd64"),
        REPO,
        "v1",
    );
    // Every byte to and from the store crawls at 256 KiB/s, from the start on.
    let link = Relay::start(ceph.port, 256 * 1024);
    let mut options = replica_options(&upstream.url(), ceph, &bucket);
    options.extra_yaml = options.extra_yaml.replace(&ceph.endpoint(), &link.url());
    let server = Server::start_with(options);
    assert_eq!(pull_over_http(server.port, &tree), Vec::<String>::new());
    server.settle();
    let (layer, size) = tree.largest_layer();
    let key = format!("blobs/{}", support::hex_of(&layer));
    let stored = ceph
        .get(&bucket, &key)
        .unwrap_or_else(|| panic!("{key} not stored"));
    assert_eq!(stored.len() as u64, size);
    assert_eq!(format!("sha256:{}", support::sha256_hex(&stored)), layer);
    no_leases_left(ceph, &bucket);
}

#[test]
fn a_client_of_another_replica_gets_bytes_before_the_holder_has_stored_the_blob() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("follow");
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["3M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let (layer, size) = tree.largest_layer();
    // About six seconds of download at the holder.
    let relay = Relay::start(upstream.port, 512 * 1024);
    let holder = Server::start_with(advertised_replica_options(&relay.url(), ceph, &bucket));
    let other = Server::start_with(advertised_replica_options(&relay.url(), ceph, &bucket));
    let path = holder.blob_path(REPO, &layer);

    let (port, p) = (holder.port, path.clone());
    let first = thread::spawn(move || http::request(port, "GET", &p, &[]));
    wait_for(
        "the first replica to hold the blob's lease",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || (!ceph.keys(&bucket, "leases/").is_empty()).then_some(()),
    );
    let mut stored_at_first_byte = None;
    let mut body = Vec::new();
    let (status, _) = http::request_streaming(other.port, "GET", &path, &[], |chunk| {
        if stored_at_first_byte.is_none() && !chunk.is_empty() {
            stored_at_first_byte = Some(!ceph.keys(&bucket, "blobs/").is_empty());
        }
        body.extend_from_slice(chunk);
    })
    .expect("GET through the other replica");
    assert_eq!(status, 200, "{}", other.log_tail());
    assert_eq!(body.len() as u64, size);
    assert_eq!(format!("sha256:{}", support::sha256_hex(&body)), layer);
    assert_eq!(
        stored_at_first_byte,
        Some(false),
        "the other replica's client got its first byte only once the blob was stored"
    );
    assert!(
        other.log_text().contains("following it"),
        "{}",
        other.log_tail()
    );
    let r = first.join().expect("client of the holder").expect("GET");
    assert_eq!(format!("sha256:{}", support::sha256_hex(&r.body)), layer);
    other.settle();
    holder.settle();
    assert_eq!(
        upstream.count_requests("GET", &format!("/blobs/{layer}")),
        1,
        "the blob was fetched more than once"
    );
}

#[test]
fn the_internal_route_answers_only_the_fleet_secret() {
    let ceph = Ceph::shared();
    let bucket = ceph.bucket("route");
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["256K"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let (layer, _) = tree.largest_layer();
    let replica = Server::start_with(advertised_replica_options(&upstream.url(), ceph, &bucket));
    let closed = Server::start_with(replica_options(&upstream.url(), ceph, &bucket));
    let r = http::request(replica.port, "GET", &replica.blob_path(REPO, &layer), &[]).unwrap();
    assert_eq!(r.status, 200);
    replica.settle();

    let route = format!("/internal/fleet/blobs/{layer}");
    let right = format!("Bearer {}", support::fleet::FLEET_SECRET);
    let r = http::request(replica.port, "GET", &route, &[]).unwrap();
    assert_eq!(r.status, 401, "{}", r.summary());
    let r = http::request(
        replica.port,
        "GET",
        &route,
        &[("Authorization", "Bearer not-the-fleet-secret")],
    )
    .unwrap();
    assert_eq!(r.status, 401, "{}", r.summary());
    let r = http::request(replica.port, "GET", &route, &[("Authorization", &right)]).unwrap();
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(format!("sha256:{}", support::sha256_hex(&r.body)), layer);
    // Nothing it does not have: the route never starts a download.
    let unknown = format!("/internal/fleet/blobs/sha256:{}", "0".repeat(64));
    let r = http::request(replica.port, "GET", &unknown, &[("Authorization", &right)]).unwrap();
    assert_eq!(r.status, 404, "{}", r.summary());
    // A replica without a fleet secret keeps the route closed.
    let r = http::request(closed.port, "GET", &route, &[("Authorization", &right)]).unwrap();
    assert_eq!(r.status, 404, "{}", r.summary());
}
