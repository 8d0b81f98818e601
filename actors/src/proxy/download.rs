//! The download half of the blob proxy: fetch a blob once, write it through the store while
//! hashing it, verify it, commit it, then tell the blob table and, after it, the readers.
//!
//! The blob table has already decided that this is the one download of the digest (inside one
//! [`Open`](crate::blob_table::Open) message), and the readers follow [`Progress`] on a `watch`
//! channel. A download is told the sizes the cached image manifests state for the blob
//! ([`StatedSizes`]), which bound the body: a `Content-Length` that disagrees fails before
//! anything is written, a body that runs past the bound fails before the byte past it is
//! written, so an endless body cannot fill the disk before its digest is checked.
//!
//! The order of the end matters: the table hears the outcome before the readers
//! ([`conclude`]), so a reader who sees a failure and asks again starts a new download rather
//! than joining the failed one.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::{watch, Semaphore};

use super::peer::{self, Followed, PeerClient};
use crate::blob::{BlobSource, Progress, StatedSizes};
use crate::breaker::{Outcome, Reached};
use crate::config::FreeSpace;
use crate::error::EngineError;
use crate::metrics::{self, metrics, Kind};
use crate::oci::Digest;
use crate::prune::human_size;
use crate::store::{Claim, Lease, Space, Store, StoreError};
use crate::upstream::{UpstreamClient, UpstreamError};

/// The most bytes gathered for one write to the staging file. One batch is written while the
/// next is gathered, so a download holds at most twice this; past it, receiving waits for the
/// write.
const WRITE_BATCH: usize = 1024 * 1024;

/// A download is under way and will add `size` bytes to the cache (its `Content-Length`, or
/// the largest size its manifests state): the blob table counts them before they land.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Expecting {
    pub digest: Digest,
    pub size: u64,
}

/// A download (or the check of a blob found at start) ended: the blob is stored, or must be
/// forgotten so that the next request tries again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finished {
    pub digest: Digest,
    pub result: Result<u64, EngineError>,
}

/// Who hears about a download besides its readers: the blob table, for its states and the
/// cache's weight. The addresses travel with each job, so the table and the pool that runs the
/// downloads never hold each other.
#[derive(Clone)]
pub struct Table {
    pub expecting: Recipient<Expecting>,
    pub finished: Recipient<Finished>,
}

/// One blob to fetch.
pub struct Job {
    pub digest: Digest,
    pub source: BlobSource,
    /// The sizes the cached image manifests' descriptors state for this blob. The body must be
    /// one of them: a `Content-Length` that disagrees fails the download before anything is
    /// written, a body that runs past the largest fails there, one that ends short fails at
    /// its end. `None` (a blob no cached image manifest names): only a `Content-Length`, if
    /// sent, bounds the body before the digest check at its end.
    pub expected_size: Option<StatedSizes>,
    pub progress: watch::Sender<Progress>,
    pub table: Table,
}

/// The bounds every download is held to, whatever its manifests and its upstream say.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `maxBlobSize`: no download writes more.
    pub max_blob_size: u64,
    /// `minFreeSpace`: no download starts, or goes on, with less room left.
    pub min_free_space: FreeSpace,
}

/// How much a download of unknown size may grow between two announcements of its weight and
/// two looks at the free space: small against any disk, large against a batch.
const GROWTH_STEP: u64 = 16 * 1024 * 1024;

/// The upstream side of a download, as the pool hands it over.
pub struct Upstream {
    /// The breaker's word: `Err` when the upstream is not to be asked now.
    pub admission: Result<(), EngineError>,
    pub client: Result<Rc<UpstreamClient>, EngineError>,
    /// Free connections to the upstream.
    pub limit: Rc<Semaphore>,
    /// Where the breaker hears how the upstream answered.
    pub reached: Recipient<Reached>,
    /// How to follow a download another replica of a shared store holds (`None`: no fleet
    /// secret, so wait for the blob to be stored instead).
    pub peers: Option<Rc<PeerClient>>,
}

/// How long a replica waits for a blob another replica is fetching before it gives up (the
/// holder's lease is renewed while its download makes progress, and taken over when not).
const ELSEWHERE_WAIT: Duration = Duration::from_secs(30 * 60);
/// How often a replica looks whether a blob fetched elsewhere has arrived.
const ELSEWHERE_POLL: Duration = Duration::from_millis(300);

