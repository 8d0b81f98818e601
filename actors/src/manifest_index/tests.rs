//! The index actor and the snapshot handlers read: what a hit sees after each change, and what
//! a hit leaves behind.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use time::macros::datetime;

use super::*;
use crate::oci::{Manifest, ManifestKind, OCI_MANIFEST};
use crate::store::FsStore;

fn image_manifest(config: &str) -> Vec<u8> {
    let cfg = Digest::of(config.as_bytes());
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{cfg}","size":{}}},"layers":[]}}"#,
        config.len()
    )
    .into_bytes()
}

fn cached(url: &str, bytes: &[u8]) -> CachedManifest {
    CachedManifest {
        digest: Digest::of(bytes),
        bytes: Bytes::copy_from_slice(bytes),
        manifest: Manifest::parse(bytes, Some(OCI_MANIFEST)).unwrap(),
        image_url: url.to_string(),
    }
}

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap()
}

/// An index actor over a store in a temp dir, with `holders` on disk at start.
fn start(holders: Vec<ManifestHolder>) -> (tempfile::TempDir, Addr<ManifestIndex>, IndexView) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(FsStore::open(dir.path()).unwrap());
    let index = ManifestIndex::new(store, holders);
    let view = index.view();
    (dir, index.start(), view)
}

#[actix_rt::test]
async fn a_hit_read_from_the_snapshot_counts_as_a_pull() {
    let bytes = image_manifest("one");
    let long_ago = datetime!(2020-01-01 00:00:00);
    let holder = ManifestHolder::new(
        ManifestKind::OciManifest,
        Digest::of(&bytes),
        "reg.test/a/b:v1",
        bytes.clone(),
        long_ago,
        long_ago,
        vec!["reg.test/a/b:v1".into()],
    );
    let (_dir, index, view) = start(vec![holder]);
    let hit = view.resolve(&image("reg.test/a/b:v1")).expect("cached tag");
    assert_eq!(hit.manifest.digest, Digest::of(&bytes));
    assert_eq!(
        hit.tag_age(),
        None,
        "a tag loaded without a check time is unchecked"
    );
    let listed = index.send(List).await.unwrap();
    assert!(
        listed[0].pulled > long_ago + time::Duration::days(365),
        "the hit was not counted: pulled {}",
        listed[0].pulled
    );
    assert!(view.resolve(&image("reg.test/a/b:v2")).is_none());
    assert!(view.resolve(&image("reg.test/a/c:v1")).is_none());
}

