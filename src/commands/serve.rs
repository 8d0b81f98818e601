//! `serve`: the HTTP front end and what runs around it: the hello-world cache, the cache lock,
//! the health listener, preloading, the start-up line, and stopping on a signal or on
//! `/cmd/stop`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actors::store::CacheLock;
use actors::Engine;
use tokio::sync::Notify;

use crate::config::Config;
use crate::logging;
use crate::server::admin::Admin;
use crate::server::health::{self, Readiness};
use crate::server::pull_auth::PullAuth;
use crate::server::tls::{ClientAuth, ServerTls};
use crate::server::{self, connections};

/// How long a stopping server lets blob downloads run on: with the HTTP server's own 10 s this
/// stays inside Kubernetes' default 30 s termination grace period.
const DOWNLOAD_GRACE: Duration = Duration::from_secs(15);
/// The admin socket in the cache directory of a server that serves HTTPS.
pub const ADMIN_SOCKET: &str = "ociregistry.sock";

/// The `serve` subcommand: runs until a signal or `/cmd/stop`, then gives downloads a grace
/// period and writes the engine's bookkeeping.
pub fn run(mut config: Config) -> Result<(), String> {
    let mut held = prepare(&mut config)?;
    let system = actix_web::rt::System::new();
    let tls = match &config.server_tls {
        Some(t) => Some(
            server::tls::server_config(t)
                .map_err(|(key, m)| format!("serverTlsConfig.{key}: {m}"))?,
        ),
        None => None,
    };
    let pull_auth = match &config.pull_auth {
        Some(s) => Some(
            PullAuth::new(s, config.default_ns.clone()).map_err(|m| format!("pullAuth: {m}"))?,
        ),
        None => None,
    };
    let mut security = describe_security(config.server_tls.as_ref());
    if let Some(auth) = &pull_auth {
        security = format!("{security}; {}", auth.describe());
    }
    let allowed = match &config.allowed_upstreams {
        None => "any upstream".to_string(),
        Some(a) => {
            let names: Vec<String> = a.patterns().iter().map(|p| p.to_string()).collect();
            format!("upstreams {}", names.join(", "))
        }
    };
    system.block_on(async move {
        let engine = Engine::start(config.engine_config())
            .await
            .map_err(|e| e.to_string())?;
        if config.fleet_secret.is_some() && config.advertise.is_none() {
            log::warn!(
                "fleetSecret is set but this replica advertises no address (advertise, \
                 --advertise): the others cannot follow its downloads and wait for them instead"
            );
        }
        held.before_serving(&config, &engine).await?;
        let addr = (config.host.as_str(), config.port);
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        // Over HTTPS, the commands beside the server reach its admin API through a socket in
        // the cache directory: they have no certificate to trust or to present.
        let socket = match tls {
            None => {
                held.advertise(local)?;
                None
            }
            Some(_) => held.admin_socket(&config, &engine)?,
        };
        let limit = connections::settle(config.max_connections, server::default_workers());
        logging::announce(&format!(
            "ociregistry {} serving on {local} ({security}; {allowed}; at most {} connections; \
             cache {}, config {}, pid {}{})",
            env!("CARGO_PKG_VERSION"),
            limit.total(),
            engine.location(),
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
        ));
        // SIGTERM stops accepting and lets requests finish (bounded by the server's shutdown
        // timeout); SIGINT stops at once. Either way the engine then gets a bounded grace period
        // for background downloads and writes its bookkeeping; a further signal cuts that short.
        let http = server::run_with_tls(
            listener,
            engine.clone(),
            tls,
            held.admin(&config),
            pull_auth,
            limit,
        )
        .map_err(|e| e.to_string())?;
        let handle = http.handle();
        held.stop_on_request(handle.clone());
        actix_web::rt::spawn(reopen_log_on_hangup());
        actix_web::rt::spawn(async move {
            let graceful = next_signal().await;
            log::info!(
                "{} received: stopping",
                if graceful { "SIGTERM" } else { "SIGINT" }
            );
            handle.stop(graceful).await;
        });
        http.await.map_err(|e| e.to_string())?;
        if let Some((socket, path)) = socket {
            socket.stop(true).await;
            let _ = std::fs::remove_file(path);
        }
        log::info!("stopping: letting downloads finish (up to {DOWNLOAD_GRACE:?})");
        tokio::select! {
            _ = engine.shutdown(DOWNLOAD_GRACE) => {}
            _ = next_signal() => log::warn!("second signal: stopping now"),
        }
        log::info!("stopped");
        Ok(())
    })
}

/// How clients connect, for the start-up line.
fn describe_security(tls: Option<&ServerTls>) -> String {
    match tls {
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
    }
}

/// On every SIGHUP, opens the log file again by its path (log rotation). Handling the signal
/// also keeps its default action, ending the process, from taking the server down.
async fn reopen_log_on_hangup() {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        log::warn!("cannot handle SIGHUP: the log file is not reopened on it");
        return;
    };
    while hangup.recv().await.is_some() {
        match actix_web::rt::task::spawn_blocking(logging::reopen_log_file).await {
            Ok(Ok(Some(path))) => log::info!("SIGHUP: log file {} reopened", path.display()),
            Ok(Ok(None)) => log::info!("SIGHUP: logging to standard error, nothing to reopen"),
            Ok(Err(e)) => log::error!("SIGHUP: cannot reopen the log file: {e}"),
            Err(e) => log::error!("SIGHUP: reopening the log file failed: {e}"),
        }
    }
}

