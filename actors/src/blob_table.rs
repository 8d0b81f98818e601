//! Actor: every blob the cache has or is fetching, and how many image manifests name it.
//!
//! This is where one-download-per-digest is decided: [`Open`] either finds the blob on disk,
//! joins the download already under way, or registers a new download and hands it to the
//! puller pool, all inside one message, so two requests can never both start one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::watch;

use crate::error::EngineError;
use crate::oci::{Digest, RepoName};
use crate::puller_pool::{Download, PullerPool};

/// How far a download has got; published on a `watch` channel that readers follow.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Waiting for a free upstream connection or the response head.
    Queued,
    /// Bytes are landing in `temp`; `written` of them are on disk.
    Receiving {
        temp: Arc<PathBuf>,
        written: u64,
        total: Option<u64>,
    },
    /// Verified and renamed into `blobs/`.
    Done {
        size: u64,
    },
    Failed(EngineError),
}

/// Where to fetch a blob from when it is not cached.
#[derive(Debug, Clone)]
pub struct BlobSource {
    pub registry: String,
    pub repo: RepoName,
}

/// The answer to [`Open`].
#[derive(Debug)]
pub enum BlobStatus {
    Present {
        size: u64,
    },
    Fetching(watch::Receiver<Progress>),
    /// Not cached, and no source to fetch it from.
    Absent,
}

enum State {
    Present { size: u64 },
    Fetching(watch::Receiver<Progress>),
}

/// A blob as the listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    /// `None` while it is being fetched.
    pub size: Option<u64>,
    pub refs: u32,
}

pub struct BlobTable {
    puller: Addr<PullerPool>,
    blobs: HashMap<Digest, State>,
    refs: HashMap<Digest, u32>,
}

impl BlobTable {
    /// `present` is what the store found on disk at start.
    pub fn new(puller: Addr<PullerPool>, present: Vec<(Digest, u64)>) -> Self {
        let m = crate::metrics::metrics();
        m.cached_blobs.set(present.len() as i64);
        m.cached_blob_bytes
            .set(present.iter().map(|(_, s)| *s as i64).sum());
        BlobTable {
            puller,
            blobs: present
                .into_iter()
                .map(|(d, size)| (d, State::Present { size }))
                .collect(),
            refs: HashMap::new(),
        }
    }
}

impl Actor for BlobTable {
    type Context = Context<Self>;
}

/// Finds a blob, joining or starting its download when `source` allows.
#[derive(Message)]
#[rtype(result = "BlobStatus")]
pub struct Open {
    pub digest: Digest,
    /// `None` in air-gapped mode: never start a download.
    pub source: Option<BlobSource>,
}

impl Handler<Open> for BlobTable {
    type Result = MessageResult<Open>;

    fn handle(&mut self, msg: Open, _: &mut Context<Self>) -> Self::Result {
        MessageResult(match self.blobs.get(&msg.digest) {
            Some(State::Present { size }) => BlobStatus::Present { size: *size },
            Some(State::Fetching(rx)) => {
                crate::metrics::metrics()
                    .waiters_joined
                    .get_or_create(&crate::metrics::Kind { kind: "blob" })
                    .inc();
                BlobStatus::Fetching(rx.clone())
            }
            None => match msg.source {
                None => BlobStatus::Absent,
                Some(source) => {
                    let (tx, rx) = watch::channel(Progress::Queued);
                    self.blobs
                        .insert(msg.digest.clone(), State::Fetching(rx.clone()));
                    self.puller.do_send(Download {
                        digest: msg.digest,
                        source,
                        progress: tx,
                    });
                    BlobStatus::Fetching(rx)
                }
            },
        })
    }
}

/// A download ended: the blob is present, or forgotten so the next request tries again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finished {
    pub digest: Digest,
    pub result: Result<u64, EngineError>,
}

impl Handler<Finished> for BlobTable {
    type Result = ();

    fn handle(&mut self, msg: Finished, _: &mut Context<Self>) {
        match msg.result {
            Ok(size) => {
                self.blobs.insert(msg.digest, State::Present { size });
                let m = crate::metrics::metrics();
                m.cached_blobs.inc();
                m.cached_blob_bytes.inc_by(size as i64);
            }
            Err(_) => {
                self.blobs.remove(&msg.digest);
            }
        }
    }
}

/// An image manifest naming these blobs entered the cache.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddRefs {
    pub digests: Vec<Digest>,
}

impl Handler<AddRefs> for BlobTable {
    type Result = ();

    fn handle(&mut self, msg: AddRefs, _: &mut Context<Self>) {
        for d in msg.digests {
            *self.refs.entry(d).or_default() += 1;
        }
    }
}

/// Every blob known, for listings.
#[derive(Message)]
#[rtype(result = "Vec<BlobInfo>")]
pub struct List;

impl Handler<List> for BlobTable {
    type Result = MessageResult<List>;

    fn handle(&mut self, _: List, _: &mut Context<Self>) -> Self::Result {
        let mut out: Vec<BlobInfo> = self
            .blobs
            .iter()
            .map(|(d, s)| BlobInfo {
                digest: d.clone(),
                size: match s {
                    State::Present { size } => Some(*size),
                    State::Fetching(_) => None,
                },
                refs: self.refs.get(d).copied().unwrap_or(0),
            })
            .collect();
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        MessageResult(out)
    }
}
