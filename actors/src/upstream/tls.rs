//! TLS settings for upstream connections.
//!
//! awc with rustls has no TLS unless it is handed a `ClientConfig`, so every upstream gets one
//! built here. Per-upstream CAs, client certificates and skip-verify extend [`client_config`].

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;

use super::UpstreamError;

/// The trust anchors used when an upstream has no CA of its own: the OS store, or the bundled
/// Mozilla roots where the OS has none (minimal container images).
fn default_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                log::warn!("OS trust store: {e}");
            }
            let (added, _ignored) = store.add_parsable_certificates(native.certs);
            if added == 0 {
                log::warn!("no usable CA certificates in the OS trust store; using bundled roots");
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(store)
        })
        .clone()
}

/// The rustls configuration for one upstream.
pub fn client_config() -> Result<Arc<ClientConfig>, UpstreamError> {
    let mut cfg = ClientConfig::builder()
        .with_root_certificates(default_roots())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
