//! `prune`: removes manifests, the blobs only they use, and the blobs no image manifest names
//! (strays), from the cache on disk. Refuses to
//! run while a server holds the cache (see `actors::store::CacheLock`). Uses the same selection
//! and reference counting as the running server's pruner (`actors::prune`).

use std::collections::HashSet;

use actors::manifest_index::orphaned_blobs;
use actors::prune::{parse_patterns, plan, stray_blobs, Candidate, Selector};
use actors::store::{parse_time, CacheLock, FsStore, LockError};

use crate::cli::PruneArgs;
use crate::config::Config;

/// Reads `--date`: local time `YYYY-MM-DDTHH:MM:SS`.
pub fn parse_date(s: &str) -> Result<time::PrimitiveDateTime, String> {
    let s = s.trim();
    match parse_time(s) {
        Some(t) if s.len() == 19 => Ok(t),
        _ => Err(format!(
            "--date \"{s}\" is not a local time of the form YYYY-MM-DDTHH:MM:SS, e.g. \
             2024-03-01T22:17:31"
        )),
    }
}

/// The selector for the command line options.
pub fn selector(args: &PruneArgs) -> Result<Selector, String> {
    let sel = Selector {
        patterns: args.pattern.as_deref().map(parse_patterns).transpose()?,
        created_before: args.date.as_deref().map(parse_date).transpose()?,
        pulled_before: None,
    };
    if sel.is_empty() {
        return Err("prune needs --pattern or --date".into());
    }
    Ok(sel)
}

/// The `prune` subcommand. Prints every decision.
pub fn run(config: Config, args: &PruneArgs) -> Result<(), String> {
    let sel = selector(args)?;
    let root = &config.image_path;
    if !root.is_dir() {
        return Err(format!("the cache {} does not exist", root.display()));
    }
    let _lock = match CacheLock::acquire(root) {
        Ok(lock) => lock,
        // A server holds the cache: it prunes its own actors and files, as it is.
        Err(LockError::Busy {
            admin: Some(url), ..
        }) => {
            let done = super::remote::prune(&config, &url, args)?;
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for m in &done.manifests {
                println!("{verb} {m}");
            }
            for (d, size) in &done.blobs {
                println!("{}", blob_line(verb, d, *size));
            }
            for (d, why) in &done.kept {
                println!("kept blob {d}: {why}");
            }
            let bytes = done.blobs.iter().map(|(_, s)| s).sum();
            println!(
                "{}",
                summary_line(args.dry_run, done.manifests.len(), done.blobs.len(), bytes)
            );
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    let store = if args.dry_run {
        FsStore::read_only(root)
    } else {
        FsStore::open(root).map_err(|e| e.to_string())?
    };
    let loaded = store.load_manifests().map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    for h in &loaded.holders {
        match Candidate::from_holder(h) {
            Ok(c) => all.push(c),
            Err(e) => eprintln!("skipped {}: {e}", h.image_url()),
        }
    }
    let doomed = plan(&all, &sel, None);
    let on_disk: HashSet<_> = store
        .list_blobs()
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let sizes: std::collections::HashMap<_, _> = on_disk.iter().cloned().collect();
    let mut blobs: Vec<_> = orphaned_blobs(&all, &doomed)
        .into_iter()
        .filter(|d| sizes.contains_key(d))
        .collect();
    // With no server running (the lock says so) no download is under way: every blob file no
    // image manifest names is garbage.
    let on_disk_list: Vec<_> = sizes.keys().cloned().collect();
    let strays = stray_blobs(&all, &on_disk_list);
    blobs.extend(strays);
    blobs.sort();
    blobs.dedup();
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut failures = 0;
    for m in &doomed {
        if !args.dry_run {
            if let Err(e) = store.remove_manifest(&m.digest) {
                eprintln!("cannot remove {m}: {e}");
                failures += 1;
                continue;
            }
        }
        log::info!("prune: {verb} {m}");
        println!("{verb} {m}");
    }
    let mut bytes = 0;
    for d in &blobs {
        if !args.dry_run {
            if let Err(e) = store.remove_blob(d) {
                eprintln!("cannot remove blob {d}: {e}");
                failures += 1;
                continue;
            }
        }
        let size = sizes.get(d).copied().unwrap_or(0);
        bytes += size;
        let line = blob_line(verb, d, size);
        log::info!("prune: {line}");
        println!("{line}");
    }
    println!(
        "{}",
        summary_line(args.dry_run, doomed.len(), blobs.len(), bytes)
    );
    if failures > 0 {
        return Err(format!("{failures} file(s) could not be removed"));
    }
    Ok(())
}

/// One blob removed (or that would be).
fn blob_line(verb: &str, d: &actors::oci::Digest, size: u64) -> String {
    format!("{verb} blob {d} ({size} bytes): no kept image manifest names it")
}

/// The last line: what the prune did (or would do).
fn summary_line(dry_run: bool, manifests: usize, blobs: usize, bytes: u64) -> String {
    format!(
        "{}: {manifests} manifest(s), {blobs} blob(s), {bytes} bytes{}",
        if dry_run {
            "dry run, nothing changed"
        } else {
            "pruned"
        },
        if manifests == 0 {
            " (nothing matched)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_need_the_exact_layout() {
        assert!(parse_date("2024-03-01T22:17:31").is_ok());
        for bad in [
            "2024-03-01",
            "2024-03-01 22:17:31",
            "2024-03-01T22:17:31.5",
            "yesterday",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_selector_needs_an_option_and_valid_regexes() {
        assert!(selector(&PruneArgs::default()).is_err());
        let bad = PruneArgs {
            pattern: Some("(".into()),
            ..PruneArgs::default()
        };
        assert!(selector(&bad).unwrap_err().contains("not a valid regex"));
    }
}
