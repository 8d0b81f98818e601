//! The blob table's published stored blobs: what a hit may serve without a message must be
//! exactly the blobs the table holds stored and verified, after every change of state.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::*;
use crate::config::EngineConfig;
use crate::manifest_index::ManifestIndex;
use crate::proxy::download::Finished;
use crate::store::FsStore;

/// A table over a store in a temp dir that holds `found` at start, publishing to the
/// returned `StoredBlobs`.
fn start(found: &[(&[u8], &std::path::Path)]) -> (Addr<BlobTable>, StoredBlobs) {
    let dir = found[0].1;
    let fs = FsStore::open(dir).unwrap();
    let present: Vec<(Digest, u64)> = found
        .iter()
        .map(|(bytes, _)| {
            let d = Digest::of(bytes);
            fs.write_blob(&d, bytes).unwrap();
            (d, bytes.len() as u64)
        })
        .collect();
    let store: Arc<dyn Store> = Arc::new(fs);
    let index = ManifestIndex::new(store.clone(), Vec::new()).start();
    let config = Arc::new(EngineConfig::new(dir.to_path_buf()));
    let puller = PullerPool::new(config, store.clone(), index).start();
    let stored = StoredBlobs::default();
    let table = BlobTable::new(puller, present)
        .with_store(store)
        .publishing(stored.clone())
        .start();
    (table, stored)
}

#[actix_rt::test]
async fn only_stored_verified_blobs_are_published_through_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let found: &[u8] = b"found at start";
    let (table, stored) = start(&[(found, dir.path())]);
    let (a, b) = (Digest::of(b"a"), Digest::of(b"bb"));
    let finished = |d: &Digest, size: u64| Finished {
        digest: d.clone(),
        result: Ok(size),
    };

    // A file found at start is checked on its first use: it goes through the table.
    table.send(Usage).await.unwrap();
    assert_eq!(stored.size(&Digest::of(found)), None);

    table.send(finished(&a, 1)).await.unwrap();
    table.send(finished(&b, 2)).await.unwrap();
    assert_eq!((stored.size(&a), stored.size(&b)), (Some(1), Some(2)));

    // No longer trusted (another replica pruned what named it): checked on its next use.
    table
        .send(Suspect {
            digests: vec![a.clone()],
        })
        .await
        .unwrap();
    assert_eq!(stored.size(&a), None);
    assert_eq!(stored.size(&b), Some(2));

    // Removed by a prune.
    let removal = table
        .send(Remove {
            digests: vec![b.clone()],
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(removal.removed, vec![(b.clone(), 2)]);
    assert_eq!(stored.size(&b), None);

    // Stored again, then found gone by a reader with nothing to fetch it from.
    table.send(finished(&b, 2)).await.unwrap();
    assert_eq!(stored.size(&b), Some(2));
    let status = table
        .send(Vanished {
            digest: b.clone(),
            source: None,
            seen: Instant::now(),
        })
        .await
        .unwrap();
    assert!(matches!(status, BlobStatus::Absent), "{status:?}");
    assert_eq!(stored.size(&b), None);

    // A failed download leaves nothing published.
    let failed = Finished {
        digest: a.clone(),
        result: Err(crate::error::EngineError::Unavailable("test".into())),
    };
    table.send(failed).await.unwrap();
    assert_eq!(stored.size(&a), None);
}
