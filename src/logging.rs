//! Where log messages go and from which level: `logLevel` / `--log-level`, refined per module by
//! `RUST_LOG`, to standard error or `logFile` / `--log-file`.
//!
//! One message of the HTTP library is demoted to trace: a connection whose first bytes are not
//! an HTTP request (most often a TLS handshake on the plain-HTTP port: Docker tries TLS first
//! against every registry) is the client's mistake, not the server's, and would otherwise log an
//! ERROR line on every `docker pull`. The plain-HTTP listener logs one debug line for it that
//! names the client (`server/plain.rs`); the library's own line cannot.

use log::{Level, Log, Metadata, Record};

use crate::config::Config;

/// Where the HTTP library reports connections it could not parse.
const PARSE_ERROR_TARGET: &str = "actix_http::h1::dispatcher";
const PARSE_ERROR_PREFIX: &str = "stream error: request parse error";

/// Sets up the process-wide logger once the configuration is known, so the configured level
/// and file apply from the first message a subcommand logs.
pub fn init(config: &Config) -> Result<(), String> {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(config.log_level.to_filter());
    // RUST_LOG, when set, refines the level per module.
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    if let Some(path) = &config.log_file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("log file {}: {e}", path.display()))?;
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    }
    let logger = builder.build();
    let max = logger.filter();
    log::set_boxed_logger(Box::new(Demoting(logger))).map_err(|e| e.to_string())?;
    log::set_max_level(max);
    Ok(())
}

/// The configured logger, with unparsable connections demoted to trace.
struct Demoting(env_logger::Logger);

impl Log for Demoting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !is_unparsable_connection(record) {
            self.0.log(record);
            return;
        }
        let message = format!(
            "a client sent something that is not an HTTP request (a TLS handshake on this \
             plain-HTTP port?): {}",
            record.args()
        );
        self.0.log(
            &Record::builder()
                .level(Level::Trace)
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .args(format_args!("{message}"))
                .build(),
        );
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Whether `record` is the HTTP library's report of a connection it could not parse.
fn is_unparsable_connection(record: &Record<'_>) -> bool {
    record.level() == Level::Error
        && record.target() == PARSE_ERROR_TARGET
        && record.args().to_string().starts_with(PARSE_ERROR_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_is_demoted(level: Level, target: &str, message: &str) -> bool {
        is_unparsable_connection(
            &Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("{message}"))
                .build(),
        )
    }

    #[test]
    fn only_the_http_librarys_parse_errors_are_demoted() {
        let parse = "stream error: request parse error: invalid Header provided";
        assert!(record_is_demoted(Level::Error, PARSE_ERROR_TARGET, parse));
        assert!(!record_is_demoted(
            Level::Error,
            PARSE_ERROR_TARGET,
            "stream error: timeout"
        ));
        assert!(!record_is_demoted(Level::Error, "ociregistry", parse));
        assert!(!record_is_demoted(Level::Warn, PARSE_ERROR_TARGET, parse));
    }
}
