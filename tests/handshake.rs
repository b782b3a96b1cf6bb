//! The real provider binary, started the way Terraform starts it: magic cookie, protocol
//! versions "5,6", and AutoMTLS with a client certificate made like go-plugin makes it (ECDSA
//! P-521, self-signed, CA:TRUE). The test parses the handshake line, connects with TLS presenting
//! that certificate, calls the provider, then `GRPCController.Shutdown`, and the process exits.

mod support;

use std::process::Stdio;
use std::sync::Arc;

use base64::Engine;
use hyper_util::rt::TokioIo;
use p521::pkcs8::DecodePrivateKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, Signer, SigningKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, SignatureAlgorithm, SignatureScheme};
use terraform_provider_otaas::proto::plugin::Empty;
use terraform_provider_otaas::proto::tfplugin6 as tf;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tonic::transport::{Channel, Endpoint};

use support::{bounded, try_unary, unary};

const COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// A client certificate as go-plugin's `generateCert` makes it, with its key.
struct ClientCert {
    pem: &'static str,
    der: CertificateDer<'static>,
    key: Arc<P521Key>,
}

/// Terraform's certificate and another of the same shape. ring, the workspace's crypto backend,
/// cannot make P-521 keys, so these are fixtures (see tests/fixtures/README.md).
fn go_plugin_style_cert(which: Fixture) -> ClientCert {
    let (pem, key) = match which {
        Fixture::Terraform => (
            include_str!("fixtures/terraform_client_p521.crt"),
            include_str!("fixtures/terraform_client_p521.key"),
        ),
        Fixture::Stranger => (
            include_str!("fixtures/stranger_client_p521.crt"),
            include_str!("fixtures/stranger_client_p521.key"),
        ),
    };
    let secret = p521::SecretKey::from_pkcs8_pem(key).unwrap();
    ClientCert {
        pem,
        der: CertificateDer::from_pem_slice(pem.as_bytes()).unwrap(),
        key: Arc::new(P521Key(
            p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes()).unwrap(),
        )),
    }
}

#[derive(Clone, Copy)]
enum Fixture {
    Terraform,
    Stranger,
}

/// The client side of Terraform's handshake: signing with the P-521 key (SHA-512), which ring's
/// rustls key loader does not take.
struct P521Key(p521::ecdsa::SigningKey);

impl std::fmt::Debug for P521Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("P521Key")
    }
}

impl SigningKey for P521Key {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP521_SHA512)
            .then(|| Box::new(P521Signer(self.0.clone())) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

struct P521Signer(p521::ecdsa::SigningKey);

impl std::fmt::Debug for P521Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("P521Signer")
    }
}

impl Signer for P521Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        use p521::ecdsa::signature::Signer as _;
        let signature: p521::ecdsa::Signature = self.0.sign(message);
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP521_SHA512
    }
}

/// Trusts exactly the certificate announced in the handshake line, like go-plugin's client.
#[derive(Debug)]
struct PinnedServer(CertificateDer<'static>, WebPkiSupportedAlgorithms);

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        assert_eq!(server_name.to_str(), "localhost");
        if end_entity.as_ref() == self.0.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "server certificate differs from the handshake".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.supported_schemes()
    }
}

struct Handshake {
    fields: Vec<String>,
    server_der: Vec<u8>,
}

fn spawn(env: &[(&str, &str)], tmp: &std::path::Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_terraform-provider-otaas"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start the provider binary")
}

async fn read_handshake(child: &mut Child) -> Handshake {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = bounded("handshake line", lines.next_line())
        .await
        .unwrap()
        .expect("a handshake line on stdout");
    let fields: Vec<String> = line.split('|').map(str::to_string).collect();
    assert_eq!(fields.len(), 6, "handshake line {line:?}");
    assert!(
        !fields[5].contains('='),
        "the certificate must be base64 without padding"
    );
    let server_der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&fields[5])
        .expect("raw std base64");
    Handshake { fields, server_der }
}

