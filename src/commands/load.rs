//! `load --image-file F` (and `serve --preload-images F`), `load --from-manifests PATH`:
//! complete a list of images in the cache through the engine, then report what was loaded,
//! what was already cached and what failed, and why. `load --archive F` is `import F`.

use std::path::Path;

use actors::oci::ImageRef;
use actors::preload::{self, LoadMeter, Platforms};
use actors::store::{CacheLock, LockError};
use actors::Engine;
use futures_util::StreamExt as _;

use super::manifests;
use super::progress::{self, Board};
use super::summary::Summary;
use crate::cli::LoadArgs;
use crate::config::Config;

/// One line of an image list that names an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedImage {
    pub line: usize,
    pub image: ImageRef,
}

/// A line of an image list that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

/// Reads an image list: one reference a line; blank lines and `#` comments (whole-line or
/// trailing) are skipped. `name:tag@sha256:...` is read as the digest.
pub fn parse_image_list(text: &str) -> (Vec<ListedImage>, Vec<BadLine>) {
    let mut images = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let entry = raw.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let parsed = if entry.split_whitespace().count() > 1 {
            Err("one image reference per line".to_string())
        } else {
            parse_reference(entry)
        };
        match parsed {
            Ok(image) => images.push(ListedImage { line, image }),
            Err(reason) => bad.push(BadLine {
                line,
                text: entry.to_string(),
                reason,
            }),
        }
    }
    (images, bad)
}

fn parse_reference(entry: &str) -> Result<ImageRef, String> {
    // `repo:tag@digest`: the digest is what is pulled; the tag is only a note.
    let entry = match entry.split_once('@') {
        Some((name, digest)) => {
            let last = name.rsplit('/').next().unwrap_or(name);
            let name = match last.rsplit_once(':') {
                Some((_, tag)) if !tag.is_empty() => &name[..name.len() - tag.len() - 1],
                _ => name,
            };
            format!("{name}@{digest}")
        }
        None => entry.to_string(),
    };
    ImageRef::parse(&entry).map_err(|e| e.to_string())
}

/// Loads every image of the list file at `path` through `engine`, `jobs` at a time, with a
/// progress bar on a terminal and a log line per image otherwise.
pub async fn load_file(
    engine: &Engine,
    path: &Path,
    platforms: &Platforms,
    jobs: usize,
) -> Result<Summary, String> {
    let source = ImageSource::read_list(path)?;
    Ok(load_images(engine, source, platforms, jobs).await)
}

/// The images a command works on, and the lines that named none.
#[derive(Debug)]
pub struct ImageSource {
    /// What the images were read from, for messages.
    pub label: String,
    pub images: Vec<ListedImage>,
    pub bad: Vec<BadLine>,
    /// What `ListedImage::line` counts: lines of a list, or images found in manifests.
    pub unit: &'static str,
}

