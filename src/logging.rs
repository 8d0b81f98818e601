//! Where log messages go and from which level: `logLevel` / `--log-level`, refined per module by
//! `RUST_LOG`, to standard error or `logFile` / `--log-file`.

use crate::config::Config;

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
    builder.init();
    Ok(())
}
