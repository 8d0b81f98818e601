//! Following a download another replica holds. Its bytes stream from the holder's internal
//! route ([`ROUTE`], guarded by the fleet secret) into this replica's own staging file, which
//! this replica's readers follow exactly as they follow an upstream download; so they get bytes
//! before the holder has finished, not once the blob is in the bucket. If the holder goes away
//! in the middle, the rest comes from the bucket once the blob is stored there (or, when the
//! holder died, this replica takes the lease over). Every byte is hashed here: the digest is
//! checked end to end, whoever sent the bytes.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;

use crate::blob::Progress;
use crate::config::FleetSecret;
use crate::error::EngineError;
use crate::oci::Digest;
use crate::store::{BlobWriter, Claim, Lease, Store, StoreError};

/// The internal route a holder serves its downloads on, followed by the digest.
pub const ROUTE: &str = "/internal/fleet/blobs/";
/// How long the holder may send nothing before this replica turns to the bucket.
const IDLE: Duration = Duration::from_secs(30);
/// How often to look whether the blob has reached the bucket.
const POLL: Duration = Duration::from_millis(300);
/// How long to wait for that, at most.
const WAIT: Duration = Duration::from_secs(30 * 60);

/// The client replicas reach each other with, and the secret they show.
pub struct PeerClient {
    client: awc::Client,
    secret: FleetSecret,
}

impl PeerClient {
    pub fn new(secret: FleetSecret) -> Self {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish();
        PeerClient { client, secret }
    }

    /// Where `holder` serves `digest`, when the holder named itself by a URL (its
    /// `advertise`).
    pub fn url(holder: &str, digest: &Digest) -> Option<String> {
        (holder.starts_with("http://") || holder.starts_with("https://"))
            .then(|| format!("{}{ROUTE}{digest}", holder.trim_end_matches('/')))
    }
}

/// How following ended.
pub enum Followed {
    /// The blob is stored (by the holder, or by this replica after the holder died), this size.
    Stored(u64),
    /// The holder went away before sending anything, and its lease is now this replica's:
    /// fetch from the upstream as the holder would have.
    Fetch(Option<Lease>),
}

/// The blob being followed, as the download knows it.
pub struct Job<'a> {
    pub digest: &'a Digest,
    /// The most bytes it may have (its manifests' largest stated size, `maxBlobSize`).
    pub bound: u64,
    /// Its size when its manifests agree on one, for readers when the holder sends none.
    pub stated: Option<u64>,
    /// Where its readers follow it.
    pub progress: &'a watch::Sender<Progress>,
}

/// Streams the blob from `url` into a staging file, readers following; see the module.
pub async fn follow(
    peers: &PeerClient,
    url: &str,
    store: &dyn Store,
    job: Job<'_>,
) -> Result<Followed, EngineError> {
    let (digest, bound) = (job.digest, job.bound);
    let mut writer = store.create_blob().await?;
    let mut announced = false;
    let whole = match from_holder(peers, url, &mut writer, &job, &mut announced).await {
        Ok(whole) => whole,
        Err(e) => {
            log::info!("blob {digest}: following its holder at {url} failed ({e})");
            false
        }
    };
    let deadline = std::time::Instant::now() + WAIT;
    if !whole {
        // The rest (all of it, if the holder sent nothing) from the bucket once it is there.
        loop {
            match store.claim_blob(digest.clone()).await? {
                Claim::Stored(size) => {
                    if !announced {
                        announce(job.progress, &writer, Some(size));
                    }
                    if writer.written() < size {
                        from_store(store, digest, &mut writer, bound, job.progress).await?;
                    }
                    break;
                }
                Claim::Fetch(lease) if writer.written() == 0 => {
                    return Ok(Followed::Fetch(lease));
                }
                Claim::Fetch(lease) => {
                    // The holder died mid-way: what it sent cannot be completed from the
                    // upstream. The next request starts afresh, under a lease of its own.
                    if let Some(lease) = lease {
                        lease.end().await;
                    }
                    return Err(EngineError::FetchedElsewhere(format!(
                        "the holder of blob {digest} went away in the middle of it"
                    )));
                }
                Claim::Elsewhere(_) => wait(digest, deadline).await?,
            }
        }
    }
    let staged = writer.staged();
    let size = writer.written();
    let verified = writer.verify(digest).await.map_err(|e| match e {
        StoreError::DigestMismatch { expected, actual } => EngineError::DigestMismatch {
            upstream: url.to_string(),
            what: format!("blob {digest}"),
            expected: expected.to_string(),
            actual: actual.to_string(),
        },
        other => other.into(),
    })?;
    // Readers may finish now; the blob is done here once it is in the bucket.
    job.progress
        .send_replace(Progress::Verified { staged, size });
    loop {
        match store.claim_blob(digest.clone()).await? {
            // This copy was only for this replica's readers; dropping it removes the file,
            // which readers that have it open go on reading.
            Claim::Stored(size) => return Ok(Followed::Stored(size)),
            // The holder died after the last byte: store what it sent, now known right.
            Claim::Fetch(lease) => {
                let stored = verified.persist().await;
                if let Some(lease) = lease {
                    lease.end().await;
                }
                return Ok(Followed::Stored(stored?));
            }
            Claim::Elsewhere(_) => wait(digest, deadline).await?,
        }
    }
}

