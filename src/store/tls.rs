//! TLS to PostgreSQL over rustls (the stack teloxide already links, ring
//! provider): which mode a URL asks for, and the verified connector.

use std::str::FromStr;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;
use crate::config::DatabaseConfig;

/// The connector every pooled and one-off connection uses. TLS happens only
/// when the URL's `sslmode` asks for it (see [`effective_ssl_mode`]); the
/// server's certificate is always verified: the public web roots, plus the
/// CAs of `database.tls_ca_file`.
pub(crate) fn connector(cfg: &DatabaseConfig) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &cfg.tls_ca_file {
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

/// The SSL mode a URL really gets. tokio-postgres reads a missing `sslmode`
/// as `prefer`; kuryer keeps such connections plain, as they always were, so
/// that a server offering a certificate no root vouches for (Debian's
/// self-signed "snakeoil") does not turn into a refused connection. An
/// explicit `prefer` or `require` gets verified TLS.
pub(crate) fn effective_ssl_mode(url: &str) -> Result<SslMode, StoreError> {
    let pg = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::Config(format!("unparsable database URL: {e}")))?;
    let explicit = url.contains("sslmode");
    Ok(match pg.get_ssl_mode() {
        SslMode::Prefer if !explicit => SslMode::Disable,
        mode => mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_sslmode_stays_plain() {
        let mode = |u: &str| effective_ssl_mode(u).unwrap();
        assert_eq!(mode("postgres://u@h/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@h/db?sslmode=prefer"), SslMode::Prefer);
        assert_eq!(mode("postgres://u@h/db?sslmode=require"), SslMode::Require);
        assert_eq!(mode("host=h user=u sslmode=require"), SslMode::Require);
        assert_eq!(mode("postgres://u@h/db?sslmode=disable"), SslMode::Disable);
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let cfg = DatabaseConfig {
            tls_ca_file: Some("/nonexistent/ca.pem".into()),
            ..DatabaseConfig::default()
        };
        let err = connector(&cfg).err().expect("refused").to_string();
        assert!(err.contains("database.tls_ca_file"), "{err}");
    }
}
