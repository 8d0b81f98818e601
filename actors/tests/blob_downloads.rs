//! Blob downloads against an in-process fake upstream whose blob bodies run on forever, stop
//! short, announce the wrong length or fail: held to the sizes that cached image manifests
//! state, and started afresh by the first request after a failure.

mod support;

use std::sync::Arc;
use std::time::Duration;

use actors::oci::{Digest, ImageRef, RepoName};
use actors::{Engine, EngineError};
use support::engine_with;
use support::fake::{Body, Fake, BLOB, CONFIG};

/// A fake upstream sending `body` for `BLOB`, and its endpoint.
fn fake_upstream(body: Body) -> (Arc<Fake>, String) {
    let fake = Fake::start(body);
    let endpoint = fake.endpoint();
    (fake, endpoint)
}

async fn engine(dir: &std::path::Path, endpoint: String) -> Engine {
    // A long idle timeout, so that a failure seen within seconds cannot be a stalled body
    // timing out.
    engine_with(dir, endpoint, |c| {
        c.upstream_idle_timeout = Duration::from_secs(30)
    })
    .await
}

fn image(tag: &str) -> ImageRef {
    ImageRef::parse(&format!("fake.test/a/b:{tag}")).unwrap()
}

/// Asks for `BLOB` once and follows the answer to its end, for at most `within`.
/// The image manifest `right` cached (so the blob's stated size is known), then the blob asked
/// for once, for at most `within`, while the fake upstream sends `body` for it.
struct Attempt {
    fake: Arc<Fake>,
    dir: tempfile::TempDir,
    engine: Engine,
    outcome: Result<u64, EngineError>,
}

async fn attempt(body: Body, within: Duration) -> Attempt {
    let (fake, endpoint) = fake_upstream(body);
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), endpoint).await;
    let right = image("right");
    engine.manifest(&right).await.unwrap();
    let outcome = fetch_blob(&engine, &right.repo, within).await;
    Attempt {
        fake,
        dir,
        engine,
        outcome,
    }
}

async fn fetch_blob(e: &Engine, repo: &RepoName, within: Duration) -> Result<u64, EngineError> {
    fetch(e, repo, &Digest::of(BLOB), within).await
}

/// Asks for a blob once and follows the answer to its end, for at most `within`.
async fn fetch(
    e: &Engine,
    repo: &RepoName,
    digest: &Digest,
    within: Duration,
) -> Result<u64, EngineError> {
    // Verified is not enough: the outcome is whether the blob is stored.
    let follow = async { Ok(e.blob("fake.test", repo, digest).await?.landed().await?.0) };
    actix_web::rt::time::timeout(within, follow)
        .await
        .unwrap_or_else(|_| panic!("no outcome for the blob within {within:?}"))
}

fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// No blob file for `BLOB`, no temp file left (once the config, prefetched alongside, is in).
async fn assert_nothing_kept(e: &Engine, dir: &std::path::Path) {
    let (repo, config) = (image("right").repo, Digest::of(CONFIG));
    let size = fetch(e, &repo, &config, Duration::from_secs(10)).await;
    assert_eq!(size.unwrap(), CONFIG.len() as u64);
    let blob = dir.join("blobs").join(Digest::of(BLOB).hex());
    assert!(!blob.exists(), "a failed download left {}", blob.display());
    let temps = files_in(&dir.join("tmp"));
    assert!(temps.is_empty(), "temp files left behind: {temps:?}");
}

fn assert_size_mismatch(err: &EngineError, sent: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, EngineError::SizeMismatch { .. }),
        "not a size mismatch: {msg}"
    );
    let stated = format!("state {} bytes", BLOB.len());
    assert!(msg.contains(&stated) && msg.contains(sent), "{msg}");
    assert!(msg.contains("fake.test"), "{msg}");
}