/// Runs one download to its end: asks the store who fetches (on a store shared by several
/// replicas, maybe another one, or nobody since the blob is there), then waits for a free
/// connection to the upstream (`limit`), fetches, writes, verifies, commits, and concludes.
pub async fn run(upstream: Upstream, store: Arc<dyn Store>, limits: Limits, job: Job) {
    let kind = Kind { kind: "blob" };
    metrics().fetches_in_flight.get_or_create(&kind).inc();
    let started = std::time::Instant::now();
    let Upstream {
        admission,
        client,
        limit,
        reached,
        peers,
    } = upstream;
    let mut claimed = claim(store.as_ref(), &job.digest, peers.is_some()).await;
    if let (Ok(Claimed::Follow(url)), Some(peers)) = (&claimed, &peers) {
        let expected = job.expected_size.as_ref();
        let following = peer::Job {
            digest: &job.digest,
            bound: expected.map_or(limits.max_blob_size, |s| s.max().min(limits.max_blob_size)),
            stated: expected.and_then(StatedSizes::agreed),
            progress: &job.progress,
        };
        claimed = match peer::follow(peers, url, store.as_ref(), following).await {
            Ok(Followed::Stored(size)) => Ok(Claimed::Stored(size)),
            Ok(Followed::Fetch(lease)) => Ok(Claimed::Fetch(lease)),
            Err(e) => Err(e),
        };
    }
    let result = match claimed {
        Err(e) => Err(e),
        Ok(Claimed::Stored(size)) => {
            metrics().fetches_in_flight.get_or_create(&kind).dec();
            log::info!("blob {} is in the shared store ({size} bytes)", job.digest);
            conclude(&job.table, &job.progress, job.digest, Ok(size));
            return;
        }
        Ok(Claimed::Follow(_)) => Err(EngineError::FetchedElsewhere(format!(
            "blob {} has a holder this replica cannot reach",
            job.digest
        ))),
        Ok(Claimed::Fetch(lease)) => {
            let fetched = match (admission, client) {
                (Err(e), _) | (_, Err(e)) => Err(e),
                (Ok(()), Ok(client)) => match limit.acquire().await {
                    Ok(_permit) => fetch(&client, store.as_ref(), limits, &reached, &job).await,
                    Err(_) => Err(EngineError::Unavailable("download limiter closed".into())),
                },
            };
            if let Some(lease) = lease {
                lease.end().await;
            }
            fetched
        }
    };
    metrics().fetches_in_flight.get_or_create(&kind).dec();
    let Job { digest, source, .. } = &job;
    // A link lost in the middle of the body: its upstream's breaker hears of it too.
    if let Some(lost @ Outcome::Unreachable(_)) = EngineError::breaker_outcome(&result) {
        reached.do_send(Reached {
            upstream: source.registry.clone(),
            outcome: lost,
        });
    }
    match &result {
        Ok(size) => {
            metrics()
                .fetch_seconds
                .get_or_create(&kind)
                .observe(started.elapsed().as_secs_f64());
            log::info!(
                "cached blob {digest} ({size} bytes) from {}",
                source.registry
            );
        }
        Err(e) => {
            let level = if e.is_upstream_denied() {
                log::Level::Debug
            } else {
                log::Level::Warn
            };
            log::log!(
                level,
                "blob {digest} from {}/{}: {e}",
                source.registry,
                source.repo
            );
            count_error(&source.registry, e);
        }
    }
    conclude(&job.table, &job.progress, job.digest, result);
}

/// Who fetches, as [`claim`] settles it.
enum Claimed {
    Fetch(Option<Lease>),
    Stored(u64),
    /// Another replica fetches and can be followed at this URL ([`peer::follow`]).
    Follow(String),
}

/// Asks the store who fetches `digest` until it is this process or nobody, or a holder that
/// can be followed (`follow`, and the holder named itself by a URL): while another replica
/// holds the lease, looks again every [`ELSEWHERE_POLL`] (the blob appears, or the lease
/// expires and is taken over), for at most [`ELSEWHERE_WAIT`]. Readers meanwhile see the
/// download queued.
async fn claim(store: &dyn Store, digest: &Digest, follow: bool) -> Result<Claimed, EngineError> {
    let deadline = std::time::Instant::now() + ELSEWHERE_WAIT;
    let mut told = false;
    loop {
        match store.claim_blob(digest.clone()).await? {
            Claim::Fetch(lease) => return Ok(Claimed::Fetch(lease)),
            Claim::Stored(size) => return Ok(Claimed::Stored(size)),
            Claim::Elsewhere(holder) => {
                if let Some(url) = PeerClient::url(&holder, digest).filter(|_| follow) {
                    log::info!("blob {digest} is being fetched by {holder}; following it");
                    return Ok(Claimed::Follow(url));
                }
                if !told {
                    log::info!("blob {digest} is being fetched by {holder}; waiting for it");
                    told = true;
                }
                if std::time::Instant::now() >= deadline {
                    return Err(EngineError::FetchedElsewhere(format!(
                        "blob {digest} is still being fetched by {holder}"
                    )));
                }
                tokio::time::sleep(ELSEWHERE_POLL).await;
            }
        }
    }
}