async fn wait(digest: &Digest, deadline: std::time::Instant) -> Result<(), EngineError> {
    if std::time::Instant::now() >= deadline {
        return Err(EngineError::FetchedElsewhere(format!(
            "blob {digest} did not reach the shared store"
        )));
    }
    tokio::time::sleep(POLL).await;
    Ok(())
}

fn announce(progress: &watch::Sender<Progress>, writer: &BlobWriter, total: Option<u64>) {
    progress.send_replace(Progress::Receiving {
        staged: writer.staged(),
        written: writer.written(),
        total,
    });
}

fn publish(progress: &watch::Sender<Progress>, written: u64) {
    progress.send_modify(|p| {
        if let Progress::Receiving { written: w, .. } = p {
            *w = written;
        }
    });
}

/// Streams the holder's bytes into `writer`. `Ok(true)`: the holder sent a whole body (of its
/// `Content-Length`, when it gave one). An error leaves what was written in place.
async fn from_holder(
    peers: &PeerClient,
    url: &str,
    writer: &mut BlobWriter,
    job: &Job<'_>,
    announced: &mut bool,
) -> Result<bool, String> {
    let bound = job.bound;
    let mut response = peers
        .client
        .get(url)
        .insert_header((
            awc::http::header::AUTHORIZATION,
            format!("Bearer {}", peers.secret.expose()),
        ))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the holder answered {}", response.status()));
    }
    let length = response
        .headers()
        .get(awc::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let total = length.or(job.stated);
    announce(job.progress, writer, total);
    *announced = true;
    loop {
        let chunk = match tokio::time::timeout(IDLE, response.next()).await {
            Err(_) => return Err(format!("no data for {} s", IDLE.as_secs())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if writer.written() + chunk.len() as u64 > bound {
            return Err(format!("the holder sent more than {bound} bytes"));
        }
        writer.write(chunk).await.map_err(|e| e.to_string())?;
        publish(job.progress, writer.written());
    }
    Ok(length.is_none_or(|l| l == writer.written()))
}

/// Appends the stored blob's bytes from `writer.written()` on.
async fn from_store(
    store: &dyn Store,
    digest: &Digest,
    writer: &mut BlobWriter,
    bound: u64,
    progress: &watch::Sender<Progress>,
) -> Result<(), EngineError> {
    let mut file = store.open_blob(digest.clone(), writer.written()).await?;
    loop {
        let chunk = file
            .read(1024 * 1024)
            .await
            .map_err(|e| EngineError::FetchedElsewhere(format!("reading blob {digest}: {e}")))?;
        if chunk.is_empty() {
            return Ok(());
        }
        if writer.written() + chunk.len() as u64 > bound {
            return Err(EngineError::FetchedElsewhere(format!(
                "blob {digest} in the shared store is larger than {bound} bytes"
            )));
        }
        writer.write(chunk).await?;
        publish(progress, writer.written());
    }
}
