//! `export -o F`: complete the listed images in the cache (fetching what is missing, as
//! `load` does), then write them to an OCI image layout tar archive for `import` on the other
//! side of an air gap. See [`actors::bundle`] for the archive's shape. Beside a server running
//! on the cache, the server completes them and the files are only read.

use std::path::Path;
use std::sync::Arc;

use actors::bundle::{self, BundleImage};
use actors::manifest_index::CachedManifest;
use actors::oci::{Digest, ImageRef, Manifest, Reference};
use actors::preload::Platforms;
use actors::store::{CacheLock, FsStore, LockError, ManifestHolder};
use actors::Engine;
use futures_util::StreamExt as _;

use super::load::{progress_bar, report_line, ImageSource};
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
    let lock = match CacheLock::acquire(&config.image_path) {
        Ok(lock) => lock,
        // A server holds the cache: it completes the images, then the files are only read.
        Err(LockError::Busy {
            admin: Some(url), ..
        }) => {
            let (summary, images) = beside_server(&config, &url, source)?;
            return finish(&config, args, summary, images);
        }
        Err(e) => return Err(e.to_string()),
    };
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
        let bar = progress_bar(source.images.len());
        // Keep the order of the list in the archive's index.
        let mut results: Vec<(usize, Result<BundleImage, String>)> =
            futures_util::stream::iter(source.images.into_iter().enumerate())
                .map(|(i, li)| {
                    let engine = engine.clone();
                    let platforms = platforms.clone();
                    let bar = bar.clone();
                    async move {
                        let r = bundle::collect(&engine, &li.image, &platforms)
                            .await
                            .map_err(|e| format!("{}: {e}", li.image));
                        report_line(
                            &bar,
                            &match &r {
                                Ok(b) => format!("ready {}", b.reference),
                                Err(e) => format!("failed {e}"),
                            },
                            r.is_err(),
                        );
                        bar.inc(1);
                        (i, r)
                    }
                })
                .buffer_unordered(jobs)
                .collect()
                .await;
        bar.finish_and_clear();
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
    drop(lock);
    finish(&config, args, summary, images)
}

/// Writes the bundle of `images`, or reports why not.
fn finish(
    config: &Config,
    args: &ExportArgs,
    summary: Summary,
    images: Vec<BundleImage>,
) -> Result<(), String> {
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
/// `export` beside a running server: the server completes the images (fetching what is
/// missing, as `load` beside it does), then the manifests and blobs are read from the files,
/// never written: the server keeps the cache.
fn beside_server(
    config: &Config,
    admin_url: &str,
    source: ImageSource,
) -> Result<(Summary, Vec<BundleImage>), String> {
    let names: Vec<String> = source
        .images
        .iter()
        .map(|li| li.image.to_string())
        .collect();
    let hidden = indicatif::ProgressBar::hidden();
    let loaded = super::remote::load(config, admin_url, &names, |line, failed| {
        report_line(&hidden, line, failed)
    })?;
    let mut summary = Summary {
        failed: source.bad_entries(),
        ..Summary::default()
    };
    summary.failed.extend(loaded.failed);
    let store = FsStore::read_only(&config.image_path);
    let holders = store.load_manifests().map_err(|e| e.to_string())?.holders;
    let mut images = Vec::new();
    for li in &source.images {
        match on_disk(&holders, &li.image, &config.ops.platforms) {
            Ok(b) => images.push(b),
            Err(e)
                if summary
                    .failed
                    .iter()
                    .any(|(what, _)| *what == li.image.to_string()) =>
            {
                log::debug!("{}: {e}", li.image)
            }
            Err(e) => summary.failed.push((li.image.to_string(), e)),
        }
    }
    Ok((summary, images))
}

/// What a bundle of `image` holds, read from the manifests on disk: the manifest the
/// reference names, the image manifests of `platforms` if it is a list, their blobs.
fn on_disk(
    holders: &[ManifestHolder],
    image: &ImageRef,
    platforms: &Platforms,
) -> Result<BundleImage, String> {
    let find = |i: &ImageRef| -> Result<Arc<CachedManifest>, String> {
        let h = match &i.reference {
            Reference::Digest(d) => holders.iter().find(|h| h.digest() == d),
            Reference::Tag(_) => {
                let name = i.to_string();
                holders
                    .iter()
                    .find(|h| h.tags().contains(&name) || h.image_url() == name)
            }
        }
        .ok_or_else(|| format!("{i} is not cached"))?;
        let manifest =
            Manifest::parse(h.bytes(), Some(h.media_type())).map_err(|e| format!("{i}: {e}"))?;
        Ok(Arc::new(CachedManifest {
            digest: h.digest().clone(),
            bytes: h.bytes().to_vec().into(),
            manifest,
            image_url: h.image_url().to_string(),
        }))
    };
    let top = find(image)?;
    let mut children = Vec::new();
    if top.kind().is_list() {
        for c in &top.manifest.children {
            if platforms.accepts(c.platform.as_ref()) {
                children.push(find(
                    &image.with_reference(Reference::Digest(c.digest.clone())),
                )?);
            }
        }
    }
    let mut blobs: Vec<Digest> = if top.kind().is_list() {
        children.iter().collect::<Vec<_>>()
    } else {
        vec![&top]
    }
    .iter()
    .flat_map(|m| m.manifest.children.iter().map(|c| c.digest.clone()))
    .collect();
    let mut seen = std::collections::HashSet::new();
    blobs.retain(|d| seen.insert(d.clone()));
    Ok(BundleImage {
        reference: image.to_string(),
        top,
        children,
        blobs,
    })
}

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
