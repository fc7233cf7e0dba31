//! Serving over TLS (`http.tls`), with rustls: the certificate chain and key
//! from PEM files, the minimum version, and client certificates when
//! `clientcas` lists the CAs that sign them.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

use crate::config::{TlsConfig, TlsVersion};

/// The rustls configuration of `http.tls`; errors name the field.
pub fn server_config(tls: &TlsConfig) -> Result<ServerConfig, String> {
    let (Some(certificate), Some(key)) = (&tls.certificate, &tls.key) else {
        return Err("http.tls: certificate and key must be given together".into());
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect())
        .map_err(|err| format!("http.tls.certificate: {}: {err}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "http.tls.certificate: {} holds no certificate",
            certificate.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|err| format!("http.tls.key: {}: {err}", key.display()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.minimumtls {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls10 | TlsVersion::Tls11 => {
            return Err("http.tls.minimumtls: TLS 1.0 and 1.1 are not offered; use tls1.2 or tls1.3".into())
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|err| format!("http.tls.minimumtls: {err}"))?;
    let builder = if tls.clientcas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for path in &tls.clientcas {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|err| format!("http.tls.clientcas: {}: {err}", path.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|err| format!("http.tls.clientcas: {}: {err}", path.display()))?;
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|err| format!("http.tls.clientcas: {err}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|err| format!("http.tls: the certificate and key do not go together: {err}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
