//! The in-process fake upstream of the engine's integration tests: an actix-web server on
//! 127.0.0.1:0 serving one image, `fake.test/<any repository>:<tag>`, whose only layer is
//! [`BLOB`] and whose config is [`CONFIG`]. It counts what it is asked, can answer slowly (so
//! that requests overlap), fail every request, or send `BLOB` wrong in the ways of [`Body`].
//!
//! Every tag has an image manifest stating `BLOB`'s size, except three: `small` and `large`
//! state 10 bytes less and 10 bytes more, `unsized` states no size.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actors::oci::{Digest, OCI_MANIFEST};
use bytes::Bytes;
use futures_util::StreamExt;

/// The one layer of every image the fake serves.
pub const BLOB: &[u8] = b"the one layer of every image this fake upstream serves, forty-odd bytes";
/// The config blob of every image the fake serves.
pub const CONFIG: &[u8] = b"{}";
const CHUNK: usize = 64 * 1024;

/// What the fake sends for `BLOB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Right,
    /// `BLOB`, then zeros without end, chunked (no `Content-Length`).
    Endless,
    /// The first half of `BLOB`, chunked, then the end.
    Short,
    /// A `Content-Length` 100 bytes past `BLOB`'s, then no body at all (the connection stays
    /// open): only a check of the length before reading finds the fault quickly.
    LongContentLength,
    /// 500 (manifests and the config are still served).
    Broken,
}

/// The size the manifest of `tag` states for `BLOB` (`None`: it states none).
pub fn stated_size(tag: &str) -> Option<u64> {
    let right = BLOB.len() as u64;
    match tag {
        "small" => Some(right - 10),
        "large" => Some(right + 10),
        "unsized" => None,
        _ => Some(right),
    }
}

