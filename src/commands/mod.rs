//! The subcommands other than `serve`'s HTTP front end, one file each, plus the pieces `serve`
//! adds around the front end (`serve.rs`) and the per-image report they share (`summary.rs`).

pub mod export;
pub mod import;
pub mod list;
pub mod load;
pub mod manifests;
pub mod prune;
pub mod serve;
pub mod summary;
