//! Configuration.
//!
//! Settings are resolved in three layers, each overriding the one before:
//! built-in defaults, the YAML config file (`--config-file`), the command line.
//!
//! The file uses the Go server's key names (camelCase), so a config file written for the Go
//! server loads unchanged; an unknown key is rejected so a setting is never silently ignored.
//!
//! The file is read with the `config` crate (YAML). In 0.15 that crate keeps key case for file
//! sources, but when it reports an unknown field during deserialization it gives only the path
//! of the enclosing table, not the offending key. So the file is first walked as a plain
//! `config::Value` tree and checked against the field lists of the serde structs below (taken
//! from the structs themselves, see [`field_names`]); only then is it deserialized, with
//! `deny_unknown_fields` kept as a second line of defence.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actors::allowlist::Allowlist;
use actors::config::{
    Credentials, EngineConfig, FreshnessRule, Scheme, Ttl, UpstreamConfig, UpstreamTls,
};
use config::{Map, Source, Value, ValueKind};
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::cli::{Cli, LogLevel};
use crate::server::tls::{ClientAuth, ServerTls};

mod ops;
pub use ops::{AdminConfig, OpsConfig, PruneKind, PruneSettings, Secret};

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
/// The most `maxConnections` may ask for.
const MAX_CONNECTIONS_CEILING: u64 = 1_000_000;

/// The server's resolved settings: defaults, then the config file, then the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Cache root (`imagePath`, `--image-path`).
    pub image_path: PathBuf,
    /// Minimum log severity (`logLevel`, `--log-level`).
    pub log_level: LogLevel,
    /// Log destination; `None` is standard error (`logFile`, `--log-file`).
    pub log_file: Option<PathBuf>,
    /// Listening port (`port`, `--port`).
    pub port: u16,
    /// Listening address (`host`, `--host`).
    pub host: String,
    /// Client connections held at once (`maxConnections`, `--max-connections`), before the
    /// open-file limit has its say (`server::connections`).
    pub max_connections: usize,
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
    /// When cached tags are revalidated upstream (`tagFreshness`); empty: never.
    pub freshness: Vec<FreshnessRule>,
    /// The config file the settings were read from, if any.
    pub config_file: Option<PathBuf>,
    /// Preloading, platforms, hello-world, health, pruning, admin API access.
    pub ops: OpsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            image_path: PathBuf::from(DEFAULT_IMAGE_PATH),
            log_level: LogLevel::default(),
            log_file: None,
            port: DEFAULT_PORT,
            host: DEFAULT_HOST.to_string(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            pull_timeout: Duration::from_millis(DEFAULT_PULL_TIMEOUT_MS),
            upstream_idle_timeout: Duration::from_millis(DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS),
            always_pull_latest: false,
            air_gapped: false,
            default_ns: None,
            registries: Vec::new(),
            allowed_upstreams: None,
            server_tls: None,
            freshness: Vec::new(),
            config_file: None,
            ops: OpsConfig::default(),
        }
    }
}

/// Why the configuration could not be loaded. Every message names the file and key, or the
/// command line option, that needs fixing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read (missing, unreadable).
    #[error("config file {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid YAML, or its top level is not a mapping.
    #[error("config file {}: not a valid YAML mapping: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// A key this server does not know (misspelt, wrong case, or from another program).
    #[error("config file {}: unknown key \"{key}\" ({hint})", path.display())]
    UnknownKey {
        path: PathBuf,
        key: String,
        hint: String,
    },
    /// A key with a value of the wrong type or an unacceptable value.
    #[error("config file {}: key \"{key}\": {message}", path.display())]
    InvalidValue {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// Two `registries` entries with the same name.
    #[error(
        "config file {}: key \"{key}\": registry \"{name}\" is listed more than once",
        path.display()
    )]
    DuplicateRegistry {
        path: PathBuf,
        key: String,
        name: String,
    },
    /// A command line option with an unacceptable value.
    #[error("command line option --{option}: {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },
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
        let file = FileCtx { path };
        let source = config::File::from_str(text, config::FileFormat::Yaml);
        let root: Map<String, Value> = config::Config::builder()
            .add_source(source)
            .build()
            .and_then(|c| c.collect())
            .map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        check_keys(&file, &root)?;
        let raw: FileConfig = Value::new(None, ValueKind::Table(root))
            .try_deserialize()
            .map_err(|e| file.deserialize_error(e))?;
        let mut config = raw.resolve(&file)?;
        config.config_file = Some(path.to_path_buf());
        Ok(config)
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
        self.ops.apply_cli(cli)?;
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
        engine
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written. Every field is optional so "absent" and "null" keep the default.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileConfig {
    image_path: Option<PathBuf>,
    log_level: Option<String>,
    log_file: Option<PathBuf>,
    preload_images: Option<String>,
    image_file: Option<String>,
    port: Option<u16>,
    host: Option<String>,
    os: Option<String>,
    arch: Option<String>,
    pull_timeout: Option<u64>,
    upstream_idle_timeout: Option<u64>,
    max_connections: Option<u64>,
    always_pull_latest: Option<bool>,
    air_gapped: Option<bool>,
    hello_world: Option<bool>,
    health: Option<String>,
    default_ns: Option<String>,
    registries: Option<Vec<FileRegistry>>,
    allowed_upstreams: Option<Vec<String>>,
    tag_freshness: Option<Vec<FileFreshness>>,
    prune_config: Option<ops::FilePruneConfig>,
    max_cache_size: Option<String>,
    pin: Option<Vec<String>>,
    eviction_grace: Option<String>,
    server_tls_config: Option<FileServerTls>,
    admin_api: Option<ops::FileAdmin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileRegistry {
    name: Option<String>,
    /// Free text for the reader of the file; ignored.
    #[allow(dead_code)]
    description: Option<IgnoredAny>,
    scheme: Option<String>,
    endpoint: Option<String>,
    auth: Option<FileAuth>,
    tls: Option<FileRegistryTls>,
}

/// One `tagFreshness` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileFreshness {
    /// A regular expression over `registry/repository`.
    #[serde(rename = "match")]
    pattern: Option<String>,
    ttl: Option<String>,
    latest_ttl: Option<String>,
}

impl FileFreshness {
    fn resolve(self, file: &FileCtx<'_>, key: &str) -> Result<FreshnessRule, ConfigError> {
        let source = self
            .pattern
            .ok_or_else(|| file.invalid(format!("{key}.match"), "is required"))?;
        // Anchored: `quay.io/` must not also match `notquay.io/`.
        let pattern = regex::Regex::new(&format!("^(?:{source})$")).map_err(|e| {
            file.invalid(
                format!("{key}.match"),
                format!("not a regular expression: {e}"),
            )
        })?;
        let ttl = match &self.ttl {
            Some(t) => parse_ttl(t).map_err(|m| file.invalid(format!("{key}.ttl"), m))?,
            None => return Err(file.invalid(format!("{key}.ttl"), "is required")),
        };
        let latest_ttl = match &self.latest_ttl {
            Some(t) => Some(parse_ttl(t).map_err(|m| file.invalid(format!("{key}.latestTtl"), m))?),
            None => None,
        };
        Ok(FreshnessRule {
            pattern,
            ttl,
            latest_ttl,
        })
    }
}

