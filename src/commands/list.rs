//! `list`: the manifests of the cache, for finding what to prune. Reads only: the files, or,
//! when a server holds the cache, what that server holds (its newest `pulled` times may not be
//! flushed to disk yet). With `maxCacheSize` set, the text ends with a total line: the bytes of
//! blobs in the cache against the bound; the JSON always ends with the totals.

use actors::prune::{parse_patterns, Candidate};
use actors::store::{CacheLock, FsStore, ManifestHolder};

use crate::cli::{ListArgs, ListFormat};
use crate::config::Config;
use crate::listing::{manifests_text, ManifestRow};

/// The manifests of the cache at `config.image_path`, oldest first, and the files that could
/// not be read.
pub fn read_cache(config: &Config) -> Result<(Vec<ManifestHolder>, Vec<String>), String> {
    let root = &config.image_path;
    if !root.is_dir() {
        return Err(format!("the cache {} does not exist", root.display()));
    }
    let store = FsStore::read_only(root);
    let loaded = store.load_manifests().map_err(|e| e.to_string())?;
    let mut holders = loaded.holders;
    holders.sort_by(|a, b| (a.created(), a.image_url()).cmp(&(b.created(), b.image_url())));
    Ok((
        holders,
        loaded.problems.iter().map(ToString::to_string).collect(),
    ))
}

/// `TOTAL 1234 bytes in 5 blobs, bound 2000 bytes (60%)`: blob bytes against `maxCacheSize`.
pub fn total_line(blobs: &[(actors::oci::Digest, u64)], bound: u64) -> String {
    let total: u64 = blobs.iter().map(|(_, s)| s).sum();
    format!(
        "TOTAL {total} bytes in {} blobs, bound {bound} bytes ({}%)",
        blobs.len(),
        total.saturating_mul(100) / bound.max(1)
    )
}

/// The `list` subcommand.
pub fn run(config: Config, args: &ListArgs) -> Result<(), String> {
    let patterns = match &config.list.pattern {
        Some(p) => Some(parse_patterns(p)?),
        None => None,
    };
    // A server holding the cache knows it best: newer pull times than the files say.
    let rows = match CacheLock::holder_admin(&config.image_path) {
        Some(url) => {
            let mut rows = super::remote::manifests(&config, &url, config.list.pattern.as_deref())?;
            rows.sort_by(|a, b| (&a.created, &a.url).cmp(&(&b.created, &b.url)));
            rows
        }
        None => rows_on_disk(&config, patterns.as_deref())?,
    };
    print_rows(&config, args, rows)
}

/// The manifests of the cache's files, oldest first, those matching `patterns` if given.
fn rows_on_disk(
    config: &Config,
    patterns: Option<&[regex::Regex]>,
) -> Result<Vec<ManifestRow>, String> {
    let (holders, problems) = read_cache(config)?;
    for p in problems {
        eprintln!("skipped {p}");
    }
    Ok(holders
        .iter()
        .filter(|h| match &patterns {
            None => true,
            Some(p) => {
                let tags = Candidate::from_holder(h)
                    .map(|c| c.tags)
                    .unwrap_or_default();
                p.iter()
                    .any(|re| re.is_match(h.image_url()) || tags.iter().any(|t| re.is_match(t)))
            }
        })
        .map(ManifestRow::from_holder)
        .collect())
}

fn print_rows(config: &Config, args: &ListArgs, rows: Vec<ManifestRow>) -> Result<(), String> {
    match args.format {
        ListFormat::Text => {
            print!("{}", manifests_text(&rows, config.list.header));
            if let Some(b) = &config.ops.cache_bound {
                let blobs = FsStore::read_only(&config.image_path)
                    .list_blobs()
                    .map_err(|e| e.to_string())?;
                println!("{}", total_line(&blobs, b.max_bytes));
            }
        }
        ListFormat::Json => {
            let blobs = FsStore::read_only(&config.image_path)
                .list_blobs()
                .map_err(|e| e.to_string())?;
            let listing = JsonListing {
                totals: Totals::of(&rows, &blobs, config.ops.cache_bound.as_ref()),
                manifests: rows,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&listing).map_err(|e| e.to_string())?
            );
        }
    }
    Ok(())
}

/// `list --format json`: the rows, then the totals of the whole cache (as the text's total
/// line, whether or not a bound is set), so a script needs no second walk of the disk.
#[derive(serde::Serialize)]
struct JsonListing {
    manifests: Vec<ManifestRow>,
    totals: Totals,
}

#[derive(Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Totals {
    /// Manifests listed (after `--pattern`).
    manifests: usize,
    /// Every blob file of the cache, named by a manifest or not.
    blobs: usize,
    /// Their bytes.
    bytes: u64,
    /// `maxCacheSize`; `null` when unbounded.
    bound_bytes: Option<u64>,
}

impl Totals {
    fn of(
        rows: &[ManifestRow],
        blobs: &[(actors::oci::Digest, u64)],
        bound: Option<&crate::config::BoundSettings>,
    ) -> Totals {
        Totals {
            manifests: rows.len(),
            blobs: blobs.len(),
            bytes: blobs.iter().map(|(_, s)| s).sum(),
            bound_bytes: bound.map(|b| b.max_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{total_line, JsonListing, Totals};
    use actors::oci::Digest;

    #[test]
    fn the_json_ends_with_the_totals_of_every_blob() {
        let d = |c: char| Digest::from_hex(&c.to_string().repeat(64)).unwrap();
        let blobs = vec![(d('a'), 300), (d('b'), 200)];
        let listing = JsonListing {
            totals: Totals::of(&[], &blobs, None),
            manifests: vec![],
        };
        let text = serde_json::to_string_pretty(&listing).unwrap();
        assert_eq!(
            text,
            "{\n  \"manifests\": [],\n  \"totals\": {\n    \"manifests\": 0,\n    \
             \"blobs\": 2,\n    \"bytes\": 500,\n    \"boundBytes\": null\n  }\n}"
        );
    }

    #[test]
    fn the_total_line_sums_blobs_against_the_bound() {
        let d = |c: char| Digest::from_hex(&c.to_string().repeat(64)).unwrap();
        let blobs = vec![(d('a'), 300), (d('b'), 200)];
        assert_eq!(
            total_line(&blobs, 1000),
            "TOTAL 500 bytes in 2 blobs, bound 1000 bytes (50%)"
        );
        assert_eq!(
            total_line(&[], 1000),
            "TOTAL 0 bytes in 0 blobs, bound 1000 bytes (0%)"
        );
    }
}
