//! `import ARCHIVE` (and `load --archive ARCHIVE`): load an OCI image layout tar archive into
//! the cache, with the server stopped. See [`actors::bundle`] for what is checked.

use std::path::Path;

use actors::bundle;
use actors::store::{CacheLock, FsStore};

use super::progress;
use super::summary::Summary;
use crate::config::Config;

/// The `import` subcommand.
pub fn run(config: Config, archive: &Path) -> Result<(), String> {
    if !archive.is_file() {
        return Err(format!("archive {}: no such file", archive.display()));
    }
    let _lock = CacheLock::acquire(&config.image_path).map_err(|e| e.to_string())?;
    let store = FsStore::open(&config.image_path).map_err(|e| e.to_string())?;
    let size = std::fs::metadata(archive).map(|m| m.len()).unwrap_or(0);
    let bar = progress::bytes_bar(size, &format!("reading {}", archive.display()));
    let started = std::time::Instant::now();
    let report =
        bundle::import_archive(&store, archive, &|n| bar.inc(n)).map_err(|e| e.to_string());
    bar.finish_and_clear();
    let report = report?;
    log::info!(
        "read {}: {}",
        archive.display(),
        progress::amount_and_rate(bar.position(), started.elapsed())
    );
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
    for (image, why) in report.failed {
        eprintln!("failed {image}: {why}");
        summary.failed.push((image, why));
    }
    summary.loaded.sort();
    summary.cached.sort();
    print!("{}", summary.render());
    summary.into_result("imported")
}
