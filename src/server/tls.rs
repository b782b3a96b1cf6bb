//! AutoMTLS as Terraform's go-plugin client expects it: a fresh self-signed server certificate
//! (SAN `localhost`, ServerAuth) announced in the handshake line, and a TLS server that requires
//! exactly the client certificate Terraform passed in `PLUGIN_CLIENT_CERT`.
//!
//! Terraform's client certificate is ECDSA P-521 with CA:TRUE used as a leaf. WebPKI chain
//! building rejects a CA used as an end entity, and ring cannot verify P-521, so the stock
//! verifier fails the handshake. `PinnedClientCert` instead compares the presented certificate
//! byte for byte with the one we were given and checks the handshake signature with aws-lc-rs.
//!
//! Everything that needs randomness (our key, the certificate's signature, the TLS handshake's
//! key exchange) runs on ring, which reads the OS random source directly. aws-lc seeds its own
//! generator from a CPU-jitter entropy source on first use, ~30 ms of CPU that made the provider
//! start slower than Go's providers; only signature *verification* (deterministic, no random
//! generator) is left to aws-lc-rs.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("parsing PLUGIN_CLIENT_CERT: {0}")]
    ClientCert(String),
    #[error("generating the server certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("building the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server side of AutoMTLS: the rustls config and the DER of our certificate (for the
/// handshake line).
pub struct AutoMtls {
    pub config: Arc<ServerConfig>,
    pub server_cert_der: Vec<u8>,
}

/// Builds the TLS server for the client certificate PEM Terraform passed.
pub fn auto_mtls(client_cert_pem: &str) -> Result<AutoMtls, TlsError> {
    let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
        .map_err(|e| TlsError::ClientCert(e.to_string()))?;
    let (server_cert, key) = generate_server_cert()?;
    // ring for the cipher suites, key exchange, our signing key and the random source; aws-lc-rs
    // only for verifying the client's signature (ring has no P-521).
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        signature_verification_algorithms: rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms,
        ..rustls::crypto::ring::default_provider()
    });
    let verifier = PinnedClientCert {
        expected: client_cert,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![server_cert.clone()], key)?;
    // grpc-go clients (Terraform) refuse a TLS server that does not negotiate h2 by ALPN.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(AutoMtls {
        config: Arc::new(config),
        server_cert_der: server_cert.to_vec(),
    })
}

/// A self-signed certificate shaped like go-plugin's own: CN/SAN `localhost`, CA:TRUE with
/// CertSign (Go accepts a self-signed root as the leaf), ServerAuth and ClientAuth.
fn generate_server_cert() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    };
    let key = RingP384::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "otaas");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8));
    Ok((cert.der().clone(), key_der))
}

/// An ECDSA P-384 key generated and used by ring. rcgen's own `KeyPair` runs on aws-lc-rs in
/// this workspace (the bench and tests need P-521 keys, which ring cannot make), and aws-lc's
/// first random draw costs its jitter-entropy seeding; this key signs our certificate instead.
struct RingP384 {
    pkcs8: Vec<u8>,
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl RingP384 {
    fn generate() -> Result<Self, rcgen::Error> {
        let alg = &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng)
            .map_err(|_| rcgen::Error::RingUnspecified)?;
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
            .map_err(|e| rcgen::Error::RingKeyRejected(e.to_string()))?;
        Ok(Self {
            pkcs8: pkcs8.as_ref().to_vec(),
            key,
            rng,
        })
    }
}

impl rcgen::PublicKeyData for RingP384 {
    fn der_bytes(&self) -> &[u8] {
        // The uncompressed point, as rcgen expects for an EC subjectPublicKey.
        ring::signature::KeyPair::public_key(&self.key).as_ref()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P384_SHA384
    }
}

impl rcgen::SigningKey for RingP384 {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig = self
            .key
            .sign(&self.rng, msg)
            .map_err(|_| rcgen::Error::RingUnspecified)?;
        Ok(sig.as_ref().to_vec())
    }
}

/// Accepts exactly one client certificate (the one Terraform generated for this process).
#[derive(Debug)]
struct PinnedClientCert {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No CA hints: Go's client then offers its certificate whatever its issuer.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    // The signature proves the peer holds the key of the pinned certificate. These helpers only
    // parse the certificate's public key (no chain or CA checks) and verify with aws-lc-rs, which
    // includes ECDSA P-521.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