/// `never`, or a duration such as `30s`, `10m`, `12h`, `1d`.
fn parse_ttl(value: &str) -> Result<Ttl, String> {
    if value.trim() == "never" {
        return Ok(Ttl::Never);
    }
    humantime::parse_duration(value.trim())
        .map(Ttl::After)
        .map_err(|e| format!("{value:?} is neither `never` nor a duration like 10m, 12h, 1d: {e}"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileAuth {
    user: Option<String>,
    password: Option<String>,
    password_from_env: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileRegistryTls {
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileServerTls {
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    client_auth: Option<String>,
}

/// The file being loaded, for error messages.
struct FileCtx<'a> {
    path: &'a Path,
}

impl FileCtx<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.path.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Turns a `config` crate deserialization error into one naming the key and the file.
    fn deserialize_error(&self, e: config::ConfigError) -> ConfigError {
        match e {
            config::ConfigError::Type {
                unexpected,
                expected,
                key,
                ..
            } => self.invalid(
                key.unwrap_or_default(),
                format!("expected {expected}, found {unexpected}"),
            ),
            config::ConfigError::At { error, key, .. } => {
                self.invalid(key.unwrap_or_default(), error.to_string())
            }
            config::ConfigError::NotFound(key) => self.invalid(key, "is required"),
            other => ConfigError::Syntax {
                path: self.path.to_path_buf(),
                message: other.to_string(),
            },
        }
    }
}

impl FileConfig {
    fn resolve(self, file: &FileCtx<'_>) -> Result<Config, ConfigError> {
        let mut config = Config::default();

        if let Some(path) = self.image_path {
            if path.as_os_str().is_empty() {
                return Err(file.invalid("imagePath", "must not be empty"));
            }
            config.image_path = path;
        }
        if let Some(name) = self.log_level {
            config.log_level = LogLevel::from_name(&name).ok_or_else(|| {
                file.invalid(
                    "logLevel",
                    format!(
                        "\"{name}\" is not a log level; use one of: {}",
                        LogLevel::NAMES.join(", ")
                    ),
                )
            })?;
        }
        config.log_file = self.log_file.filter(|p| !p.as_os_str().is_empty());
        if let Some(port) = self.port {
            config.port = port;
        }
        if let Some(host) = self.host {
            check_listen_host(&host).map_err(|m| file.invalid("host", m))?;
            config.host = host;
        }
        if let Some(ms) = self.pull_timeout {
            config.pull_timeout = pull_timeout(ms).map_err(|m| file.invalid("pullTimeout", m))?;
        }
        if let Some(n) = self.max_connections {
            config.max_connections =
                max_connections(n).map_err(|m| file.invalid("maxConnections", m))?;
        }
        if let Some(ms) = self.upstream_idle_timeout {
            config.upstream_idle_timeout =
                pull_timeout(ms).map_err(|m| file.invalid("upstreamIdleTimeout", m))?;
        }
        config.always_pull_latest = self.always_pull_latest.unwrap_or(false);
        config.air_gapped = self.air_gapped.unwrap_or(false);
        if let Some(ns) = self.default_ns.filter(|s| !s.is_empty()) {
            check_registry_host(&ns).map_err(|m| file.invalid("defaultNs", m))?;
            config.default_ns = Some(ns);
        }

        config.ops = ops::FileOps {
            preload_images: self.preload_images,
            image_file: self.image_file,
            os: self.os,
            arch: self.arch,
            hello_world: self.hello_world,
            health: self.health,
            prune_config: self.prune_config,
            admin_api: self.admin_api,
            max_cache_size: self.max_cache_size,
            pin: self.pin,
            eviction_grace: self.eviction_grace,
        }
        .resolve(file)?;
        if let Some(tls) = self.server_tls_config {
            config.server_tls = tls.resolve(file)?;
        }
        for (i, rule) in self.tag_freshness.into_iter().flatten().enumerate() {
            let rule = rule.resolve(file, &format!("tagFreshness[{i}]"))?;
            config.freshness.push(rule);
        }
        if let Some(items) = self.allowed_upstreams {
            if items.is_empty() {
                return Err(file.invalid(
                    "allowedUpstreams",
                    "an empty list would refuse every upstream; list the allowed registries, \
                     or remove the key to allow all",
                ));
            }
            let list = Allowlist::parse(&items).map_err(|m| file.invalid("allowedUpstreams", m))?;
            config.allowed_upstreams = Some(list);
        }

        let mut seen = HashSet::new();
        for (i, entry) in self.registries.into_iter().flatten().enumerate() {
            let key = format!("registries[{i}]");
            let upstream = entry.resolve(file, &key)?;
            if !seen.insert(upstream.name.clone()) {
                return Err(ConfigError::DuplicateRegistry {
                    path: file.path.to_path_buf(),
                    key: format!("{key}.name"),
                    name: upstream.name,
                });
            }
            config.registries.push(upstream);
        }
        Ok(config)
    }
}

impl FileRegistry {
    fn resolve(self, file: &FileCtx<'_>, key: &str) -> Result<UpstreamConfig, ConfigError> {
        let name = self.name.unwrap_or_default();
        if name.is_empty() {
            return Err(file.invalid(
                format!("{key}.name"),
                "is required: the registry host as clients name it, e.g. quay.io or myreg:5000",
            ));
        }
        check_registry_host(&name).map_err(|m| file.invalid(format!("{key}.name"), m))?;

        let scheme = match self.scheme.as_deref() {
            None | Some("") | Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            Some(other) => {
                return Err(file.invalid(
                    format!("{key}.scheme"),
                    format!("\"{other}\" is not a scheme; use http or https"),
                ))
            }
        };

        let endpoint = match self.endpoint.filter(|e| !e.is_empty()) {
            Some(e) => {
                Some(parse_endpoint(&e).map_err(|m| file.invalid(format!("{key}.endpoint"), m))?)
            }
            None => None,
        };

        let auth = match self.auth {
            None => None,
            Some(auth) => auth.resolve(file, &format!("{key}.auth"))?,
        };

        let tls = match self.tls {
            None => UpstreamTls::default(),
            Some(tls) => tls.resolve(file, &format!("{key}.tls"))?,
        };

        Ok(UpstreamConfig {
            name,
            scheme,
            endpoint,
            auth,
            tls,
        })
    }
}

impl FileAuth {
    /// Credentials from the file, the environment or a secret file; `None` for `auth: {}`.
    fn resolve(self, file: &FileCtx<'_>, key: &str) -> Result<Option<Credentials>, ConfigError> {
        let user = self.user.filter(|u| !u.is_empty());
        let env = self.password_from_env.filter(|v| !v.is_empty());
        let path = self.password_file.filter(|p| !p.as_os_str().is_empty());
        let sources = [self.password.is_some(), env.is_some(), path.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if user.is_none() && sources == 0 {
            return Ok(None);
        }
        let Some(user) = user else {
            return Err(file.invalid(
                format!("{key}.user"),
                "is required when auth is given (use `auth: {}` or omit auth for anonymous \
                 access)",
            ));
        };
        if sources != 1 {
            return Err(file.invalid(
                format!("{key}.password"),
                "give exactly one of password, passwordFromEnv (an environment variable) or \
                 passwordFile (a file holding the password)",
            ));
        }
        let password = if let Some(p) = self.password {
            p
        } else if let Some(var) = env {
            match std::env::var(&var) {
                Ok(v) if !v.is_empty() => v,
                Ok(_) => {
                    return Err(file.invalid(
                        format!("{key}.passwordFromEnv"),
                        format!("environment variable {var} is empty"),
                    ))
                }
                Err(e) => {
                    return Err(file.invalid(
                        format!("{key}.passwordFromEnv"),
                        format!("environment variable {var}: {e}"),
                    ))
                }
            }
        } else {
            let path = path.expect("one source is set");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                file.invalid(
                    format!("{key}.passwordFile"),
                    format!("{}: cannot read it: {e}", path.display()),
                )
            })?;
            // Secret files usually end with a newline that is not part of the password.
            let password = text.strip_suffix('\n').unwrap_or(&text);
            let password = password.strip_suffix('\r').unwrap_or(password);
            if password.is_empty() {
                return Err(file.invalid(
                    format!("{key}.passwordFile"),
                    format!("{} is empty", path.display()),
                ));
            }
            password.to_string()
        };
        Ok(Some(Credentials { user, password }))
    }
}

impl FileRegistryTls {
    /// The TLS settings, with every file read and checked now rather than at the first pull.
    fn resolve(self, file: &FileCtx<'_>, key: &str) -> Result<UpstreamTls, ConfigError> {
        use actors::upstream::tls;
        let path = |v: Option<String>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
        let out = UpstreamTls {
            ca: path(self.ca),
            client_cert: path(self.cert),
            client_key: path(self.key),
            insecure_skip_verify: self.insecure_skip_verify.unwrap_or(false),
        };
        if let Some(ca) = &out.ca {
            tls::load_roots(ca, "CA file").map_err(|m| file.invalid(format!("{key}.ca"), m))?;
        }
        match (&out.client_cert, &out.client_key) {
            (Some(cert), Some(k)) => {
                tls::load_certs(cert, "client certificate")
                    .map_err(|m| file.invalid(format!("{key}.cert"), m))?;
                tls::load_key(k, "client key")
                    .map_err(|m| file.invalid(format!("{key}.key"), m))?;
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(file.invalid(format!("{key}.key"), "is required when cert is given"))
            }
            (None, Some(_)) => {
                return Err(file.invalid(format!("{key}.cert"), "is required when key is given"))
            }
        }
        tls::build_client_config(&out).map_err(|m| file.invalid(key, m))?;
        Ok(out)
    }
}

impl FileServerTls {
    /// `None` when no certificate is configured (plain HTTP, the default).
    fn resolve(self, file: &FileCtx<'_>) -> Result<Option<ServerTls>, ConfigError> {
        let path = |v: Option<String>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
        let (cert, key, ca) = (path(self.cert), path(self.key), path(self.ca));
        let client_auth = match self.client_auth.as_deref() {
            None | Some("") | Some("none") => ClientAuth::None,
            Some("verify") => ClientAuth::Verify,
            Some(other) => {
                return Err(file.invalid(
                    "serverTlsConfig.clientAuth",
                    format!("\"{other}\" is not a client authentication mode; use none or verify"),
                ))
            }
        };
        let (cert, key) = match (cert, key) {
            (Some(c), Some(k)) => (c, k),
            (None, None) => {
                if client_auth == ClientAuth::Verify {
                    return Err(file.invalid(
                        "serverTlsConfig.clientAuth",
                        "verify needs TLS: set serverTlsConfig.cert and serverTlsConfig.key",
                    ));
                }
                if ca.is_some() {
                    return Err(file.invalid(
                        "serverTlsConfig.ca",
                        "is only used with TLS: set serverTlsConfig.cert and serverTlsConfig.key",
                    ));
                }
                return Ok(None);
            }
            (Some(_), None) => {
                return Err(file.invalid("serverTlsConfig.key", "is required when cert is given"))
            }
            (None, Some(_)) => {
                return Err(file.invalid("serverTlsConfig.cert", "is required when key is given"))
            }
        };
        let tls = ServerTls {
            cert,
            key,
            ca,
            client_auth,
        };
        crate::server::tls::server_config(&tls)
            .map_err(|(sub, m)| file.invalid(format!("serverTlsConfig.{sub}"), m))?;
        Ok(Some(tls))
    }
}

fn max_connections(n: u64) -> Result<usize, String> {
    if !(1..=MAX_CONNECTIONS_CEILING).contains(&n) {
        return Err(format!(
            "{n} is not a connection count: use 1 to {MAX_CONNECTIONS_CEILING}"
        ));
    }
    usize::try_from(n).map_err(|_| format!("{n} connections do not fit this machine"))
}

fn pull_timeout(ms: u64) -> Result<Duration, String> {
    if ms == 0 {
        return Err("must be greater than 0 milliseconds".into());
    }
    Ok(Duration::from_millis(ms))
}

/// A registry as it appears in image references: `host` or `host:port`, where the host is
/// letters, digits, `.` and `-`.
pub fn check_registry_host(value: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "\"{value}\" is not a registry host: {why}; expected host or host:port, e.g. \
             docker.io or myreg:5000"
        ))
    };
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.contains("://") {
        return bad("remove the scheme (use the registry's `scheme` or `endpoint` key)");
    }
    if value.contains('/') {
        return bad("it contains '/'");
    }
    if value.chars().any(char::is_whitespace) {
        return bad("it contains whitespace");
    }
    let (host, port) = match value.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return bad("the port must be a number from 1 to 65535");
        }
    }
    if !is_hostname(host) {
        return bad("the host may only contain letters, digits, '.' and '-'");
    }
    Ok(())
}

fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The listening address: an IP address or a host name.
fn check_listen_host(value: &str) -> Result<(), String> {
    if value.parse::<IpAddr>().is_ok() || is_hostname(value) {
        Ok(())
    } else {
        Err(format!(
            "\"{value}\" is not an IP address or host name to listen on, e.g. 0.0.0.0 or \
             127.0.0.1"
        ))
    }
}

/// Checks an `endpoint`: `http(s)://host[:port]`, optionally with a trailing `/`, and nothing
/// else. Returns it without the trailing `/`.
pub fn parse_endpoint(value: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "\"{value}\" is not a valid endpoint: {why}; expected http://host[:port] or \
             https://host[:port], e.g. http://127.0.0.1:5000"
        ))
    };
    let Some((scheme, rest)) = value.split_once("://") else {
        return bad("it has no http:// or https:// scheme");
    };
    if scheme != "http" && scheme != "https" {
        return bad("the scheme must be http or https");
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return bad("credentials are not allowed (use the registry's `auth` key)");
    }
    if authority.contains('/') {
        return bad("a path is not allowed");
    }
    if authority.contains('?') || authority.contains('#') {
        return bad("a query or fragment is not allowed");
    }
    let (_host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        // IPv6 literal: [addr] or [addr]:port
        let Some((addr, after)) = bracketed.split_once(']') else {
            return bad("unterminated IPv6 address");
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("invalid IPv6 address");
        }
        match after {
            "" => (addr, None),
            p => match p.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return bad("unexpected text after the IPv6 address"),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => {
                if !is_hostname(h) {
                    return bad("invalid host");
                }
                (h, Some(p))
            }
            None => {
                if !is_hostname(authority) {
                    return bad("invalid host");
                }
                (authority, None)
            }
        }
    };
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return bad("the port must be a number from 1 to 65535");
        }
    }
    Ok(format!("{scheme}://{authority}"))
}

// ---------------------------------------------------------------------------------------------
// Unknown-key detection on the raw tree.

/// The field names a serde-derived struct accepts (after renaming), read from the struct itself
/// so the checks below cannot drift from the structs.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    struct Capture<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for Capture<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields captured"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut fields));
    debug_assert!(!fields.is_empty(), "field_names used on a non-struct type");
    fields
}

fn check_keys(file: &FileCtx<'_>, root: &Map<String, Value>) -> Result<(), ConfigError> {
    check_table(file, "", root, field_names::<FileConfig>())?;
    if let Some(t) = mapping(file, "pruneConfig", root.get("pruneConfig"))? {
        check_table(
            file,
            "pruneConfig",
            t,
            field_names::<ops::FilePruneConfig>(),
        )?;
    }
    if let Some(t) = mapping(file, "adminApi", root.get("adminApi"))? {
        check_table(file, "adminApi", t, field_names::<ops::FileAdmin>())?;
    }
    if let Some(t) = mapping(file, "serverTlsConfig", root.get("serverTlsConfig"))? {
        check_table(file, "serverTlsConfig", t, field_names::<FileServerTls>())?;
    }
    let registries = match root.get("registries").map(|v| &v.kind) {
        None | Some(ValueKind::Nil) => &[][..],
        Some(ValueKind::Array(items)) => &items[..],
        Some(other) => {
            return Err(file.invalid(
                "registries",
                format!("expected a list of registries, found {}", describe(other)),
            ))
        }
    };
    if let Some(ValueKind::Array(rules)) = root.get("tagFreshness").map(|v| &v.kind) {
        for (i, item) in rules.iter().enumerate() {
            let prefix = format!("tagFreshness[{i}]");
            if let Some(t) = mapping(file, &prefix, Some(item))? {
                check_table(file, &prefix, t, field_names::<FileFreshness>())?;
            }
        }
    }
    for (i, item) in registries.iter().enumerate() {
        let prefix = format!("registries[{i}]");
        let Some(entry) = mapping(file, &prefix, Some(item))? else {
            continue;
        };
        check_table(file, &prefix, entry, field_names::<FileRegistry>())?;
        let auth = format!("{prefix}.auth");
        if let Some(t) = mapping(file, &auth, entry.get("auth"))? {
            check_table(file, &auth, t, field_names::<FileAuth>())?;
        }
        let tls = format!("{prefix}.tls");
        if let Some(t) = mapping(file, &tls, entry.get("tls"))? {
            check_table(file, &tls, t, field_names::<FileRegistryTls>())?;
        }
    }
    Ok(())
}

