//! What the engine needs to know from the operator, gathered by the binary's config layer.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::upstream::config::{Credentials, Scheme, UpstreamConfig, UpstreamTls};

/// Everything the engine is started with.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The cache root (`blobs/`, `fat/`, `img/`).
    pub image_path: PathBuf,
    /// Upper bound on one upstream manifest fetch, end to end.
    pub pull_timeout: Duration,
    /// How long an upstream response body may send nothing before the transfer is abandoned.
    pub upstream_idle_timeout: Duration,
    /// Never contact an upstream: a miss is a 404.
    pub air_gapped: bool,
    /// Re-fetch `:latest` from the upstream on every request.
    pub always_pull_latest: bool,
    /// The upstream for requests that name none (no `ns`, no host in the path).
    pub default_ns: Option<String>,
    /// Per-upstream settings; upstreams not listed are reached anonymously over HTTPS.
    pub upstreams: Vec<UpstreamConfig>,
    /// How many blob downloads may run at once against one upstream.
    pub max_concurrent_per_upstream: usize,
    /// The background prune (`pruneConfig`); `None` when disabled.
    pub prune: Option<crate::prune::PruneSchedule>,
    /// The size bound (`maxCacheSize`, `pin`); `None`: the cache may grow without limit.
    pub cache_bound: Option<crate::prune::CacheBound>,
    /// The upstreams clients may make us contact; `None` allows every upstream.
    pub allowed_upstreams: Option<crate::allowlist::Allowlist>,
    /// When cached tags are checked against their upstream again; first match wins, no match
    /// means never (offline first).
    pub freshness: Vec<FreshnessRule>,
    /// The largest blob a download may write (`maxBlobSize`): any client can name any blob, and
    /// an upstream may send an endless body, so every download has a bound.
    pub max_blob_size: u64,
    /// Free space the cache's storage keeps (`minFreeSpace`): below it new downloads are
    /// refused and running ones fail, so a cache filling up never takes the disk (and the
    /// node's logs and images) with it.
    pub min_free_space: FreeSpace,
    /// The platforms whose image manifests (and so blobs) are fetched in the background when a
    /// client fetches a list by tag (`os`/`arch`/`--platform`; the host's by default), so a
    /// later disconnect finds the image whole; `None`: only what clients ask for.
    pub complete_platforms: Option<crate::oci::Platforms>,
    /// The cache in an S3-compatible bucket shared by several replicas (`storage.s3`);
    /// `None`: the cache directory `image_path`, this process's alone.
    pub s3: Option<S3Config>,
    /// What replicas of a shared store show each other on the internal route that streams a
    /// download to the others (`fleetSecret`); `None`: the route is closed and replicas wait
    /// for blobs to be stored instead.
    pub fleet_secret: Option<FleetSecret>,
}

/// The fleet secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetSecret(String);

impl FleetSecret {
    pub fn new(secret: String) -> Self {
        FleetSecret(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FleetSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetSecret(hidden)")
    }
}

/// Where the bucket is and how to sign in. Fields left `None` come from the standard AWS
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `None`: AWS itself (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: Option<String>,
    /// Keys start with it; empty or ending in `/`.
    pub prefix: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// How this replica names itself in the leases it holds (its `advertise` URL, or host
    /// name and process id).
    pub holder: String,
}

/// The secret is never printed.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "(hidden)"),
            )
            .field("holder", &self.holder)
            .finish()
    }
}

/// The largest blob a download may write unless configured: above any real layer (the
/// largest seen in public registries are a few tens of GB), below what would surprise an
/// operator's disk.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 64 << 30;

/// A free-space floor: an amount, or a share of the filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeSpace {
    Bytes(u64),
    /// Whole percent of the filesystem's size, 0 to 100.
    Percent(u8),
}

/// The floor unless configured: a small share, so that a filled cache leaves room for the rest
/// of the machine.
pub const DEFAULT_MIN_FREE_SPACE: FreeSpace = FreeSpace::Percent(5);

impl FreeSpace {
    /// The floor in bytes on a filesystem of `total` bytes.
    pub fn bytes(&self, total: u64) -> u64 {
        match *self {
            FreeSpace::Bytes(b) => b,
            FreeSpace::Percent(p) => {
                let share = u128::from(total) * u128::from(p.min(100)) / 100;
                u64::try_from(share).unwrap_or(u64::MAX)
            }
        }
    }
}

impl fmt::Display for FreeSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeSpace::Bytes(b) => write!(f, "{}", crate::prune::human_size(*b)),
            FreeSpace::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// How long a cached tag is trusted before an upstream `HEAD` checks it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// Serve the cached tag for as long as it is cached.
    Never,
    After(Duration),
}

/// A tag freshness policy for the repositories whose `registry/repository` matches `pattern`.
#[derive(Clone, Debug)]
pub struct FreshnessRule {
    pub pattern: regex::Regex,
    pub ttl: Ttl,
    /// For the `latest` tag, which moves more often; `None` uses `ttl`.
    pub latest_ttl: Option<Ttl>,
}

impl PartialEq for FreshnessRule {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str()
            && self.ttl == other.ttl
            && self.latest_ttl == other.latest_ttl
    }
}

impl Eq for FreshnessRule {}

impl EngineConfig {
    pub fn new(image_path: PathBuf) -> Self {
        EngineConfig {
            image_path,
            pull_timeout: Duration::from_millis(60_000),
            upstream_idle_timeout: Duration::from_millis(60_000),
            air_gapped: false,
            always_pull_latest: false,
            default_ns: None,
            upstreams: Vec::new(),
            max_concurrent_per_upstream: 6,
            prune: None,
            cache_bound: None,
            allowed_upstreams: None,
            freshness: Vec::new(),
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
            min_free_space: DEFAULT_MIN_FREE_SPACE,
            complete_platforms: Some(crate::oci::Platforms::Only(vec![
                crate::oci::PlatformSpec::host(),
            ])),
            s3: None,
            fleet_secret: None,
        }
    }

    /// How long a cached `image` tag may be served before it is revalidated.
    pub fn tag_ttl(&self, image: &crate::oci::ImageRef) -> Ttl {
        let Some(tag) = image.reference.tag() else {
            // A digest names immutable content.
            return Ttl::Never;
        };
        if self.freshness.is_empty() {
            // Every hit asks: no name to format when no rule could match it.
            return Ttl::Never;
        }
        let name = format!("{}/{}", image.registry, image.repo);
        match self.freshness.iter().find(|r| r.pattern.is_match(&name)) {
            None => Ttl::Never,
            Some(r) if tag == "latest" => r.latest_ttl.unwrap_or(r.ttl),
            Some(r) => r.ttl,
        }
    }

    /// Whether clients may make us contact `registry` (as clients name it).
    pub fn upstream_allowed(&self, registry: &str) -> bool {
        self.allowed_upstreams
            .as_ref()
            .is_none_or(|a| a.allows(registry))
    }

    /// The settings for `registry`, or anonymous HTTPS when it has no entry.
    pub fn upstream(&self, registry: &str) -> UpstreamConfig {
        self.upstreams
            .iter()
            .find(|u| u.name == registry)
            .cloned()
            .unwrap_or_else(|| UpstreamConfig::anonymous(registry))
    }
}