/// Fetches the blob into the store: the algorithm, top to bottom.
async fn fetch(
    client: &UpstreamClient,
    store: &dyn Store,
    limits: Limits,
    reached: &Recipient<Reached>,
    job: &Job,
) -> Result<u64, EngineError> {
    let Job {
        digest,
        source,
        expected_size: expected,
        progress,
        table,
    } = job;
    let expected = expected.as_ref();
    let up = |e| EngineError::upstream(client.name(), e);
    let wrong_size = |stated: &StatedSizes, sent: String| EngineError::SizeMismatch {
        upstream: client.name().to_string(),
        digest: digest.to_string(),
        stated: stated.to_string(),
        sent,
    };
    let too_large = |sent: String| EngineError::BlobTooLarge {
        upstream: client.name().to_string(),
        digest: digest.to_string(),
        sent,
        limit: limits.max_blob_size,
    };
    // 1. Refuse at once when the storage is at its floor: cached content is still served, but
    //    nothing new comes in. Then ask the upstream, and make the staging file while it
    //    answers, not after: readers get the response head and the first bytes sooner. The
    //    file goes again on failure.
    let space = store.space().await?;
    fits(space, limits, 0)?;
    let (body, writer) = tokio::join!(client.blob(&source.repo, digest), store.create_blob());
    let body = body.map_err(up);
    if let Some(outcome) = EngineError::breaker_outcome(&body) {
        reached.do_send(Reached {
            upstream: source.registry.clone(),
            outcome,
        });
    }
    let mut body = body?;
    if let Some(length) = body.size {
        if let Some(stated) = expected.filter(|s| !s.allows(length)) {
            return Err(wrong_size(stated, format!("with Content-Length {length}")));
        }
        if length > limits.max_blob_size {
            return Err(too_large(format!("with Content-Length {length}")));
        }
        // The room read a moment ago, before the request: one look at the disk per start.
        fits(space, limits, length)?;
    }
    // 2. Announce the size. What the body will come to, for readers (their Content-Length)
    //    and the cache's weight: its Content-Length, else the size its manifests agree on.
    //    The most it may come to: the same, else the largest size they state, and never more
    //    than maxBlobSize. A body of unknown size is announced as it grows.
    let total = body.size.or_else(|| expected.and_then(StatedSizes::agreed));
    let known = body.size.or_else(|| expected.map(StatedSizes::max));
    let bound = known.map_or(limits.max_blob_size, |k| k.min(limits.max_blob_size));
    let mut announced = known.unwrap_or(0);
    if let Some(size) = known {
        table.expecting.do_send(Expecting {
            digest: digest.clone(),
            size,
        });
    }
    let mut writer = writer?;
    progress.send_replace(Progress::Receiving {
        staged: writer.staged(),
        written: 0,
        total,
    });
    // 3. Stream the body to the staging file, publishing each batch to the readers as it
    //    lands. A batch is what arrived while the previous one was being written, and what
    //    else is there to read without waiting, up to WRITE_BATCH: few writes while the data
    //    streams in fast, no added wait when it trickles.
    let received = metrics()
        .upstream_bytes
        .get_or_create_owned(&metrics::Upstream {
            upstream: client.name().to_string(),
        });
    let mut next_look = GROWTH_STEP;
    let mut batch: Vec<Bytes> = Vec::new();
    // Bytes received in all, and those of them in `batch`.
    let mut gathered = 0u64;
    let mut batched = 0u64;
    let mut ended = false;
    loop {
        let room = !ended && batched < WRITE_BATCH as u64;
        tokio::select! {
            // In this order: a landed write is published at once, so readers hear of bytes as
            // soon as they are in the file; then whatever the upstream has sent is gathered;
            // only when it has nothing more right now does the next write start.
            biased;
            landed = writer.land(), if writer.writing() => {
                let written = landed.map_err(out_of_space)?;
                progress.send_modify(|p| {
                    if let Progress::Receiving { written: w, .. } = p {
                        *w = written;
                    }
                });
            }
            chunk = body.next_chunk(), if room => {
                let Some(chunk) = chunk.map_err(up)? else {
                    ended = true;
                    continue;
                };
                received.inc_by(chunk.len() as u64);
                let after = gathered + chunk.len() as u64;
                // Checked before the write: not one byte past the bound reaches the disk.
                if after > bound {
                    return Err(match (body.size, expected) {
                        _ if after > limits.max_blob_size => {
                            too_large(format!("of more than {} bytes", limits.max_blob_size))
                        }
                        (None, Some(stated)) => {
                            wrong_size(stated, format!("of at least {after} bytes"))
                        }
                        _ => up(UpstreamError::Protocol(format!(
                            "blob {digest} is longer than its Content-Length"
                        ))),
                    });
                }
                if after >= next_look {
                    next_look = after + GROWTH_STEP;
                    if after > announced {
                        // Counted against maxCacheSize before it lands, as a stated size would be.
                        announced = after + GROWTH_STEP;
                        table.expecting.do_send(Expecting {
                            digest: digest.clone(),
                            size: announced,
                        });
                    }
                    fits(store.space().await?, limits, 0)?;
                }
                gathered = after;
                batched += chunk.len() as u64;
                batch.push(chunk);
            }
            _ = std::future::ready(()), if !writer.writing() && !batch.is_empty() => {
                batched = 0;
                writer.begin(std::mem::take(&mut batch)).await.map_err(out_of_space)?;
            }
            // Nothing on its way, nothing gathered, nothing more to receive.
            else => break,
        }
    }
    let written = writer.written();
    match (body.size, expected) {
        (Some(length), _) if written != length => {
            return Err(up(UpstreamError::Protocol(format!(
                "blob {digest} ended after {written} of {length} bytes"
            ))));
        }
        (None, Some(stated)) if !stated.allows(written) => {
            return Err(wrong_size(stated, format!("of {written} bytes")));
        }
        _ => {}
    }
    // 4. Verify. From here the bytes are known right: readers may finish while they are made
    //    durable, which on a slow disk (with other downloads' data to flush first) can take
    //    longer than the transfer.
    let staged = writer.staged();
    let verified = match writer.verify(digest).await {
        Ok(v) => v,
        Err(StoreError::DigestMismatch { expected, actual }) => {
            return Err(EngineError::DigestMismatch {
                upstream: client.name().to_string(),
                what: format!("blob {digest}"),
                expected: expected.to_string(),
                actual: actual.to_string(),
            })
        }
        Err(e) => return Err(out_of_space(e)),
    };
    progress.send_replace(Progress::Verified {
        staged,
        size: written,
    });
    // 5. Commit: durable, then visible under its digest.
    verified.persist().await.map_err(out_of_space)
}