/// A value that must be a mapping (or empty). Checked here because serde would also accept a
/// list for a struct, matching its items to the fields by position.
fn mapping<'v>(
    file: &FileCtx<'_>,
    key: &str,
    value: Option<&'v Value>,
) -> Result<Option<&'v Map<String, Value>>, ConfigError> {
    match value.map(|v| &v.kind) {
        None | Some(ValueKind::Nil) => Ok(None),
        Some(ValueKind::Table(t)) => Ok(Some(t)),
        Some(other) => Err(file.invalid(
            key,
            format!(
                "expected a mapping of keys to values, found {}",
                describe(other)
            ),
        )),
    }
}

fn describe(kind: &ValueKind) -> String {
    match kind {
        ValueKind::Nil => "nothing".into(),
        ValueKind::Boolean(b) => format!("boolean `{b}`"),
        ValueKind::I64(n) => format!("integer `{n}`"),
        ValueKind::I128(n) => format!("integer `{n}`"),
        ValueKind::U64(n) => format!("integer `{n}`"),
        ValueKind::U128(n) => format!("integer `{n}`"),
        ValueKind::Float(n) => format!("number `{n}`"),
        ValueKind::String(s) => format!("string \"{s}\""),
        ValueKind::Table(_) => "a mapping".into(),
        ValueKind::Array(_) => "a list".into(),
    }
}

