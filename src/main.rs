//! The `ociregistry` command: parse the command line, load the configuration, run one
//! subcommand. Everything else lives in the library (`src/lib.rs`) and the `actors` engine.

use std::io::Write as _;
use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use ociregistry::cli::{Cli, Command};
use ociregistry::commands;
use ociregistry::config::{self, Config};
use ociregistry::server;

fn main() -> ExitCode {
    // rustls needs one process-wide crypto provider; a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!("ociregistry {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let config = match config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ociregistry: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&config) {
        eprintln!("ociregistry: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Serve(_) => serve(config),
        Command::Load(_) => commands::load::run(config),
        Command::List(ref args) => commands::list::run(config, args),
        Command::Prune(ref args) => commands::prune::run(config, args),
        Command::Version => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("ociregistry: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) -> Result<(), String> {
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

fn serve(mut config: Config) -> Result<(), String> {
    let held = commands::serve::prepare(&mut config)?;
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let engine = actors::Engine::start(config.engine_config()).map_err(|e| e.to_string())?;
        held.before_serving(&config, &engine).await?;
        let addr = (config.host.as_str(), config.port);
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "ociregistry {} serving on {local} (cache {}, pid {}{})",
            env!("CARGO_PKG_VERSION"),
            config.image_path.display(),
            std::process::id(),
            if config.air_gapped {
                ", air-gapped"
            } else {
                ""
            }
        );
        drop(err);
        let server =
            server::run(listener, engine, held.admin(&config)).map_err(|e| e.to_string())?;
        held.stop_on_request(server.handle());
        server.await.map_err(|e| e.to_string())
    })
}