impl ImageSource {
    /// An image list file (`--image-file`).
    pub fn read_list(path: &Path) -> Result<ImageSource, String> {
        if !path.is_file() {
            return Err(format!("image list {}: no such file", path.display()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("image list {}: {e}", path.display()))?;
        let (images, bad) = parse_image_list(&text);
        Ok(ImageSource {
            label: path.display().to_string(),
            images,
            bad,
            unit: "line",
        })
    }

    /// The workload images of Kubernetes manifests (`--from-manifests`), each once.
    pub fn read_manifests(path: &Path) -> Result<ImageSource, String> {
        let found = manifests::images_in(path)?;
        let mut images = Vec::new();
        let mut bad = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, name) in found.into_iter().enumerate() {
            match parse_reference(&name) {
                Ok(image) => {
                    if seen.insert(image.clone()) {
                        images.push(ListedImage { line: i + 1, image });
                    }
                }
                Err(reason) => bad.push(BadLine {
                    line: i + 1,
                    text: name,
                    reason,
                }),
            }
        }
        let label = if path == Path::new("-") {
            "standard input".to_string()
        } else {
            path.display().to_string()
        };
        Ok(ImageSource {
            label,
            images,
            bad,
            unit: "image",
        })
    }

    /// `--from-manifests` when given, else the image list file.
    pub fn from_options(
        from_manifests: Option<&Path>,
        image_file: Option<&Path>,
        command: &str,
    ) -> Result<ImageSource, String> {
        match (from_manifests, image_file) {
            (Some(m), _) => ImageSource::read_manifests(m),
            (None, Some(f)) => ImageSource::read_list(f),
            (None, None) => Err(format!(
                "{command} needs images: --image-file FILE (or imageFile in the config file) or \
                 --from-manifests PATH"
            )),
        }
    }

    /// The unreadable entries as failures of a summary.
    pub fn bad_entries(&self) -> Vec<(String, String)> {
        self.bad
            .iter()
            .map(|b| {
                (
                    format!("{}:{} \"{}\"", self.label, b.line, b.text),
                    format!(
                        "{} {} is not an image reference: {}",
                        self.unit, b.line, b.reason
                    ),
                )
            })
            .collect()
    }
}

/// Loads `source`'s images through `engine`, `jobs` at a time, showing their bytes as they
/// land ([`Board`]).
pub async fn load_images(
    engine: &Engine,
    source: ImageSource,
    platforms: &Platforms,
    jobs: usize,
) -> Summary {
    let board = Board::new(source.images.len());
    let summary = load_images_reporting(engine, source, platforms, jobs, &board, |line, failed| {
        board.report(line, failed)
    })
    .await;
    board.finish();
    summary
}

/// [`load_images`] drawing on `board` and telling `report` each image's line (and whether it
/// failed) as it ends: the running server streams them to a `load` run beside it.
pub async fn load_images_reporting(
    engine: &Engine,
    source: ImageSource,
    platforms: &Platforms,
    jobs: usize,
    board: &Board,
    mut report: impl FnMut(&str, bool),
) -> Summary {
    let mut summary = Summary {
        failed: source.bad_entries(),
        ..Summary::default()
    };
    let unit = source.unit;
    log::info!(
        "loading {} image(s) from {} for {platforms}",
        source.images.len(),
        source.label
    );
    let mut results = futures_util::stream::iter(source.images)
        .map(|li| {
            let engine = engine.clone();
            let platforms = platforms.clone();
            let board = board.clone();
            async move {
                let meter = LoadMeter::default();
                let mut line = board.image(&li.image.to_string());
                let r = line
                    .follow(
                        &meter,
                        preload::load_image(&engine, &li.image, &platforms, &meter),
                    )
                    .await;
                (li, r, line.finish(&meter))
            }
        })
        .buffer_unordered(jobs.max(1));
    while let Some((li, result, measured)) = results.next().await {
        let name = li.image.to_string();
        let line = match &result {
            Ok(l) if l.was_cached() => {
                summary.cached.push(format!("{name} ({measured})"));
                format!("already cached {name} ({measured})")
            }
            Ok(l) => {
                summary.loaded.push(format!("{name} ({measured})"));
                format!(
                    "loaded {name}: {} manifest(s), {} blob(s), {} fetched, {measured}",
                    l.manifests,
                    l.blobs,
                    l.fetched_manifests + l.fetched_blobs
                )
            }
            Err(e) => {
                summary.failed.push((name.clone(), e.to_string()));
                format!("failed {name} ({unit} {}): {e}", li.line)
            }
        };
        report(&line, result.is_err());
    }
    summary.loaded.sort();
    summary.cached.sort();
    summary
}

/// The `load` subcommand.
pub fn run(config: Config, args: &LoadArgs) -> Result<(), String> {
    if let Some(archive) = &args.archive {
        return super::import::run(config, archive);
    }
    let source = ImageSource::from_options(
        args.from_manifests.as_deref(),
        config.ops.image_file.as_deref(),
        "load",
    )?;
    let _lock = match CacheLock::acquire(&config.image_path) {
        Ok(lock) => lock,
        // A server holds the cache: it loads the images itself, and serves them at once.
        Err(LockError::Busy {
            admin: Some(url), ..
        }) => {
            let images: Vec<String> = source
                .images
                .iter()
                .map(|li| li.image.to_string())
                .collect();
            let mut summary = super::remote::load(&config, &url, &images, progress::log_line)?;
            // The lines that named no image come first, as on disk.
            let mut failed = source.bad_entries();
            failed.append(&mut summary.failed);
            summary.failed = failed;
            print!("{}", summary.render());
            return summary.into_result("loaded");
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut engine_config = config.engine_config();
    // A one-off load never prunes.
    engine_config.prune = None;
    let system = actix_web::rt::System::new();
    let summary = system.block_on(async move {
        let engine = Engine::start(engine_config)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(
            load_images(&engine, source, &config.ops.platforms, config.ops.load_jobs).await,
        )
    })?;
    print!("{}", summary.render());
    summary.into_result("loaded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_skip_comments_and_name_bad_lines() {
        let d = format!("sha256:{}", "a".repeat(64));
        let text = format!(
            "# images\n\nregistry.k8s.io/pause:3.8\n  quay.io/a/b@{d}  # pinned\n\
             nginx\nnot a ref\nquay.io/UPPER/x:1\nquay.io/a/b:v1@{d}\n"
        );
        let (ok, bad) = parse_image_list(&text);
        let ok: Vec<(usize, String)> = ok.iter().map(|i| (i.line, i.image.to_string())).collect();
        assert_eq!(
            ok,
            vec![
                (3, "registry.k8s.io/pause:3.8".to_string()),
                (4, format!("quay.io/a/b@{d}")),
                (5, "docker.io/library/nginx:latest".to_string()),
                (8, format!("quay.io/a/b@{d}")),
            ]
        );
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![6, 7]);
        assert!(bad[1].reason.contains("UPPER"), "{}", bad[1].reason);
    }
}
