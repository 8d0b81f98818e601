use std::fs;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use time::macros::datetime;

use super::fs::FsStore as Store;
use super::*;

const LIST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":526,"digest":"sha256:f5944f2d1daf66463768a1503d0c8c5e8dde7c1674d3f85abc70cef9c7e32e95","platform":{"architecture":"amd64","os":"linux"}}]}"#;

const IMAGE: &str = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.oci.image.manifest.v1+json",
   "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:b9e6889272c9e672fa749795344385882b2696b0f302c6430a427a4377044a7a", "size": 2963},
   "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:804c8aba2cc61168600515a6831474978d0ea8faddd8a66f99cc9f2bbd576105", "size": 84007}]
}"#;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn holder(kind: ManifestKind, bytes: &str, url: &str, tags: &[&str]) -> ManifestHolder {
    ManifestHolder::new(
        kind,
        Digest::of(bytes.as_bytes()),
        url,
        bytes.as_bytes().to_vec(),
        datetime!(2025-04-01 22:07:01),
        datetime!(2025-04-02 08:00:00),
        tags.iter().map(|t| t.to_string()).collect(),
    )
}

/// A holder file exactly as the Go server's `json.Marshal` writes it: struct field order,
/// no whitespace, all four typed fields (the three that do not apply as zero values).
fn go_file(kind: u8, bytes: &str, url: &str, times: Option<(&str, &str)>) -> String {
    let hex = Digest::of(bytes.as_bytes()).hex().to_string();
    let typed = |k: u8, zero: &str| {
        if k == kind {
            bytes.to_string()
        } else {
            zero.to_string()
        }
    };
    let times = match times {
        Some((c, p)) => format!(r#","created":"{c}","pulled":"{p}""#),
        None => String::new(),
    };
    format!(
        r#"{{"type":{kind},"digest":"{hex}","imageUrl":"{url}","bytes":"{b64}","v1.oci.index":{idx},"v1.oci.manifest":{man},"v2.docker.manifestList":{dl},"v2.docker.manifest":{dm}{times}}}"#,
        b64 = BASE64.encode(bytes),
        idx = typed(2, r#"{"schemaVersion":0,"manifests":null}"#),
        man = typed(
            3,
            r#"{"schemaVersion":0,"config":{"mediaType":"","digest":"","size":0},"layers":null}"#
        ),
        dl = typed(0, r#"{"schemaVersion":0,"mediaType":"","manifests":null}"#),
        dm = typed(
            1,
            r#"{"schemaVersion":0,"mediaType":"","config":{"mediaType":"","size":0,"digest":""},"layers":null}"#
        ),
    )
}

fn put(root: &Path, dir: &str, name: &str, content: &str) {
    fs::write(root.join(dir).join(name), content).unwrap();
}

fn find<'a>(loaded: &'a LoadedCache, bytes: &str) -> &'a ManifestHolder {
    let d = Digest::of(bytes.as_bytes());
    loaded
        .holders
        .iter()
        .find(|h| h.digest() == &d)
        .expect("manifest loaded")
}

#[test]
fn round_trip_preserves_every_field() {
    let (_dir, store) = open();
    let list = holder(
        ManifestKind::DockerList,
        LIST,
        "registry.k8s.io/pause:3.8",
        &["3.8"],
    );
    let image = holder(
        ManifestKind::OciManifest,
        IMAGE,
        &format!("registry.k8s.io/pause@{}", Digest::of(IMAGE.as_bytes())),
        &[],
    );
    store.write_manifest(&list).unwrap();
    store.write_manifest(&image).unwrap();

    let loaded = store.load_manifests().unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(loaded.holders.len(), 2);
    assert_eq!(find(&loaded, LIST), &list);
    assert_eq!(find(&loaded, IMAGE), &image);
    assert_eq!(find(&loaded, IMAGE).bytes(), IMAGE.as_bytes());
    assert!(store.root().join("fat").join(list.digest().hex()).is_file());
    assert!(store
        .root()
        .join("img")
        .join(image.digest().hex())
        .is_file());
}

#[test]
fn written_file_has_the_shape_the_go_server_reads() {
    let (_dir, store) = open();
    let list = holder(
        ManifestKind::DockerList,
        LIST,
        "registry.k8s.io/pause:3.8",
        &["3.8"],
    );
    store.write_manifest(&list).unwrap();

    let text = fs::read(store.root().join("fat").join(list.digest().hex())).unwrap();
    let v: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v["type"], 0);
    assert_eq!(v["digest"], list.digest().hex());
    assert_eq!(v["imageUrl"], "registry.k8s.io/pause:3.8");
    assert_eq!(
        BASE64.decode(v["bytes"].as_str().unwrap()).unwrap(),
        LIST.as_bytes()
    );
    assert_eq!(v["v2.docker.manifestList"]["manifests"][0]["size"], 526);
    assert_eq!(v["created"], "2025-04-01T22:07:01");
    assert_eq!(v["pulled"], "2025-04-02T08:00:00");
    assert_eq!(v["tags"], serde_json::json!(["3.8"]));
}

