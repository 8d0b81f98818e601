//! The subcommands other than `serve`'s HTTP front end, one file each, plus the pieces `serve`
//! adds around the front end (`serve.rs`).

pub mod list;
pub mod load;
pub mod prune;
pub mod serve;
