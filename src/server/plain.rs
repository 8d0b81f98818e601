//! The plain-HTTP listener: actix-web's HTTP/1 service, as `HttpServer` assembles it, behind a
//! look at each connection's first byte.
//!
//! Docker tries TLS first against every registry, so a plain-HTTP cache sees a TLS handshake on
//! every `docker pull`. The HTTP library reports such a connection only as a parse error, without
//! the client's address, and at ERROR. Here the first byte is peeked (not read: the HTTP service
//! still gets every byte and answers as before, which is what makes Docker fall back to plain
//! HTTP) and a connection that opens with a TLS record, or with anything that cannot start an
//! HTTP request, gets one debug line naming the client. A connection that sends nothing within
//! the request timeout is closed, as the HTTP service would close it.
//!
//! `HttpServer` offers no hook before its HTTP service reads, hence the assembly by hand; the
//! settings are `HttpServer`'s defaults, spelled out.

use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::{HttpService, KeepAlive, Request};
use actix_rt::net::TcpStream;
use actix_server::Server;
use actix_service::{map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt};
use actix_web::dev::{AppConfig, Response};

/// How long a new connection may stay silent: `HttpServer`'s default request timeout.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(5);
/// How long a closing connection gets to take its last bytes: `HttpServer`'s default.
const DISCONNECT_WAIT: Duration = Duration::from_secs(1);
/// What a TLS connection's first record starts with: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves `app` (an actix-web `App` factory) on `listener`, `workers` threads with at most
/// `per_worker` connections each, without handling signals (see `server::run`).
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    workers: usize,
    per_worker: usize,
    app: F,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: actix_web::body::MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let builder = Server::build();
    // Tells keep-alive connections that the server is stopping, so they close between requests.
    let stopping = builder.graceful_shutdown_signal();
    Ok(builder
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .disable_signals()
        .shutdown_timeout(10)
        .listen("ociregistry-http", listener, move || {
            let app = app().into_factory().map_err(|e| e.into().error_response());
            let stopping = stopping.clone();
            FirstByte(
                HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let stopping = stopping.clone();
                        async move { stopping.notified().await }
                    })
                    .keep_alive(KeepAlive::default())
                    .client_request_timeout(FIRST_BYTE_WAIT)
                    .client_disconnect_timeout(DISCONNECT_WAIT)
                    .local_addr(addr)
                    // Plain HTTP. The host it names is used only for a request without a
                    // `Host` header (HTTP/1.0), where `HttpServer` would put the listener's
                    // address; actix-web offers no other way to set it.
                    .finish(map_config(app, |_| AppConfig::default()))
                    .tcp(),
            )
        })?
        .run())
}

/// Wraps the HTTP service factory `F`: each connection is looked at before `F`'s service gets it.
struct FirstByte<F>(F);

impl<F> ServiceFactory<TcpStream> for FirstByte<F>
where
    F: ServiceFactory<TcpStream, Config = (), Response = ()>,
    F::Service: 'static,
    F::Future: 'static,
    F::Error: 'static,
{
    type Response = ();
    type Error = F::Error;
    type Config = ();
    type Service = FirstByteService<F::Service>;
    type InitError = F::InitError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Service, Self::InitError>>>>;

    fn new_service(&self, _: ()) -> Self::Future {
        let inner = self.0.new_service(());
        Box::pin(async move { Ok(FirstByteService(Rc::new(inner.await?))) })
    }
}

struct FirstByteService<S>(Rc<S>);

impl<S> Service<TcpStream> for FirstByteService<S>
where
    S: Service<TcpStream, Response = ()> + 'static,
{
    type Response = ();
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), S::Error>>>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, io: TcpStream) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move {
            match first_byte(&io).await {
                // Silent for the whole request timeout, or gone: closed, as the HTTP service
                // would close it.
                None => Ok(()),
                Some(b) => {
                    if let Some(what) = not_http(b) {
                        let peer = io
                            .peer_addr()
                            .map_or_else(|_| "a client".to_string(), |a| a.ip().to_string());
                        log::debug!(
                            "{peer} sent {what} to this plain-HTTP port (it speaks plain HTTP; \
                             Docker tries TLS first and then falls back)"
                        );
                    }
                    inner.call(io).await
                }
            }
        })
    }
}

/// The connection's first byte, left in place; `None` when none comes in time.
async fn first_byte(io: &TcpStream) -> Option<u8> {
    let mut first = [0u8; 1];
    match actix_rt::time::timeout(FIRST_BYTE_WAIT, io.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0]),
        _ => None,
    }
}

/// What a connection that starts with `b` sends, when it cannot be an HTTP request (whose
/// method starts with an upper-case letter).
fn not_http(b: u8) -> Option<&'static str> {
    match b {
        b'A'..=b'Z' => None,
        TLS_HANDSHAKE => Some("a TLS handshake"),
        _ => Some("something that is not an HTTP request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_byte_tells_a_tls_handshake_from_an_http_request() {
        for method in ["GET", "HEAD", "PRI", "OPTIONS"] {
            assert_eq!(not_http(method.as_bytes()[0]), None, "{method}");
        }
        assert_eq!(not_http(0x16), Some("a TLS handshake"));
        for b in [b'g', 0x00, b' ', 0x80, b'\r'] {
            assert_eq!(not_http(b), Some("something that is not an HTTP request"));
        }
    }
}