/// The image manifest the fake serves, stating `stated` as `BLOB`'s size.
pub fn manifest_body(stated: Option<u64>) -> String {
    let size = stated
        .map(|s| format!(r#","size":{s}"#))
        .unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":{}}},"layers":[{{"digest":"{}"{size}}}]}}"#,
        Digest::of(CONFIG),
        CONFIG.len(),
        Digest::of(BLOB),
    )
}

/// A running fake upstream; it stops with the test's runtime.
pub struct Fake {
    endpoint: String,
    /// Waited before every answer.
    delay: Duration,
    /// Every request answers 500.
    failing: AtomicBool,
    body: Mutex<Body>,
    /// Manifests served.
    manifest_requests: AtomicUsize,
    /// Requests for `BLOB` (not counting those refused while failing).
    blob_requests: AtomicUsize,
    /// Bytes the endless bodies have produced so far.
    endless_sent: Arc<AtomicU64>,
    /// Where blob requests are sent instead (`307`), as registries send them to a CDN.
    redirect: Mutex<Option<String>>,
    /// The `Authorization` header of every blob request that was answered with bytes or a
    /// redirect (`None`: the request had none).
    blob_authorizations: Mutex<Vec<Option<String>>>,
}

impl Fake {
    /// Starts a fake sending `body` for `BLOB`, answering at once. Call from the test's runtime.
    pub fn start(body: Body) -> Arc<Fake> {
        Fake::start_slow(body, Duration::ZERO)
    }

    /// Starts a fake that waits `delay` before every answer.
    pub fn start_slow(body: Body, delay: Duration) -> Arc<Fake> {
        Fake::start_at("127.0.0.1", body, delay)
    }

    /// Starts a fake listening on another loopback address, e.g. `127.0.0.2`: another host as
    /// far as a client is concerned.
    pub fn start_on(ip: &str, body: Body) -> Arc<Fake> {
        Fake::start_at(ip, body, Duration::ZERO)
    }

    fn start_at(ip: &str, body: Body, delay: Duration) -> Arc<Fake> {
        Fake::serve(ip, None, body, delay)
    }

    /// Starts a fake speaking HTTPS on 127.0.0.1 with the PEM certificate chain and key at
    /// `cert` and `key` (issued for `localhost`); its endpoint is `https://localhost:PORT`, so
    /// it is another host than the plain fakes on `127.0.0.1`.
    pub fn start_tls(body: Body, cert: &std::path::Path, key: &std::path::Path) -> Arc<Fake> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Fake::serve("127.0.0.1", Some(config), body, Duration::ZERO)
    }

    fn serve(
        ip: &str,
        tls: Option<rustls::ServerConfig>,
        body: Body,
        delay: Duration,
    ) -> Arc<Fake> {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let endpoint = match tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let fake = Arc::new(Fake {
            endpoint,
            delay,
            failing: AtomicBool::new(false),
            body: Mutex::new(body),
            manifest_requests: AtomicUsize::new(0),
            blob_requests: AtomicUsize::new(0),
            endless_sent: Arc::new(AtomicU64::new(0)),
            redirect: Mutex::new(None),
            blob_authorizations: Mutex::new(Vec::new()),
        });
        let shared = fake.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(shared.clone()))
                .default_service(web::to(
                    |req: HttpRequest, fake: web::Data<Arc<Fake>>| async move {
                        if !fake.delay.is_zero() {
                            actix_web::rt::time::sleep(fake.delay).await;
                        }
                        fake.answer(&req)
                    },
                ))
        })
        .workers(1);
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        };
        let server = server.unwrap().run();
        actix_web::rt::spawn(server);
        fake
    }

    /// `http://127.0.0.1:PORT` (or `https://localhost:PORT`), the endpoint of the engine's
    /// `fake.test` upstream.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// From now on, sends `body` for `BLOB`.
    pub fn set(&self, body: Body) {
        *self.body.lock().unwrap() = body;
    }

    /// From now on, answers every request with a 500 (or, with `false`, as before).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Manifests served so far.
    pub fn manifest_requests(&self) -> usize {
        self.manifest_requests.load(Ordering::SeqCst)
    }

    /// Requests for `BLOB` so far (those answered 500 while failing not counted).
    pub fn blob_requests(&self) -> usize {
        self.blob_requests.load(Ordering::SeqCst)
    }

    /// Bytes the endless bodies have produced so far.
    pub fn endless_sent(&self) -> u64 {
        self.endless_sent.load(Ordering::SeqCst)
    }

    /// From now on, answers blob requests with a `307` to the same path at `endpoint`.
    pub fn redirect_blobs_to(&self, endpoint: &str) {
        *self.redirect.lock().unwrap() = Some(endpoint.to_string());
    }

    /// The `Authorization` headers of the blob requests so far.
    pub fn blob_authorizations(&self) -> Vec<Option<String>> {
        self.blob_authorizations.lock().unwrap().clone()
    }

    fn answer(&self, req: &HttpRequest) -> HttpResponse {
        let path = req.path();
        if self.failing.load(Ordering::SeqCst) {
            return HttpResponse::InternalServerError().body("boom");
        }
        if let Some((_, tag)) = path.rsplit_once("/manifests/") {
            self.manifest_requests.fetch_add(1, Ordering::SeqCst);
            return HttpResponse::Ok()
                .content_type(OCI_MANIFEST)
                .body(manifest_body(stated_size(tag)));
        }
        if path.ends_with(&Digest::of(CONFIG).to_string()) {
            return HttpResponse::Ok().body(CONFIG);
        }
        if !path.ends_with(&Digest::of(BLOB).to_string()) {
            return HttpResponse::NotFound().finish();
        }
        self.blob_requests.fetch_add(1, Ordering::SeqCst);
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.blob_authorizations.lock().unwrap().push(authorization);
        if let Some(to) = self.redirect.lock().unwrap().as_ref() {
            return HttpResponse::TemporaryRedirect()
                .insert_header(("Location", format!("{to}{path}")))
                .finish();
        }
        let once = |b: &'static [u8]| {
            futures_util::stream::once(
                async move { Ok::<_, actix_web::Error>(Bytes::from_static(b)) },
            )
        };
        match *self.body.lock().unwrap() {
            Body::Right => HttpResponse::Ok().body(BLOB),
            Body::Endless => {
                let sent = self.endless_sent.clone();
                let zeros = futures_util::stream::repeat_with(move || {
                    sent.fetch_add(CHUNK as u64, Ordering::SeqCst);
                    Ok(Bytes::from(vec![0u8; CHUNK]))
                });
                HttpResponse::Ok().streaming(once(BLOB).chain(zeros))
            }
            Body::Short => HttpResponse::Ok().streaming(once(&BLOB[..BLOB.len() / 2])),
            Body::LongContentLength => HttpResponse::Ok()
                .no_chunking(BLOB.len() as u64 + 100)
                .streaming(futures_util::stream::pending::<
                    Result<Bytes, actix_web::Error>,
                >()),
            Body::Broken => HttpResponse::InternalServerError().body("boom"),
        }
    }
}
