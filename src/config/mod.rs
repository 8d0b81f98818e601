//! Configuration.
//!
//! Settings are resolved in three layers, each overriding the one before:
//! built-in defaults, the YAML config file (`--config-file`), the command line.
//!
//! The file uses the Go server's key names (camelCase), so a config file written for the Go
//! server loads unchanged; an unknown key is rejected so a setting is never silently ignored
//! (`file.rs`). Single values are checked the same way for the file and the command line
//! (`validate.rs`); the operations features have their own keys (`ops.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use actors::allowlist::Allowlist;
use actors::config::{
    EngineConfig, FleetSecret, FreeSpace, FreshnessRule, S3Config, UpstreamConfig,
    DEFAULT_MAX_BLOB_SIZE, DEFAULT_MIN_FREE_SPACE,
};

use crate::cli::{Cli, LogFormat, LogLevel};
use crate::server::pull_auth::PullAuthSettings;
use crate::server::tls::ServerTls;

mod error;
mod file;
mod ops;
mod pull_auth;
mod storage;
#[cfg(test)]
mod tests;
mod validate;

pub use error::ConfigError;
pub use ops::{AdminConfig, BoundSettings, OpsConfig, PruneKind, PruneSettings, Secret};
use validate::{
    check_listen_host, check_registry_host, max_blob_size, max_connections, min_free_space,
    pull_timeout,
};

/// Default cache root.
pub const DEFAULT_IMAGE_PATH: &str = "/var/lib/ociregistry";
/// Default listening port.
pub const DEFAULT_PORT: u16 = 8080;
/// Default listening address (all interfaces).
pub const DEFAULT_HOST: &str = "0.0.0.0";
/// Default upper bound on one upstream manifest pull, in milliseconds.
pub const DEFAULT_PULL_TIMEOUT_MS: u64 = 60_000;
/// Default time an upstream response body may stall before the transfer is abandoned, in ms.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Client connections held at once unless configured (`maxConnections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The server's resolved settings: defaults, then the config file, then the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Cache root (`imagePath`, `--image-path`).
    pub image_path: PathBuf,
    /// Minimum log severity (`logLevel`, `--log-level`).
    pub log_level: LogLevel,
    /// Log destination; `None` is standard error (`logFile`, `--log-file`).
    pub log_file: Option<PathBuf>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Listening port (`port`, `--port`).
    pub port: u16,
    /// Listening address (`host`, `--host`).
    pub host: String,
    /// Client connections held at once (`maxConnections`, `--max-connections`), before the
    /// open-file limit has its say (`server::connections`).
    pub max_connections: usize,
    /// The largest blob any download may write (`maxBlobSize`, `--max-blob-size`).
    pub max_blob_size: u64,
    /// Free space the cache's filesystem keeps; below it downloads are refused
    /// (`minFreeSpace`, `--min-free-space`).
    pub min_free_space: FreeSpace,
    /// Upper bound on one upstream manifest pull (`pullTimeout`, `--pull-timeout`, in ms).
    pub pull_timeout: Duration,
    /// How long an upstream response body may send nothing before the transfer is abandoned
    /// (`upstreamIdleTimeout`, in ms).
    pub upstream_idle_timeout: Duration,
    /// Re-fetch `:latest` tags on every request (`alwaysPullLatest`, `--always-pull-latest`).
    pub always_pull_latest: bool,
    /// Never contact an upstream (`airGapped`, `--air-gapped`).
    pub air_gapped: bool,
    /// Upstream for requests that name none (`defaultNs`, `--default-ns`).
    pub default_ns: Option<String>,
    /// Per-upstream settings from the `registries` list, in file order.
    pub registries: Vec<UpstreamConfig>,
    /// The upstreams clients may make us contact (`allowedUpstreams`); `None` allows all.
    pub allowed_upstreams: Option<Allowlist>,
    /// HTTPS for clients (`serverTlsConfig`); `None` serves plain HTTP.
    pub server_tls: Option<ServerTls>,
    /// Credentials pull clients must present (`pullAuth`, `registries[].private`); `None`:
    /// anyone who reaches the port may pull.
    pub pull_auth: Option<PullAuthSettings>,
    /// When cached tags are revalidated upstream (`tagFreshness`); empty: never.
    pub freshness: Vec<FreshnessRule>,
    /// The config file the settings were read from, if any.
    pub config_file: Option<PathBuf>,
    /// Preloading, platforms, hello-world, health, pruning, admin API access.
    pub ops: OpsConfig,
    /// The cache in a bucket shared by several replicas (`storage.s3`); `None`: the cache
    /// directory, this process's alone.
    pub storage: Option<S3Config>,
    /// How the other replicas reach this one (`advertise`): named in the leases it holds.
    pub advertise: Option<String>,
    /// What replicas show each other on the internal route (`fleetSecret`,
    /// `fleetSecretFile`); `None`: the route is closed.
    pub fleet_secret: Option<FleetSecret>,
    /// What `list` shows by default (`listConfig`, `list --header`, `list --pattern`).
    pub list: ListSettings,
    /// Keys of the file that were accepted but change nothing here (the Go server's own
    /// bookkeeping): said once at start, so an operator knows the file is read as written.
    pub notices: Vec<String>,
}