#[test]
fn go_1_8_layout_files_load() {
    let (dir, store) = open();
    let image_url = format!("registry.k8s.io/pause@{}", Digest::of(IMAGE.as_bytes()));
    let times = Some(("2025-04-01T22:07:01", "2025-04-03T10:11:12"));
    put(
        dir.path(),
        "fat",
        Digest::of(LIST.as_bytes()).hex(),
        &go_file(0, LIST, "registry.k8s.io/pause:3.8", times),
    );
    put(
        dir.path(),
        "img",
        Digest::of(IMAGE.as_bytes()).hex(),
        &go_file(3, IMAGE, &image_url, times),
    );

    let loaded = store.load_manifests().unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let list = find(&loaded, LIST);
    assert_eq!(list.kind(), ManifestKind::DockerList);
    assert_eq!(list.bytes(), LIST.as_bytes());
    assert_eq!(list.image_url(), "registry.k8s.io/pause:3.8");
    assert_eq!(list.tags(), ["3.8"]);
    assert_eq!(list.created(), datetime!(2025-04-01 22:07:01));
    assert_eq!(list.pulled(), datetime!(2025-04-03 10:11:12));
    assert_eq!(
        list.manifest().unwrap()["manifests"][0]["platform"]["os"],
        "linux"
    );
    let image = find(&loaded, IMAGE);
    assert_eq!(image.kind(), ManifestKind::OciManifest);
    assert_eq!(image.bytes(), IMAGE.as_bytes());
    assert!(image.tags().is_empty());
}

#[test]
fn go_1_9_layout_files_load_including_latest_and_undated_ones() {
    let (dir, store) = open();
    // 1.9+: a list outside `latest` sits in img/, a `latest` manifest in lts/.
    put(
        dir.path(),
        "img",
        Digest::of(LIST.as_bytes()).hex(),
        &go_file(
            0,
            LIST,
            "registry.k8s.io/pause:3.8",
            Some(("2025-09-01T00:00:00", "2025-09-02T00:00:00")),
        ),
    );
    // Written before 1.8 added the timestamps.
    put(
        dir.path(),
        "lts",
        Digest::of(IMAGE.as_bytes()).hex(),
        &go_file(3, IMAGE, "docker.io/library/hello-world:latest", None),
    );

    let loaded = store.load_manifests().unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(loaded.holders.len(), 2);
    assert_eq!(find(&loaded, LIST).kind(), ManifestKind::DockerList);
    let latest = find(&loaded, IMAGE);
    assert!(latest.is_latest());
    assert_eq!(latest.tags(), ["latest"]);
    // Missing times are taken from the file, not left at the epoch.
    assert!(latest.created().year() >= 2024, "{}", latest.created());
    assert_eq!(latest.created(), latest.pulled());
}

#[test]
fn rewriting_a_manifest_keeps_it_where_the_go_server_put_it() {
    let (dir, store) = open();
    let hex = Digest::of(LIST.as_bytes()).hex().to_string();
    put(
        dir.path(),
        "img",
        &hex,
        &go_file(0, LIST, "registry.k8s.io/pause:3.8", None),
    );
    let mut h = store.load_manifests().unwrap().holders.remove(0);
    h.set_pulled(datetime!(2026-01-01 00:00:00));
    store.write_manifest(&h).unwrap();

    assert!(dir.path().join("img").join(&hex).is_file());
    assert!(!dir.path().join("fat").join(&hex).exists());
    let loaded = store.load_manifests().unwrap();
    assert_eq!(loaded.holders.len(), 1);
    assert_eq!(loaded.holders[0].pulled(), datetime!(2026-01-01 00:00:00));
}

