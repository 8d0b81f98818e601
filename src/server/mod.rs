//! The HTTP front end: an actix-web server whose handlers only parse requests, ask the engine
//! (which sends actor messages) and render answers.

pub mod admin;
mod blob_body;
mod distribution;
pub mod error;
pub mod health;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::Logger;
use actix_web::{web, App, HttpServer};
use actors::Engine;

/// Starts serving on `listener` (bind port 0 in tests to get a free port). The returned
/// server runs until its handle is told to stop, or the process gets SIGINT/SIGTERM.
/// `admin` opens the `/cmd/` API to the clients it allows.
pub fn run(listener: TcpListener, engine: Engine, admin: admin::Admin) -> std::io::Result<Server> {
    let engine = web::Data::new(engine);
    let admin = web::Data::new(admin);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(engine.clone())
            .app_data(admin.clone())
            .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
            .configure(distribution::routes)
            .configure(admin::routes)
            .default_service(web::to(distribution::unsupported))
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .run();
    Ok(server)
}
