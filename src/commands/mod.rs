//! The subcommands, one file each (`serve.rs` runs the HTTP front end of `server` and what goes
//! around it), plus the per-image report `load`, `export` and `import` share (`summary.rs`)
//! and the client that asks a running server to do a command's work (`remote.rs`), and the
//! completion scripts and manual pages generated from the command line's own description
//! (`shell.rs`).

pub mod export;
pub mod import;
pub mod list;
pub mod load;
pub mod manifests;
pub mod progress;
pub mod prune;
pub mod remote;
pub mod serve;
pub mod shell;
pub mod summary;

/// `export`, `import`, `list` and `prune` read and write a cache directory. With `storage.s3`
/// the cache is the bucket, which they do not reach: refused, rather than working silently on
/// the replica's scratch directory.
pub fn directory_only(config: &crate::config::Config, command: &str) -> Result<(), String> {
    match &config.storage {
        None => Ok(()),
        Some(s3) => Err(format!(
            "`{command}` works on a cache directory, and this configuration keeps the cache in \
             the bucket {} (storage.s3); ask a running replica through its admin API instead \
             (`curl -X DELETE 'http://REPLICA:8080/cmd/prune?type=...'` prunes the whole \
             bucket, `GET /cmd/manifest/list` lists it), or copy the bucket to a directory \
             (its keys are the directory's layout) and run it there",
            s3.bucket
        )),
    }
}
