//! How to reach one upstream: its address, credentials and TLS settings, as the operator
//! configured them. Here rather than in the engine's configuration so that the client compiles
//! without anything above it.

use std::fmt;
use std::path::PathBuf;

/// How to talk to one upstream registry: one `registries` entry of the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The registry as clients name it (`quay.io`, `upstream.test`, `myreg:5000`).
    pub name: String,
    pub scheme: Scheme,
    /// Where to connect instead of `scheme://name`, e.g. `http://127.0.0.1:5000`: an internal
    /// mirror of docker.io, or a test registry whose port cannot appear in an image reference.
    pub endpoint: Option<String>,
    pub auth: Option<Credentials>,
    /// How to secure the connection (ignored for `http`).
    pub tls: UpstreamTls,
}

/// Client-side TLS for one upstream: which server certificates to trust, and the certificate
/// we present when the upstream asks for one (mTLS). The default verifies the upstream against
/// the OS trust store and presents no certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM CA bundle to verify the upstream against, instead of the OS trust store.
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain and its private key, presented for mTLS. Both or neither.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate (handshake signatures are still checked). For test and
    /// lab registries only: it gives up protection against an impostor.
    pub insecure_skip_verify: bool,
}

impl UpstreamConfig {
    /// The settings used for an upstream that has no `registries` entry.
    pub fn anonymous(name: &str) -> Self {
        UpstreamConfig {
            name: name.to_string(),
            scheme: Scheme::Https,
            endpoint: None,
            auth: None,
            tls: UpstreamTls::default(),
        }
    }

    /// The base URL requests go to, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            // Docker Hub's API is not served at the name clients use for it.
            None if self.name == crate::oci::DOCKER_HUB => {
                format!("{}://{}", self.scheme, crate::oci::DOCKER_HUB_ENDPOINT_HOST)
            }
            None => format!("{}://{}", self.scheme, self.name),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheme {
    Http,
    #[default]
    Https,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// Basic-auth credentials. `Debug` hides the password so a logged config never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}
