//! `export -o F`: complete the listed images in the cache (fetching what is missing, as
//! `load` does), then write them to an OCI image layout tar archive for `import` on the other
//! side of an air gap. See [`actors::bundle`] for the archive's shape.

use std::path::Path;

use actors::bundle::{self, BundleImage};
use actors::preload::LoadMeter;
use actors::store::{CacheLock, FsStore};
use actors::Engine;
use futures_util::StreamExt as _;

use super::load::ImageSource;
use super::progress::Board;
use super::summary::Summary;
use crate::cli::ExportArgs;
use crate::config::Config;

/// The `export` subcommand.
pub fn run(config: Config, args: &ExportArgs) -> Result<(), String> {
    let source = ImageSource::from_options(
        args.from_manifests.as_deref(),
        config.ops.image_file.as_deref(),
        "export",
    )?;
    let _lock = CacheLock::acquire(&config.image_path).map_err(|e| e.to_string())?;
    let mut engine_config = config.engine_config();
    engine_config.prune = None;
    let platforms = config.ops.platforms.clone();
    let jobs = config.ops.load_jobs.max(1);
    let system = actix_web::rt::System::new();
    let (summary, images) = system.block_on(async move {
        let engine = Engine::start(engine_config)
            .await
            .map_err(|e| e.to_string())?;
        let mut summary = Summary::default();
        for b in &source.bad {
            summary.failed.push((
                format!("{}:{} \"{}\"", source.label, b.line, b.text),
                format!(
                    "{} {} is not an image reference: {}",
                    source.unit, b.line, b.reason
                ),
            ));
        }
        let board = Board::new(source.images.len());
        // Keep the order of the list in the archive's index.
        let mut results: Vec<(usize, Result<BundleImage, String>)> =
            futures_util::stream::iter(source.images.into_iter().enumerate())
                .map(|(i, li)| {
                    let engine = engine.clone();
                    let platforms = platforms.clone();
                    let board = board.clone();
                    async move {
                        let meter = LoadMeter::default();
                        let mut line = board.image(&li.image.to_string());
                        let r = line
                            .follow(
                                &meter,
                                bundle::collect(&engine, &li.image, &platforms, &meter),
                            )
                            .await
                            .map_err(|e| format!("{}: {e}", li.image));
                        let measured = line.finish(&meter);
                        board.report(
                            &match &r {
                                Ok(b) => format!("ready {} ({measured})", b.reference),
                                Err(e) => format!("failed {e}"),
                            },
                            r.is_err(),
                        );
                        (i, r)
                    }
                })
                .buffer_unordered(jobs)
                .collect()
                .await;
        board.finish();
        results.sort_by_key(|(i, _)| *i);
        let mut images = Vec::new();
        for (_, r) in results {
            match r {
                Ok(b) => images.push(b),
                Err(e) => {
                    let (what, why) = e.split_once(": ").unwrap_or((&e, ""));
                    summary.failed.push((what.to_string(), why.to_string()));
                }
            }
        }
        Ok::<_, String>((summary, images))
    })?;
    if !summary.failed.is_empty() {
        print!("{}", summary.render());
        return Err(format!(
            "{} image(s) could not be exported; {} not written",
            summary.failed.len(),
            args.output.display()
        ));
    }
    let store = FsStore::read_only(&config.image_path);
    write_atomically(&args.output, |file| {
        bundle::write_bundle(&store, &images, std::io::BufWriter::new(file))
            .and_then(|w| {
                w.into_inner()
                    .map_err(|e| bundle::BundleError::Invalid(e.to_string()))
            })
            .and_then(|f| {
                f.sync_all().map_err(|source| bundle::BundleError::Io {
                    path: args.output.clone(),
                    source,
                })
            })
            .map_err(|e| e.to_string())
    })?;
    for i in &images {
        println!("exported        {}", i.reference);
    }
    println!(
        "{} image(s) exported to {}",
        images.len(),
        args.output.display()
    );
    Ok(())
}

/// Writes `dest` through a temp file beside it, renamed into place only once complete.
fn write_atomically(
    dest: &Path,
    write: impl FnOnce(std::fs::File) -> Result<(), String>,
) -> Result<(), String> {
    let name = dest
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", dest.display()))?;
    let tmp = dest.with_file_name(format!(".{}.part", name.to_string_lossy()));
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let result = write(file)
        .and_then(|()| std::fs::rename(&tmp, dest).map_err(|e| format!("{}: {e}", dest.display())));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
