//! Who fetches a blob when several processes share one store: the answer of
//! [`Store::claim_blob`](super::Store::claim_blob), and the lease its winner holds.
//!
//! A store of one process (the filesystem, behind its cache lock) always answers
//! [`Claim::Fetch`] without a lease: the blob table has already made sure one download runs per
//! digest. A shared store answers from what the other processes wrote (see `s3/lease.rs`).

use futures_util::future::BoxFuture;

/// Who fetches a blob.
#[derive(Debug)]
pub enum Claim {
    /// This process: it downloads the blob, holding the lease (if the store needs one) until
    /// the blob is stored or the download failed.
    Fetch(Option<Lease>),
    /// Nobody: the blob is stored already, with this size.
    Stored(u64),
    /// Another process holds a live lease on it (named here, for log lines). Ask again a
    /// moment later: the blob appears, or the lease expires and can be taken over.
    Elsewhere(String),
}

/// The right to fetch one blob for every process of the store. Renewed in the background
/// while held; [`Lease::end`] gives it back. Dropped without `end` (a download cut short), it
/// is given back in the background: the others need not wait for its expiry.
pub struct Lease {
    name: String,
    renewal: Option<tokio::task::JoinHandle<()>>,
    release: Option<BoxFuture<'static, ()>>,
}

impl Lease {
    /// `renewal` keeps the lease alive until aborted; `release` gives it back.
    pub(super) fn new(
        name: String,
        renewal: tokio::task::JoinHandle<()>,
        release: BoxFuture<'static, ()>,
    ) -> Self {
        Lease {
            name,
            renewal: Some(renewal),
            release: Some(release),
        }
    }

    /// Stops renewing and gives the lease back; returns once it is given back (or failed
    /// to be: it then expires).
    pub async fn end(mut self) {
        if let Some(r) = self.renewal.take() {
            r.abort();
        }
        if let Some(release) = self.release.take() {
            release.await;
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({})", self.name)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(r) = self.renewal.take() {
            r.abort();
        }
        // Outside a runtime (the process is ending) the lease is left to expire.
        if let (Some(release), Ok(runtime)) =
            (self.release.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(release);
        }
    }
}
