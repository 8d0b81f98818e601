//! What the engine needs to know from the operator, gathered by the binary's config layer.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to talk to one upstream registry: one `registries` entry of the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The registry as clients name it (`quay.io`, `upstream.test`, `myreg:5000`).
    pub name: String,
    pub scheme: Scheme,
    /// Where to connect instead of `scheme://name`, e.g. `http://127.0.0.1:5000`: an internal
    /// mirror of docker.io, or a test registry whose port cannot appear in an image reference.
    pub endpoint: Option<String>,
    pub auth: Option<Credentials>,
    /// How to secure the connection (ignored for `http`).
    pub tls: UpstreamTls,
}

/// Client-side TLS for one upstream: which server certificates to trust, and the certificate
/// we present when the upstream asks for one (mTLS). The default verifies the upstream against
/// the OS trust store and presents no certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM CA bundle to verify the upstream against, instead of the OS trust store.
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain and its private key, presented for mTLS. Both or neither.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate (handshake signatures are still checked). For test and
    /// lab registries only: it gives up protection against an impostor.
    pub insecure_skip_verify: bool,
}

impl UpstreamConfig {
    /// The settings used for an upstream that has no `registries` entry.
    pub fn anonymous(name: &str) -> Self {
        UpstreamConfig {
            name: name.to_string(),
            scheme: Scheme::Https,
            endpoint: None,
            auth: None,
            tls: UpstreamTls::default(),
        }
    }

    /// The base URL requests go to, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            // Docker Hub's API is not served at the name clients use for it.
            None if self.name == crate::oci::DOCKER_HUB => {
                format!("{}://{}", self.scheme, crate::oci::DOCKER_HUB_ENDPOINT_HOST)
            }
            None => format!("{}://{}", self.scheme, self.name),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheme {
    Http,
    #[default]
    Https,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// Basic-auth credentials. `Debug` hides the password so a logged config never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

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
    pub prune: Option<crate::pruner::PruneSchedule>,
    /// The size bound (`maxCacheSize`, `pin`); `None`: the cache may grow without limit.
    pub cache_bound: Option<crate::prune::CacheBound>,
    /// The upstreams clients may make us contact; `None` allows every upstream.
    pub allowed_upstreams: Option<crate::allowlist::Allowlist>,
    /// When cached tags are checked against their upstream again; first match wins, no match
    /// means never (offline first).
    pub freshness: Vec<FreshnessRule>,
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
        }
    }

    /// How long a cached `image` tag may be served before it is revalidated.
    pub fn tag_ttl(&self, image: &crate::oci::ImageRef) -> Ttl {
        let Some(tag) = image.reference.tag() else {
            // A digest names immutable content.
            return Ttl::Never;
        };
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
