//! Certificates for TLS tests: a throwaway certificate authority and a server certificate it
//! signed for `localhost` and 127.0.0.1, written as PEM files in a temporary directory.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use tempfile::TempDir;

use crate::{HarnessError, Result};

/// A test CA and one server certificate, as files.
#[derive(Debug)]
pub struct TestCerts {
    dir: TempDir,
}

fn failed(what: &str, e: rcgen::Error) -> HarnessError {
    HarnessError::Command {
        command: format!("rcgen: {what}"),
        output: e.to_string(),
    }
}

impl TestCerts {
    /// Generates the CA and the server certificate.
    pub fn generate() -> Result<Self> {
        let ca_key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA params", e))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Surge test CA");
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|e| failed("CA certificate", e))?;
        let key = KeyPair::generate().map_err(|e| failed("server key", e))?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])
            .map_err(|e| failed("server params", e))?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .map_err(|e| failed("server certificate", e))?;
        let dir = tempfile::Builder::new().prefix("surge-tls-").tempdir()?;
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem())?;
        std::fs::write(dir.path().join("server.pem"), cert.pem())?;
        std::fs::write(dir.path().join("server.key"), key.serialize_pem())?;
        Ok(Self { dir })
    }

    /// The CA certificate (PEM): what clients trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
