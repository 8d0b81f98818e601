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
use ociregistry::server::tls::ClientAuth;

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
        Command::Load(ref args) => commands::load::run(config, args),
        Command::Export(ref args) => commands::export::run(config, args),
        Command::Import(ref args) => commands::import::run(config, &args.archive),
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
    let tls = match &config.server_tls {
        Some(t) => Some(
            server::tls::server_config(t)
                .map_err(|(key, m)| format!("serverTlsConfig.{key}: {m}"))?,
        ),
        None => None,
    };
    let security = match &config.server_tls {
        None => "plain HTTP".to_string(),
        Some(t) => match t.client_auth {
            ClientAuth::None => "TLS".to_string(),
            ClientAuth::Verify => format!(
                "mTLS: client certificates required, verified against {}",
                t.ca.as_ref().map_or("the OS trust store".to_string(), |p| p
                    .display()
                    .to_string())
            ),
        },
    };
    let allowed = match &config.allowed_upstreams {
        None => "any upstream".to_string(),
        Some(a) => {
            let names: Vec<String> = a.patterns().iter().map(|p| p.to_string()).collect();
            format!("upstreams {}", names.join(", "))
        }
    };
    system.block_on(async move {
        let engine = actors::Engine::start(config.engine_config()).map_err(|e| e.to_string())?;
        held.before_serving(&config, &engine).await?;
        let addr = (config.host.as_str(), config.port);
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let limit = server::connections::settle(config.max_connections, server::default_workers());
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "ociregistry {} serving on {local} ({security}; {allowed}; at most {} connections; \
             cache {}, config {}, pid {}{})",
            env!("CARGO_PKG_VERSION"),
            limit.total(),
            config.image_path.display(),
            config
                .config_file
                .as_ref()
                .map_or("defaults and command line".to_string(), |f| f
                    .display()
                    .to_string()),
            std::process::id(),
            if config.air_gapped {
                ", air-gapped"
            } else {
                ""
            }
        );
        drop(err);
        // SIGTERM stops accepting and lets requests finish (bounded by the server's shutdown
        // timeout); SIGINT stops at once. Either way the engine then gets a bounded grace period
        // for background downloads and writes its bookkeeping; a further signal cuts that short.
        let http = server::run_with_tls(listener, engine.clone(), tls, held.admin(&config), limit)
            .map_err(|e| e.to_string())?;
        let handle = http.handle();
        held.stop_on_request(handle.clone());
        actix_web::rt::spawn(async move {
            let graceful = next_signal().await;
            log::info!(
                "{} received: stopping",
                if graceful { "SIGTERM" } else { "SIGINT" }
            );
            handle.stop(graceful).await;
        });
        http.await.map_err(|e| e.to_string())?;
        log::info!("stopping: letting downloads finish (up to {DOWNLOAD_GRACE:?})");
        tokio::select! {
            _ = engine.shutdown(DOWNLOAD_GRACE) => {}
            _ = next_signal() => log::warn!("second signal: stopping now"),
        }
        log::info!("stopped");
        Ok(())
    })
}

/// How long a stopping server lets blob downloads run on: with the HTTP server's own 10 s this
/// stays inside Kubernetes' default 30 s termination grace period.
const DOWNLOAD_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Waits for SIGTERM (true: stop gracefully) or SIGINT (false).
async fn next_signal() -> bool {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => true,
                _ = int.recv() => false,
            }
        }
        _ => std::future::pending().await,
    }
}
