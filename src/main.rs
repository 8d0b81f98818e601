//! The `ociregistry` command: parse the command line, load the configuration, run one
//! subcommand. Everything else lives in the library (`src/lib.rs`) and the `actors` engine.

use std::process::ExitCode;

use ociregistry::cli::Command;
use ociregistry::{commands, config, logging, server};

fn main() -> ExitCode {
    server::tls::install_crypto_provider();
    let cli = ociregistry::cli::parse();
    // These need no configuration: they answer from the binary alone.
    match cli.command {
        Command::Version => {
            println!("ociregistry {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Completions { shell } => return commands::shell::completions(shell),
        Command::Man { ref subcommand } => return commands::shell::man(subcommand.as_deref()),
        _ => {}
    }
    let config = match config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ociregistry: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(&config) {
        eprintln!("ociregistry: {e}");
        return ExitCode::from(2);
    }
    for notice in &config.notices {
        // Shown whatever the log level: the operator should learn this even at `error`.
        if log::log_enabled!(log::Level::Warn) {
            log::warn!("{notice}");
        } else {
            eprintln!("ociregistry: warning: {notice}");
        }
    }
    let directory_only = match cli.command {
        Command::Export(_) => Some("export"),
        Command::Import(_) => Some("import"),
        Command::Load(ref args) if args.archive.is_some() => Some("load --archive"),
        Command::List(_) => Some("list"),
        Command::Prune(_) => Some("prune"),
        _ => None,
    };
    if let Some(Err(e)) = directory_only.map(|c| commands::directory_only(&config, c)) {
        eprintln!("ociregistry: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Serve(_) => commands::serve::run(config),
        Command::Load(ref args) => commands::load::run(config, args),
        Command::Export(ref args) => commands::export::run(config, args),
        Command::Import(ref args) => commands::import::run(config, &args.archive),
        Command::List(ref args) => commands::list::run(config, args),
        Command::Prune(ref args) => commands::prune::run(config, args),
        Command::Version | Command::Completions { .. } | Command::Man { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::fatal(&e);
            ExitCode::FAILURE
        }
    }
}