#[actix_rt::test]
async fn an_acknowledged_insert_is_in_the_snapshot_and_a_moved_tag_points_at_the_new_manifest() {
    let (_dir, index, view) = start(Vec::new());
    let tag = image("reg.test/a/b:v1");
    assert!(view.resolve(&tag).is_none());
    let first = image_manifest("first");
    index
        .send(Insert {
            image: tag.clone(),
            manifest: cached("reg.test/a/b:v1", &first),
        })
        .await
        .unwrap()
        .unwrap();
    let hit = view.resolve(&tag).expect("inserted tag");
    assert_eq!(hit.manifest.digest, Digest::of(&first));
    assert!(
        hit.tag_age().unwrap() < Duration::from_secs(60),
        "a fetch counts as a check"
    );

    let second = image_manifest("second");
    index
        .send(Insert {
            image: tag.clone(),
            manifest: cached("reg.test/a/b:v1", &second),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view.resolve(&tag).unwrap().manifest.digest,
        Digest::of(&second)
    );
    let by_digest = image(&format!("reg.test/a/b@{}", Digest::of(&first)));
    assert_eq!(
        view.resolve(&by_digest).unwrap().manifest.digest,
        Digest::of(&first),
        "the manifest the tag left is still cached by digest"
    );
}

#[actix_rt::test]
async fn a_removed_manifest_is_gone_from_the_snapshot_by_tag_and_by_digest() {
    let (_dir, index, view) = start(Vec::new());
    let tag = image("reg.test/a/b:v1");
    let bytes = image_manifest("gone");
    index
        .send(Insert {
            image: tag.clone(),
            manifest: cached("reg.test/a/b:v1", &bytes),
        })
        .await
        .unwrap()
        .unwrap();
    let removed = index
        .send(Remove {
            digests: vec![Digest::of(&bytes)],
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert!(view.resolve(&tag).is_none(), "a pruned tag is still served");
    let by_digest = image(&format!("reg.test/a/b@{}", Digest::of(&bytes)));
    assert!(view.resolve(&by_digest).is_none());
}

#[actix_rt::test]
async fn a_docker_hub_image_the_go_server_cached_under_its_short_name_is_served_for_both_names() {
    // The Go server names an in-path pull of `docker.io/hello-world` without `library/`.
    let bytes = image_manifest("hello from go");
    let now = crate::store::now_local();
    let holder = ManifestHolder::new(
        ManifestKind::OciManifest,
        Digest::of(&bytes),
        "docker.io/hello-world:latest",
        bytes.clone(),
        now,
        now,
        // What a Go manifest file yields: the tag of its `imageUrl`.
        vec!["latest".into()],
    );
    let (_dir, _index, view) = start(vec![holder]);
    for name in [
        "docker.io/hello-world:latest",
        "docker.io/library/hello-world:latest",
        "hello-world",
    ] {
        let hit = view
            .resolve(&image(name))
            .unwrap_or_else(|| panic!("{name} missed"));
        assert_eq!(hit.manifest.digest, Digest::of(&bytes), "{name}");
    }
}

#[actix_rt::test]
async fn a_manifest_another_replica_removed_is_forgotten_and_never_written_back() {
    let bytes = image_manifest("pruned elsewhere");
    let digest = Digest::of(&bytes);
    let now = crate::store::now_local();
    let holder = ManifestHolder::new(
        ManifestKind::OciManifest,
        digest.clone(),
        "reg.test/a/b:v1",
        bytes.clone(),
        now,
        now,
        vec!["reg.test/a/b:v1".into()],
    );
    let (dir, index, view) = start(vec![holder]);
    let tag = image("reg.test/a/b:v1");
    // A hit makes its pulled time due for a write back, which must not happen any more.
    assert!(view.resolve(&tag).is_some());
    let forgotten = index
        .send(Forget {
            digests: vec![digest.clone(), Digest::of(b"never cached")],
        })
        .await
        .unwrap();
    assert_eq!(forgotten.len(), 1, "only what the index held");
    assert_eq!(forgotten[0].digest, digest);
    assert!(
        view.resolve(&tag).is_none(),
        "a forgotten tag is still served"
    );
    assert!(index.send(List).await.unwrap().is_empty());
    // Its pulled time is never written back: that would put the removed manifest back into
    // the store (this store started empty, so any file is such a write).
    index.send(Flush).await.unwrap();
    let files = FsStore::read_only(dir.path()).load_manifests().unwrap();
    assert!(files.holders.is_empty(), "{:?}", files.holders);
}

#[actix_rt::test]
async fn a_check_marked_by_a_request_or_the_actor_is_the_tags_age_and_kept_with_the_manifest() {
    let bytes = image_manifest("checked");
    let holder = ManifestHolder::new(
        ManifestKind::OciManifest,
        Digest::of(&bytes),
        "reg.test/a/b:v1",
        bytes.clone(),
        now(),
        now(),
        vec!["reg.test/a/b:v1".into()],
    );
    let (_dir, index, view) = start(vec![holder]);
    let tag = image("reg.test/a/b:v1");
    let hit = view.resolve(&tag).unwrap();
    assert_eq!(hit.tag_age(), None);
    hit.mark_checked();
    assert!(view.resolve(&tag).unwrap().tag_age().unwrap() < Duration::from_secs(60));

    index.send(Validated { image: tag.clone() }).await.unwrap();
    let listed = index.send(List).await.unwrap();
    assert!(
        listed[0].checked.contains_key("reg.test/a/b:v1"),
        "the check is not kept with the manifest"
    );
}

/// The registries `digest` is known from, as the index answers.
async fn sources(index: &Addr<ManifestIndex>, digest: &Digest) -> Vec<String> {
    let got = index
        .send(Sources {
            digest: digest.clone(),
        })
        .await
        .unwrap();
    got.into_iter().collect()
}

#[actix_rt::test]
async fn sources_follow_every_manifest_that_enters_and_leaves_the_index() {
    use crate::oci::OCI_INDEX;
    // An image manifest first pulled from a private registry, and an open registry's list
    // naming it.
    let img = image_manifest("shared config");
    let config = Digest::of(b"shared config");
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"{}","size":{}}}]}}"#,
        Digest::of(&img),
        img.len()
    )
    .into_bytes();
    let t = datetime!(2024-01-01 00:00:00);
    let holder = |kind, url: &str, bytes: &[u8]| {
        ManifestHolder::new(kind, Digest::of(bytes), url, bytes.to_vec(), t, t, vec![])
    };
    let (_dir, index, _view) = start(vec![
        holder(ManifestKind::OciManifest, "private.test/app@x", &img),
        holder(ManifestKind::OciIndex, "open.test/app:v1", &list),
    ]);
    assert_eq!(
        sources(&index, &config).await,
        ["open.test", "private.test"]
    );
    assert_eq!(
        sources(&index, &Digest::of(&img)).await,
        ["open.test", "private.test"]
    );
    assert_eq!(sources(&index, &Digest::of(&list)).await, ["open.test"]);

    // A third registry's image manifest with the same config (and bytes of its own), inserted
    // while running.
    let third = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{config}","size":13}},"layers":[],"annotations":{{"from":"third"}}}}"#
    )
    .into_bytes();
    index
        .send(Insert {
            image: image("third.test/app:v1"),
            manifest: cached("third.test/app:v1", &third),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sources(&index, &config).await,
        ["open.test", "private.test", "third.test"]
    );

    // The list goes (another replica pruned it): the image manifest is the private one's only.
    index
        .send(Forget {
            digests: vec![Digest::of(&list)],
        })
        .await
        .unwrap();
    assert_eq!(sources(&index, &Digest::of(&img)).await, ["private.test"]);
    assert_eq!(
        sources(&index, &config).await,
        ["private.test", "third.test"]
    );
    index
        .send(Forget {
            digests: vec![Digest::of(&img)],
        })
        .await
        .unwrap();
    assert_eq!(sources(&index, &config).await, ["third.test"]);
    index
        .send(Forget {
            digests: vec![Digest::of(&third)],
        })
        .await
        .unwrap();
    assert!(sources(&index, &config).await.is_empty());
}