fn check_table(
    file: &FileCtx<'_>,
    prefix: &str,
    table: &Map<String, Value>,
    known: &[&str],
) -> Result<(), ConfigError> {
    // Sorted so that the first reported key does not depend on hash order.
    let keys: BTreeMap<&str, ()> = table.keys().map(|k| (k.as_str(), ())).collect();
    for key in keys.keys() {
        if known.contains(key) {
            continue;
        }
        let hint = match known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
            Some(k) => format!("keys are case-sensitive: did you mean \"{k}\"?"),
            None => format!("known keys here: {}", known.join(", ")),
        };
        let key = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        return Err(ConfigError::UnknownKey {
            path: file.path.to_path_buf(),
            key,
            hint,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;

    /// The Go server's "full configuration file showing all the defaults", verbatim.
    const SEED_DEFAULTS_YAML: &str = r#"
imagePath: /var/lib/ociregistry
logLevel: error
# empty means log to stderr
logFile:
# empty means don't preload
preloadImages:
# ignored unless preloadImages specified
imageFile:
port: 8080
# OS and arch default to the host running the server
#os: linux
#arch: amd64
pullTimeout: 60000
# if true, then whenever a latest tag is pulled, the server will always pull
# from the upstream - in other words it acts like a basic proxy. Useful when
# supporting dev environments where latest is frequently changing.
alwaysPullLatest: false
# If true, will not pull from an upstream when an image is requested that
# is not cached.
airGapped: false
# For testing. Only serves 'docker.io/hello-world:latest' from embedded blobs
# and manifests
helloWorld: false
# A port number to run a /health endpoint on for Kubernetes liveness and
# readiness. By default, the server doesn't listen on a health port. The
# Helm chart enables this by default when running the server as a cluster
# workload.
health:
# see further down for registry configuration
registries: []
# see further down for prune configuration
pruneConfig:
  # disabled by default
  enabled: false
  # see 'type'
  duration: 30d
  # if accessed, then prune if not pulled in duration. If
  # created, then prune if create date is older than duration
  type: accessed
  # run the prune with this frequency
  frequency: 1d
  # no limit to the number of pruned images in a run
  count: -1
  # if true, just log messages, don't actually prune
  dryRun: false
# configure TLS with downstream (client) pullers, e.g. containerd.
# see server tls configuration further down in this README.
serverTlsConfig:
  cert:
  key:
  ca:
  clientAuth:
"#;

    fn write_yaml(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile()
            .expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f.flush().expect("flush");
        f
    }

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ociregistry").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn load_yaml(text: &str) -> Result<Config, ConfigError> {
        let f = write_yaml(text);
        let path = f.path().to_str().unwrap().to_string();
        load(&cli(&["--config-file", &path, "serve"]))
    }

    /// Loads `text`, expects an error, and checks it names the file and every needle.
    fn load_err(text: &str, needles: &[&str]) -> ConfigError {
        let f = write_yaml(text);
        let path = f.path().to_str().unwrap().to_string();
        let err = load(&cli(&["--config-file", &path, "serve"]))
            .expect_err(&format!("expected an error for:\n{text}"));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("config file {path}")),
            "error does not name the file: {msg}"
        );
        for needle in needles {
            assert!(msg.contains(needle), "error lacks {needle:?}: {msg}");
        }
        err
    }

    fn unknown_key(text: &str, key: &str) {
        let err = load_err(text, &[&format!("unknown key \"{key}\"")]);
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
    }

    #[test]
    fn defaults_without_a_config_file() {
        let config = load(&cli(&["serve"])).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.image_path, PathBuf::from("/var/lib/ociregistry"));
        assert_eq!(config.log_level, LogLevel::Error);
        assert_eq!(config.log_file, None);
        assert_eq!(config.port, 8080);
        assert_eq!(config.host, "0.0.0.0");
        assert_eq!(config.pull_timeout, Duration::from_millis(60_000));
        assert!(!config.always_pull_latest);
        assert!(!config.air_gapped);
        assert_eq!(config.default_ns, None);
        assert!(config.registries.is_empty());
        assert_eq!(config.config_file, None);
    }

    #[test]
    fn help_texts_state_the_same_defaults_as_the_code() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let top = cmd.render_long_help().to_string();
        assert!(top.contains(&format!("[default: {DEFAULT_IMAGE_PATH}]")));
        assert!(top.contains(&format!("[default: {}]", LogLevel::default())));
        let serve = cmd.find_subcommand_mut("serve").unwrap();
        let serve = serve.render_long_help().to_string();
        assert!(serve.contains(&format!("[default: {DEFAULT_PORT}]")));
        assert!(serve.contains(&format!("[default: {DEFAULT_HOST}]")));
        assert!(serve.contains(&format!("[default: {DEFAULT_PULL_TIMEOUT_MS}]")));
    }

    #[test]
    fn seed_full_defaults_file_loads_as_defaults() {
        let f = write_yaml(SEED_DEFAULTS_YAML);
        let config = Config::from_file(f.path()).unwrap();
        let expected = Config {
            config_file: Some(f.path().to_path_buf()),
            ..Config::default()
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn example_config_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yaml");
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.port, DEFAULT_PORT);
        assert_eq!(config.registries.len(), 3);
        let engine = config.engine_config();
        assert_eq!(
            engine.upstream("docker.io").base_url(),
            "http://127.0.0.1:5000"
        );
        assert!(engine
            .upstream("registry.internal.example:5000")
            .auth
            .is_some());
    }

    #[test]
    fn example_config_file_shows_the_operations_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yaml");
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.ops, OpsConfig::default());
        let text = std::fs::read_to_string(path).unwrap();
        for key in [
            "preloadImages:",
            "helloWorld:",
            "pruneConfig:",
            "  dryRun:",
            "maxCacheSize:",
            "pin:",
            "adminApi:",
        ] {
            assert!(text.contains(&format!("\n{key}")), "example lacks {key}");
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = load_yaml("").unwrap();
        assert_eq!(config.port, DEFAULT_PORT);
        let config = load_yaml("# only a comment\n").unwrap();
        assert_eq!(config.image_path, PathBuf::from(DEFAULT_IMAGE_PATH));
    }

    #[test]
    fn camel_case_keys_are_read_from_the_file() {
        let config = load_yaml(
            "imagePath: /data/img\nlogLevel: debug\nlogFile: /var/log/o.log\nport: 5000\n\
             host: 127.0.0.1\npullTimeout: 1500\nalwaysPullLatest: true\nairGapped: true\n\
             defaultNs: docker.io\n",
        )
        .unwrap();
        assert_eq!(config.image_path, PathBuf::from("/data/img"));
        assert_eq!(config.log_level, LogLevel::Debug);
        assert_eq!(config.log_file, Some(PathBuf::from("/var/log/o.log")));
        assert_eq!(config.port, 5000);
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.pull_timeout, Duration::from_millis(1500));
        assert!(config.always_pull_latest);
        assert!(config.air_gapped);
        assert_eq!(config.default_ns.as_deref(), Some("docker.io"));
    }

    #[test]
    fn command_line_overrides_file_and_absent_options_keep_file_values() {
        let f = write_yaml(
            "imagePath: /file/img\nlogLevel: warn\nlogFile: /file.log\nport: 5000\n\
             host: 127.0.0.1\npullTimeout: 1500\nalwaysPullLatest: true\nairGapped: true\n\
             defaultNs: file.example\n",
        );
        let path = f.path().to_str().unwrap();

        let kept = load(&cli(&["--config-file", path, "serve"])).unwrap();
        assert_eq!(kept.port, 5000);
        assert_eq!(kept.log_level, LogLevel::Warn);
        assert!(kept.air_gapped);

        let over = load(&cli(&[
            "--config-file",
            path,
            "--image-path",
            "/cli/img",
            "--log-level",
            "trace",
            "--log-file",
            "/cli.log",
            "serve",
            "--port",
            "6000",
            "--host",
            "::1",
            "--pull-timeout",
            "250",
            "--air-gapped=false",
            "--always-pull-latest=false",
            "--default-ns",
            "cli.example:5000",
        ]))
        .unwrap();
        assert_eq!(over.image_path, PathBuf::from("/cli/img"));
        assert_eq!(over.log_level, LogLevel::Trace);
        assert_eq!(over.log_file, Some(PathBuf::from("/cli.log")));
        assert_eq!(over.port, 6000);
        assert_eq!(over.host, "::1");
        assert_eq!(over.pull_timeout, Duration::from_millis(250));
        assert!(!over.air_gapped);
        assert!(!over.always_pull_latest);
        assert_eq!(over.default_ns.as_deref(), Some("cli.example:5000"));
    }

    #[test]
    fn bool_flag_presence_turns_a_file_false_into_true() {
        let f = write_yaml("airGapped: false\nalwaysPullLatest: false\n");
        let path = f.path().to_str().unwrap();
        let config = load(&cli(&[
            "--config-file",
            path,
            "serve",
            "--air-gapped",
            "--always-pull-latest",
        ]))
        .unwrap();
        assert!(config.air_gapped);
        assert!(config.always_pull_latest);
    }

    #[test]
    fn global_options_apply_to_the_version_subcommand_too() {
        let config = load(&cli(&["--image-path", "/x", "version"])).unwrap();
        assert_eq!(config.image_path, PathBuf::from("/x"));
        assert_eq!(config.port, DEFAULT_PORT);
    }

    #[test]
    fn missing_config_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.yaml");
        let err = load(&cli(&["--config-file", path.to_str().unwrap(), "serve"])).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    }

    #[test]
    fn invalid_yaml_is_an_error_naming_the_file() {
        let err = load_err("port: [1, 2\n", &[]);
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
        let err = load_err("- just\n- a list\n", &[]);
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    }

    #[test]
    fn preload_and_image_files_are_read() {
        let c = load_yaml("preloadImages: /tmp/list\nimageFile: /tmp/other\n").unwrap();
        assert_eq!(c.ops.preload_images, Some(PathBuf::from("/tmp/list")));
        assert_eq!(c.ops.image_file, Some(PathBuf::from("/tmp/other")));
        let c = load(&cli(&["serve", "--preload-images", "/x"])).unwrap();
        assert_eq!(c.ops.preload_images, Some(PathBuf::from("/x")));
        let c = load(&cli(&["load", "--image-file", "/y", "--jobs", "2"])).unwrap();
        assert_eq!(c.ops.image_file, Some(PathBuf::from("/y")));
        assert_eq!(c.ops.load_jobs, 2);
    }

    #[test]
    fn os_and_arch_choose_the_platform_and_the_command_line_wins() {
        use actors::preload::{PlatformSpec, Platforms};
        let c = load_yaml("os: linux\narch: arm64\n").unwrap();
        assert_eq!(
            c.ops.platforms,
            Platforms::Only(vec!["linux/arm64".parse().unwrap()])
        );
        let c = load_yaml("os:\narch: \"\"\n").unwrap();
        assert_eq!(c.ops.platforms, Platforms::Only(vec![PlatformSpec::host()]));
        load_err("arch: \"x y\"\n", &["key \"arch\""]);
        let c = load(&cli(&["load", "--arch", "s390x"])).unwrap();
        let Platforms::Only(p) = &c.ops.platforms else {
            panic!()
        };
        assert_eq!(p[0].arch, "s390x");
        let c = load(&cli(&["load", "--platform", "linux/amd64,linux/arm64/v8"])).unwrap();
        assert_eq!(
            c.ops.platforms,
            Platforms::Only(vec![
                "linux/amd64".parse().unwrap(),
                "linux/arm64/v8".parse().unwrap()
            ])
        );
        let c = load(&cli(&["serve", "--all-platforms"])).unwrap();
        assert_eq!(c.ops.platforms, Platforms::All);
        assert!(load(&cli(&["load", "--platform", "linux"])).is_err());
    }

    #[test]
    fn hello_world_and_health_are_read() {
        let c = load_yaml("helloWorld: true\nhealth: 8081\n").unwrap();
        assert!(c.ops.hello_world);
        assert_eq!(c.ops.health, Some(8081));
        load_err("health: http\n", &["key \"health\""]);
        let c = load(&cli(&["serve", "--hello-world", "--health", "9000"])).unwrap();
        assert!(c.ops.hello_world);
        assert_eq!(c.ops.health, Some(9000));
    }

    #[test]
    fn prune_config_is_checked_and_read_when_enabled() {
        let c = load_yaml(
            "pruneConfig:\n  enabled: true\n  duration: 12h\n  type: created\n  frequency: 10m\n  \
             count: 5\n  dryrun: true\n",
        )
        .unwrap();
        let p = c.ops.prune.clone().unwrap();
        assert_eq!(p.kind, PruneKind::Created);
        assert_eq!(p.duration, Duration::from_secs(12 * 3600));
        assert_eq!(p.frequency, Duration::from_secs(600));
        assert_eq!(p.count, Some(5));
        assert!(p.dry_run);
        assert!(c.engine_config().prune.is_some());
        let c = load_yaml("pruneConfig:\n  enabled: true\n").unwrap();
        let p = c.ops.prune.unwrap();
        assert_eq!(
            (p.kind, p.count, p.dry_run),
            (PruneKind::Accessed, None, false)
        );
        assert_eq!(p.frequency, Duration::from_secs(86_400));
        load_err(
            "pruneConfig:\n  enabled: true\n  type: pattern\n",
            &["pruneConfig.expr"],
        );
        load_err("pruneConfig:\n  expr: \"(\"\n", &["pruneConfig.expr"]);
        load_err("pruneConfig:\n  duration: 3w\n", &["pruneConfig.duration"]);
        load_err("pruneConfig:\n  type: sometimes\n", &["pruneConfig.type"]);
        load_err("pruneConfig:\n  count: 0\n", &["pruneConfig.count"]);
    }

    #[test]
    fn prune_sub_keys_are_accepted_while_pruning_is_disabled() {
        let c = load_yaml(
            "pruneConfig:\n  duration: 5h\n  type: created\n  frequency: 2h\n  count: 10\n  \
             dryRun: true\n",
        )
        .unwrap();
        assert_eq!(c.ops.prune, None);
        load_yaml("pruneConfig:\n").unwrap();
        load_yaml("pruneConfig: {}\n").unwrap();
    }

    #[test]
    fn cache_bound_reads_sizes_pins_and_grace() {
        let c = load_yaml(
            "maxCacheSize: 50GiB\npin:\n  - docker.io/library/nginx:.*\n  - calico\n\
             evictionGrace: 2m\n",
        )
        .unwrap();
        let b = c.ops.cache_bound.clone().unwrap();
        assert_eq!(b.max_bytes, 50 << 30);
        assert_eq!(b.pins.len(), 2);
        assert_eq!(b.grace, Duration::from_secs(120));
        let engine = c.engine_config().cache_bound.unwrap();
        assert!(engine.pins[1].is_match("quay.io/calico/node:v3"));
        let c = load_yaml("maxCacheSize: 1048576\n").unwrap();
        let b = c.ops.cache_bound.unwrap();
        assert_eq!((b.max_bytes, b.grace), (1 << 20, Duration::from_secs(60)));
        assert!(load_yaml("").unwrap().engine_config().cache_bound.is_none());
        // Checked without a bound too.
        load_err("pin: [\"(\"]\n", &["pin"]);
        load_err("evictionGrace: soon\n", &["evictionGrace"]);
        load_err("maxCacheSize: 50 gigs\n", &["maxCacheSize"]);
        load_err("maxCacheSize: 0\n", &["maxCacheSize"]);
    }

    #[test]
    fn admin_access_defaults_to_loopback_and_reads_a_token() {
        let c = load_yaml("").unwrap();
        assert_eq!(c.ops.admin.allow.len(), 2);
        assert!(c.ops.admin.token.is_none());
        let c = load_yaml("adminApi:\n  allow: [10.0.0.1]\n  token: abcdefghijklmnopq\n").unwrap();
        assert_eq!(
            c.ops.admin.allow,
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(c.ops.admin.token, Some(Secret("abcdefghijklmnopq".into())));
        assert!(!format!("{c:?}").contains("abcdefghijklmnopq"));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "from-a-file-0123456789").unwrap();
        let c = load_yaml(&format!("adminApi:\n  tokenFile: {}\n", f.path().display())).unwrap();
        assert_eq!(
            c.ops.admin.token,
            Some(Secret("from-a-file-0123456789".into()))
        );
        load_err("adminApi:\n  token: short\n", &["16 characters"]);
        load_err("adminApi:\n  allow: [localhost]\n", &["adminApi.allow"]);
        load_err(
            "adminApi:\n  tokenEnv: OCIREGISTRY_TEST_UNSET_VARIABLE\n",
            &["not set"],
        );
        unknown_key("adminApi:\n  tokens: x\n", "adminApi.tokens");
    }

    /// A CA (`ca`), a certificate it signed for server and client use (`cert`) and that
    /// certificate's `key`, made with the openssl command line tool; `junk` is a file that is
    /// not PEM, `missing` a path with no file. The files are removed with the value.
    struct Pki {
        cert: String,
        key: String,
        ca: String,
        junk: String,
        missing: String,
        _dir: tempfile::TempDir,
    }

    impl Pki {
        fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let run = |args: &[&str]| {
                let out = std::process::Command::new("openssl")
                    .args(args)
                    .current_dir(dir.path())
                    .output()
                    .expect("the openssl command line tool is needed by this test");
                assert!(out.status.success(), "openssl {args:?}: {out:?}");
            };
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=test-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ]);
            std::fs::write(
                dir.path().join("leaf.ext"),
                "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n\
                 extendedKeyUsage=serverAuth,clientAuth\n",
            )
            .unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
                "-out",
                "leaf.crt",
            ]);
            std::fs::write(dir.path().join("junk.pem"), "not a pem file\n").unwrap();
            let path = |name: &str| dir.path().join(name).display().to_string();
            Pki {
                cert: path("leaf.crt"),
                key: path("leaf.key"),
                ca: path("ca.crt"),
                junk: path("junk.pem"),
                missing: path("missing.crt"),
                _dir: dir,
            }
        }
    }

    #[test]
    fn server_tls_one_way_and_mtls_load() {
        let pki = Pki::new();
        let (cert, key, ca) = (&pki.cert, &pki.key, &pki.ca);
        let config = load_yaml(&format!(
            "serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  ca:\n  clientAuth: none\n"
        ))
        .unwrap();
        let tls = config.server_tls.unwrap();
        assert_eq!(tls.client_auth, ClientAuth::None);
        assert_eq!(tls.cert, PathBuf::from(cert));
        let config = load_yaml(&format!(
            "serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  ca: {ca}\n  clientAuth: verify\n"
        ))
        .unwrap();
        let tls = config.server_tls.unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Verify);
        assert_eq!(tls.ca, Some(PathBuf::from(ca)));
        // Verify without a CA uses the OS trust store.
        load_yaml(&format!(
            "serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  clientAuth: verify\n"
        ))
        .unwrap();
        // All empty (the seed's defaults): plain HTTP.
        let config = load_yaml("serverTlsConfig:\n  cert:\n  key:\n  clientAuth:\n").unwrap();
        assert_eq!(config.server_tls, None);
    }

    #[test]
    fn server_tls_errors_name_the_key_and_the_file() {
        let pki = Pki::new();
        let (cert, key, junk, missing) = (&pki.cert, &pki.key, &pki.junk, &pki.missing);
        load_err(
            &format!("serverTlsConfig:\n  cert: {missing}\n  key: {key}\n"),
            &["serverTlsConfig.cert", missing, "cannot read"],
        );
        load_err(
            &format!("serverTlsConfig:\n  cert: {junk}\n  key: {key}\n"),
            &["serverTlsConfig.cert", junk, "no PEM certificate"],
        );
        load_err(
            &format!("serverTlsConfig:\n  cert: {cert}\n  key: {junk}\n"),
            &["serverTlsConfig.key", junk, "private key"],
        );
        load_err(
            &format!(
                "serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  ca: {junk}\n  \
                 clientAuth: verify\n"
            ),
            &["serverTlsConfig.ca", junk],
        );
        load_err(
            &format!("serverTlsConfig:\n  cert: {cert}\n"),
            &["serverTlsConfig.key", "required"],
        );
        load_err(
            "serverTlsConfig:\n  clientAuth: verify\n",
            &["serverTlsConfig.clientAuth", "cert"],
        );
        load_err(
            &format!("serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  clientAuth: yes\n"),
            &["serverTlsConfig.clientAuth", "none or verify"],
        );
        load_err(
            "serverTlsConfig:\n  ca: /etc/ca.pem\n",
            &["serverTlsConfig.ca", "only used with TLS"],
        );
    }

    #[test]
    fn registry_tls_settings_load() {
        let pki = Pki::new();
        let (cert, key, ca) = (&pki.cert, &pki.key, &pki.ca);
        let config = load_yaml(&format!(
            "registries:\n- name: a.io\n  tls:\n    ca: {ca}\n- name: b.io\n  tls:\n    \
             insecureSkipVerify: true\n- name: c.io\n  tls:\n    cert: {cert}\n    \
             key: {key}\n    ca: {ca}\n- name: d.io\n  tls:\n    cert: {cert}\n    \
             key: {key}\n    insecureSkipVerify: true\n- name: e.io\n  tls: {{}}\n"
        ))
        .unwrap();
        let tls: Vec<&UpstreamTls> = config.registries.iter().map(|r| &r.tls).collect();
        assert_eq!(tls[0].ca, Some(PathBuf::from(ca)));
        assert!(!tls[0].insecure_skip_verify);
        assert!(tls[1].insecure_skip_verify);
        assert_eq!(tls[2].client_cert, Some(PathBuf::from(cert)));
        assert_eq!(tls[2].client_key, Some(PathBuf::from(key)));
        assert!(tls[3].insecure_skip_verify && tls[3].client_cert.is_some());
        assert_eq!(tls[4], &UpstreamTls::default());
    }

    #[test]
    fn registry_tls_errors_name_the_key_and_the_file() {
        let pki = Pki::new();
        let (cert, key, junk, missing) = (&pki.cert, &pki.key, &pki.junk, &pki.missing);
        load_err(
            &format!("registries:\n- name: a.io\n  tls:\n    ca: {missing}\n"),
            &["registries[0].tls.ca", missing, "cannot read"],
        );
        load_err(
            &format!("registries:\n- name: a.io\n  tls:\n    ca: {junk}\n"),
            &["registries[0].tls.ca", junk, "no PEM certificate"],
        );
        load_err(
            &format!("registries:\n- name: a.io\n  tls:\n    cert: {junk}\n    key: {key}\n"),
            &["registries[0].tls.cert", junk],
        );
        load_err(
            &format!("registries:\n- name: a.io\n  tls:\n    cert: {cert}\n    key: {junk}\n"),
            &["registries[0].tls.key", junk],
        );
        load_err(
            &format!("registries:\n- name: a.io\n  tls:\n    cert: {cert}\n"),
            &["registries[0].tls.key", "required"],
        );
        load_err(
            &format!("registries:\n- name: a.io\n  tls:\n    key: {key}\n"),
            &["registries[0].tls.cert", "required"],
        );
    }

    #[test]
    fn password_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "from-file\n").unwrap();
        // A variable only this test sets.
        std::env::set_var("OCIREGISTRY_TEST_PASSWORD_A", "from-env");
        let config = load_yaml(&format!(
            "registries:\n- name: a.io\n  auth:\n    user: u\n    \
             passwordFromEnv: OCIREGISTRY_TEST_PASSWORD_A\n- name: b.io\n  auth:\n    \
             user: v\n    passwordFile: {}\n",
            secret.display()
        ))
        .unwrap();
        let a = config.registries[0].auth.as_ref().unwrap();
        assert_eq!((a.user.as_str(), a.password.as_str()), ("u", "from-env"));
        let b = config.registries[1].auth.as_ref().unwrap();
        assert_eq!((b.user.as_str(), b.password.as_str()), ("v", "from-file"));
        assert!(!format!("{config:?}").contains("from-env"));
        assert!(!format!("{config:?}").contains("from-file"));
    }

    #[test]
    fn password_sources_are_exclusive_and_must_exist() {
        load_err(
            "registries:\n- name: a.io\n  auth:\n    user: u\n    password: p\n    \
             passwordFromEnv: X\n",
            &["registries[0].auth.password", "exactly one"],
        );
        load_err(
            "registries:\n- name: a.io\n  auth:\n    user: u\n    passwordFile: /x\n    \
             passwordFromEnv: X\n",
            &["exactly one"],
        );
        load_err(
            "registries:\n- name: a.io\n  auth:\n    user: u\n    \
             passwordFromEnv: OCIREGISTRY_TEST_PASSWORD_UNSET\n",
            &[
                "registries[0].auth.passwordFromEnv",
                "OCIREGISTRY_TEST_PASSWORD_UNSET",
            ],
        );
        load_err(
            "registries:\n- name: a.io\n  auth:\n    user: u\n    \
             passwordFile: /nonexistent/ociregistry-secret\n",
            &[
                "registries[0].auth.passwordFile",
                "/nonexistent/ociregistry-secret",
                "cannot read",
            ],
        );
        load_err(
            "registries:\n- name: a.io\n  auth:\n    passwordFile: /x\n",
            &["registries[0].auth.user"],
        );
    }

    #[test]
    fn allowed_upstreams_are_parsed_and_reach_the_engine() {
        let config =
            load_yaml("allowedUpstreams:\n- quay.io\n- \"*.k8s.io\"\n- myreg:5000\n").unwrap();
        let engine = config.engine_config();
        assert!(engine.upstream_allowed("quay.io"));
        assert!(engine.upstream_allowed("registry.k8s.io"));
        assert!(engine.upstream_allowed("myreg:5000"));
        assert!(!engine.upstream_allowed("evil.example"));
        assert!(!engine.upstream_allowed("myreg"));
        let all = load_yaml("port: 8080\n").unwrap().engine_config();
        assert!(all.upstream_allowed("anything.example"));
        load_err(
            "allowedUpstreams: []\n",
            &["allowedUpstreams", "empty list"],
        );
        load_err(
            "allowedUpstreams:\n- https://quay.io\n",
            &["allowedUpstreams", "https://quay.io"],
        );
        load_err("allowedUpstreams: quay.io\n", &["allowedUpstreams"]);
    }

    #[test]
    fn unknown_top_level_key_is_rejected() {
        unknown_key("port: 8080\nfrobnicate: 1\n", "frobnicate");
    }

    #[test]
    fn lowercased_key_is_rejected_with_a_hint() {
        load_err(
            "imagepath: /x\n",
            &["unknown key \"imagepath\"", "did you mean \"imagePath\""],
        );
    }

    #[test]
    fn unknown_nested_keys_are_rejected_with_their_path() {
        unknown_key(
            "pruneConfig:\n  enabled: false\n  every: 1d\n",
            "pruneConfig.every",
        );
        unknown_key(
            "serverTlsConfig:\n  certificate: /x\n",
            "serverTlsConfig.certificate",
        );
        unknown_key(
            "registries:\n- name: a.io\n- name: b.io\n  mirror: c.io\n",
            "registries[1].mirror",
        );
        unknown_key(
            "registries:\n- name: a.io\n  auth:\n    username: u\n",
            "registries[0].auth.username",
        );
        unknown_key(
            "registries:\n- name: a.io\n  tls:\n    skipVerify: true\n",
            "registries[0].tls.skipVerify",
        );
    }

    #[test]
    fn wrong_types_are_rejected_naming_the_key() {
        let err = load_err("port: abc\n", &["key \"port\""]);
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err:?}");
        load_err("port: 70000\n", &["key \"port\""]);
        load_err("airGapped: maybe\n", &["key \"airGapped\""]);
        load_err("pullTimeout: soon\n", &["key \"pullTimeout\""]);
        load_err("registries: quay.io\n", &["key \"registries\"", "list"]);
        load_err("pruneConfig: 3\n", &["key \"pruneConfig\""]);
        load_err(
            "registries:\n- name: a.io\n  auth: [u, p]\n",
            &["key \"registries[0].auth\"", "mapping"],
        );
        load_err(
            "registries:\n- quay.io\n",
            &["key \"registries[0]\"", "mapping"],
        );
        load_err(
            "serverTlsConfig: [a]\n",
            &["key \"serverTlsConfig\"", "mapping"],
        );
    }

    #[test]
    fn invalid_values_are_rejected_naming_the_key() {
        load_err("logLevel: verbose\n", &["key \"logLevel\"", "verbose"]);
        load_err("pullTimeout: 0\n", &["key \"pullTimeout\""]);
        load_err("imagePath: \"\"\n", &["key \"imagePath\""]);
        load_err("host: \"not a host\"\n", &["key \"host\""]);
    }

    #[test]
    fn default_ns_must_be_a_registry_host() {
        for bad in [
            "https://docker.io",
            "docker.io/library",
            "my reg",
            "a.io:0",
            "a.io:x",
        ] {
            load_err(&format!("defaultNs: \"{bad}\"\n"), &["key \"defaultNs\""]);
            let err = load(&cli(&["serve", "--default-ns", bad])).unwrap_err();
            assert!(err.to_string().contains("--default-ns"), "{err}");
        }
        let config = load_yaml("defaultNs: myreg:5000\n").unwrap();
        assert_eq!(config.default_ns.as_deref(), Some("myreg:5000"));
    }

    #[test]
    fn registry_name_is_required_and_must_be_a_host() {
        load_err(
            "registries:\n- scheme: http\n",
            &["key \"registries[0].name\"", "required"],
        );
        load_err(
            "registries:\n- name: \"\"\n",
            &["key \"registries[0].name\"", "required"],
        );
        load_err(
            "registries:\n- name: upstream one\n",
            &["key \"registries[0].name\"", "whitespace"],
        );
        load_err(
            "registries:\n- name: http://quay.io\n",
            &["key \"registries[0].name\"", "scheme"],
        );
    }

    #[test]
    fn duplicate_registry_names_are_rejected() {
        let err = load_err(
            "registries:\n- name: quay.io\n- name: docker.io\n- name: quay.io\n",
            &["registries[2].name", "quay.io", "more than once"],
        );
        assert!(
            matches!(err, ConfigError::DuplicateRegistry { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn registry_scheme_must_be_http_or_https() {
        load_err(
            "registries:\n- name: a.io\n  scheme: ftp\n",
            &["key \"registries[0].scheme\"", "ftp"],
        );
    }

    #[test]
    fn registry_auth_needs_user_and_password() {
        load_err(
            "registries:\n- name: a.io\n  auth:\n    user: u\n",
            &["key \"registries[0].auth.password\""],
        );
        load_err(
            "registries:\n- name: a.io\n  auth:\n    password: p\n",
            &["key \"registries[0].auth.user\""],
        );
        let config = load_yaml("registries:\n- name: a.io\n  auth: {}\n").unwrap();
        assert_eq!(config.registries[0].auth, None);
    }

    #[test]
    fn registries_convert_to_upstream_configs() {
        let config = load_yaml(
            r#"
registries:
- name: quay.io
  description: public, defaults
- name: upstream.test
  description: a local test registry
  scheme: http
  endpoint: http://127.0.0.1:5000/
  auth:
    user: theuser
    password: thepass
  tls: {}
- name: myreg:5000
  scheme: https
  endpoint: https://[::1]:5443
defaultNs: upstream.test
pullTimeout: 2000
airGapped: true
alwaysPullLatest: true
imagePath: /data
"#,
        )
        .unwrap();
        let engine = config.engine_config();
        assert_eq!(engine.image_path, PathBuf::from("/data"));
        assert_eq!(engine.pull_timeout, Duration::from_millis(2000));
        assert!(engine.air_gapped);
        assert!(engine.always_pull_latest);
        assert_eq!(engine.default_ns.as_deref(), Some("upstream.test"));
        assert_eq!(
            engine.upstreams,
            vec![
                UpstreamConfig::anonymous("quay.io"),
                UpstreamConfig {
                    name: "upstream.test".into(),
                    scheme: Scheme::Http,
                    endpoint: Some("http://127.0.0.1:5000".into()),
                    auth: Some(Credentials {
                        user: "theuser".into(),
                        password: "thepass".into(),
                    }),
                    tls: UpstreamTls::default(),
                },
                UpstreamConfig {
                    name: "myreg:5000".into(),
                    scheme: Scheme::Https,
                    endpoint: Some("https://[::1]:5443".into()),
                    auth: None,
                    tls: UpstreamTls::default(),
                },
            ]
        );
        assert_eq!(
            engine.upstream("upstream.test").base_url(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(engine.upstream("quay.io").base_url(), "https://quay.io");
    }

    #[test]
    fn engine_config_of_defaults_matches_engine_defaults() {
        let ours = Config::default().engine_config();
        let theirs = EngineConfig::new(PathBuf::from(DEFAULT_IMAGE_PATH));
        assert_eq!(ours.pull_timeout, theirs.pull_timeout);
        assert_eq!(ours.upstream_idle_timeout, theirs.upstream_idle_timeout);
        assert_eq!(ours.air_gapped, theirs.air_gapped);
        assert_eq!(ours.always_pull_latest, theirs.always_pull_latest);
        assert_eq!(ours.default_ns, theirs.default_ns);
        assert_eq!(ours.upstreams, theirs.upstreams);
        assert_eq!(
            ours.max_concurrent_per_upstream,
            theirs.max_concurrent_per_upstream
        );
    }

    #[test]
    fn max_connections_comes_from_the_file_or_the_command_line_and_is_bounded() {
        assert_eq!(Config::default().max_connections, DEFAULT_MAX_CONNECTIONS);
        let config = load_yaml("maxConnections: 500\n").unwrap();
        assert_eq!(config.max_connections, 500);
        load_err(
            "maxConnections: 0\n",
            &["key \"maxConnections\"", "1 to 1000000"],
        );
        load_err("maxConnections: 1000001\n", &["key \"maxConnections\""]);
        load_err("maxConnections: many\n", &["maxConnections"]);
        let over = load(&cli(&["serve", "--max-connections", "64"])).unwrap();
        assert_eq!(over.max_connections, 64);
        for bad in ["0", "1000001"] {
            let err = load(&cli(&["serve", "--max-connections", bad])).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("max-connections") && msg.contains("1 to 1000000"),
                "{msg}"
            );
        }
    }

    #[test]
    fn upstream_idle_timeout_is_read_in_milliseconds_and_must_be_positive() {
        let config = load_yaml("upstreamIdleTimeout: 1500\n").unwrap();
        assert_eq!(config.upstream_idle_timeout, Duration::from_millis(1500));
        assert_eq!(
            config.engine_config().upstream_idle_timeout,
            Duration::from_millis(1500)
        );
        load_err("upstreamIdleTimeout: 0\n", &["key \"upstreamIdleTimeout\""]);
    }

    #[test]
    fn invalid_endpoint_is_rejected() {
        for bad in [
            "127.0.0.1:5000",
            "ftp://a.io",
            "http://a.io/v2",
            "http://a.io?x=1",
            "http://a.io#frag",
            "http://user:pw@a.io",
            "http://",
            "http://a.io:0",
            "http://a.io:99999",
            "http://[::1",
            "http://a b",
        ] {
            load_err(
                &format!("registries:\n- name: a.io\n  endpoint: \"{bad}\"\n"),
                &["key \"registries[0].endpoint\""],
            );
        }
    }

    #[test]
    fn endpoint_accepts_host_port_and_trailing_slash() {
        assert_eq!(parse_endpoint("http://a.io").unwrap(), "http://a.io");
        assert_eq!(
            parse_endpoint("https://a.io:443/").unwrap(),
            "https://a.io:443"
        );
        assert_eq!(
            parse_endpoint("http://127.0.0.1:5000").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(parse_endpoint("http://[::1]").unwrap(), "http://[::1]");
    }

    #[test]
    fn registry_host_check() {
        for good in [
            "docker.io",
            "localhost",
            "myreg:5000",
            "a-b.c-d.io",
            "10.0.0.1:5000",
        ] {
            check_registry_host(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "a/b",
            "http://a.io",
            "a b",
            "a..b",
            "-a.io",
            "a.io:",
            ":5000",
            "a_b.io",
        ] {
            assert!(check_registry_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn invalid_command_line_values_name_the_option() {
        let err = load(&cli(&["serve", "--host", "a b"])).unwrap_err();
        assert!(
            err.to_string().starts_with("command line option --host:"),
            "{err}"
        );
        let err = load(&cli(&[
            "serve",
            "--pull-timeout",
            "10",
            "--default-ns",
            "a/b",
        ]))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("command line option --default-ns:"),
            "{err}"
        );
    }

    #[test]
    fn field_names_reflect_serde_renames() {
        let top = field_names::<FileConfig>();
        for key in [
            "imagePath",
            "pullTimeout",
            "serverTlsConfig",
            "defaultNs",
            "host",
        ] {
            assert!(top.contains(&key), "{key} missing from {top:?}");
        }
        assert!(field_names::<ops::FilePruneConfig>().contains(&"type"));
        assert!(field_names::<ops::FilePruneConfig>().contains(&"dryrun"));
        assert!(field_names::<FileRegistryTls>().contains(&"insecureSkipVerify"));
    }

    #[test]
    fn credentials_are_not_printed_in_debug_output() {
        let config =
            load_yaml("registries:\n- name: a.io\n  auth:\n    user: u\n    password: s3cret\n")
                .unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn tag_freshness_rules_reach_the_engine_anchored_and_in_order() {
        let c = load_yaml(
            "tagFreshness:\n- match: \"quay.io/.*\"\n  ttl: 1h\n  latestTtl: 5m\n\
             - match: \".*\"\n  ttl: never\n",
        )
        .unwrap();
        let e = c.engine_config();
        let at = |s: &str| e.tag_ttl(&actors::oci::ImageRef::parse(s).unwrap());
        assert_eq!(at("quay.io/a/b:1"), Ttl::After(Duration::from_secs(3600)));
        assert_eq!(
            at("quay.io/a/b:latest"),
            Ttl::After(Duration::from_secs(300))
        );
        assert_eq!(at("notquay.io/a/b:1"), Ttl::Never);
        assert_eq!(at("docker.io/library/x:1"), Ttl::Never);
        let digest = format!("quay.io/a/b@sha256:{}", "a".repeat(64));
        assert_eq!(at(&digest), Ttl::Never, "digests are immutable");
    }

    #[test]
    fn bad_tag_freshness_rules_are_rejected_naming_the_key() {
        load_err(
            "tagFreshness:\n- match: \"(\"\n  ttl: 1h\n",
            &["tagFreshness[0].match"],
        );
        load_err(
            "tagFreshness:\n- match: x\n  ttl: soon\n",
            &["tagFreshness[0].ttl"],
        );
        load_err("tagFreshness:\n- match: x\n", &["tagFreshness[0].ttl"]);
        load_err(
            "tagFreshness:\n- match: x\n  ttl: 1h\n  tll: 2h\n",
            &["tagFreshness[0].tll"],
        );
    }
}
