//! `serverTlsConfig` and the registries' `tls`: every file is read and checked at load time.

use actors::config::UpstreamTls;

use super::*;
use crate::server::tls::ClientAuth;
use test_pki::Pki;

/// The test PKI's files these tests name: its CA (`ca`), its server certificate and key for
/// `serverTlsConfig` (`cert`, `key`) and its client certificate and key for the registries'
/// `tls` (`client_cert`, `client_key`); `junk` is a file that is not PEM, `missing` a path with
/// no file. The files are removed with `_pki`.
struct Files {
    cert: String,
    key: String,
    client_cert: String,
    client_key: String,
    ca: String,
    junk: String,
    missing: String,
    _pki: Pki,
}

fn files() -> Files {
    let pki = Pki::new();
    Files {
        cert: pki.file("server.crt"),
        key: pki.file("server.key"),
        client_cert: pki.file("client.crt"),
        client_key: pki.file("client.key"),
        ca: pki.file("ca.crt"),
        junk: pki.file("junk.pem"),
        missing: pki.file("missing.crt"),
        _pki: pki,
    }
}

#[test]
fn server_tls_one_way_and_mtls_load() {
    let pki = files();
    let (cert, key, ca) = (&pki.cert, &pki.key, &pki.ca);
    let config = load_yaml(&format!(
        "serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  ca:\n  clientAuth: none\n"
    ))
    .unwrap();
    let tls = config.server_tls.unwrap();
    assert_eq!(tls.client_auth, ClientAuth::None);
    assert_eq!(tls.cert, PathBuf::from(cert));
    let config = load_yaml(&format!(
        "serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  ca: {ca}\n  clientAuth: verify\n"
    ))
    .unwrap();
    let tls = config.server_tls.unwrap();
    assert_eq!(tls.client_auth, ClientAuth::Verify);
    assert_eq!(tls.ca, Some(PathBuf::from(ca)));
    // Verify without a CA uses the OS trust store.
    load_yaml(&format!(
        "serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  clientAuth: verify\n"
    ))
    .unwrap();
    // All empty (the seed's defaults): plain HTTP.
    let config = load_yaml("serverTlsConfig:\n  cert:\n  key:\n  clientAuth:\n").unwrap();
    assert_eq!(config.server_tls, None);
}

#[test]
fn server_tls_errors_name_the_key_and_the_file() {
    let pki = files();
    let (cert, key, junk, missing) = (&pki.cert, &pki.key, &pki.junk, &pki.missing);
    load_err(
        &format!("serverTlsConfig:\n  cert: {missing}\n  key: {key}\n"),
        &["serverTlsConfig.cert", missing, "cannot read"],
    );
    load_err(
        &format!("serverTlsConfig:\n  cert: {junk}\n  key: {key}\n"),
        &["serverTlsConfig.cert", junk, "no PEM certificate"],
    );
    load_err(
        &format!("serverTlsConfig:\n  cert: {cert}\n  key: {junk}\n"),
        &["serverTlsConfig.key", junk, "private key"],
    );
    load_err(
        &format!(
            "serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  ca: {junk}\n  \
             clientAuth: verify\n"
        ),
        &["serverTlsConfig.ca", junk],
    );
    load_err(
        &format!("serverTlsConfig:\n  cert: {cert}\n"),
        &["serverTlsConfig.key", "required"],
    );
    load_err(
        "serverTlsConfig:\n  clientAuth: verify\n",
        &["serverTlsConfig.clientAuth", "cert"],
    );
    load_err(
        &format!("serverTlsConfig:\n  cert: {cert}\n  key: {key}\n  clientAuth: yes\n"),
        &["serverTlsConfig.clientAuth", "none or verify"],
    );
    load_err(
        "serverTlsConfig:\n  ca: /etc/ca.pem\n",
        &["serverTlsConfig.ca", "only used with TLS"],
    );
}

#[test]
fn registry_tls_settings_load() {
    let pki = files();
    let (cert, key, ca) = (&pki.client_cert, &pki.client_key, &pki.ca);
    let config = load_yaml(&format!(
        "registries:\n- name: a.io\n  tls:\n    ca: {ca}\n- name: b.io\n  tls:\n    \
         insecureSkipVerify: true\n- name: c.io\n  tls:\n    cert: {cert}\n    \
         key: {key}\n    ca: {ca}\n- name: d.io\n  tls:\n    cert: {cert}\n    \
         key: {key}\n    insecureSkipVerify: true\n- name: e.io\n  tls: {{}}\n"
    ))
    .unwrap();
    let tls: Vec<&UpstreamTls> = config.registries.iter().map(|r| &r.tls).collect();
    assert_eq!(tls[0].ca, Some(PathBuf::from(ca)));
    assert!(!tls[0].insecure_skip_verify);
    assert!(tls[1].insecure_skip_verify);
    assert_eq!(tls[2].client_cert, Some(PathBuf::from(cert)));
    assert_eq!(tls[2].client_key, Some(PathBuf::from(key)));
    assert!(tls[3].insecure_skip_verify && tls[3].client_cert.is_some());
    assert_eq!(tls[4], &UpstreamTls::default());
}

#[test]
fn registry_tls_errors_name_the_key_and_the_file() {
    let pki = files();
    let (cert, key) = (&pki.client_cert, &pki.client_key);
    let (junk, missing) = (&pki.junk, &pki.missing);
    load_err(
        &format!("registries:\n- name: a.io\n  tls:\n    ca: {missing}\n"),
        &["registries[0].tls.ca", missing, "cannot read"],
    );
    load_err(
        &format!("registries:\n- name: a.io\n  tls:\n    ca: {junk}\n"),
        &["registries[0].tls.ca", junk, "no PEM certificate"],
    );
    load_err(
        &format!("registries:\n- name: a.io\n  tls:\n    cert: {junk}\n    key: {key}\n"),
        &["registries[0].tls.cert", junk],
    );
    load_err(
        &format!("registries:\n- name: a.io\n  tls:\n    cert: {cert}\n    key: {junk}\n"),
        &["registries[0].tls.key", junk],
    );
    load_err(
        &format!("registries:\n- name: a.io\n  tls:\n    cert: {cert}\n"),
        &["registries[0].tls.key", "required"],
    );
    load_err(
        &format!("registries:\n- name: a.io\n  tls:\n    key: {key}\n"),
        &["registries[0].tls.cert", "required"],
    );
}