#[test]
fn tags_survive_a_write_load_round_trip() {
    let (_dir, store) = open();
    let mut h = holder(
        ManifestKind::OciIndex,
        LIST,
        "quay.io/coreos/etcd:v3.5.18",
        &["v3.5.18"],
    );
    assert!(h.add_tag("v3.5"));
    assert!(!h.add_tag("v3.5"));
    assert!(h.add_tag("stable"));
    store.write_manifest(&h).unwrap();

    let loaded = store.load_manifests().unwrap();
    assert_eq!(loaded.holders[0].tags(), ["v3.5.18", "v3.5", "stable"]);
}

#[test]
fn check_times_of_its_tags_survive_a_write_load_round_trip() {
    let (_dir, store) = open();
    let url = "quay.io/coreos/etcd:v3.5.18";
    let mut h = holder(ManifestKind::OciIndex, LIST, url, &[url]);
    let at = datetime!(2025-04-03 10:00:00);
    let checked = [(url.to_string(), at), ("quay.io/x:gone".to_string(), at)];
    h.set_checked(checked.into_iter().collect());
    assert_eq!(
        h.checked().len(),
        1,
        "a time for a tag the holder lacks was kept"
    );
    store.write_manifest(&h).unwrap();
    let loaded = store.load_manifests().unwrap();
    assert_eq!(loaded.holders[0].checked().get(url), Some(&at));
    let file = fs::read_to_string(
        store
            .root()
            .join("fat")
            .join(Digest::of(LIST.as_bytes()).hex()),
    )
    .unwrap();
    assert!(
        file.contains(r#""checked":{"quay.io/coreos/etcd:v3.5.18":"2025-04-03T10:00:00"}"#),
        "{file}"
    );
}

#[test]
fn copies_of_one_manifest_in_two_layouts_are_merged() {
    let (dir, store) = open();
    let hex = Digest::of(LIST.as_bytes()).hex().to_string();
    put(
        dir.path(),
        "fat",
        &hex,
        &go_file(
            0,
            LIST,
            "registry.k8s.io/pause:3.8",
            Some(("2025-01-01T00:00:00", "2025-01-05T00:00:00")),
        ),
    );
    put(
        dir.path(),
        "img",
        &hex,
        &go_file(
            0,
            LIST,
            "registry.k8s.io/pause:stable",
            Some(("2025-02-01T00:00:00", "2025-03-01T00:00:00")),
        ),
    );
    let loaded = store.load_manifests().unwrap();
    assert_eq!(loaded.holders.len(), 1);
    let h = &loaded.holders[0];
    assert_eq!(h.tags(), ["3.8", "stable"]);
    assert_eq!(h.created(), datetime!(2025-01-01 00:00:00));
    assert_eq!(h.pulled(), datetime!(2025-03-01 00:00:00));
}

#[test]
fn truncated_or_corrupt_manifest_file_is_reported_not_fatal() {
    let (dir, store) = open();
    let good = holder(ManifestKind::OciManifest, IMAGE, "quay.io/a/b:1", &["1"]);
    store.write_manifest(&good).unwrap();
    let full = go_file(0, LIST, "registry.k8s.io/pause:3.8", None);
    put(
        dir.path(),
        "fat",
        Digest::of(LIST.as_bytes()).hex(),
        &full[..full.len() / 2],
    );
    put(dir.path(), "img", &"c".repeat(64), "\u{0}\u{1}garbage");

    let loaded = store.load_manifests().unwrap();
    assert_eq!(loaded.holders, vec![good]);
    assert_eq!(loaded.problems.len(), 2, "{:?}", loaded.problems);
    assert!(loaded
        .problems
        .iter()
        .any(|p| p.path.ends_with(Digest::of(LIST.as_bytes()).hex())));
}

#[test]
fn holder_without_bytes_is_skipped_with_a_warning() {
    let (dir, store) = open();
    let hex = Digest::of(LIST.as_bytes()).hex().to_string();
    let v: Value = serde_json::from_str(&go_file(0, LIST, "r.io/a:1", None)).unwrap();
    let mut v = v.as_object().unwrap().clone();
    v.remove("bytes");
    put(dir.path(), "fat", &hex, &Value::Object(v).to_string());

    let loaded = store.load_manifests().unwrap();
    assert!(loaded.holders.is_empty());
    assert_eq!(loaded.problems.len(), 1);
    assert!(
        loaded.problems[0].reason.contains("bytes"),
        "{}",
        loaded.problems[0]
    );
}

#[test]
fn file_whose_bytes_do_not_hash_to_its_name_is_rejected() {
    let (dir, store) = open();
    let wrong = "d".repeat(64);
    // Digest field agrees with the name, content does not.
    let text =
        go_file(0, LIST, "r.io/a:1", None).replace(Digest::of(LIST.as_bytes()).hex(), &wrong);
    put(dir.path(), "fat", &wrong, &text);
    // Named after nothing at all.
    put(dir.path(), "img", "notes.txt", "hello");

    let loaded = store.load_manifests().unwrap();
    assert!(loaded.holders.is_empty());
    assert_eq!(loaded.problems.len(), 2, "{:?}", loaded.problems);
}

#[test]
fn write_manifest_refuses_a_digest_that_does_not_match_the_bytes() {
    let (_dir, store) = open();
    let h = ManifestHolder::new(
        ManifestKind::OciManifest,
        Digest::of(b"something else"),
        "r.io/a:1",
        IMAGE.as_bytes().to_vec(),
        datetime!(2025-01-01 00:00:00),
        datetime!(2025-01-01 00:00:00),
        vec![],
    );
    assert!(matches!(
        store.write_manifest(&h),
        Err(StoreError::ManifestDigestMismatch { .. })
    ));
    assert_eq!(fs::read_dir(store.root().join("img")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn remove_manifest_and_blob_delete_files_and_tolerate_absence() {
    let (dir, store) = open();
    let h = holder(ManifestKind::OciManifest, IMAGE, "r.io/a:1", &[]);
    store.write_manifest(&h).unwrap();
    put(dir.path(), "lts", h.digest().hex(), "{}");
    assert!(store.remove_manifest(h.digest()).unwrap());
    assert!(!store.remove_manifest(h.digest()).unwrap());
    assert!(store.load_manifests().unwrap().holders.is_empty());

    let d = Digest::of(b"blob");
    fs::write(store.blob_path(&d), b"blob").unwrap();
    assert!(store.remove_blob(&d).unwrap());
    assert!(!store.remove_blob(&d).unwrap());
}

#[test]
fn open_sweeps_leftover_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let d = Digest::of(b"kept");
    fs::write(store.blob_path(&d), b"kept").unwrap();
    fs::write(
        dir.path().join("tmp").join("blob-1-2-3.part"),
        b"half a blob",
    )
    .unwrap();
    fs::create_dir(dir.path().join("tmp").join("stray")).unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(store.list_blobs().unwrap(), vec![(d, 4)]);
    for sub in ["blobs", "fat", "img", "lts", "tmp"] {
        assert!(dir.path().join(sub).is_dir(), "{sub}");
    }
}

#[test]
fn list_blobs_ignores_names_that_are_not_digests() {
    let (dir, store) = open();
    let a = Digest::of(b"a");
    fs::write(store.blob_path(&a), b"a").unwrap();
    fs::write(dir.path().join("blobs").join("README"), b"x").unwrap();
    fs::write(dir.path().join("blobs").join(a.hex().to_uppercase()), b"x").unwrap();
    fs::create_dir(dir.path().join("blobs").join("f".repeat(64))).unwrap();
    assert_eq!(store.list_blobs().unwrap(), vec![(a, 1)]);
}

#[tokio::test]
async fn commit_produces_a_blob_hashing_to_its_name() {
    let (_dir, store) = open();
    let mut w = store.create_blob_writer().await.unwrap();
    let temp = w.temp_path().to_path_buf();
    assert!(temp.starts_with(store.root().join("tmp")));
    let chunks: Vec<Vec<u8>> = (0u8..8).map(|i| vec![i; 10_000]).collect();
    for c in &chunks {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
        // A reader following the temp file sees everything `written` reports.
        assert_eq!(fs::metadata(&temp).unwrap().len(), w.written());
    }
    let all = chunks.concat();
    let d = Digest::of(&all);
    assert_eq!(w.commit(&d).await.unwrap(), 80_000);

    assert!(!temp.exists());
    let stored = fs::read(store.blob_path(&d)).unwrap();
    assert_eq!(Digest::of(&stored), d);
    assert_eq!(store.list_blobs().unwrap(), vec![(d, 80_000)]);
}

#[tokio::test]
async fn writes_begun_without_waiting_land_in_order_and_the_hash_covers_every_chunk() {
    let (_dir, store) = open();
    let mut w = store.create_blob_writer().await.unwrap();
    let temp = w.temp_path().to_path_buf();
    let parts: Vec<Bytes> = (0u8..5).map(|i| Bytes::from(vec![i; 300_000])).collect();
    w.begin(parts[..2].to_vec()).await.unwrap();
    assert!(w.writing());
    // The second write lands the first before it starts: the file grows in order.
    w.begin(parts[2..].to_vec()).await.unwrap();
    assert_eq!(w.written(), 600_000, "only landed bytes are counted");
    assert!(fs::metadata(&temp).unwrap().len() >= 600_000);
    assert_eq!(w.land().await.unwrap(), 1_500_000);
    assert!(!w.writing());
    let d = Digest::of(&parts.concat());
    assert_eq!(w.commit(&d).await.unwrap(), 1_500_000);
    assert_eq!(Digest::of(&fs::read(store.blob_path(&d)).unwrap()), d);
}

#[tokio::test]
async fn a_wait_for_a_write_given_up_midway_loses_nothing() {
    use futures_util::FutureExt as _;
    let (_dir, store) = open();
    let mut w = store.create_blob_writer().await.unwrap();
    let big = Bytes::from(vec![7u8; 8 << 20]);
    w.begin(vec![big.clone()]).await.unwrap();
    // Polled once and dropped, as a download's select does when the network answers first.
    let _ = w.land().now_or_never();
    assert_eq!(w.land().await.unwrap(), 8 << 20);
    w.begin(vec![Bytes::from_static(b"tail")]).await.unwrap();
    let mut all = big.to_vec();
    all.extend_from_slice(b"tail");
    // Verifying lands the write still on its way.
    let verified = w.verify(&Digest::of(&all)).await.unwrap();
    assert_eq!(verified.persist().await.unwrap(), all.len() as u64);
}

#[tokio::test]
async fn digest_mismatch_leaves_nothing_in_blobs() {
    let (_dir, store) = open();
    let mut w = store.create_blob_writer().await.unwrap();
    let temp = w.temp_path().to_path_buf();
    w.write(Bytes::from_static(b"not what was promised"))
        .await
        .unwrap();
    let expected = Digest::of(b"what was promised");
    match w.commit(&expected).await {
        Err(StoreError::DigestMismatch {
            expected: e,
            actual,
        }) => {
            assert_eq!(e, expected);
            assert_eq!(actual, Digest::of(b"not what was promised"));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!temp.exists());
    assert_eq!(fs::read_dir(store.root().join("blobs")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn dropping_an_uncommitted_writer_removes_its_temp_file() {
    let (_dir, store) = open();
    let mut w = store.create_blob_writer().await.unwrap();
    w.write(Bytes::from_static(b"partial")).await.unwrap();
    let temp = w.temp_path().to_path_buf();
    assert!(temp.exists());
    drop(w);
    assert!(!temp.exists());
    assert!(store.list_blobs().unwrap().is_empty());
}

#[tokio::test]
async fn a_verified_blob_stays_a_temp_file_until_persisted_and_is_removed_if_dropped() {
    let (_dir, store) = open();
    let d = Digest::of(b"right bytes");
    let mut w = store.create_blob_writer().await.unwrap();
    w.write(Bytes::from_static(b"right bytes")).await.unwrap();
    let verified = w.verify(&d).await.unwrap();
    let temp = verified.temp_path().to_path_buf();
    assert_eq!(
        fs::read(&temp).unwrap(),
        b"right bytes",
        "readable while unpersisted"
    );
    assert!(
        store.list_blobs().unwrap().is_empty(),
        "not cached before persist"
    );
    assert_eq!(verified.persist().await.unwrap(), 11);
    assert!(!temp.exists());
    assert_eq!(store.list_blobs().unwrap(), vec![(d.clone(), 11)]);

    let mut w = store.create_blob_writer().await.unwrap();
    w.write(Bytes::from_static(b"right bytes")).await.unwrap();
    let verified = w.verify(&d).await.unwrap();
    let temp = verified.temp_path().to_path_buf();
    drop(verified);
    assert!(
        !temp.exists(),
        "an abandoned verified blob leaves no temp file"
    );
}