/// Fails when writing `more` bytes would leave `space` below the free-space floor (`None`: a
/// store without a notion of free space).
fn fits(space: Option<Space>, limits: Limits, more: u64) -> Result<(), EngineError> {
    let Some(space) = space else {
        return Ok(());
    };
    let floor = limits.min_free_space.bytes(space.total);
    if space.available.saturating_sub(more) < floor {
        let needed = match more {
            0 => String::new(),
            n => format!(", and the blob needs {}", human_size(n)),
        };
        return Err(EngineError::InsufficientStorage(format!(
            "{} free{needed}; the server keeps at least {} free (minFreeSpace {})",
            human_size(space.available),
            human_size(floor),
            limits.min_free_space
        )));
    }
    Ok(())
}

/// A full disk is the storage's floor reached the hard way: the same answer as the floor.
fn out_of_space(e: StoreError) -> EngineError {
    if e.is_out_of_space() {
        EngineError::InsufficientStorage(e.to_string())
    } else {
        e.into()
    }
}

/// Checks a blob found at start before its first use. A sound one is concluded stored; a
/// damaged or missing one is removed and `None` is returned: the caller fetches it again on the
/// same progress channel, so the readers already waiting get the right bytes either way.
pub async fn check_found(
    store: &dyn Store,
    digest: &Digest,
    size: u64,
    table: &Table,
    progress: &watch::Sender<Progress>,
) -> Option<()> {
    let found = store.check_blob(digest.clone()).await.ok().flatten();
    if found.as_ref() == Some(&(digest.clone(), size)) {
        conclude(table, progress, digest.clone(), Ok(size));
        return Some(());
    }
    log::warn!(
        "cache: blob {digest} in the store does not match its name ({}); removing it",
        match &found {
            Some((d, n)) => format!("{n} bytes hashing to {d}"),
            None => "unreadable".to_string(),
        }
    );
    if let Err(e) = store.remove_blob(digest.clone()).await {
        log::warn!("cache: removing damaged blob {digest}: {e}");
    }
    None
}

/// Ends a download or a check: the blob table hears first, then the readers. A reader who
/// sees the outcome and asks again must find the blob stored, or forgotten so that its request
/// starts a new download, never the one that failed; the table's mailbox keeps the order of
/// what was sent to it.
pub fn conclude(
    table: &Table,
    progress: &watch::Sender<Progress>,
    digest: Digest,
    result: Result<u64, EngineError>,
) {
    table.finished.do_send(Finished {
        digest,
        result: result.clone(),
    });
    progress.send_replace(match result {
        Ok(size) => Progress::Done { size },
        Err(e) => Progress::Failed(e),
    });
}

/// Counts a failed upstream request by upstream and kind of error.
pub fn count_error(upstream: &str, e: &EngineError) {
    let label = metrics::UpstreamError {
        upstream: upstream.to_string(),
        error: metrics::error_label(e),
    };
    metrics().upstream_errors.get_or_create(&label).inc();
}
