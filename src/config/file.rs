//! The config file as written: serde structs with the Go server's key names (camelCase), and
//! their resolution into [`Config`], each value checked and each error naming its key.
//!
//! The file is read with the `config` crate (YAML). In 0.15 that crate keeps key case for file
//! sources, but when it reports an unknown field during deserialization it gives only the path
//! of the enclosing table, not the offending key. So the file is first walked as a plain
//! `config::Value` tree and checked against the field lists of the serde structs below (taken
//! from the structs themselves, see [`field_names`]); only then is it deserialized, with
//! `deny_unknown_fields` kept as a second line of defence.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use actors::allowlist::Allowlist;
use actors::config::{Credentials, FreshnessRule, Scheme, UpstreamConfig, UpstreamTls};
use config::{Map, Source, Value, ValueKind};
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::error::{ConfigError, FileCtx};
use super::validate::{
    check_listen_host, check_registry_host, max_blob_size, max_connections, min_free_space,
    parse_endpoint, parse_ttl, pull_timeout,
};
use super::{ops, pull_auth, storage, Config};
use crate::cli::{LogFormat, LogLevel};
use crate::server::tls::{ClientAuth, ServerTls};

/// Parses YAML config text over the defaults; `path` is used in error messages.
pub(super) fn read(path: &Path, text: &str) -> Result<Config, ConfigError> {
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

// ---------------------------------------------------------------------------------------------
// The file as written. Every field is optional so "absent" and "null" keep the default.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct FileConfig {
    image_path: Option<PathBuf>,
    log_level: Option<String>,
    log_file: Option<PathBuf>,
    log_format: Option<String>,
    preload_images: Option<String>,
    image_file: Option<String>,
    port: Option<u16>,
    host: Option<String>,
    os: Option<String>,
    arch: Option<String>,
    pull_timeout: Option<u64>,
    upstream_idle_timeout: Option<u64>,
    max_connections: Option<u64>,
    max_blob_size: Option<String>,
    min_free_space: Option<String>,
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
    pull_auth: Option<pull_auth::FilePullAuth>,
    storage: Option<storage::FileStorage>,
    advertise: Option<String>,
    fleet_secret: Option<String>,
    fleet_secret_file: Option<PathBuf>,
    /// The Go server's own record of `--config-file`; the file cannot name itself, so the key
    /// has no effect (a warning says so at start).
    config_file: Option<IgnoredAny>,
    /// The Go server's settings of `list`: `header` and `expr` (its `--header`, `--pattern`).
    list_config: Option<FileListConfig>,
}

/// `listConfig` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileListConfig {
    header: Option<bool>,
    expr: Option<String>,
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
    /// Pulls of this upstream need `pullAuth` credentials; the others stay open.
    private: Option<bool>,
    /// The Go server's puller options, its internal record of the settings above; they have
    /// no effect here (a warning says so at start) since the keys above already say it all.
    opts: Option<IgnoredAny>,
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
pub(super) struct FileRegistryTls {
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
                        "\"{name}\" is not a log level; use one of: {} (in any case)",
                        LogLevel::NAMES.join(", ")
                    ),
                )
            })?;
        }
        config.log_file = self.log_file.filter(|p| !p.as_os_str().is_empty());
        if let Some(name) = self.log_format {
            config.log_format = LogFormat::from_name(&name).ok_or_else(|| {
                file.invalid(
                    "logFormat",
                    format!(
                        "\"{name}\" is not a log format; use one of: {}",
                        LogFormat::NAMES.join(", ")
                    ),
                )
            })?;
        }
        if self.config_file.is_some() {
            config.notices.push(
                "config file: key \"configFile\" has no effect here (the file is the one named \
                 by --config-file)"
                    .into(),
            );
        }
        if let Some(list) = self.list_config {
            config.list.header = list.header.unwrap_or(false);
            if let Some(expr) = list.expr.filter(|e| !e.trim().is_empty()) {
                actors::prune::parse_patterns(&expr)
                    .map_err(|m| file.invalid("listConfig.expr", m))?;
                config.list.pattern = Some(expr);
            }
        }
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
        if let Some(size) = self.max_blob_size {
            config.max_blob_size =
                max_blob_size(&size).map_err(|m| file.invalid("maxBlobSize", m))?;
        }
        if let Some(floor) = self.min_free_space {
            config.min_free_space =
                min_free_space(&floor).map_err(|m| file.invalid("minFreeSpace", m))?;
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
        let mut private = Vec::new();
        for (i, entry) in self.registries.into_iter().flatten().enumerate() {
            let key = format!("registries[{i}]");
            let is_private = entry.private.unwrap_or(false);
            if entry.opts.is_some() {
                config.notices.push(format!(
                    "config file: key \"{key}.opts\" has no effect here (the registry's own \
                     keys scheme, auth and tls configure its client)"
                ));
            }
            let upstream = entry.resolve(file, &key)?;
            if is_private {
                private.push(pull_auth::PrivateRegistry {
                    key: key.clone(),
                    name: upstream.name.clone(),
                });
            }
            if !seen.insert(upstream.name.clone()) {
                return Err(ConfigError::DuplicateRegistry {
                    path: file.path.to_path_buf(),
                    key: format!("{key}.name"),
                    name: upstream.name,
                });
            }
            config.registries.push(upstream);
        }
        config.pull_auth = pull_auth::resolve(file, self.pull_auth, private)?;
        if let Some(url) = self.advertise.filter(|a| !a.is_empty()) {
            config.advertise = Some(storage::check_advertise(file, &url)?);
        }
        config.storage = storage::resolve(file, self.storage, config.advertise.as_deref())?;
        config.fleet_secret = storage::fleet_secret(
            file,
            self.fleet_secret.filter(|s| !s.is_empty()),
            self.fleet_secret_file,
            config.storage.is_some(),
        )?;
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
            None => ClientAuth::None,
            Some(v) if v.is_empty() || v.eq_ignore_ascii_case("none") => ClientAuth::None,
            Some(v) if v.eq_ignore_ascii_case("verify") => ClientAuth::Verify,
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

// ---------------------------------------------------------------------------------------------
// Unknown-key detection on the raw tree.

/// The field names a serde-derived struct accepts (after renaming), read from the struct itself
/// so the checks below cannot drift from the structs.
pub(super) fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
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
    if let Some(t) = mapping(file, "listConfig", root.get("listConfig"))? {
        check_table(file, "listConfig", t, field_names::<FileListConfig>())?;
    }
    if let Some(t) = mapping(file, "storage", root.get("storage"))? {
        check_table(file, "storage", t, field_names::<storage::FileStorage>())?;
        if let Some(s3) = mapping(file, "storage.s3", t.get("s3"))? {
            check_table(file, "storage.s3", s3, field_names::<storage::FileS3>())?;
        }
    }
    if let Some(t) = mapping(file, "pullAuth", root.get("pullAuth"))? {
        check_table(
            file,
            "pullAuth",
            t,
            field_names::<pull_auth::FilePullAuth>(),
        )?;
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
