//! Where log messages go, from which level and in which format: `logLevel` / `--log-level`,
//! refined per module by `RUST_LOG`, to standard error or `logFile` / `--log-file`, as text or
//! JSON lines (`logFormat` / `--log-format`).
//!
//! A log file is reopened by its path on SIGHUP ([`reopen_log_file`]), so logrotate can rename
//! it away without `copytruncate` (which loses the lines written during the copy).
//!
//! One message of the HTTP library is demoted to trace: a connection whose first bytes are not
//! an HTTP request (most often a TLS handshake on the plain-HTTP port: Docker tries TLS first
//! against every registry) is the client's mistake, not the server's, and would otherwise log an
//! ERROR line on every `docker pull`. The plain-HTTP listener logs one debug line for it that
//! names the client (`server/plain.rs`); the library's own line cannot.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use log::{Level, Log, Metadata, Record};

use crate::cli::LogFormat;
use crate::config::Config;

/// Where the HTTP library reports connections it could not parse.
const PARSE_ERROR_TARGET: &str = "actix_http::h1::dispatcher";
const PARSE_ERROR_PREFIX: &str = "stream error: request parse error";

/// The log file in use, when there is one.
static LOG_FILE: OnceLock<LogFile> = OnceLock::new();
/// The configured format, for the lines `serve` always writes to standard error.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Sets up the process-wide logger once the configuration is known, so the configured level,
/// format and file apply from the first message a subcommand logs.
pub fn init(config: &Config) -> Result<(), String> {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(config.log_level.to_filter());
    // RUST_LOG, when set, refines the level per module.
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    let _ = FORMAT.set(config.log_format);
    if config.log_format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = json_line(
                &buf.timestamp_millis().to_string(),
                record.level(),
                record.target(),
                &record.args().to_string(),
            );
            writeln!(buf, "{line}")
        });
    }
    if let Some(path) = &config.log_file {
        let file = LogFile::open(path).map_err(|e| format!("log file {}: {e}", path.display()))?;
        let _ = LOG_FILE.set(file.clone());
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    }
    let logger = builder.build();
    let max = logger.filter();
    log::set_boxed_logger(Box::new(Demoting(logger))).map_err(|e| e.to_string())?;
    log::set_max_level(max);
    Ok(())
}

/// One log record as a JSON object, e.g.
/// `{"time":"2026-01-02T03:04:05.678Z","level":"INFO","target":"ociregistry::server","message":"..."}`.
fn json_line(time: &str, level: Level, target: &str, message: &str) -> String {
    serde_json::json!({
        "time": time,
        "level": level.as_str(),
        "target": target,
        "message": message,
    })
    .to_string()
}

/// Writes `message` to standard error whatever the level (the start-up line, the preload
/// summary): as it is, or as a JSON line like the log's when the format is JSON, so a log
/// pipeline reading standard error sees only JSON.
pub fn announce(message: &str) {
    let mut err = io::stderr().lock();
    let _ = match FORMAT.get() {
        Some(LogFormat::Json) => {
            let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
            let line = json_line(&time, Level::Info, "ociregistry", message.trim_end());
            writeln!(err, "{line}")
        }
        _ => writeln!(err, "{}", message.trim_end()),
    };
}

/// Reports the error a command ends with, once: through the log, which already writes to
/// standard error unless it goes to a file, and then to standard error as well.
pub fn fatal(message: &str) {
    log::error!("{message}");
    let logged_to_stderr = LOG_FILE.get().is_none()
        && log::logger().enabled(
            &Metadata::builder()
                .level(Level::Error)
                .target(module_path!())
                .build(),
        );
    if !logged_to_stderr {
        eprintln!("ociregistry: {message}");
    }
}

/// Opens the log file again by its path, after a rotation renamed the old one away. `Ok(None)`
/// when logs go to standard error. Blocks on the file system: call it off the async workers.
pub fn reopen_log_file() -> io::Result<Option<PathBuf>> {
    match LOG_FILE.get() {
        Some(file) => file.reopen().map(Some),
        None => Ok(None),
    }
}

/// An appending log file that can be swapped for a fresh open of the same path.
#[derive(Clone)]
struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(Self::append(path)?)),
        })
    }

    fn append(path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    /// Swaps in a new handle on the path; the old file keeps what was written to it.
    fn reopen(&self) -> io::Result<PathBuf> {
        let fresh = Self::append(&self.path)?;
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = file.flush();
        *file = fresh;
        Ok(self.path.clone())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
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
    fn json_lines_carry_time_level_target_and_an_escaped_message() {
        let line = json_line(
            "2026-01-02T03:04:05.678Z",
            Level::Warn,
            "ociregistry::server",
            "a \"quoted\"\nmessage",
        );
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2026-01-02T03:04:05.678Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "ociregistry::server");
        assert_eq!(v["message"], "a \"quoted\"\nmessage");
    }

    #[test]
    fn a_reopened_log_file_writes_to_the_path_again_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.log");
        let mut file = LogFile::open(&path).unwrap();
        file.write_all(b"before\n").unwrap();
        std::fs::rename(&path, dir.path().join("server.log.1")).unwrap();
        file.write_all(b"renamed\n").unwrap();
        file.reopen().unwrap();
        file.write_all(b"after\n").unwrap();
        let old = std::fs::read_to_string(dir.path().join("server.log.1")).unwrap();
        assert_eq!(old, "before\nrenamed\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
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
