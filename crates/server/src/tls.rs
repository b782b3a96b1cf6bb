//! TLS for the server's listeners: where the certificate comes from (`--tls-cert/--tls-key`, or
//! a private CA generated into `<data-dir>/tls/` with `--tls-self-signed`) and the rustls
//! [`ServerConfig`] built from it, optionally requiring client certificates (mTLS for OpAMP
//! agents). The accept loop that uses the config is in [`crate::listener`].
//!
//! Generated material (`--tls-self-signed`), all under `<data-dir>/tls/` (dir 0700, keys 0600):
//! - `ca.pem` / `ca.key`: a private CA (ECDSA P-256), made once and kept. `ca.pem` is what
//!   clients trust (the provider's `ca_cert_pem`, `curl --cacert`).
//! - `server.pem` / `server.key`: the serving certificate, issued by that CA for `localhost`,
//!   `127.0.0.1`, `::1`, the listen address and `--tls-san` names. It is re-issued from the
//!   same CA when the name list changes (`server.sans` records it), so clients keep trusting
//!   the server across restarts and name changes.
//!
//! A CA plus a leaf, rather than one self-signed leaf, because WebPKI verifiers (rustls, Go)
//! reject a CA certificate used as the end-entity certificate, and a leaf that is its own trust
//! anchor is brittle across client libraries.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServeConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path}: {message}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA {path}: {message}")]
    ClientCa { path: PathBuf, message: String },
}

/// A certificate chain and its key, ready to build server configs from.
pub struct TlsMaterial {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// With `--tls-self-signed`: the generated CA certificate clients should trust.
    pub ca_pem_path: Option<PathBuf>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TlsMaterial")
            .field("certs", &self.certs.len())
            .field("ca_pem_path", &self.ca_pem_path)
            .finish_non_exhaustive()
    }
}

/// The TLS material the flags ask for: `None` for plain HTTP (no TLS flag given).
pub fn load(config: &ServeConfig) -> Result<Option<TlsMaterial>, TlsError> {
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        return from_files(cert, key).map(Some);
    }
    if config.tls_self_signed {
        let mut sans = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        for addr in [config.listen, config.opamp_listen] {
            if !addr.ip().is_unspecified() {
                sans.push(addr.ip().to_string());
            }
        }
        sans.extend(config.tls_san.iter().map(|s| s.trim().to_string()));
        sans.retain(|s| !s.is_empty());
        sans.sort();
        sans.dedup();
        return self_signed(&config.data_dir.join("tls"), &sans).map(Some);
    }
    Ok(None)
}

/// Reads a PEM certificate chain and private key.
pub fn from_files(cert: &Path, key: &Path) -> Result<TlsMaterial, TlsError> {
    let certs = read_certs("certificate", cert)?;
    let key_pem = std::fs::read(key).map_err(|source| TlsError::Read {
        what: "private key",
        path: key.to_path_buf(),
        source,
    })?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        what: "private key",
        path: key.to_path_buf(),
        // The parse error names the PEM problem, never key bytes.
        message: format!("no usable PEM private key ({e})"),
    })?;
    Ok(TlsMaterial {
        certs,
        key: key_der,
        ca_pem_path: None,
    })
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            message: format!("bad PEM ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            path: path.to_path_buf(),
            message: "holds no PEM certificate".into(),
        });
    }
    Ok(certs)
}

/// Loads the generated CA and serving certificate from `dir`, creating what is missing.
pub fn self_signed(dir: &Path, sans: &[String]) -> Result<TlsMaterial, TlsError> {
    crate::data_dir::ensure_data_dir(dir).map_err(|e| TlsError::Write {
        path: e.path,
        source: e.source,
    })?;
    let ca_pem_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let leaf_path = dir.join("server.pem");
    let leaf_key_path = dir.join("server.key");
    let sans_path = dir.join("server.sans");

    // The CA: made once, then always reused (clients have it pinned).
    let (ca_pem, ca_key) = if ca_pem_path.exists() && ca_key_path.exists() {
        let pem = read_string("CA certificate", &ca_pem_path)?;
        let key = KeyPair::from_pem(&read_string("CA key", &ca_key_path)?)?;
        (pem, key)
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        // Key first: a CA certificate without its key could not issue the next leaf.
        write_file(&ca_key_path, &key.serialize_pem(), 0o600)?;
        write_file(&ca_pem_path, &cert.pem(), 0o644)?;
        (cert.pem(), key)
    };

    let wanted_sans = sans.join("\n");
    let current_sans = std::fs::read_to_string(&sans_path).unwrap_or_default();
    if !(leaf_path.exists() && leaf_key_path.exists() && current_sans == wanted_sans) {
        // The issuer name and key identifier come from the same params and key as the CA
        // certificate, so the leaf chains to the `ca.pem` clients hold.
        let issuer = Issuer::new(ca_params()?, ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "otaas server");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer)?;
        write_file(&leaf_key_path, &key.serialize_pem(), 0o600)?;
        // The chain a server sends: leaf, then the CA (harmless when the client has it).
        write_file(&leaf_path, &format!("{}{}", cert.pem(), ca_pem), 0o644)?;
        write_file(&sans_path, &wanted_sans, 0o644)?;
        tracing::info!(names = %sans.join(","), "Issued a TLS server certificate from the private CA");
    }
    let mut material = from_files(&leaf_path, &leaf_key_path)?;
    material.ca_pem_path = Some(ca_pem_path);
    Ok(material)
}

/// The private CA's certificate parameters (deterministic: re-used to issue later leaves).
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(DnType::CommonName, "otaas private CA");
    Ok(params)
}

fn read_string(what: &'static str, path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, content: &str, mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Write to a temporary name and rename, so a crash never leaves a half-written PEM.
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    f.write_all(content.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Which HTTP versions a listener offers over TLS (ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// `h2` and `http/1.1` (the REST API).
    Http2AndHttp1,
    /// `http/1.1` only: WebSocket upgrades (OpAMP) need HTTP/1.1.
    Http1,
}

/// A rustls server config over `material`. With `client_ca`, clients must present a
/// certificate that chains to one of the CA certificates in that PEM file (mTLS); the
/// handshake fails otherwise.
pub fn server_config(
    material: &TlsMaterial,
    client_ca: Option<&Path>,
    alpn: Alpn,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("client CA", path)? {
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::ClientCa {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(material.certs.clone(), material.key.clone_key())?;
    config.alpn_protocols = match alpn {
        Alpn::Http2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

/// `https` when TLS is on, for messages and URLs.
pub fn scheme(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}