fn client_config(server_der: &[u8], client: Option<&ClientCert>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedServer(
        CertificateDer::from(server_der.to_vec()),
        provider.signature_verification_algorithms,
    );
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut cfg = match client {
        Some(c) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(
            CertifiedKey::new(vec![c.der.clone()], c.key.clone()),
        ))),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    cfg
}

async fn tls_channel(
    socket: String,
    cfg: rustls::ClientConfig,
) -> Result<Channel, tonic::transport::Error> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            let connector = connector.clone();
            async move {
                let stream = UnixStream::connect(&socket).await?;
                let tls = connector
                    .connect(ServerName::try_from("localhost").unwrap(), stream)
                    .await?;
                let (_, session) = tls.get_ref();
                assert_eq!(
                    session.alpn_protocol(),
                    Some(&b"h2"[..]),
                    "ALPN must negotiate h2"
                );
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

#[tokio::test]
async fn terraform_style_launch_with_auto_mtls_serves_and_exits_on_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let client = go_plugin_style_cert(Fixture::Terraform);
    let mut child = spawn(
        &[
            ("TF_PLUGIN_MAGIC_COOKIE", COOKIE),
            ("PLUGIN_PROTOCOL_VERSIONS", "5,6"),
            ("PLUGIN_MIN_PORT", "10000"),
            ("PLUGIN_MAX_PORT", "25000"),
            ("PLUGIN_CLIENT_CERT", client.pem),
        ],
        tmp.path(),
    );
    let hs = read_handshake(&mut child).await;
    assert_eq!(&hs.fields[..3], &["1", "6", "unix"]);
    assert_eq!(hs.fields[4], "grpc");
    let socket = hs.fields[3].clone();
    assert!(
        socket.starts_with(tmp.path().to_str().unwrap()),
        "socket {socket} should be in TMPDIR"
    );

    // The server certificate is what Go's client needs: SAN localhost and ServerAuth.
    let (_, x509) = x509_parser::parse_x509_certificate(&hs.server_der).unwrap();
    let san = x509.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        format!("{:?}", san.value.general_names),
        "[DNSName(\"localhost\")]"
    );
    assert!(
        x509.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );

    let ch = tls_channel(socket.clone(), client_config(&hs.server_der, Some(&client)))
        .await
        .expect("mTLS connect");
    let schema: tf::get_provider_schema::Response = unary(
        &ch,
        "/tfplugin6.Provider/GetProviderSchema",
        tf::get_provider_schema::Request {},
    )
    .await;
    let names: Vec<_> = schema
        .provider
        .unwrap()
        .block
        .unwrap()
        .attributes
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(
        names,
        vec![
            "endpoint",
            "token",
            "ca_cert_pem",
            "wait_for_rollout",
            "rollout_timeout"
        ]
    );

    // SIGINT is ignored (Terraform sends StopProvider instead): the provider keeps serving.
    let pid = child.id().unwrap().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let health: tonic_health::pb::HealthCheckResponse = unary(
        &ch,
        "/grpc.health.v1.Health/Check",
        tonic_health::pb::HealthCheckRequest {
            service: "plugin".into(),
        },
    )
    .await;
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let _: Empty = unary(&ch, "/plugin.GRPCController/Shutdown", Empty {}).await;
    let status = bounded("provider exit after Shutdown", child.wait())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        !std::path::Path::new(&socket).exists(),
        "the socket file is removed on exit"
    );
}

