//! The engine against an in-process fake upstream: concurrency and failure behaviour that
//! the end-to-end suite can only observe from outside.

mod support;

use std::sync::Arc;
use std::time::Duration;

use actors::oci::{Digest, ImageRef, RepoName};
use actors::Engine;
use futures_util::StreamExt;
use support::engine_with;
use support::fake::{Body, Fake, BLOB};

/// A fake upstream that answers slowly, so that requests overlap.
fn fake_upstream() -> Arc<Fake> {
    Fake::start_slow(Body::Right, Duration::from_millis(300))
}

/// The manifest of every tag these tests ask for.
fn manifest_body() -> String {
    support::fake::manifest_body(Some(BLOB.len() as u64))
}

async fn engine(dir: &std::path::Path, endpoint: String) -> Engine {
    engine_with(dir, endpoint, |_| {}).await
}

/// Waits until the blob is complete, following its download when there is one.
async fn wait_present(e: &Engine, repo: &RepoName, d: &Digest) -> u64 {
    let reader = e.blob("fake.test", repo, d).await.unwrap();
    let landed = actix_web::rt::time::timeout(Duration::from_secs(10), reader.landed());
    match landed.await {
        Ok(Ok((size, _))) => size,
        Ok(Err(err)) => panic!("download failed: {err}"),
        Err(_) => panic!("blob never became present"),
    }
}

#[actix_web::test]
async fn concurrent_manifest_requests_share_one_upstream_fetch() {
    let fake = fake_upstream();
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), fake.endpoint()).await;
    let image = ImageRef::parse("fake.test/a/b:1").unwrap();
    let results = futures_util::future::join_all((0..10).map(|_| e.manifest(&image))).await;
    for r in &results {
        assert_eq!(r.as_ref().unwrap().bytes, manifest_body().as_bytes());
    }
    assert_eq!(fake.manifest_requests(), 1);
    // Served from the cache afterwards.
    e.manifest(&image).await.unwrap();
    assert_eq!(fake.manifest_requests(), 1);
}

#[actix_web::test]
async fn a_cached_image_manifest_prefetches_its_blobs_once() {
    let fake = fake_upstream();
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), fake.endpoint()).await;
    let image = ImageRef::parse("fake.test/a/b:1").unwrap();
    e.manifest(&image).await.unwrap();
    // Clients asking while the prefetch runs join it.
    let d = Digest::of(BLOB);
    let sizes =
        futures_util::future::join_all((0..8).map(|_| wait_present(&e, &image.repo, &d))).await;
    assert!(sizes.iter().all(|s| *s == BLOB.len() as u64));
    assert_eq!(fake.blob_requests(), 1);
    let stored = e.blob("fake.test", &image.repo, &d).await.unwrap();
    assert!(stored.size() == Some(BLOB.len() as u64));
    let on_disk: Vec<u8> = stored
        .stream(0, None)
        .await
        .unwrap()
        .map(|c| c.unwrap().to_vec())
        .concat()
        .await;
    assert_eq!(on_disk, BLOB);
    let file = dir.path().join("blobs").join(d.hex());
    assert_eq!(
        std::fs::read(file).unwrap(),
        BLOB,
        "stored under its digest"
    );
}

#[actix_web::test]
async fn every_waiter_gets_the_failure_and_nobody_hangs() {
    let fake = fake_upstream();
    fake.set_failing(true);
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), fake.endpoint()).await;
    let image = ImageRef::parse("fake.test/a/b:1").unwrap();
    let results = actix_web::rt::time::timeout(
        Duration::from_secs(20),
        futures_util::future::join_all((0..5).map(|_| e.manifest(&image))),
    )
    .await
    .expect("waiters hung");
    for r in results {
        let err = r.unwrap_err().to_string();
        assert!(err.contains("fake.test") && err.contains("500"), "{err}");
    }
    // A failed blob download is reported to its followers and forgotten.
    let d = Digest::of(BLOB);
    let outcome = match e.blob("fake.test", &image.repo, &d).await {
        Err(err) => Err(err),
        Ok(reader) => reader.landed().await.map(|_| ()),
    };
    let err = outcome.expect_err("broken upstream produced a blob");
    assert!(err.to_string().contains("fake.test"), "{err}");
    assert!(std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .next()
        .is_none());
}

#[actix_web::test]
async fn air_gapped_misses_never_reach_the_upstream() {
    let fake = fake_upstream();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = fake.endpoint();
    let e = engine_with(dir.path(), endpoint, |c| c.air_gapped = true).await;
    let image = ImageRef::parse("fake.test/a/b:1").unwrap();
    assert!(e.manifest(&image).await.unwrap_err().is_not_found());
    assert!(e
        .blob("fake.test", &image.repo, &Digest::of(BLOB))
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(fake.manifest_requests(), 0);
    assert_eq!(fake.blob_requests(), 0);
}

#[actix_web::test]
async fn always_pull_latest_refetches_latest_and_serves_the_cache_when_the_upstream_fails() {
    let fake = fake_upstream();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = fake.endpoint();
    let e = engine_with(dir.path(), endpoint, |c| c.always_pull_latest = true).await;
    let latest = ImageRef::parse("fake.test/a/b:latest").unwrap();
    let pinned = ImageRef::parse("fake.test/a/b:1").unwrap();
    e.manifest(&latest).await.unwrap();
    e.manifest(&latest).await.unwrap();
    assert_eq!(fake.manifest_requests(), 2, "latest is fetched every time");
    e.manifest(&pinned).await.unwrap();
    e.manifest(&pinned).await.unwrap();
    assert_eq!(
        fake.manifest_requests(),
        3,
        "other tags come from the cache"
    );
    fake.set_failing(true);
    let stale = e
        .manifest(&latest)
        .await
        .expect("cached latest served when upstream fails");
    assert_eq!(stale.bytes, manifest_body().as_bytes());
}

#[actix_web::test]
async fn blobs_missing_at_start_are_fetched_for_cached_images() {
    let fake = fake_upstream();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = fake.endpoint();
    let image = ImageRef::parse("fake.test/a/b:1").unwrap();
    let d = Digest::of(BLOB);
    {
        let e = engine(dir.path(), endpoint.clone()).await;
        e.manifest(&image).await.unwrap();
        wait_present(&e, &image.repo, &d).await;
    }
    // As after a crash that lost a layer: the manifest is cached, the blob is not.
    std::fs::remove_file(dir.path().join("blobs").join(d.hex())).unwrap();
    let e = engine(dir.path(), endpoint).await;
    let blob = dir.path().join("blobs").join(d.hex());
    for _ in 0..100 {
        if blob.exists() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read(&blob).expect("blob fetched at start"), BLOB);
    assert_eq!(fake.blob_requests(), 2);
    drop(e);
}
