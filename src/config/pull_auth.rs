//! `pullAuth` and the registries' `private` flags: who must log in to pull. The htpasswd file
//! is read and checked here, at start, so a missing file or a weak hash stops the server with
//! the key, the file and the line, instead of locking every client out later.

use std::path::PathBuf;

use serde::Deserialize;

use super::error::{ConfigError, FileCtx};
use crate::server::pull_auth::{
    check_realm, registry_key, Htpasswd, PullAuthSettings, DEFAULT_REALM,
};

/// `pullAuth` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct FilePullAuth {
    htpasswd: Option<PathBuf>,
    realm: Option<String>,
}

/// A `registries` entry marked `private: true`: its key (for messages) and name.
pub(super) struct PrivateRegistry {
    pub key: String,
    pub name: String,
}

/// The settings, or `None` when `pullAuth` is absent. `private` without `pullAuth` is refused:
/// it would protect nothing, and an operator who wrote it expects it to.
pub(super) fn resolve(
    file: &FileCtx<'_>,
    section: Option<FilePullAuth>,
    private: Vec<PrivateRegistry>,
) -> Result<Option<PullAuthSettings>, ConfigError> {
    let Some(section) = section else {
        return match private.first() {
            None => Ok(None),
            Some(p) => Err(file.invalid(
                format!("{}.private", p.key),
                "needs pullAuth (an htpasswd file of the users who may pull); without it no \
                 client is asked for credentials",
            )),
        };
    };
    let Some(path) = section.htpasswd.filter(|p| !p.as_os_str().is_empty()) else {
        return Err(file.invalid(
            "pullAuth.htpasswd",
            "is required: a file of bcrypt entries, made with `htpasswd -B -c FILE USER`",
        ));
    };
    let users = load_htpasswd(&path).map_err(|m| file.invalid("pullAuth.htpasswd", m))?;
    let realm = section
        .realm
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|| DEFAULT_REALM.to_string());
    check_realm(&realm).map_err(|m| file.invalid("pullAuth.realm", m))?;
    let mut names = Vec::new();
    for p in private {
        // The name was checked as a registry host already; routing must read it the same way.
        let name = registry_key(&p.name)
            .ok_or_else(|| file.invalid(format!("{}.name", p.key), "is not a registry host"))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(Some(PullAuthSettings {
        htpasswd: path,
        users,
        realm,
        private: names,
    }))
}

/// Reads and checks an htpasswd file; the message names the file and the line.
fn load_htpasswd(path: &std::path::Path) -> Result<Htpasswd, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    Htpasswd::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}
