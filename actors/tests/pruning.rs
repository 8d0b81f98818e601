//! Pruning a running engine through its actors: the plan, the dry run, list expansion, shared
//! blobs, a manifest cached again after it was pruned, and what is asked for while a prune
//! deletes it (the deletions run off the actors' threads, in an order that keeps it).

mod support;

use std::sync::Arc;
use std::time::Duration;

use actors::config::EngineConfig;
use actors::oci::{Digest, ImageRef, ManifestKind};
use actors::prune::{parse_patterns, Selector};
use actors::store::{
    BlobFile, BlobWriter, FsStore, LoadedCache, ManifestHolder, Space, Store, StoreFuture,
};
use actors::Engine;
use support::cache::{amd64_list, image, write};
use support::fake::{manifest_body, Body, Fake, BLOB};

fn pattern(p: &str) -> Selector {
    Selector {
        patterns: Some(parse_patterns(p).unwrap()),
        ..Selector::default()
    }
}

#[actix_web::test]
async fn prune_takes_list_children_and_only_unshared_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let shared: &[u8] = b"shared layer";
    let one: &[u8] = b"layer one";
    let two: &[u8] = b"layer two";
    let cfg1: &[u8] = b"{\"a\":1}";
    let cfg2: &[u8] = b"{\"b\":2}";
    for b in [shared, one, two, cfg1, cfg2] {
        store.write_blob(&Digest::of(b), b).unwrap();
    }
    let m1 = image(cfg1, &[shared, one]);
    let m2 = image(cfg2, &[shared, two]);
    let d1 = write(&store, ManifestKind::OciManifest, "reg.test/a/one@x", &m1);
    let d2 = write(&store, ManifestKind::OciManifest, "reg.test/a/two:v1", &m2);
    let index = amd64_list(&m1);
    let di = write(&store, ManifestKind::OciIndex, "reg.test/a/one:v1", &index);

    let mut cfg = EngineConfig::new(dir.path().to_path_buf());
    cfg.air_gapped = true;
    let engine = Engine::start(cfg).await.unwrap();

    // Dry run: the list, its image manifest, and the blobs only that image names.
    let report = engine
        .prune(pattern("a/one:v1"), None, true, "test".into())
        .await
        .unwrap();
    let chosen: Vec<Digest> = report.manifests.iter().map(|m| m.digest.clone()).collect();
    assert_eq!(chosen, vec![di.clone(), d1.clone()]);
    let mut blobs: Vec<Digest> = report.blobs.iter().map(|(d, _)| d.clone()).collect();
    blobs.sort();
    let mut expected = vec![Digest::of(one), Digest::of(cfg1)];
    expected.sort();
    assert_eq!(blobs, expected);
    assert!(
        store.blob_path(&Digest::of(one)).is_file(),
        "a dry run deleted"
    );
    assert_eq!(engine.manifests().await.unwrap().len(), 3);

    // For real: the shared layer stays for `two`.
    let report = engine
        .prune(pattern("a/one:v1"), None, false, "test".into())
        .await
        .unwrap();
    assert_eq!(report.manifests.len(), 2);
    assert_eq!(report.blobs.len(), 2, "{report:?}");
    assert!(!store.blob_path(&Digest::of(one)).exists());
    assert!(store.blob_path(&Digest::of(shared)).is_file());
    assert!(!dir.path().join("fat").join(di.hex()).exists());
    let left: Vec<Digest> = engine
        .manifests()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.manifest.digest.clone())
        .collect();
    assert_eq!(left, vec![d2.clone()]);
    let by_tag = ImageRef::parse("reg.test/a/one:v1").unwrap();
    assert!(engine.manifest(&by_tag).await.unwrap_err().is_not_found());
    let refs = engine.blobs().await.unwrap();
    let shared_refs = refs
        .iter()
        .find(|b| b.digest == Digest::of(shared))
        .unwrap();
    assert_eq!(shared_refs.refs, 1);

    // The last image goes, and the shared layer with it; a count of 1 takes one match.
    let report = engine
        .prune(pattern("reg.test"), Some(1), false, "test".into())
        .await
        .unwrap();
    assert_eq!(report.manifests.len(), 1);
    assert!(!store.blob_path(&Digest::of(shared)).exists());
    // Pending writes (pull times are flushed in batches) never bring a pruned file back.
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert!(!dir.path().join("img").join(d2.hex()).exists());
    assert!(engine.blobs().await.unwrap().is_empty());
}

