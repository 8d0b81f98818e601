//! The HTTP front end: an actix-web server whose handlers only parse requests, ask the engine
//! (which sends actor messages) and render answers.

mod blob_body;
mod distribution;
pub mod error;

/// The Range parser, public for the property tests and fuzz targets.
pub use blob_body::{parse_range, ByteRange, RangeRequest};

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::Logger;
use actix_web::{web, App, HttpServer};
use actors::Engine;

/// Starts serving on `listener` (bind port 0 in tests to get a free port). The returned
/// server runs until its handle is told to stop, or the process gets SIGINT/SIGTERM.
pub fn run(listener: TcpListener, engine: Engine) -> std::io::Result<Server> {
    let engine = web::Data::new(engine);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(engine.clone())
            .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
            .configure(distribution::routes)
            .default_service(web::to(distribution::unsupported))
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .run();
    Ok(server)
}
