//! Where cached content is known from: the registries of the manifests that are a digest or
//! name it. Pull credentials refuse anonymous requests by digest for what only private
//! registries served, so a shared layer must count every registry that names it.

use std::collections::BTreeSet;

mod support;

use actors::config::EngineConfig;
use actors::oci::{Digest, ManifestKind};
use actors::store::FsStore;
use actors::Engine;
use support::cache::{amd64_list, image, write, write_tagged};

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[actix_web::test]
async fn a_digest_is_known_from_every_registry_whose_cached_manifests_are_it_or_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let shared: &[u8] = b"shared base layer";
    let secret: &[u8] = b"secret layer";
    let open: &[u8] = b"open layer";
    let (cfg_secret, cfg_open): (&[u8], &[u8]) = (b"{\"s\":1}", b"{\"o\":1}");
    let secret_image = image(cfg_secret, &[shared, secret]);
    let open_image = image(cfg_open, &[shared, open]);
    let ds = write(
        &store,
        ManifestKind::OciManifest,
        "private.test:5000/team/app@x",
        &secret_image,
    );
    write(
        &store,
        ManifestKind::OciManifest,
        "docker.io/library/base:1",
        &open_image,
    );
    let list = amd64_list(&secret_image);
    let dl = write(
        &store,
        ManifestKind::OciIndex,
        "private.test:5000/team/app:v1",
        &list,
    );

    let mut cfg = EngineConfig::new(dir.path().to_path_buf());
    cfg.air_gapped = true;
    let engine = Engine::start(cfg).await.unwrap();

    let private = set(&["private.test:5000"]);
    assert_eq!(engine.sources(&Digest::of(secret)).await.unwrap(), private);
    assert_eq!(
        engine.sources(&Digest::of(cfg_secret)).await.unwrap(),
        private
    );
    assert_eq!(
        engine.sources(&ds).await.unwrap(),
        private,
        "a list's child"
    );
    assert_eq!(
        engine.sources(&dl).await.unwrap(),
        private,
        "the list itself"
    );
    assert_eq!(
        engine.sources(&Digest::of(shared)).await.unwrap(),
        set(&["docker.io", "private.test:5000"])
    );
    assert_eq!(
        engine.sources(&Digest::of(open)).await.unwrap(),
        set(&["docker.io"])
    );
    assert!(engine
        .sources(&Digest::of(b"never cached"))
        .await
        .unwrap()
        .is_empty());
}

#[actix_web::test]
async fn an_image_first_pulled_through_a_private_list_is_known_from_an_open_tag_of_that_list() {
    // A list fetched through the private name first (its image manifest then fetched by digest
    // through that name), then by an open name's tag: the image manifest's own record names
    // only the private registry, the list reaching it names both.
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let layer: &[u8] = b"a layer both names serve";
    let config: &[u8] = b"{\"both\":1}";
    let img = image(config, &[layer]);
    let di = write(
        &store,
        ManifestKind::OciManifest,
        "private.test:5000/team/app@first",
        &img,
    );
    let list = amd64_list(&img);
    write_tagged(
        &store,
        ManifestKind::OciIndex,
        "private.test:5000/team/app:v1",
        &["private.test:5000/team/app:v1", "docker.io/team/app:v1"],
        &list,
    );
    let mut cfg = EngineConfig::new(dir.path().to_path_buf());
    cfg.air_gapped = true;
    let engine = Engine::start(cfg).await.unwrap();
    let both = set(&["docker.io", "private.test:5000"]);
    assert_eq!(engine.sources(&Digest::of(layer)).await.unwrap(), both);
    assert_eq!(engine.sources(&di).await.unwrap(), both);
}