#[actix_web::test]
async fn an_endless_body_fails_once_it_passes_the_stated_size_and_leaves_nothing() {
    let Attempt {
        fake,
        dir,
        engine: e,
        outcome,
    } = attempt(Body::Endless, Duration::from_secs(10)).await;
    assert_size_mismatch(&outcome.unwrap_err(), "of at least");
    assert_nothing_kept(&e, dir.path()).await;
    // The upstream connection is dropped: the endless body stops being read.
    let quiet = Duration::from_millis(500);
    actix_web::rt::time::sleep(quiet).await;
    let before = fake.endless_sent();
    actix_web::rt::time::sleep(quiet).await;
    assert_eq!(fake.endless_sent(), before);
    assert!(
        before < 64 * 1024 * 1024,
        "{before} bytes read past the end"
    );

    fake.set(Body::Right);
    let size = fetch_blob(&e, &image("right").repo, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(size, BLOB.len() as u64);
    let on_disk = std::fs::read(dir.path().join("blobs").join(Digest::of(BLOB).hex())).unwrap();
    assert_eq!(on_disk, BLOB);
}

#[actix_web::test]
async fn a_content_length_other_than_the_stated_size_fails_before_the_body_is_read() {
    // Far less than the idle timeout: the body (which never comes) was not waited for.
    let a = attempt(Body::LongContentLength, Duration::from_secs(5)).await;
    let err = a.outcome.unwrap_err();
    assert_size_mismatch(&err, &format!("with Content-Length {}", BLOB.len() + 100));
    assert_nothing_kept(&a.engine, a.dir.path()).await;
}

#[actix_web::test]
async fn a_body_ending_short_of_the_stated_size_fails_naming_both_sizes() {
    let a = attempt(Body::Short, Duration::from_secs(10)).await;
    let err = a.outcome.unwrap_err();
    assert_size_mismatch(&err, &format!("of {} bytes", BLOB.len() / 2));
    assert_nothing_kept(&a.engine, a.dir.path()).await;
}

#[actix_web::test]
async fn a_manifest_stating_a_wrong_size_cannot_fail_a_blob_for_one_stating_it_right() {
    let orders = [
        ["small", "right"],
        ["right", "small"],
        ["large", "right"],
        ["right", "large"],
    ];
    for order in orders {
        let (fake, endpoint) = fake_upstream(Body::Broken);
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), endpoint).await;
        // Both manifests are cached while the blob cannot be fetched (their prefetches fail).
        for tag in order {
            e.manifest(&image(tag)).await.unwrap();
        }
        let repo = image("right").repo;
        // Joins (or follows) the last of the prefetches, so none is under way afterwards.
        let err = fetch_blob(&e, &repo, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Upstream { .. }), "{err}");
        fake.set(Body::Right);
        let outcome = fetch_blob(&e, &repo, Duration::from_secs(10)).await;
        assert!(
            matches!(outcome, Ok(n) if n == BLOB.len() as u64),
            "{order:?}: {outcome:?}"
        );
    }
}

#[actix_web::test]
async fn a_manifest_stating_no_sizes_bounds_nothing() {
    let (_fake, endpoint) = fake_upstream(Body::Right);
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), endpoint).await;
    let unsized_image = image("unsized");
    e.manifest(&unsized_image).await.unwrap();
    let size = fetch_blob(&e, &unsized_image.repo, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(size, BLOB.len() as u64);
}

#[actix_web::test]
async fn the_first_request_after_a_failed_download_starts_a_new_one() {
    let (fake, endpoint) = fake_upstream(Body::Broken);
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), endpoint).await;
    let repo = image("right").repo;
    // Asking again the moment a failure is seen must not rejoin the download that failed;
    // repeated, since a wrong order of the blob table's and the readers' news shows only
    // sometimes.
    for attempt in 1..=30 {
        let err = fetch_blob(&e, &repo, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Upstream { .. }), "{err}");
        assert_eq!(
            fake.blob_requests(),
            attempt,
            "attempt {attempt} did not reach the upstream"
        );
    }
}

