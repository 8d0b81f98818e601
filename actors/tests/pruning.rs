//! Pruning a running engine through its actors: the plan, the dry run, list expansion, shared
//! blobs, and a manifest cached again after it was pruned.

use std::time::Duration;

use actors::config::EngineConfig;
use actors::oci::{Digest, ImageRef, ManifestKind, OCI_INDEX, OCI_MANIFEST};
use actors::prune::{parse_patterns, Selector};
use actors::store::{now_local, FsStore, ManifestHolder};
use actors::Engine;

fn image(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|l| format!(r#"{{"digest":"{}","size":{}}}"#, Digest::of(l), l.len()))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":{}}},"layers":[{}]}}"#,
        Digest::of(config),
        config.len(),
        layers.join(",")
    )
    .into_bytes()
}

fn write(store: &FsStore, kind: ManifestKind, url: &str, bytes: &[u8]) -> Digest {
    let d = Digest::of(bytes);
    let now = now_local();
    store
        .write_manifest(&ManifestHolder::new(
            kind,
            d.clone(),
            url,
            bytes.to_vec(),
            now,
            now,
            vec![],
        ))
        .unwrap();
    d
}

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
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"{d1}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
        m1.len()
    );
    let di = write(
        &store,
        ManifestKind::OciIndex,
        "reg.test/a/one:v1",
        index.as_bytes(),
    );

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
