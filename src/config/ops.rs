//! Settings of the operations features: preloading (`preloadImages`, `imageFile`, `os`,
//! `arch`), `helloWorld`, the `health` listener, the background prune (`pruneConfig`), the size
//! bound (`maxCacheSize`, `pin`, `evictionGrace`) and who may use the administrative API
//! (`adminApi`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use actors::duration;
use actors::preload::{PlatformSpec, Platforms};
use actors::prune::{parse_patterns, parse_size, CacheBound, PruneRule};
use actors::pruner::PruneSchedule;
use serde::Deserialize;

use super::error::{ConfigError, FileCtx};
use crate::cli::{Cli, Command, PlatformArgs};

/// The operations settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsConfig {
    /// Images to load before serving (`preloadImages`, `serve --preload-images`).
    pub preload_images: Option<PathBuf>,
    /// Images for `load` (`imageFile`, `load --image-file`).
    pub image_file: Option<PathBuf>,
    /// Platforms pulled from multi-platform images when loading (`os`, `arch`, `--platform`,
    /// `--all-platforms`); the host's by default.
    pub platforms: Platforms,
    /// Serve the embedded hello-world image only (`helloWorld`, `--hello-world`).
    pub hello_world: bool,
    /// Port of the health listener (`health`, `--health`).
    pub health: Option<u16>,
    /// The background prune (`pruneConfig`), when enabled.
    pub prune: Option<PruneSettings>,
    /// Who may use `/cmd/...` (`adminApi`).
    pub admin: AdminConfig,
    /// The size bound (`maxCacheSize`), when set.
    pub cache_bound: Option<BoundSettings>,
    /// Images loaded at once by `load` (`load --jobs`).
    pub load_jobs: usize,
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            preload_images: None,
            image_file: None,
            platforms: Platforms::Only(vec![PlatformSpec::host()]),
            hello_world: false,
            health: None,
            prune: None,
            admin: AdminConfig::default(),
            cache_bound: None,
            load_jobs: 4,
        }
    }
}

/// `pruneConfig.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneKind {
    Accessed,
    Created,
    Pattern,
}

/// `pruneConfig` when `enabled: true`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneSettings {
    pub kind: PruneKind,
    /// `duration`: the age for `accessed` and `created`.
    pub duration: Duration,
    /// `expr`: comma-separated regexes for `pattern` (checked to compile).
    pub expr: Option<String>,
    /// `frequency`: how often the prune runs.
    pub frequency: Duration,
    /// `count`: at most this many manifests a run; `None` (`0` or `-1`) is no limit.
    pub count: Option<usize>,
    /// `dryRun` (or `dryrun`): only log.
    pub dry_run: bool,
}

impl PruneSettings {
    /// The engine's schedule for these settings.
    pub fn schedule(&self) -> PruneSchedule {
        let rule = match self.kind {
            PruneKind::Accessed => PruneRule::Accessed(self.duration),
            PruneKind::Created => PruneRule::Created(self.duration),
            PruneKind::Pattern => PruneRule::Pattern(
                parse_patterns(self.expr.as_deref().unwrap_or_default())
                    .expect("checked when the config was loaded"),
            ),
        };
        PruneSchedule {
            rule,
            frequency: self.frequency,
            count: self.count,
            dry_run: self.dry_run,
        }
    }
}

/// `maxCacheSize` with `pin` and `evictionGrace`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundSettings {
    pub max_bytes: u64,
    /// Regexes over image URLs and tags (checked to compile).
    pub pins: Vec<String>,
    /// Images pulled within this long are never evicted.
    pub grace: Duration,
}

/// How long an image counts as being pulled after its last pull, unless `evictionGrace` says.
const DEFAULT_EVICTION_GRACE: Duration = Duration::from_secs(60);

impl BoundSettings {
    /// The engine's bound for these settings.
    pub fn bound(&self) -> CacheBound {
        CacheBound {
            max_bytes: self.max_bytes,
            pins: self
                .pins
                .iter()
                .map(|p| regex::Regex::new(p).expect("checked when the config was loaded"))
                .collect(),
            grace: self.grace,
        }
    }
}

/// Who may use the administrative API: clients connecting from `allow`, or presenting `token`
/// as `Authorization: Bearer <token>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub allow: Vec<IpAddr>,
    pub token: Option<Secret>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            allow: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            token: None,
        }
    }
}

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `pruneConfig` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct FilePruneConfig {
    enabled: Option<bool>,
    duration: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    expr: Option<String>,
    frequency: Option<String>,
    count: Option<i64>,
    dry_run: Option<bool>,
    /// The spelling the Go server's documentation also uses.
    #[serde(rename = "dryrun")]
    dry_run_lower: Option<bool>,
}

