//! `export -o F`: complete the listed images in the cache (fetching what is missing, as
//! `load` does), then write them to an OCI image layout tar archive for `import` on the other
//! side of an air gap. See [`actors::bundle`] for the archive's shape. Beside a server running
//! on the cache, the server completes them and the files are only read.

use std::path::Path;
use std::sync::Arc;

use actors::bundle::{self, BundleImage};
use actors::manifest_index::CachedManifest;
use actors::oci::{Digest, ImageRef, Manifest, Reference};
use actors::preload::{LoadMeter, Platforms};
use actors::store::{CacheLock, FsStore, LockError, ManifestHolder};
use actors::Engine;
use futures_util::StreamExt as _;

use super::load::ImageSource;
use super::progress::{self, Board};
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
                    .map(drop)
                    .map_err(|e| bundle::BundleError::Invalid(e.to_string()))
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
    let loaded = super::remote::load(config, admin_url, &names, progress::log_line)?;
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

/// Writes `dest` through a temp file beside it: of a unique name, so two exports to one file
/// cannot write into each other; synced before the rename into place, and the directory synced
/// after it, so a crash leaves either the old file or the whole new one. On failure `dest` is
/// left as it was and the temp file removed.
fn write_atomically(
    dest: &Path,
    write: impl FnOnce(std::fs::File) -> Result<(), String>,
) -> Result<(), String> {
    let name = dest
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", dest.display()))?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|e| {
            format!(
                "{}: cannot create a temp file beside it: {e}",
                dest.display()
            )
        })?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    write(file)?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    tmp.persist(dest)
        .map_err(|e| format!("{}: {}", dest.display(), e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::write_atomically;

    fn leftovers(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".part"))
            .collect()
    }

    #[test]
    fn two_writes_to_one_file_do_not_share_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("bundle.tar");
        // The second export starts and ends while the first is still writing.
        write_atomically(&dest, |mut first| {
            first.write_all(b"first ").unwrap();
            write_atomically(&dest, |mut second| {
                second.write_all(b"second").map_err(|e| e.to_string())
            })?;
            assert_eq!(std::fs::read(&dest).unwrap(), b"second");
            first.write_all(b"export").map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"first export");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_its_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("bundle.tar");
        std::fs::write(&dest, b"old").unwrap();
        let err = write_atomically(&dest, |mut f| {
            f.write_all(b"half").unwrap();
            Err("the upstream went away".to_string())
        })
        .unwrap_err();
        assert_eq!(err, "the upstream went away");
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert!(leftovers(dir.path()).is_empty());
    }
}
