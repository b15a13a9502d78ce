//! TLS to Postgres through rustls: the platform's trusted roots plus, when configured, the
//! certificate authority in `DATABASE_CA_FILE` (a private CA such as CloudNativePG's). The
//! URL's `sslmode` decides whether TLS is used — `disable`, `prefer` (the default: TLS when
//! the server offers it) or `require` — and when it is, the server's certificate is always
//! verified against these roots and the host name.

use std::sync::Arc;

use rustls::RootCertStore;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::DbError;
use crate::settings::parse_ca;

/// The platform's roots, and the certificates in `ca` (PEM) when given.
pub fn roots(ca: Option<&[u8]>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A platform root rustls cannot use is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    if let Some(pem) = ca {
        for cert in parse_ca(pem)? {
            roots
                .add(cert)
                .map_err(|e| format!("a certificate in the CA file is unusable: {e}"))?;
        }
    }
    Ok(roots)
}

/// The connector every pool uses.
pub fn connector(ca: Option<&[u8]>) -> Result<MakeRustlsConnect, DbError> {
    let roots = roots(ca).map_err(|e| DbError::Config(format!("DATABASE_CA_FILE: {e}")))?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(Arc::new(roots))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