/// `adminApi` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct FileAdmin {
    allow: Option<Vec<String>>,
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

/// The file's operations keys, taken out of the file struct.
pub(super) struct FileOps {
    pub preload_images: Option<String>,
    pub image_file: Option<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub hello_world: Option<bool>,
    pub health: Option<String>,
    pub prune_config: Option<FilePruneConfig>,
    pub admin_api: Option<FileAdmin>,
    pub max_cache_size: Option<String>,
    pub pin: Option<Vec<String>>,
    pub eviction_grace: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl FileOps {
    pub(super) fn resolve(self, file: &FileCtx<'_>) -> Result<OpsConfig, ConfigError> {
        let mut ops = OpsConfig {
            preload_images: non_empty(self.preload_images).map(PathBuf::from),
            image_file: non_empty(self.image_file).map(PathBuf::from),
            hello_world: self.hello_world.unwrap_or(false),
            ..OpsConfig::default()
        };
        let host = PlatformSpec::host();
        let os = non_empty(self.os).unwrap_or(host.os);
        let arch = non_empty(self.arch).unwrap_or(host.arch);
        for (key, value) in [("os", &os), ("arch", &arch)] {
            if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(file.invalid(
                    key,
                    format!("\"{value}\" is not a platform name, e.g. linux, amd64 or arm64"),
                ));
            }
        }
        let spec: PlatformSpec = format!("{os}/{arch}")
            .parse()
            .map_err(|m: String| file.invalid("os", m))?;
        ops.platforms = Platforms::Only(vec![spec]);
        if let Some(h) = non_empty(self.health) {
            ops.health = Some(parse_port(&h).map_err(|m| file.invalid("health", m))?);
        }
        if let Some(p) = self.prune_config {
            ops.prune = p.resolve(file)?;
        }
        if let Some(a) = self.admin_api {
            ops.admin = a.resolve(file)?;
        }
        // `pin` and `evictionGrace` are checked even without a bound, like `pruneConfig`.
        let mut pins = Vec::new();
        for p in self.pin.unwrap_or_default() {
            let p = p.trim().to_string();
            regex::Regex::new(&p).map_err(|e| {
                file.invalid("pin", format!("pattern \"{p}\" is not a valid regex: {e}"))
            })?;
            pins.push(p);
        }
        let grace = match non_empty(self.eviction_grace) {
            None => DEFAULT_EVICTION_GRACE,
            Some(g) => duration::parse(&g).map_err(|m| file.invalid("evictionGrace", m))?,
        };
        if let Some(size) = non_empty(self.max_cache_size) {
            let max_bytes = match parse_size(&size) {
                Ok(0) => return Err(file.invalid("maxCacheSize", "must be more than 0")),
                Ok(n) => n,
                Err(m) => return Err(file.invalid("maxCacheSize", m)),
            };
            ops.cache_bound = Some(BoundSettings {
                max_bytes,
                pins,
                grace,
            });
        }
        Ok(ops)
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("\"{s}\" is not a port number from 1 to 65535")),
    }
}

impl FilePruneConfig {
    fn resolve(self, file: &FileCtx<'_>) -> Result<Option<PruneSettings>, ConfigError> {
        let age = |key: &str, v: Option<String>, default: &str| {
            let v = non_empty(v).unwrap_or_else(|| default.to_string());
            match duration::parse(&v) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(file.invalid(format!("pruneConfig.{key}"), "must be more than 0")),
                Err(m) => Err(file.invalid(format!("pruneConfig.{key}"), m)),
            }
        };
        // Checked even while disabled, so a mistake shows before someone enables it.
        let duration = age("duration", self.duration, "30d")?;
        let frequency = age("frequency", self.frequency, "1d")?;
        // Any case, as the Go server reads it.
        let kind = match non_empty(self.kind)
            .map(|k| k.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("accessed") => PruneKind::Accessed,
            Some("created") => PruneKind::Created,
            Some("pattern") => PruneKind::Pattern,
            Some(other) => {
                return Err(file.invalid(
                    "pruneConfig.type",
                    format!("\"{other}\" is not a prune type; use accessed, created or pattern"),
                ))
            }
        };
        let expr = non_empty(self.expr);
        match (&expr, kind) {
            (Some(e), _) => {
                parse_patterns(e).map_err(|m| file.invalid("pruneConfig.expr", m))?;
            }
            (None, PruneKind::Pattern) => {
                return Err(file.invalid(
                    "pruneConfig.expr",
                    "is required with type: pattern (comma-separated regexes, e.g. calico,cilium)",
                ))
            }
            (None, _) => {}
        }
        // 0 is no limit too: the Go server's default when the key is absent.
        let count = match self.count {
            None | Some(-1) | Some(0) => None,
            Some(n) if n > 0 => Some(n as usize),
            Some(n) => {
                return Err(file.invalid(
                    "pruneConfig.count",
                    format!("{n}: use a positive number, or 0 or -1 for no limit"),
                ))
            }
        };
        let dry_run = match (self.dry_run, self.dry_run_lower) {
            (Some(a), Some(b)) if a != b => {
                return Err(file.invalid(
                    "pruneConfig.dryRun",
                    "dryRun and dryrun are both given and disagree",
                ))
            }
            (a, b) => a.or(b).unwrap_or(false),
        };
        if self.enabled != Some(true) {
            return Ok(None);
        }
        Ok(Some(PruneSettings {
            kind,
            duration,
            expr,
            frequency,
            count,
            dry_run,
        }))
    }
}

