//! `import ARCHIVE` (and `load --archive ARCHIVE`): load an OCI image layout tar archive into
//! the cache. See [`actors::bundle`] for what is checked. Beside a server running on the same
//! cache, the archive is sent to the server (`POST /cmd/import`), which imports it into its
//! own directory and serves the images at once.

use std::path::Path;

use actors::bundle;
use actors::store::{CacheLock, FsStore, LockError};

use super::progress;
use super::summary::Summary;
use crate::config::Config;

/// The `import` subcommand.
pub fn run(config: Config, archive: &Path) -> Result<(), String> {
    if !archive.is_file() {
        return Err(format!("archive {}: no such file", archive.display()));
    }
    let _lock = match CacheLock::acquire(&config.image_path) {
        Ok(lock) => lock,
        // A server holds the cache: it imports into its own engine and files.
        Err(LockError::Busy {
            admin: Some(url), ..
        }) => return finish(super::remote::import(&config, &url, archive)?),
        Err(e) => return Err(e.to_string()),
    };
    let store = FsStore::open(&config.image_path).map_err(|e| e.to_string())?;
    let size = std::fs::metadata(archive).map(|m| m.len()).unwrap_or(0);
    let bar = progress::bytes_bar(size, &format!("reading {}", archive.display()));
    let started = std::time::Instant::now();
    let summary = import_into(&store, archive, &|n| bar.inc(n));
    bar.finish_and_clear();
    let summary = summary?;
    log::info!(
        "read {}: {}",
        archive.display(),
        progress::amount_and_rate(bar.position(), started.elapsed())
    );
    finish(summary)
}

/// Imports `archive` into the cache directory of `store` (with the cache lock held, or by the
/// server that holds it), telling `read` how many bytes each read took; the per-image report.
/// An archive that is no OCI image layout at all is an error; an image of it that cannot be
/// imported is a failure in the report.
pub fn import_into(store: &FsStore, archive: &Path, read: &dyn Fn(u64)) -> Result<Summary, String> {
    let report = bundle::import_archive(store, archive, read).map_err(|e| e.to_string())?;
    let mut summary = Summary::default();
    for i in report.imported {
        let line = format!(
            "{} manifest(s), {} blob(s), {} new",
            i.manifests,
            i.blobs,
            i.new_manifests + i.new_blobs
        );
        log::info!("imported {}: {line}", i.reference);
        if i.was_cached() {
            summary.cached.push(i.reference);
        } else {
            summary.loaded.push(i.reference);
        }
    }
    summary.failed = report.failed;
    summary.loaded.sort();
    summary.cached.sort();
    Ok(summary)
}

/// Prints the report as `import` does on disk; exit code 1 when an image failed.
fn finish(summary: Summary) -> Result<(), String> {
    for (image, why) in &summary.failed {
        eprintln!("failed {image}: {why}");
    }
    print!("{}", summary.render());
    summary.into_result("imported")
}
