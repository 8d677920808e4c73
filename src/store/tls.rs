//! TLS to PostgreSQL over rustls (the stack teloxide already links, ring
//! provider): the verified connector every connection uses. Which mode a
//! URL gets is settled when it is parsed (`crate::config::DbConnect`).

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;
use crate::config::DbConnect;

/// The connector every pooled and one-off connection uses. TLS happens only
/// when the target's TLS mode asks for it; the server's certificate is
/// always verified: the public web roots, plus the CAs of
/// `database.tls_ca_file`.
pub(crate) fn connector(target: &DbConnect) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = target.tls_ca_file() {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                StoreError::Config(format!(
                    "database.tls_ca_file {}: cannot read PEM certificates: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(StoreError::Config(format!(
                "database.tls_ca_file {}: no certificate in it",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                StoreError::Config(format!(
                    "database.tls_ca_file {}: unusable certificate: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_named() {
        let cfg = crate::config::DatabaseConfig {
            tls_ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = connector(&cfg.primary().unwrap())
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("database.tls_ca_file"), "{err}");
    }
}