/// A filesystem store whose deletions take a while, as on a slow or busy disk: long enough for
/// requests to arrive while a prune is deleting.
#[derive(Debug)]
struct SlowDeletes(FsStore);

const DELETE_TAKES: Duration = Duration::from_millis(400);

impl Store for SlowDeletes {
    fn location(&self) -> String {
        self.0.location()
    }
    fn load_manifests(&self) -> StoreFuture<'_, LoadedCache> {
        Store::load_manifests(&self.0)
    }
    fn write_manifests(&self, holders: Vec<ManifestHolder>) -> StoreFuture<'_, ()> {
        self.0.write_manifests(holders)
    }
    fn remove_manifest(&self, digest: Digest) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            actix_web::rt::time::sleep(DELETE_TAKES).await;
            Store::remove_manifest(&self.0, digest).await
        })
    }
    fn write_referrers(&self, subject: Digest, index: Vec<u8>) -> StoreFuture<'_, ()> {
        Store::write_referrers(&self.0, subject, index)
    }
    fn read_referrers(&self, subject: Digest) -> StoreFuture<'_, Option<Vec<u8>>> {
        Store::read_referrers(&self.0, subject)
    }
    fn list_blobs(&self) -> StoreFuture<'_, Vec<(Digest, u64)>> {
        Store::list_blobs(&self.0)
    }
    fn create_blob(&self) -> StoreFuture<'_, BlobWriter> {
        self.0.create_blob()
    }
    fn open_blob(&self, digest: Digest, offset: u64) -> StoreFuture<'_, BlobFile> {
        self.0.open_blob(digest, offset)
    }
    fn check_blob(&self, digest: Digest) -> StoreFuture<'_, Option<(Digest, u64)>> {
        self.0.check_blob(digest)
    }
    fn remove_blob(&self, digest: Digest) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            actix_web::rt::time::sleep(DELETE_TAKES).await;
            Store::remove_blob(&self.0, digest).await
        })
    }
    fn space(&self) -> StoreFuture<'_, Option<Space>> {
        self.0.space()
    }
}

