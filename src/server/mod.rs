//! The HTTP front end: an actix-web server whose handlers only parse requests, ask the engine
//! (which sends actor messages) and render answers.

pub mod admin;
pub mod connections;
mod distribution;
pub mod error;
mod fleet;
pub mod health;
mod metrics;
mod plain;
pub mod pull_auth;
mod pull_path;
pub mod query;
mod range;
pub mod tls;

/// The Range parser, public for the property tests and fuzz targets.
pub use range::{parse_range, ByteRange, RangeRequest};

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Condition, Logger};
use actix_web::{web, App, HttpServer};
use actors::Engine;

/// Starts serving on `listener` (bind port 0 in tests to get a free port). The returned
/// server runs until its handle is told to stop. It does not handle signals itself: actix would
/// stop the whole actor system on one, and the engine's actors must outlive the HTTP server to
/// finish downloads and write their bookkeeping (see `commands/serve.rs`).
pub fn run(listener: TcpListener, engine: Engine) -> std::io::Result<Server> {
    // The configured default, without touching the process's descriptor limit.
    let limit = connections::plan(
        crate::config::DEFAULT_MAX_CONNECTIONS,
        default_workers(),
        u64::MAX,
    );
    run_with_tls(listener, engine, None, admin::Admin::default(), None, limit)
}

/// One worker per CPU, actix-web's own default, named here so the connection limit can be
/// divided among them.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// [`run`], over HTTPS (HTTP/2 and HTTP/1.1) when `tls` is given. `admin` opens the `/cmd/`
/// API to the clients it allows; `pull_auth`, when given, asks pull clients for credentials
/// (see [`pull_auth`]); `limit` bounds the connections held at once (see [`connections`]).
pub fn run_with_tls(
    listener: TcpListener,
    engine: Engine,
    tls: Option<rustls::ServerConfig>,
    admin: admin::Admin,
    pull_auth: Option<pull_auth::PullAuth>,
    limit: connections::ConnectionLimit,
) -> std::io::Result<Server> {
    let engine = web::Data::new(engine);
    let admin = web::Data::new(admin);
    // One limiter and one cache of successes for every worker.
    let pull_auth = pull_auth.map(web::Data::new);
    // The access log renders every request line as it arrives, whether or not its line is
    // written later: in the chain only when it is.
    let access_log = log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
    let app = move || {
        let mut app = App::new().app_data(engine.clone()).app_data(admin.clone());
        if let Some(auth) = &pull_auth {
            app = app.app_data(auth.clone());
        }
        app.wrap(from_fn(metrics::count))
            .wrap(Condition::new(
                access_log,
                Logger::new("%a \"%r\" %s %b %Dms"),
            ))
            .route("/metrics", web::get().to(metrics::scrape))
            .configure(distribution::routes(pull_auth.is_some()))
            .configure(admin::routes)
            .configure(fleet::routes)
            .default_service(web::to(distribution::unsupported))
    };
    match tls {
        Some(cfg) => Ok(HttpServer::new(app)
            .workers(limit.workers)
            .max_connections(limit.per_worker)
            .listen_rustls_0_23(listener, cfg)?
            .disable_signals()
            .shutdown_timeout(10)
            .run()),
        None => plain::serve(listener, limit.workers, limit.per_worker, app),
    }
}

/// The admin API alone, on the Unix socket `path` in the cache directory: how the commands run
/// beside a server that serves HTTPS reach it (they have no certificate to trust, nor one to
/// present). Anyone who may open the socket, as the cache's owner, may use it (see
/// [`admin::Admin::through_socket`]). One worker: its requests are few.
pub fn run_admin_socket(
    path: &std::path::Path,
    engine: Engine,
    admin: admin::Admin,
) -> std::io::Result<Server> {
    let engine = web::Data::new(engine);
    let admin = web::Data::new(admin::Admin {
        through_socket: true,
        ..admin
    });
    let access_log = log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(engine.clone())
            .app_data(admin.clone())
            .wrap(Condition::new(
                access_log,
                Logger::new("socket \"%r\" %s %b %Dms"),
            ))
            .configure(admin::routes)
    })
    .workers(1)
    .bind_uds(path)?
    .disable_signals()
    .shutdown_timeout(10)
    .run())
}
