//! HTTPS for clients (`serverTlsConfig`): one-way TLS, or mTLS where every client must present
//! a certificate that chains to the configured CA (or to the OS trust store without one).

use std::sync::Arc;

use actors::upstream::tls::{default_roots, load_certs, load_key, load_roots};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use crate::config::{ClientAuth, ServerTls};

/// The rustls configuration, with HTTP/2 and HTTP/1.1 offered by ALPN. On error: the
/// `serverTlsConfig` key at fault and a message naming the file and the problem.
pub fn server_config(tls: &ServerTls) -> Result<ServerConfig, (&'static str, String)> {
    let chain = load_certs(&tls.cert, "server certificate").map_err(|m| ("cert", m))?;
    let key = load_key(&tls.key, "server key").map_err(|m| ("key", m))?;
    let builder = ServerConfig::builder();
    let builder = match tls.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Verify => {
            let roots = match &tls.ca {
                Some(ca) => Arc::new(load_roots(ca, "client CA file").map_err(|m| ("ca", m))?),
                None => default_roots(),
            };
            let verifier = WebPkiClientVerifier::builder(roots)
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
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