#[actix_web::test]
async fn what_is_asked_for_while_a_prune_deletes_it_comes_back_and_stays() {
    let fake = Fake::start(Body::Right);
    let dir = tempfile::tempdir().unwrap();
    let store = SlowDeletes(FsStore::open(dir.path()).unwrap());
    let cfg = support::config(dir.path(), fake.endpoint());
    let engine = Engine::with_store(cfg, Arc::new(store)).await.unwrap();
    let image = ImageRef::parse("fake.test/a/b:right").unwrap();
    let blob = Digest::of(BLOB);
    engine.manifest(&image).await.unwrap();
    let (size, _) = engine
        .blob("fake.test", &image.repo, &blob)
        .await
        .unwrap()
        .landed()
        .await
        .unwrap();
    assert_eq!(size, BLOB.len() as u64);
    let fetched = fake.blob_requests();

    // The prune deletes slowly; meanwhile the image is asked for again, and its prefetch
    // opens the blob being deleted.
    let prune = engine.prune(pattern("fake.test"), None, false, "test".into());
    let again = async {
        actix_web::rt::time::sleep(DELETE_TAKES / 4).await;
        engine.manifest(&image).await
    };
    let (report, m) = futures_util::future::join(prune, again).await;
    let report = report.unwrap();
    assert!(
        !report.manifests.is_empty(),
        "nothing was pruned: {report:?}"
    );
    m.unwrap();

    // Whatever the order, what was asked for last is in the cache, on disk and in the index,
    // without anyone asking for the blob again.
    let manifest = Digest::of(manifest_body(Some(BLOB.len() as u64)).as_bytes());
    let blob_file = dir.path().join("blobs").join(blob.hex());
    for _ in 0..50 {
        if blob_file.is_file() && fake.blob_requests() > fetched {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    actix_web::rt::time::sleep(DELETE_TAKES * 2).await;
    assert!(
        dir.path().join("img").join(manifest.hex()).is_file(),
        "the manifest fetched again during the prune was deleted by it"
    );
    assert!(engine.cached_manifest(&image).await.unwrap().is_some());
    assert_eq!(
        std::fs::read(&blob_file).ok().as_deref(),
        Some(BLOB),
        "the blob the manifest's prefetch asked for during the prune is not in the cache"
    );
    assert!(
        fake.blob_requests() <= fetched + 2,
        "the blob was fetched {} more times",
        fake.blob_requests() - fetched
    );
}

#[actix_web::test]
async fn a_prune_removes_stray_blobs_but_not_a_download_nor_one_just_landed() {
    let fake = Fake::start_slow(Body::Right, Duration::from_millis(1500));
    let dir = tempfile::tempdir().unwrap();
    // Left by an older cache: a blob no manifest names.
    let stray: &[u8] = b"a blob no cached manifest names";
    let stray_d = Digest::of(stray);
    FsStore::open(dir.path())
        .unwrap()
        .write_blob(&stray_d, stray)
        .unwrap();
    let engine = support::engine_with(dir.path(), fake.endpoint(), |_| {}).await;
    let blob = Digest::of(BLOB);
    let repo = ImageRef::parse("fake.test/a/b:right").unwrap().repo;

    // A client asks for a blob by digest alone; the upstream is slow to answer.
    let download = engine.blob("fake.test", &repo, &blob);
    let prune_meanwhile = async {
        for _ in 0..100 {
            let fetching = engine
                .blobs()
                .await
                .unwrap()
                .iter()
                .any(|b| b.digest == blob && b.size.is_none());
            if fetching {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        engine
            .prune(pattern("nothing-matches-this"), None, false, "test".into())
            .await
            .unwrap()
    };
    let (reader, report) = futures_util::future::join(download, prune_meanwhile).await;
    let removed: Vec<&Digest> = report.blobs.iter().map(|(d, _)| d).collect();
    assert_eq!(removed, vec![&stray_d], "{report:?}");
    assert!(!dir.path().join("blobs").join(stray_d.hex()).exists());
    let (size, _) = reader.unwrap().landed().await.unwrap();
    assert_eq!(size, BLOB.len() as u64);

    // Landed a moment ago and named by nothing yet: kept for the grace, dry run or not.
    for dry_run in [true, false] {
        let report = engine
            .prune(
                pattern("nothing-matches-this"),
                None,
                dry_run,
                "test".into(),
            )
            .await
            .unwrap();
        assert!(report.blobs.is_empty(), "{report:?}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("blobs").join(blob.hex())).unwrap(),
        BLOB
    );
}

#[actix_web::test]
async fn a_dry_run_reports_strays_and_pruning_a_subject_takes_its_referrers() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let layer: &[u8] = b"layer";
    let cfg: &[u8] = b"{\"c\":1}";
    let stray: &[u8] = b"stray";
    for b in [layer, cfg, stray] {
        store.write_blob(&Digest::of(b), b).unwrap();
    }
    let m = image(cfg, &[layer]);
    let subject = write(
        &store,
        ManifestKind::OciManifest,
        "reg.test/a/subject:v1",
        &m,
    );
    store.write_referrers(&subject, b"{}").unwrap();
    let referrers = dir.path().join("referrers").join(subject.hex());
    assert!(referrers.is_file());
    let mut cfg_ = EngineConfig::new(dir.path().to_path_buf());
    cfg_.air_gapped = true;
    let engine = Engine::start(cfg_).await.unwrap();

    let report = engine
        .prune(pattern("nothing-matches-this"), None, true, "test".into())
        .await
        .unwrap();
    assert_eq!(
        report.blobs,
        vec![(Digest::of(stray), Some(stray.len() as u64))]
    );
    assert!(dir
        .path()
        .join("blobs")
        .join(Digest::of(stray).hex())
        .exists());

    let report = engine
        .prune(pattern("subject"), None, false, "test".into())
        .await
        .unwrap();
    assert_eq!(report.manifests.len(), 1, "{report:?}");
    let mut removed: Vec<Digest> = report.blobs.iter().map(|(d, _)| d.clone()).collect();
    removed.sort();
    let mut expected = vec![Digest::of(layer), Digest::of(cfg), Digest::of(stray)];
    expected.sort();
    assert_eq!(removed, expected);
    assert!(!referrers.exists(), "the subject's referrers list stayed");
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
        0
    );
}