impl FileAdmin {
    fn resolve(self, file: &FileCtx<'_>) -> Result<AdminConfig, ConfigError> {
        let mut admin = AdminConfig::default();
        if let Some(list) = self.allow {
            admin.allow = list
                .iter()
                .map(|a| {
                    a.trim().parse::<IpAddr>().map_err(|_| {
                        file.invalid(
                            "adminApi.allow",
                            format!("\"{a}\" is not an IP address, e.g. 127.0.0.1 or ::1"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        let given = [
            self.token.is_some(),
            self.token_env.is_some(),
            self.token_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(file.invalid(
                "adminApi",
                "give at most one of token, tokenEnv and tokenFile",
            ));
        }
        let token = if let Some(t) = self.token {
            Some(t)
        } else if let Some(var) = non_empty(self.token_env) {
            Some(std::env::var(&var).map_err(|_| {
                file.invalid(
                    "adminApi.tokenEnv",
                    format!("the environment variable {var} is not set"),
                )
            })?)
        } else if let Some(path) = self.token_file {
            Some(std::fs::read_to_string(&path).map_err(|e| {
                file.invalid(
                    "adminApi.tokenFile",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?)
        } else {
            None
        };
        admin.token = match token.map(|t| t.trim().to_string()) {
            None => None,
            Some(t) if t.len() >= 16 => Some(Secret(t)),
            Some(_) => {
                return Err(file.invalid(
                    "adminApi",
                    "the admin token must be at least 16 characters long",
                ))
            }
        };
        Ok(admin)
    }
}

impl OpsConfig {
    /// Applies the command line options of `serve`, `load` and `export`.
    pub(super) fn apply_cli(&mut self, cli: &Cli) -> Result<(), ConfigError> {
        match &cli.command {
            Command::Serve(s) => {
                if let Some(p) = &s.preload_images {
                    self.preload_images = (!p.as_os_str().is_empty()).then(|| p.clone());
                }
                if let Some(h) = s.health {
                    self.health = Some(h);
                }
                if let Some(h) = s.hello_world {
                    self.hello_world = h;
                }
                self.apply_platforms(&s.platforms)
            }
            Command::Load(l) => {
                if let Some(p) = &l.image_file {
                    self.image_file = Some(p.clone());
                }
                if let Some(j) = l.jobs {
                    self.load_jobs = j as usize;
                }
                self.apply_platforms(&l.platforms)
            }
            Command::Export(x) => {
                if let Some(p) = &x.image_file {
                    self.image_file = Some(p.clone());
                }
                if let Some(j) = x.jobs {
                    self.load_jobs = j as usize;
                }
                self.apply_platforms(&x.platforms)
            }
            _ => Ok(()),
        }
    }

    fn apply_platforms(&mut self, p: &PlatformArgs) -> Result<(), ConfigError> {
        let bad = |option: &'static str| {
            move |message: String| ConfigError::InvalidOption { option, message }
        };
        if p.all_platforms {
            self.platforms = Platforms::All;
        } else if !p.platform.is_empty() {
            let specs = p
                .platform
                .iter()
                .map(|s| s.parse::<PlatformSpec>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad("platform"))?;
            self.platforms = Platforms::Only(specs);
        } else if p.os.is_some() || p.arch.is_some() {
            let mut base = match &self.platforms {
                Platforms::Only(v) if v.len() == 1 => v[0].clone(),
                _ => PlatformSpec::host(),
            };
            if let Some(os) = &p.os {
                base.os = os.clone();
            }
            if let Some(arch) = &p.arch {
                base.arch = arch.clone();
            }
            let option = if p.os.is_some() { "os" } else { "arch" };
            let spec = base.to_string().parse().map_err(bad(option))?;
            self.platforms = Platforms::Only(vec![spec]);
        }
        Ok(())
    }
}
