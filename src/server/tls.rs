//! HTTPS for clients (`serverTlsConfig`): one-way TLS, or mTLS where every client must present
//! a certificate that chains to the configured CA (or to the OS trust store without one).
//! The settings type lives here, beside the one function that reads it; `config` fills it in
//! and calls [`server_config`] to check the files when the config is loaded.

use std::path::PathBuf;
use std::sync::Arc;

use actors::upstream::tls::{default_roots, load_certs, load_key, load_roots};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

/// How the server speaks TLS to its clients (`serverTlsConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM certificate chain presented to clients.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM CA bundle that client certificates must chain to (`clientAuth: verify`); the OS
    /// trust store when absent.
    pub ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for (one-way TLS).
    #[default]
    None,
    /// mTLS: a client certificate is required and verified.
    Verify,
}

/// Installs the process-wide rustls crypto provider (ring). Call it before any TLS
/// configuration is built, the config file's checks included: rustls would otherwise have to
/// guess a provider from its crate features. A second call is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The rustls configuration, with HTTP/2 and HTTP/1.1 offered by ALPN. On error: the
/// `serverTlsConfig` key at fault and a message naming the file and the problem.
pub fn server_config(tls: &ServerTls) -> Result<ServerConfig, (&'static str, String)> {
    let chain = load_certs(&tls.cert, "server certificate").map_err(|m| ("cert", m))?;
    let key = load_key(&tls.key, "server key").map_err(|m| ("key", m))?;
    // Named, not guessed from crate features: the object store's HTTP client brings a second
    // provider into the build, and rustls then refuses to pick one by itself.
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("cert", format!("TLS setup: {e}")))?;
    let builder = match tls.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Verify => {
            let roots = match &tls.ca {
                Some(ca) => Arc::new(load_roots(ca, "client CA file").map_err(|m| ("ca", m))?),
                None => default_roots(),
            };
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| ("ca", format!("cannot verify client certificates: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder.with_single_cert(chain, key).map_err(|e| {
        (
            "key",
            format!(
                "server certificate {} with key {}: {e}",
                tls.cert.display(),
                tls.key.display()
            ),
        )
    })?;
    // h2 needs actix-web's `http2` feature, which the workspace enables explicitly.
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
