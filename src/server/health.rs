//! The health listener (`--health PORT`), apart from the pull port so probes never queue
//! behind pulls: `GET /health` is liveness (200 while the process serves HTTP) and
//! `GET /health/ready` readiness (503 until the cache index is loaded and any preload has
//! finished, then 200).

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};

/// Set once the server is ready to serve pulls.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

async fn ready(r: web::Data<Readiness>) -> HttpResponse {
    if r.is_ready() {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("not ready: loading the cache\n")
    }
}

/// Starts the health listener. It stops with the process (no signal handling of its own).
pub fn run(listener: TcpListener, readiness: Readiness) -> std::io::Result<Server> {
    let readiness = web::Data::new(readiness);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(readiness.clone())
            .route("/health", web::get().to(live))
            .route("/health", web::head().to(live))
            .route("/health/ready", web::get().to(ready))
            .route("/health/ready", web::head().to(ready))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}