/// Waits for SIGTERM (true: stop gracefully) or SIGINT (false). The HTTP server leaves signals
/// to us: actix would stop the whole actor system on one, and the engine must outlive it.
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

/// What `serve` holds for its whole life besides the server.
pub struct Held {
    /// The cache lock: `prune`, `load` and `list` find it held and ask this server instead
    /// (through the admin API it advertises in the lock file). None on a shared bucket:
    /// several replicas use it at once by design, and their own directories hold only staging
    /// files.
    lock: Option<CacheLock>,
    /// The temporary hello-world cache, deleted on exit.
    _hello_world: Option<tempfile::TempDir>,
    readiness: Readiness,
    stop: Arc<Notify>,
}

/// Before the engine starts: sets up the hello-world cache when asked, and locks the cache
/// directory (unless the cache is a shared bucket).
fn prepare(config: &mut Config) -> Result<Held, String> {
    let hello_world = if config.ops.hello_world {
        let dir = tempfile::Builder::new()
            .prefix("ociregistry-hello-world-")
            .tempdir()
            .map_err(|e| format!("cannot create the hello-world cache: {e}"))?;
        crate::hello_world::seed(dir.path())?;
        config.image_path = dir.path().to_path_buf();
        config.air_gapped = true;
        config.ops.prune = None;
        config.storage = None;
        if config.ops.preload_images.take().is_some() {
            log::warn!("--hello-world: preloading is skipped (the server is air-gapped)");
        }
        logging::announce(&format!(
            "hello-world mode: serving only {} from {}, air-gapped",
            crate::hello_world::IMAGE,
            dir.path().display()
        ));
        Some(dir)
    } else {
        None
    };
    let lock = match config.storage {
        Some(_) => None,
        None => Some(CacheLock::acquire(&config.image_path).map_err(|e| e.to_string())?),
    };
    Ok(Held {
        lock,
        _hello_world: hello_world,
        readiness: Readiness::default(),
        stop: Arc::new(Notify::new()),
    })
}

impl Held {
    /// Writes into the lock file where the admin API answers: the commands run beside this
    /// server find it there. A wildcard listening address is reached on loopback.
    fn advertise(&mut self, local: std::net::SocketAddr) -> Result<(), String> {
        let mut at = local;
        if at.ip().is_unspecified() {
            at.set_ip(match at {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        match &mut self.lock {
            Some(lock) => lock
                .advertise(&format!("http://{at}"))
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Serves the admin API on `ociregistry.sock` in the locked cache directory and writes
    /// `unix:PATH` into the lock file; the running socket server and its path. None without a
    /// lock (a shared bucket), or when the path is too long for a socket (a warning says so).
    fn admin_socket(
        &mut self,
        config: &Config,
        engine: &Engine,
    ) -> Result<Option<(ServerHandle, std::path::PathBuf)>, String> {
        if self.lock.is_none() {
            return Ok(None);
        }
        let path = config.image_path.join(ADMIN_SOCKET);
        // The lock is ours: a socket file left there belongs to a server that is gone.
        let _ = std::fs::remove_file(&path);
        let server = match server::run_admin_socket(&path, engine.clone(), self.admin(config)) {
            Ok(s) => s,
            Err(e) => {
                log::warn!(
                    "cannot serve the admin API on {}: {e}; commands beside this server will \
                     refuse to run while it does",
                    path.display()
                );
                return Ok(None);
            }
        };
        // Only the cache's owner: the socket is as good as its token.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let handle = server.handle();
        actix_web::rt::spawn(server);
        if let Some(lock) = &mut self.lock {
            lock.advertise(&format!("unix:{}", path.display()))
                .map_err(|e| e.to_string())?;
        }
        Ok(Some((handle, path)))
    }

    /// What the admin API needs.
    pub fn admin(&self, config: &Config) -> Admin {
        Admin {
            access: config.ops.admin.clone(),
            stop: self.stop.clone(),
            platforms: config.ops.platforms.clone(),
            cache_dir: config.storage.is_none().then(|| config.image_path.clone()),
            through_socket: false,
        }
    }

    /// After the engine started, before pulls are served: starts the health listener, runs
    /// the preload (its failures are reported, not fatal), then reports ready.
    pub async fn before_serving(&self, config: &Config, engine: &Engine) -> Result<(), String> {
        if let Some(port) = config.ops.health {
            let listener = TcpListener::bind((config.host.as_str(), port)).map_err(|e| {
                format!(
                    "cannot listen for health checks on {}:{port}: {e}",
                    config.host
                )
            })?;
            let server =
                health::run(listener, self.readiness.clone()).map_err(|e| e.to_string())?;
            actix_web::rt::spawn(server);
        }
        if let Some(path) = &config.ops.preload_images {
            let summary = crate::commands::load::load_file(
                engine,
                path,
                &config.ops.platforms,
                config.ops.load_jobs,
            )
            .await?;
            logging::announce(&format!("preload: {}", summary.render()));
            for (what, why) in &summary.failed {
                log::error!("preload: {what}: {why}");
            }
        }
        self.readiness.set_ready();
        Ok(())
    }

    /// Stops `server` gracefully when `/cmd/stop` is called.
    pub fn stop_on_request(&self, server: ServerHandle) {
        let stop = self.stop.clone();
        actix_web::rt::spawn(async move {
            stop.notified().await;
            server.stop(true).await;
        });
    }
}
