//! The subcommands, one file each (`serve.rs` runs the HTTP front end of `server` and what goes
//! around it), plus the per-image report `load`, `export` and `import` share (`summary.rs`)
//! and the client that asks a running server to do a command's work (`remote.rs`).

pub mod export;
pub mod import;
pub mod list;
pub mod load;
pub mod manifests;
pub mod progress;
pub mod prune;
pub mod remote;
pub mod serve;
pub mod summary;