/// An engine over `endpoint` whose downloads are held to `max_blob_size` bytes.
async fn bounded_engine(dir: &std::path::Path, endpoint: String, max_blob_size: u64) -> Engine {
    engine_with(dir, endpoint, |c| {
        c.upstream_idle_timeout = Duration::from_secs(30);
        c.max_blob_size = max_blob_size;
    })
    .await
}

fn assert_too_large(err: &EngineError, sent: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, EngineError::BlobTooLarge { .. }),
        "not refused as too large: {msg}"
    );
    assert!(msg.contains(sent) && msg.contains("maxBlobSize"), "{msg}");
}

#[actix_web::test]
async fn an_endless_body_of_a_blob_no_manifest_names_is_cut_at_max_blob_size() {
    let (fake, endpoint) = fake_upstream(Body::Endless);
    let dir = tempfile::tempdir().unwrap();
    let limit = 1024 * 1024;
    let e = bounded_engine(dir.path(), endpoint, limit).await;
    // Asked for by digest alone: no cached manifest states a size.
    let err = fetch_blob(&e, &image("right").repo, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_too_large(&err, &format!("of more than {limit} bytes"));
    assert_nothing_kept(&e, dir.path()).await;
    let quiet = Duration::from_millis(500);
    actix_web::rt::time::sleep(quiet).await;
    let before = fake.endless_sent();
    actix_web::rt::time::sleep(quiet).await;
    assert_eq!(
        fake.endless_sent(),
        before,
        "the endless body is still being read"
    );
}

#[actix_web::test]
async fn a_content_length_over_max_blob_size_is_refused_before_the_body_is_read() {
    let (_fake, endpoint) = fake_upstream(Body::LongContentLength);
    let dir = tempfile::tempdir().unwrap();
    let e = bounded_engine(dir.path(), endpoint, BLOB.len() as u64).await;
    // Far less than the idle timeout: the body (which never comes) was not waited for.
    let err = fetch_blob(&e, &image("right").repo, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_too_large(&err, &format!("with Content-Length {}", BLOB.len() + 100));
    assert_nothing_kept(&e, dir.path()).await;
}

#[actix_web::test]
async fn a_download_of_unknown_size_counts_against_the_cache_as_it_grows() {
    let (_fake, endpoint) = fake_upstream(Body::Endless);
    let dir = tempfile::tempdir().unwrap();
    let e = bounded_engine(dir.path(), endpoint, 48 * 1024 * 1024).await;
    let repo = image("right").repo;
    let download = fetch_blob(&e, &repo, Duration::from_secs(60));
    let watch = async {
        for _ in 0..400 {
            let stats = e.cache_stats().await.unwrap();
            if stats.total_bytes >= 16 * 1024 * 1024 {
                return stats.total_bytes;
            }
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the growing download was never counted");
    };
    let (outcome, counted) = futures_util::future::join(download, watch).await;
    assert!(counted >= 16 * 1024 * 1024);
    assert!(
        matches!(outcome, Err(EngineError::BlobTooLarge { .. })),
        "{outcome:?}"
    );
    assert_eq!(
        e.cache_stats().await.unwrap().total_bytes,
        0,
        "a failed download still weighs on the cache"
    );
}

#[actix_web::test]
async fn below_the_free_space_floor_downloads_are_refused_and_cached_blobs_served() {
    let (fake, endpoint) = fake_upstream(Body::Right);
    let dir = tempfile::tempdir().unwrap();
    actors::store::FsStore::open(dir.path())
        .unwrap()
        .write_blob(&Digest::of(CONFIG), CONFIG)
        .unwrap();
    let e = engine_with(dir.path(), endpoint, |c| {
        c.min_free_space = actors::config::FreeSpace::Bytes(u64::MAX)
    })
    .await;
    let repo = image("right").repo;
    let err = fetch_blob(&e, &repo, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::InsufficientStorage(_)),
        "not refused for the floor: {err}"
    );
    assert!(err.to_string().contains("minFreeSpace"), "{err}");
    assert_eq!(
        fake.blob_requests(),
        0,
        "the upstream was asked although nothing could be stored"
    );
    assert_nothing_kept(&e, dir.path()).await;
    let cached = fetch(&e, &repo, &Digest::of(CONFIG), Duration::from_secs(10)).await;
    assert_eq!(
        cached.unwrap(),
        CONFIG.len() as u64,
        "a cached blob is still served"
    );
}

#[actix_web::test]
async fn a_redirect_to_another_host_is_followed_without_our_credentials() {
    // Registries send blob downloads to a CDN or a presigned URL on another host: the
    // credentials we hold for the registry must not travel there.
    let cdn = Fake::start_on("127.0.0.2", Body::Right);
    let origin = Fake::start(Body::Right);
    origin.redirect_blobs_to(&cdn.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with(dir.path(), origin.endpoint(), |c| {
        c.upstreams[0].auth = Some(actors::config::Credentials {
            user: "puller".into(),
            password: "s3cret".into(),
        })
    })
    .await;
    let size = fetch_blob(&e, &image("right").repo, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(size, BLOB.len() as u64);
    let asked = origin.blob_authorizations();
    assert!(
        asked.len() == 1 && asked[0].as_deref().is_some_and(|a| a.starts_with("Basic ")),
        "the registry was not asked with our credentials: {asked:?}"
    );
    assert_eq!(
        cdn.blob_authorizations(),
        vec![None],
        "our credentials went to another host"
    );
}

/// An origin on plain HTTP holding credentials, sending blobs to an HTTPS "CDN" on another
/// host name whose certificate the test CA signed.
async fn redirected_to_tls(
    dir: &std::path::Path,
    pki: &test_pki::Pki,
    trust_ca: bool,
) -> (Engine, Arc<Fake>, Arc<Fake>) {
    let cdn = Fake::start_tls(
        Body::Right,
        &pki.path("server.crt"),
        &pki.path("server.key"),
    );
    let origin = Fake::start(Body::Right);
    origin.redirect_blobs_to(&cdn.endpoint());
    let ca = pki.path("ca.crt");
    let e = engine_with(dir, origin.endpoint(), |c| {
        c.upstreams[0].auth = Some(actors::config::Credentials {
            user: "puller".into(),
            password: "s3cret".into(),
        });
        if trust_ca {
            c.upstreams[0].tls.ca = Some(ca);
        }
    })
    .await;
    (e, origin, cdn)
}

#[actix_web::test]
async fn a_redirect_to_a_tls_host_is_verified_against_the_configured_ca_without_our_credentials() {
    let pki = test_pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (e, origin, cdn) = redirected_to_tls(dir.path(), &pki, true).await;
    let size = fetch_blob(&e, &image("right").repo, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(size, BLOB.len() as u64);
    assert_eq!(origin.blob_authorizations().len(), 1);
    assert_eq!(
        cdn.blob_authorizations(),
        vec![None],
        "our credentials went to another host"
    );
}

#[actix_web::test]
async fn a_redirect_to_a_tls_host_with_an_untrusted_certificate_fails_and_keeps_nothing() {
    let pki = test_pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (e, origin, cdn) = redirected_to_tls(dir.path(), &pki, false).await;
    let failed = fetch_blob(&e, &image("right").repo, Duration::from_secs(10)).await;
    assert!(
        failed.is_err(),
        "a certificate neither the OS store nor a configured CA trusts was accepted"
    );
    assert_eq!(origin.blob_authorizations().len(), 1);
    assert!(
        cdn.blob_authorizations().is_empty(),
        "the untrusted host was sent a request"
    );
    assert_nothing_kept(&e, dir.path()).await;
}
