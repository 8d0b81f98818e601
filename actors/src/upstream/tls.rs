//! TLS settings for upstream connections, and the PEM loading the server side shares.
//!
//! awc with rustls has no TLS unless it is handed a `ClientConfig`, so every upstream gets one
//! built here from its [`UpstreamTls`]: the trust anchors (the OS store, or the upstream's own
//! CA), or no certificate verification at all; and the client certificate for mTLS.
//!
//! Every function that reads a file returns an error naming the file and the problem, so a bad
//! path or a wrong file is reported at start-up rather than at the first pull.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::UpstreamTls;
use super::UpstreamError;

/// The trust anchors used when no CA file is given: the OS store, or the bundled Mozilla roots
/// where the OS has none (minimal container images).
pub fn default_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
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

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: cannot read it: {e}", path.display()))
}

/// Every certificate in a PEM file; at least one.
pub fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no PEM certificate (BEGIN CERTIFICATE) in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path, what)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!(
            "{what} {}: no usable PEM private key in it ({e})",
            path.display()
        )
    })
}

/// A trust store holding exactly the CA certificates of a PEM file.
pub fn load_roots(path: &Path, what: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(path, what)? {
        store.add(cert).map_err(|e| {
            format!(
                "{what} {}: not a usable CA certificate: {e}",
                path.display()
            )
        })?;
    }
    Ok(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Accepts whatever certificate the server presents, while still checking that the server
/// holds the key of that certificate (handshake signatures), with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The rustls configuration for one upstream, or an error naming the file at fault.
pub fn build_client_config(tls: &UpstreamTls) -> Result<ClientConfig, String> {
    // Named, not guessed from crate features: the object store's HTTP client brings a second
    // provider into the build, and rustls then refuses to pick one by itself.
    let versions = || {
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))
    };
    let builder = if tls.insecure_skip_verify {
        let verifier = AcceptAnyServerCert {
            algorithms: provider().signature_verification_algorithms,
        };
        versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    } else {
        let roots = match &tls.ca {
            Some(ca) => Arc::new(load_roots(ca, "CA file")?),
            None => default_roots(),
        };
        versions()?.with_root_certificates(roots)
    };
    let mut cfg = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert, "client certificate")?;
            let key_der = load_key(key, "client key")?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                format!(
                    "client certificate {} with key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("a client certificate needs both cert and key".into()),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// [`build_client_config`] for the upstream client.
pub(super) fn client_config(tls: &UpstreamTls) -> Result<Arc<ClientConfig>, UpstreamError> {
    build_client_config(tls)
        .map(Arc::new)
        .map_err(UpstreamError::Config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn default_settings_build() {
        let cfg = build_client_config(&UpstreamTls::default()).unwrap();
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let insecure = UpstreamTls {
            insecure_skip_verify: true,
            ..Default::default()
        };
        build_client_config(&insecure).unwrap();
    }

    #[test]
    fn a_private_ca_and_a_client_certificate_build() {
        let pki = test_pki::Pki::new();
        let mtls = UpstreamTls {
            ca: Some(pki.path("ca.crt")),
            client_cert: Some(pki.path("client.crt")),
            client_key: Some(pki.path("client.key")),
            ..Default::default()
        };
        build_client_config(&mtls).unwrap();
        // A key that is not the certificate's is refused, naming both files.
        let e = build_client_config(&UpstreamTls {
            client_key: Some(pki.path("server.key")),
            ..mtls
        })
        .unwrap_err();
        assert!(e.contains("client.crt") && e.contains("server.key"), "{e}");
    }

    #[test]
    fn missing_and_malformed_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        let e = build_client_config(&UpstreamTls {
            ca: Some(missing.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(e.contains("cannot read"), "{e}");

        let junk = write(dir.path(), "junk.crt", "hello\n");
        let e = build_client_config(&UpstreamTls {
            ca: Some(junk.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            e.contains("junk.crt") && e.contains("no PEM certificate"),
            "{e}"
        );

        let e = build_client_config(&UpstreamTls {
            client_cert: Some(junk.clone()),
            client_key: Some(junk.clone()),
            insecure_skip_verify: true,
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            e.contains("client certificate") && e.contains("junk.crt"),
            "{e}"
        );

        let e = build_client_config(&UpstreamTls {
            client_cert: Some(junk),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("both cert and key"), "{e}");
    }
}