#[tokio::test]
async fn a_client_without_the_announced_certificate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = go_plugin_style_cert(Fixture::Terraform);
    let stranger = go_plugin_style_cert(Fixture::Stranger);
    let mut child = spawn(
        &[
            ("TF_PLUGIN_MAGIC_COOKIE", COOKIE),
            ("PLUGIN_PROTOCOL_VERSIONS", "6"),
            ("PLUGIN_CLIENT_CERT", expected.pem),
        ],
        tmp.path(),
    );
    let hs = read_handshake(&mut child).await;
    for client in [Some(&stranger), None] {
        let result =
            match tls_channel(hs.fields[3].clone(), client_config(&hs.server_der, client)).await {
                Err(e) => Err(e.to_string()),
                // TLS 1.3 reports a rejected client certificate after the handshake: the first call fails.
                Ok(ch) => try_unary::<_, tf::get_provider_schema::Response>(
                    &ch,
                    "/tfplugin6.Provider/GetProviderSchema",
                    tf::get_provider_schema::Request {},
                )
                .await
                .map(|_| ())
                .map_err(|s| s.to_string()),
            };
        assert!(
            result.is_err(),
            "a client with {:?} certificate must be refused",
            client.map(|_| "a foreign")
        );
    }
    child.kill().await.unwrap();
}

#[tokio::test]
async fn without_the_magic_cookie_it_explains_itself_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn(&[], tmp.path());
    let status = bounded("exit", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(1));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert_eq!(out, "", "nothing but the handshake may ever go to stdout");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(
        err.contains("This binary is a Terraform/OpenTofu provider plugin"),
        "stderr: {err}"
    );
}

#[tokio::test]
async fn a_client_that_does_not_accept_protocol_6_gets_no_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn(
        &[
            ("TF_PLUGIN_MAGIC_COOKIE", COOKIE),
            ("PLUGIN_PROTOCOL_VERSIONS", "5"),
        ],
        tmp.path(),
    );
    let status = bounded("exit", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(1));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert_eq!(out, "");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(
        err.contains("this provider speaks only version 6"),
        "stderr: {err}"
    );
}

#[tokio::test]
async fn without_plugin_client_cert_it_serves_plaintext_with_an_empty_cert_field() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn(
        &[
            ("TF_PLUGIN_MAGIC_COOKIE", COOKIE),
            ("PLUGIN_PROTOCOL_VERSIONS", "6,5"),
        ],
        tmp.path(),
    );
    let stdout = child.stdout.take().unwrap();
    let line = bounded("handshake", BufReader::new(stdout).lines().next_line())
        .await
        .unwrap()
        .unwrap();
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!((fields.len(), fields[5]), (6, ""));
    let ch = support::unix_channel(fields[3].into()).await;
    let _: Empty = unary(&ch, "/plugin.GRPCController/Shutdown", Empty {}).await;
    assert_eq!(bounded("exit", child.wait()).await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn debug_mode_prints_reattach_settings_and_serves_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_terraform-provider-otaas"));
    cmd.arg("--debug")
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let reattach = loop {
        let line = bounded("reattach line", lines.next_line())
            .await
            .unwrap()
            .expect("reattach instructions");
        if let Some(rest) = line.trim().strip_prefix("TF_REATTACH_PROVIDERS='") {
            break rest.trim_end_matches('\'').to_string();
        }
    };
    let json: serde_json::Value = serde_json::from_str(&reattach).unwrap();
    let entry = &json["registry.terraform.io/otaas/otaas"];
    assert_eq!(
        (
            entry["Protocol"].as_str(),
            entry["ProtocolVersion"].as_i64(),
            entry["Test"].as_bool()
        ),
        (Some("grpc"), Some(6), Some(true))
    );
    assert_eq!(entry["Pid"].as_u64(), child.id().map(u64::from));
    assert_eq!(entry["Addr"]["Network"], "unix");
    let ch = support::unix_channel(entry["Addr"]["String"].as_str().unwrap().into()).await;
    let schema: tf::get_provider_schema::Response = unary(
        &ch,
        "/tfplugin6.Provider/GetProviderSchema",
        tf::get_provider_schema::Request {},
    )
    .await;
    assert_eq!(schema.provider.unwrap().block.unwrap().attributes.len(), 5);
    child.kill().await.unwrap();
}
