//! AutoMTLS as Terraform's go-plugin client expects it: a fresh self-signed server certificate
//! (SAN `localhost`, ServerAuth) announced in the handshake line, and a TLS server that requires
//! exactly the client certificate Terraform passed in `PLUGIN_CLIENT_CERT`.
//!
//! Terraform's client certificate is ECDSA P-521 with CA:TRUE used as a leaf. WebPKI chain
//! building rejects a CA used as an end entity, so `PinnedClientCert` instead compares the
//! presented certificate byte for byte with the one we were given and checks the handshake
//! signature.
//!
//! ring is the workspace's only crypto backend, and ring has no P-521. The one signature scheme
//! Terraform's key needs (ECDSA P-521 with SHA-512) is verified by `EcdsaP521Sha512`, on the
//! pure-Rust `p521` crate, added to ring's verification algorithms for this config only.
//! Verification needs no random generator, so nothing here seeds one beyond ring's.
//!
//! Everything that needs randomness (our key, the certificate's signature, the TLS handshake's
//! key exchange) runs on ring, which reads the OS random source directly. (aws-lc, the other
//! backend rustls offers, seeds its own generator from a CPU-jitter entropy source on first use,
//! ~30 ms of CPU that made the provider start slower than Go's providers; it is not compiled in.)

use std::sync::{Arc, LazyLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, PrivatePkcs8KeyDer,
    SignatureVerificationAlgorithm, UnixTime, alg_id,
};
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
    // ring for everything, plus a P-521 verifier for Terraform's client key.
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        signature_verification_algorithms: verification_algorithms(),
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

/// An ECDSA P-384 key generated and used by ring directly, so that its PKCS#8 form is at hand
/// for rustls without a round trip through rcgen's `KeyPair`.
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
    // parse the certificate's public key (no chain or CA checks) and verify with ring's
    // algorithms or, for Terraform's P-521 key, with `EcdsaP521Sha512`.
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

/// ring's signature verification algorithms plus ECDSA P-521 with SHA-512. rustls wants
/// `'static` slices, hence the statics; they are built once, on the first AutoMTLS set-up.
fn verification_algorithms() -> WebPkiSupportedAlgorithms {
    static P521: &dyn SignatureVerificationAlgorithm = &EcdsaP521Sha512;
    static ALL: LazyLock<Vec<&'static dyn SignatureVerificationAlgorithm>> = LazyLock::new(|| {
        let mut all = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all
            .to_vec();
        all.push(P521);
        all
    });
    type Mapping = (
        SignatureScheme,
        &'static [&'static dyn SignatureVerificationAlgorithm],
    );
    static MAPPING: LazyLock<Vec<Mapping>> = LazyLock::new(|| {
        let mut mapping = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .mapping
            .to_vec();
        mapping.push((
            SignatureScheme::ECDSA_NISTP521_SHA512,
            std::slice::from_ref(&P521),
        ));
        mapping
    });
    WebPkiSupportedAlgorithms {
        all: ALL.as_slice(),
        mapping: MAPPING.as_slice(),
    }
}

/// ECDSA over P-521 with SHA-512, the scheme of go-plugin's client key, on the pure-Rust `p521`
/// crate. Like webpki's own verifiers it takes the public key as the SEC1 point from the
/// certificate's subjectPublicKey and the signature as ASN.1 DER.
#[derive(Debug)]
struct EcdsaP521Sha512;

impl SignatureVerificationAlgorithm for EcdsaP521Sha512 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        use p521::ecdsa::signature::Verifier;
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature =
            p521::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p521::ecdsa::signature::Signer;
    use p521::pkcs8::DecodePrivateKey;

    const CERT: &str = include_str!("../../tests/fixtures/terraform_client_p521.crt");
    const KEY: &str = include_str!("../../tests/fixtures/terraform_client_p521.key");

    fn signing_key() -> p521::ecdsa::SigningKey {
        let secret = p521::SecretKey::from_pkcs8_pem(KEY).unwrap();
        p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes()).unwrap()
    }

    /// Verifies as webpki would: the public key is the certificate's subjectPublicKey bits.
    fn verify(message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let public_key = &x509.public_key().subject_public_key.data;
        let alg = verification_algorithms()
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == SignatureScheme::ECDSA_NISTP521_SHA512)
            .map(|(_, algs)| algs[0])
            .unwrap();
        alg.verify_signature(public_key, message, signature)
    }

    #[test]
    fn a_p521_sha512_signature_from_the_certificates_key_verifies() {
        let message = b"TLS 1.3, client CertificateVerify";
        let signature: p521::ecdsa::Signature = signing_key().sign(message);
        verify(message, signature.to_der().as_bytes()).unwrap();
    }

    #[test]
    fn a_p521_signature_over_other_bytes_or_from_another_key_is_refused() {
        let message = b"TLS 1.3, client CertificateVerify";
        let signature: p521::ecdsa::Signature = signing_key().sign(b"something else");
        assert!(verify(message, signature.to_der().as_bytes()).is_err());
        let other = p521::SecretKey::from_pkcs8_pem(include_str!(
            "../../tests/fixtures/stranger_client_p521.key"
        ))
        .unwrap();
        let other = p521::ecdsa::SigningKey::from_bytes(&other.to_bytes()).unwrap();
        let signature: p521::ecdsa::Signature = other.sign(message);
        assert!(verify(message, signature.to_der().as_bytes()).is_err());
        assert!(verify(message, b"not DER").is_err());
    }

    #[test]
    fn the_auto_mtls_verifier_asks_for_terraforms_p521_scheme_and_rings_own() {
        let schemes = verification_algorithms().supported_schemes();
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
        assert!(schemes.contains(&SignatureScheme::ED25519));
        auto_mtls(CERT).unwrap();
    }
}
