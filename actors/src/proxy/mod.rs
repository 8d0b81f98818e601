//! The blob proxy: the algorithm this cache exists for, "a blob is fetched once and streamed to
//! every waiter", in two files to read top to bottom.
//!
//! - [`download`]: fetch once, write through the store, verify, commit, tell the blob table,
//!   then the readers.
//! - [`reader`]: serve a stored blob from an offset, or follow a download as it lands.
//! - [`peer`]: on a shared store, follow the download another replica holds, through its
//!   internal route, into this replica's staging file (used by [`download`]).
//!
//! Who starts a download is decided by the blob table (one per digest); the puller pool runs
//! it on its arbiter, where the upstream clients live.

pub mod download;
pub mod peer;
pub mod reader;
