//! Blobs that leave the store behind the engine's back (a file removed by hand, an object
//! another replica of a shared store pruned): the next reader gets the same bytes fetched
//! again, once for all readers, from the offset it asked; without an upstream to fetch from,
//! a clear "not cached" before any byte is promised.

mod support;

use std::time::Duration;

use actors::config::EngineConfig;
use actors::oci::{Digest, ImageRef, ManifestKind};
use actors::store::FsStore;
use actors::{Engine, EngineError};
use futures_util::StreamExt;
use support::cache::{image, write};
use support::engine_with;
use support::fake::{Body, Fake, BLOB, CONFIG};

/// The bytes `start..` of `digest` as a reader streams them, for at most 10 s.
async fn read_from(e: &Engine, digest: &Digest, start: u64) -> Result<Vec<u8>, EngineError> {
    let repo = ImageRef::parse("fake.test/a/b:right").unwrap().repo;
    let read = async {
        let reader = e.blob("fake.test", &repo, digest).await?;
        let size = reader.size();
        let mut body = Box::pin(reader.stream(start, size).await?);
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk.expect("the body broke"));
        }
        Ok(out)
    };
    actix_web::rt::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("no answer within 10 s")
}

fn blob_file(dir: &std::path::Path, digest: &Digest) -> std::path::PathBuf {
    dir.join("blobs").join(digest.hex())
}

/// Waits until `digest` is stored: a reader may finish once the bytes are verified, before
/// they are committed.
async fn landed(e: &Engine, digest: &Digest) {
    let repo = ImageRef::parse("fake.test/a/b:right").unwrap().repo;
    let reader = e.blob("fake.test", &repo, digest).await.unwrap();
    actix_web::rt::time::timeout(Duration::from_secs(10), reader.landed())
        .await
        .expect("not stored within 10 s")
        .unwrap();
}

#[actix_web::test]
async fn a_stored_blob_removed_from_the_store_is_fetched_again_once_for_all_its_readers() {
    let fake = Fake::start(Body::Right);
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with(dir.path(), fake.endpoint(), |_| {}).await;
    let digest = Digest::of(BLOB);
    assert_eq!(read_from(&e, &digest, 0).await.unwrap(), BLOB);
    landed(&e, &digest).await;
    let fetched = fake.blob_requests();
    assert_eq!(fetched, 1);

    std::fs::remove_file(blob_file(dir.path(), &digest)).unwrap();
    // Three readers at once, from different offsets: one new download serves them all.
    let (a, b, c) = futures_util::join!(
        read_from(&e, &digest, 0),
        read_from(&e, &digest, 7),
        read_from(&e, &digest, 40),
    );
    assert_eq!(a.unwrap(), BLOB);
    assert_eq!(b.unwrap(), &BLOB[7..]);
    assert_eq!(c.unwrap(), &BLOB[40..]);
    assert_eq!(
        fake.blob_requests(),
        fetched + 1,
        "not exactly one new download"
    );
    landed(&e, &digest).await;
    let stored = std::fs::read(blob_file(dir.path(), &digest)).unwrap();
    assert_eq!(stored, BLOB, "the blob is not stored again");

    // Stored again, it is a cache hit like any other.
    assert_eq!(read_from(&e, &digest, 0).await.unwrap(), BLOB);
    assert_eq!(fake.blob_requests(), fetched + 1);
    let listed = e.blobs().await.unwrap();
    let entry = listed.iter().find(|b| b.digest == digest).expect("listed");
    assert_eq!(entry.size, Some(BLOB.len() as u64));
}

#[actix_web::test]
async fn an_air_gapped_engine_answers_not_cached_for_a_stored_blob_removed_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let digest = Digest::of(BLOB);
    store.write_blob(&digest, BLOB).unwrap();
    store.write_blob(&Digest::of(CONFIG), CONFIG).unwrap();
    let manifest = image(CONFIG, &[BLOB]);
    write(
        &store,
        ManifestKind::OciManifest,
        "fake.test/a/b:right",
        &manifest,
    );
    drop(store);
    let mut cfg = EngineConfig::new(dir.path().to_path_buf());
    cfg.air_gapped = true;
    let e = Engine::start(cfg).await.unwrap();
    // The first use checks a blob found at start; from then on it is a plain hit.
    assert_eq!(read_from(&e, &digest, 0).await.unwrap(), BLOB);
    assert_eq!(read_from(&e, &digest, 3).await.unwrap(), &BLOB[3..]);

    std::fs::remove_file(blob_file(dir.path(), &digest)).unwrap();
    for attempt in ["first", "second"] {
        let err = read_from(&e, &digest, 0).await.unwrap_err();
        assert!(
            matches!(err, EngineError::NotCached(_)),
            "{attempt} request after the removal: {err}"
        );
    }
    let listed = e.blobs().await.unwrap();
    assert!(
        listed.iter().all(|b| b.digest != digest),
        "the removed blob is still listed: {listed:?}"
    );
    // The other blobs are untouched.
    assert_eq!(read_from(&e, &Digest::of(CONFIG), 0).await.unwrap(), CONFIG);
}
