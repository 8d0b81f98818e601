//! Why the configuration could not be loaded, and the file context every file check reports
//! through, so each message names the file and the key that needs fixing.

use std::path::{Path, PathBuf};

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

/// The file being loaded, for error messages.
pub(super) struct FileCtx<'a> {
    pub(super) path: &'a Path,
}

impl FileCtx<'_> {
    pub(super) fn invalid(
        &self,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.path.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Turns a `config` crate deserialization error into one naming the key and the file.
    pub(super) fn deserialize_error(&self, e: config::ConfigError) -> ConfigError {
        match e {
            config::ConfigError::Type {
                unexpected,
                expected,
                key,
                ..
            } => self.invalid(
                key_path(&key.unwrap_or_default()),
                format!("expected {expected}, found {unexpected}"),
            ),
            config::ConfigError::At { error, key, .. } => {
                self.invalid(key_path(&key.unwrap_or_default()), error.to_string())
            }
            config::ConfigError::NotFound(key) => self.invalid(key, "is required"),
            other => ConfigError::Syntax {
                path: self.path.to_path_buf(),
                message: other.to_string(),
            },
        }
    }
}

/// The `config` crate writes a key inside a list item without its dot
/// (`registries[0]private`); the file's readers write `registries[0].private`.
fn key_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut after_index = false;
    for c in key.chars() {
        if after_index && c != '.' && c != '[' {
            out.push('.');
        }
        after_index = c == ']';
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_inside_list_items_get_their_dot() {
        assert_eq!(
            super::key_path("registries[0]private"),
            "registries[0].private"
        );
        assert_eq!(
            super::key_path("registries[0].tls.ca"),
            "registries[0].tls.ca"
        );
        assert_eq!(super::key_path("a[1][2]b"), "a[1][2].b");
        assert_eq!(super::key_path("port"), "port");
    }
}
