//! `storage` and `advertise`: the cache in an S3-compatible bucket shared by several replicas,
//! and how the others name this one. Without `storage`, the cache directory as before.

use std::path::PathBuf;

use actors::config::{FleetSecret, S3Config};
use serde::Deserialize;

use super::error::{ConfigError, FileCtx};

/// `storage` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct FileStorage {
    pub s3: Option<FileS3>,
}

/// `storage.s3` as written. Absent credentials come from the AWS environment variables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct FileS3 {
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    prefix: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    secret_access_key_file: Option<PathBuf>,
}

/// The bucket settings, or `None` without `storage.s3`. `advertise` names this replica in the
/// leases it holds.
pub(super) fn resolve(
    file: &FileCtx<'_>,
    storage: Option<FileStorage>,
    advertise: Option<&str>,
) -> Result<Option<S3Config>, ConfigError> {
    let Some(s3) = storage.and_then(|s| s.s3) else {
        return Ok(None);
    };
    let bucket = s3.bucket.filter(|b| !b.is_empty()).ok_or_else(|| {
        file.invalid(
            "storage.s3.bucket",
            "is required: the bucket the replicas share",
        )
    })?;
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        || bucket.len() < 3
        || bucket.len() > 63
    {
        return Err(file.invalid(
            "storage.s3.bucket",
            format!("\"{bucket}\" is not a bucket name (3 to 63 of a-z, 0-9, '-' and '.')"),
        ));
    }
    let endpoint = match s3.endpoint.filter(|e| !e.is_empty()) {
        Some(e) => Some(check_url(&e).map_err(|m| file.invalid("storage.s3.endpoint", m))?),
        None => None,
    };
    let secret_access_key = match (s3.secret_access_key, s3.secret_access_key_file) {
        (Some(_), Some(_)) => {
            return Err(file.invalid(
                "storage.s3.secretAccessKeyFile",
                "give the secret key once: secretAccessKey or secretAccessKeyFile",
            ))
        }
        (Some(s), None) => Some(s),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                file.invalid(
                    "storage.s3.secretAccessKeyFile",
                    format!("{}: cannot read it: {e}", path.display()),
                )
            })?;
            let secret = text.trim().to_string();
            if secret.is_empty() {
                return Err(file.invalid(
                    "storage.s3.secretAccessKeyFile",
                    format!("{} is empty", path.display()),
                ));
            }
            Some(secret)
        }
        (None, None) => None,
    };
    // Keys are `<prefix>blobs/...`: a prefix is a "folder", with no leading slash.
    let prefix = match s3.prefix.as_deref().map(|p| p.trim_matches('/')) {
        None | Some("") => String::new(),
        Some(p) => format!("{p}/"),
    };
    Ok(Some(S3Config {
        endpoint,
        bucket,
        region: s3.region.filter(|r| !r.is_empty()),
        prefix,
        access_key_id: s3.access_key_id.filter(|k| !k.is_empty()),
        secret_access_key,
        holder: holder_name(advertise),
    }))
}

/// The shortest fleet secret accepted: it guards every cached blob.
const MIN_SECRET: usize = 16;

/// `fleetSecret` or `fleetSecretFile`: what replicas show each other on the internal route
/// that streams a download to the others. Only with `storage.s3`; the others reach a replica
/// by the URL it advertises (`advertise`, or `serve --advertise`, which `serve` checks).
pub(super) fn fleet_secret(
    file: &FileCtx<'_>,
    inline: Option<String>,
    from_file: Option<PathBuf>,
    storage: bool,
) -> Result<Option<FleetSecret>, ConfigError> {
    let (key, secret) = match (inline, from_file) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(file.invalid(
                "fleetSecretFile",
                "give the fleet secret once: fleetSecret or fleetSecretFile",
            ))
        }
        (Some(s), None) => ("fleetSecret", s),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                file.invalid(
                    "fleetSecretFile",
                    format!("{}: cannot read it: {e}", path.display()),
                )
            })?;
            ("fleetSecretFile", text.trim().to_string())
        }
    };
    if secret.chars().count() < MIN_SECRET {
        return Err(file.invalid(key, format!("must be at least {MIN_SECRET} characters")));
    }
    if !storage {
        return Err(file.invalid(
            key,
            "needs storage.s3: it guards the route other replicas of the bucket reach this \
             one on",
        ));
    }
    Ok(Some(FleetSecret::new(secret)))
}

/// `advertise`: an `http://` or `https://` URL without a path.
pub(super) fn check_advertise(file: &FileCtx<'_>, url: &str) -> Result<String, ConfigError> {
    check_url(url).map_err(|m| file.invalid("advertise", m))
}

pub(super) fn check_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("\"{url}\" must start with http:// or https://"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
        return Err(format!(
            "\"{url}\" must be a scheme and a host[:port], nothing more"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// How this replica names itself to the others: its advertised URL, else its host name and
/// process id.
fn holder_name(advertise: Option<&str>) -> String {
    match advertise {
        Some(a) => a.to_string(),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown-host".into());
            format!("{host} (pid {})", std::process::id())
        }
    }
}