/// `listConfig`: the defaults of the `list` command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListSettings {
    /// Print the header line.
    pub header: bool,
    /// Comma-separated regexes over manifest URLs (checked to compile).
    pub pattern: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            image_path: PathBuf::from(DEFAULT_IMAGE_PATH),
            log_level: LogLevel::default(),
            log_file: None,
            log_format: LogFormat::default(),
            port: DEFAULT_PORT,
            host: DEFAULT_HOST.to_string(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
            min_free_space: DEFAULT_MIN_FREE_SPACE,
            pull_timeout: Duration::from_millis(DEFAULT_PULL_TIMEOUT_MS),
            upstream_idle_timeout: Duration::from_millis(DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS),
            always_pull_latest: false,
            air_gapped: false,
            default_ns: None,
            registries: Vec::new(),
            allowed_upstreams: None,
            server_tls: None,
            pull_auth: None,
            freshness: Vec::new(),
            config_file: None,
            ops: OpsConfig::default(),
            list: ListSettings::default(),
            notices: Vec::new(),
            storage: None,
            advertise: None,
            fleet_secret: None,
        }
    }
}

/// Loads the configuration: defaults, then the file named by `--config-file` (if any), then
/// the command line options.
pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
    let mut config = match &cli.config_file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_cli(cli)?;
    Ok(config)
}

impl Config {
    /// Reads a YAML config file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(path, &text)
    }

    /// Parses YAML config text over the defaults; `path` is used in error messages.
    pub fn from_yaml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        file::read(path, text)
    }

    /// Applies the command line options that were given; absent options leave the value
    /// from the file (or the default) in place.
    pub fn apply_cli(&mut self, cli: &Cli) -> Result<(), ConfigError> {
        if let Some(level) = cli.log_level {
            self.log_level = level;
        }
        if let Some(path) = &cli.image_path {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::InvalidOption {
                    option: "image-path",
                    message: "must not be empty".into(),
                });
            }
            self.image_path = path.clone();
        }
        if let Some(path) = &cli.log_file {
            self.log_file = (!path.as_os_str().is_empty()).then(|| path.clone());
        }
        if let Some(format) = cli.log_format {
            self.log_format = format;
        }
        self.ops.apply_cli(cli)?;
        match &cli.command {
            crate::cli::Command::List(l) => {
                self.list.header |= l.header;
                if let Some(p) = &l.pattern {
                    self.list.pattern = Some(p.clone());
                }
            }
            crate::cli::Command::Load(l) => {
                if let Some(ms) = l.pull_timeout {
                    self.pull_timeout =
                        pull_timeout(ms).map_err(|message| ConfigError::InvalidOption {
                            option: "pull-timeout",
                            message,
                        })?;
                }
            }
            _ => {}
        }
        let Some(serve) = cli.serve_args() else {
            return Ok(());
        };
        if let Some(port) = serve.port {
            self.port = port;
        }
        if let Some(host) = &serve.host {
            check_listen_host(host).map_err(|message| ConfigError::InvalidOption {
                option: "host",
                message,
            })?;
            self.host = host.clone();
        }
        if let Some(n) = serve.max_connections {
            self.max_connections =
                max_connections(n).map_err(|message| ConfigError::InvalidOption {
                    option: "max-connections",
                    message,
                })?;
        }
        if let Some(size) = &serve.max_blob_size {
            self.max_blob_size =
                max_blob_size(size).map_err(|message| ConfigError::InvalidOption {
                    option: "max-blob-size",
                    message,
                })?;
        }
        if let Some(floor) = &serve.min_free_space {
            self.min_free_space =
                min_free_space(floor).map_err(|message| ConfigError::InvalidOption {
                    option: "min-free-space",
                    message,
                })?;
        }
        if let Some(ms) = serve.pull_timeout {
            self.pull_timeout = pull_timeout(ms).map_err(|message| ConfigError::InvalidOption {
                option: "pull-timeout",
                message,
            })?;
        }
        if let Some(v) = serve.air_gapped {
            self.air_gapped = v;
        }
        if let Some(v) = serve.always_pull_latest {
            self.always_pull_latest = v;
        }
        if let Some(url) = &serve.advertise {
            let url = storage::check_url(url).map_err(|message| ConfigError::InvalidOption {
                option: "advertise",
                message,
            })?;
            if let Some(s3) = &mut self.storage {
                s3.holder = url.clone();
            }
            self.advertise = Some(url);
        }
        if let Some(ns) = &serve.default_ns {
            check_registry_host(ns).map_err(|message| ConfigError::InvalidOption {
                option: "default-ns",
                message,
            })?;
            self.default_ns = Some(ns.clone());
        }
        Ok(())
    }

    /// The engine's view of these settings.
    pub fn engine_config(&self) -> EngineConfig {
        let mut engine = EngineConfig::new(self.image_path.clone());
        engine.pull_timeout = self.pull_timeout;
        engine.upstream_idle_timeout = self.upstream_idle_timeout;
        engine.air_gapped = self.air_gapped;
        engine.always_pull_latest = self.always_pull_latest;
        engine.default_ns = self.default_ns.clone();
        engine.upstreams = self.registries.clone();
        engine.allowed_upstreams = self.allowed_upstreams.clone();
        engine.freshness = self.freshness.clone();
        engine.prune = self.ops.prune.as_ref().map(PruneSettings::schedule);
        engine.cache_bound = self.ops.cache_bound.as_ref().map(ops::BoundSettings::bound);
        engine.max_blob_size = self.max_blob_size;
        engine.min_free_space = self.min_free_space;
        engine.complete_platforms = Some(self.ops.platforms.clone());
        engine.s3 = self.storage.clone();
        engine.fleet_secret = self.fleet_secret.clone();
        engine
    }
}
