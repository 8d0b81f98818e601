//! What `serve` does around the HTTP front end: the hello-world cache, the cache lock, the
//! health listener, preloading, and stopping on `/cmd/stop`.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actors::store::CacheLock;
use actors::Engine;
use tokio::sync::Notify;

use crate::config::Config;
use crate::server::admin::Admin;
use crate::server::health::{self, Readiness};

/// What `serve` holds for its whole life besides the server.
pub struct Held {
    /// The cache lock: `prune` and `load` refuse to run while it is held.
    _lock: CacheLock,
    /// The temporary hello-world cache, deleted on exit.
    _hello_world: Option<tempfile::TempDir>,
    readiness: Readiness,
    stop: Arc<Notify>,
}

/// Before the engine starts: sets up the hello-world cache when asked, and locks the cache.
pub fn prepare(config: &mut Config) -> Result<Held, String> {
    let hello_world = if config.ops.hello_world {
        let dir = tempfile::Builder::new()
            .prefix("ociregistry-hello-world-")
            .tempdir()
            .map_err(|e| format!("cannot create the hello-world cache: {e}"))?;
        crate::hello_world::seed(dir.path())?;
        config.image_path = dir.path().to_path_buf();
        config.air_gapped = true;
        config.ops.prune = None;
        if config.ops.preload_images.take().is_some() {
            log::warn!("--hello-world: preloading is skipped (the server is air-gapped)");
        }
        eprintln!(
            "hello-world mode: serving only {} from {}, air-gapped",
            crate::hello_world::IMAGE,
            dir.path().display()
        );
        Some(dir)
    } else {
        None
    };
    let lock = CacheLock::acquire(&config.image_path).map_err(|e| e.to_string())?;
    Ok(Held {
        _lock: lock,
        _hello_world: hello_world,
        readiness: Readiness::default(),
        stop: Arc::new(Notify::new()),
    })
}

impl Held {
    /// What the admin API needs.
    pub fn admin(&self, config: &Config) -> Admin {
        Admin {
            access: config.ops.admin.clone(),
            stop: self.stop.clone(),
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
            eprint!("preload: {}", summary.render());
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
