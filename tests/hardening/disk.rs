//! A full disk: the cache lives on a small tmpfs that fills up during a pull. The client gets a
//! clear error, the log says why, no partial file counts as cached, what is cached keeps being
//! served, and pulls work again once space is freed.
//!
//! Mounting needs root (CAP_SYS_ADMIN); where it is not permitted the test says so loudly and
//! skips.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::checks::{
    assert_cache_sound, assert_server_alive, cached_manifest_digests, temp_files,
};
use support::http;
use support::proc::run;
use support::{hex_of, sha256_hex, wait_for, LocalImage, Server, ServerOptions, Upstream};

const REPO: &str = "e2e/disk";

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-disk-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        let out = run(
            Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0755"),
                    "tmpfs",
                ])
                .arg(&mount),
            Duration::from_secs(10),
        );
        if !out.success() {
            return Err(out.to_string());
        }
        Ok(Tmpfs { _dir: dir, mount })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Writes zeros to `path` until the filesystem is full (or `limit` bytes are written).
fn fill(path: &Path, limit: u64) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0;
    while written < limit {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
    written
}

#[test]
fn a_full_disk_fails_the_pull_cleanly_keeps_serving_the_cache_and_recovers_when_freed() {
    let fs = match Tmpfs::mount("8m") {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!(
                "\n!!!!! SKIPPED a_full_disk_fails_the_pull_cleanly...: cannot mount a tmpfs \
                 (needs root / CAP_SYS_ADMIN): {e}\n"
            );
            return;
        }
    };
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["1M", "3M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let amd64 = tree.platform("amd64").clone();
    let (small, big) = (amd64.layers[0].clone(), amd64.layers[1].clone());
    let small_bytes = upstream.blob(REPO, &small);
    let big_bytes = upstream.blob(REPO, &big);

    let cache = fs.mount.join("cache");
    std::fs::create_dir(&cache).expect("cache dir on the tmpfs");
    let filler = fs.mount.join("filler");
    fill(&filler, 5 * 1024 * 1024);
    // No free-space floor: this is the disk filling up under a download.
    let mut server = Server::start_with(ServerOptions {
        cache_dir: Some(cache.clone()),
        extra_args: vec!["--min-free-space".into(), "0".into()],
        ..ServerOptions::new(&upstream.url())
    });

    // Room for the small layer.
    let r = http::get(server.port, &server.blob_path(REPO, &small));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.body == small_bytes, "small layer: wrong bytes");

    // No room for the big one: the disk fills during the download.
    let big_path = server.blob_path(REPO, &big);
    match http::request(server.port, "GET", &big_path, &[]) {
        Ok(r) => {
            assert_ne!(
                r.status, 200,
                "a blob larger than the free space was served complete"
            );
            assert!(r.status >= 500, "{}", r.summary());
            assert!(r.text().contains("No space left"), "{}", r.summary());
        }
        Err(e) => eprintln!("big layer on a full disk: the body was cut ({e}), as expected"),
    }
    wait_for(
        "the log to name the full disk",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            server
                .log_text()
                .contains("No space left on device")
                .then_some(())
        },
    );
    wait_for(
        "the partial download to be removed",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || temp_files(&cache).is_empty().then_some(()),
    );
    assert!(
        !server.cached_blobs().contains(&hex_of(&big).to_string()),
        "a blob that did not fit is counted as cached"
    );
    assert_cache_sound(&server, "after the disk filled during a download");

    // What is cached is still served, also with the disk completely full.
    let full = fs.mount.join("filler-2");
    fill(&full, u64::MAX);
    let r = http::get(server.port, &server.blob_path(REPO, &small));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(
        r.body == small_bytes,
        "cached layer on a full disk: wrong bytes"
    );
    assert_eq!(http::get(server.port, "/v2/").status, 200);

    // A manifest cannot be persisted: a clear error, nothing half-written indexed.
    let r = http::get_manifest(server.port, &server.manifest_path(REPO, "v1"));
    assert!(
        r.status >= 500 && r.oci_error_codes().is_some(),
        "manifest on a full disk: {}",
        r.summary()
    );
    assert!(r.text().contains("No space left"), "{}", r.summary());
    assert!(
        cached_manifest_digests(&cache).is_empty(),
        "a manifest was written to a full disk"
    );
    assert_cache_sound(&server, "after a manifest write on a full disk");
    assert_server_alive(&mut server, "with the disk full");

    // Space freed: everything works again, without a restart.
    std::fs::remove_file(&filler).expect("free space");
    std::fs::remove_file(&full).expect("free space");
    let r = http::get(server.port, &big_path);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(
        r.body == big_bytes,
        "big layer after freeing space: wrong bytes"
    );
    let r = http::get_manifest(server.port, &server.manifest_path(REPO, "v1"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(format!("sha256:{}", sha256_hex(&r.body)), tree.top);
    assert!(server.cached_blobs().contains(&hex_of(&big).to_string()));
    assert_cache_sound(&server, "after space was freed");
    assert_server_alive(&mut server, "after space was freed");
    drop(server);
}

#[test]
fn a_cache_at_its_free_space_floor_refuses_downloads_before_asking_and_serves_what_it_has() {
    let fs = match Tmpfs::mount("16m") {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!(
                "\n!!!!! SKIPPED a_cache_at_its_free_space_floor...: cannot mount a tmpfs \
                 (needs root / CAP_SYS_ADMIN): {e}\n"
            );
            return;
        }
    };
    let upstream = Upstream::start();
    let image = LocalImage::generate_for(&["1M", "1M"], "linux/amd64");
    let tree = upstream.push_oci(&image, REPO, "v1");
    let amd64 = tree.platform("amd64").clone();
    let (first, second) = (amd64.layers[0].clone(), amd64.layers[1].clone());
    let first_bytes = upstream.blob(REPO, &first);
    let second_bytes = upstream.blob(REPO, &second);
    let cache = fs.mount.join("cache");
    std::fs::create_dir(&cache).expect("cache dir on the tmpfs");
    let mut server = Server::start_with(ServerOptions {
        cache_dir: Some(cache.clone()),
        extra_args: vec!["--min-free-space".into(), "8MiB".into()],
        ..ServerOptions::new(&upstream.url())
    });

    // Above the floor: the first layer is fetched and kept.
    let r = http::get(server.port, &server.blob_path(REPO, &first));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.body == first_bytes, "first layer: wrong bytes");
    server.settle();

    // Filled to below the floor (8 MiB free of 16): new downloads are refused with 507 and an
    // OCI error, before the upstream is asked.
    let filler = fs.mount.join("filler");
    fill(&filler, 8 * 1024 * 1024);
    let gets = |u: &Upstream| u.count_requests("GET", &format!("/{REPO}/blobs/{second}"));
    let before = gets(&upstream);
    let r = http::get(server.port, &server.blob_path(REPO, &second));
    assert_eq!(r.status, 507, "{}", r.summary());
    assert_eq!(
        r.oci_error_codes(),
        Some(vec!["UNAVAILABLE".to_string()]),
        "{}",
        r.summary()
    );
    assert!(r.text().contains("minFreeSpace"), "{}", r.summary());
    assert_eq!(
        gets(&upstream),
        before,
        "the upstream was asked below the floor"
    );
    assert!(
        temp_files(&cache).is_empty(),
        "a refused download left a temp file"
    );

    // What is cached is served all the same.
    let r = http::get(server.port, &server.blob_path(REPO, &first));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(
        r.body == first_bytes,
        "cached layer below the floor: wrong bytes"
    );
    assert_server_alive(&mut server, "below the free-space floor");

    // Room again: the refused layer comes.
    std::fs::remove_file(&filler).expect("free space");
    let r = http::get(server.port, &server.blob_path(REPO, &second));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(
        r.body == second_bytes,
        "second layer after freeing space: wrong bytes"
    );
    assert_eq!(
        gets(&upstream),
        before + 1,
        "the layer was fetched once, once there was room"
    );
    assert_cache_sound(&server, "after space was freed");
    drop(server);
}
