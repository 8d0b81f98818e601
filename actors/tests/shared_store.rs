//! The engine on a store that other processes write too (replicas on one bucket), modelled by
//! a filesystem store that reports manifests "another replica" wrote: a prune keeps the blobs
//! that a manifest written while it ran names.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::oci::{Digest, ImageRef, ManifestKind};
use actors::prune::{parse_patterns, Selector};
use actors::store::{
    now_local, BlobFile, BlobWriter, Claim, FsStore, LoadedCache, ManifestHolder, Space, Store,
    StoreFuture,
};
use actors::Engine;
use support::cache::image;
use support::fake::{Body, Fake, BLOB, CONFIG};

/// A filesystem store shared, as far as the engine knows, with another replica. The other
/// replica writes `theirs` the moment the running prune looks at the store for the second
/// time: after the look that began the prune, before its blobs are deleted.
struct SharedStore {
    fs: FsStore,
    theirs: Mutex<Option<ManifestHolder>>,
    /// A prune holds the store's prune lease.
    pruning: AtomicBool,
    /// Looks at the store since the prune took its lease.
    looks_while_pruning: AtomicUsize,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStore")
    }
}

impl Store for SharedStore {
    fn location(&self) -> String {
        self.fs.location()
    }
    fn load_manifests(&self) -> StoreFuture<'_, LoadedCache> {
        Store::load_manifests(&self.fs)
    }
    fn write_manifests(&self, holders: Vec<ManifestHolder>) -> StoreFuture<'_, ()> {
        self.fs.write_manifests(holders)
    }
    fn remove_manifest(&self, digest: Digest) -> StoreFuture<'_, bool> {
        Store::remove_manifest(&self.fs, digest)
    }
    fn write_referrers(&self, subject: Digest, index: Vec<u8>) -> StoreFuture<'_, ()> {
        Store::write_referrers(&self.fs, subject, index)
    }
    fn read_referrers(&self, subject: Digest) -> StoreFuture<'_, Option<Vec<u8>>> {
        Store::read_referrers(&self.fs, subject)
    }
    fn list_blobs(&self) -> StoreFuture<'_, Vec<(Digest, u64)>> {
        Store::list_blobs(&self.fs)
    }
    fn create_blob(&self) -> StoreFuture<'_, BlobWriter> {
        self.fs.create_blob()
    }
    fn open_blob(&self, digest: Digest, offset: u64) -> StoreFuture<'_, BlobFile> {
        self.fs.open_blob(digest, offset)
    }
    fn check_blob(&self, digest: Digest) -> StoreFuture<'_, Option<(Digest, u64)>> {
        self.fs.check_blob(digest)
    }
    fn remove_blob(&self, digest: Digest) -> StoreFuture<'_, bool> {
        Store::remove_blob(&self.fs, digest)
    }
    fn space(&self) -> StoreFuture<'_, Option<Space>> {
        self.fs.space()
    }
    fn is_shared(&self) -> bool {
        true
    }
    fn claim_task(&self, _: &'static str) -> StoreFuture<'_, Claim> {
        self.pruning.store(true, Ordering::SeqCst);
        Box::pin(async { Ok(Claim::Fetch(None)) })
    }
    fn changed_manifests(&self) -> StoreFuture<'_, LoadedCache> {
        Box::pin(async move {
            let second = self.pruning.load(Ordering::SeqCst)
                && self.looks_while_pruning.fetch_add(1, Ordering::SeqCst) == 1;
            let theirs = if second {
                self.theirs.lock().unwrap().take()
            } else {
                None
            };
            let Some(holder) = theirs else {
                return Ok(LoadedCache::default());
            };
            self.fs.write_manifests(vec![holder.clone()]).await?;
            Ok(LoadedCache {
                holders: vec![holder],
                ..LoadedCache::default()
            })
        })
    }
}

#[actix_web::test]
async fn a_prune_keeps_the_blobs_a_manifest_another_replica_wrote_meanwhile_names() {
    let fake = Fake::start(Body::Right);
    let dir = tempfile::tempdir().unwrap();
    // The other replica's image shares our layer, with a config of its own.
    let their_config: &[u8] = b"{\"theirs\":1}";
    let their_image = image(their_config, &[BLOB]);
    let now = now_local();
    let theirs = ManifestHolder::new(
        ManifestKind::OciManifest,
        Digest::of(&their_image),
        "fake.test/a/theirs:v1",
        their_image.clone(),
        now,
        now,
        vec!["fake.test/a/theirs:v1".into()],
    );
    let store = Arc::new(SharedStore {
        fs: FsStore::open(dir.path()).unwrap(),
        theirs: Mutex::new(Some(theirs)),
        pruning: AtomicBool::new(false),
        looks_while_pruning: AtomicUsize::new(0),
    });
    let cfg = support::config(dir.path(), fake.endpoint());
    let engine = Engine::with_store(cfg, store.clone()).await.unwrap();
    let ours = ImageRef::parse("fake.test/a/b:right").unwrap();
    engine.manifest(&ours).await.unwrap();
    for blob in [BLOB, CONFIG] {
        let reader = engine
            .blob("fake.test", &ours.repo, &Digest::of(blob))
            .await
            .unwrap();
        let landed = actix_web::rt::time::timeout(Duration::from_secs(10), reader.landed());
        landed.await.expect("stored within 10 s").unwrap();
    }

    let selector = Selector {
        patterns: Some(parse_patterns("fake.test/a/b").unwrap()),
        ..Selector::default()
    };
    let report = engine
        .prune(selector, None, false, "test".into())
        .await
        .unwrap();
    assert_eq!(report.manifests.len(), 1, "{report:?}");
    assert_eq!(
        store.looks_while_pruning.load(Ordering::SeqCst),
        2,
        "one look to begin the prune, one before its blobs go"
    );
    let (blob, config) = (Digest::of(BLOB), Digest::of(CONFIG));
    let kept: Vec<&Digest> = report.kept_blobs.iter().map(|(d, _)| d).collect();
    assert_eq!(kept, vec![&blob], "{report:?}");
    let removed: Vec<&Digest> = report.blobs.iter().map(|(d, _)| d).collect();
    assert_eq!(removed, vec![&config], "{report:?}");
    let blobs = dir.path().join("blobs");
    assert!(blobs.join(blob.hex()).exists(), "the shared layer went");
    assert!(!blobs.join(config.hex()).exists(), "our config stayed");

    // Their image is in the index now, and whole.
    let listed = engine.manifests().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|e| e.manifest.digest == Digest::of(&their_image)),
        "their manifest was not picked up"
    );
    let theirs = ImageRef::parse("fake.test/a/theirs:v1").unwrap();
    let reader = engine.blob("fake.test", &theirs.repo, &blob).await.unwrap();
    assert_eq!(reader.size(), Some(BLOB.len() as u64));
}
