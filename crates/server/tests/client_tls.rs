//! The typed client against the real router served over TLS with a private CA: it connects
//! when given `ca_cert_pem`, and refuses the server without it or with another CA, saying
//! that the certificate is the problem (`is_untrusted_certificate`).

mod common;

use std::sync::Arc;

use otaas_api::{Client, ClientConfig, ClientError};
use otaas_server::config::{Secret, ServeConfig};
use otaas_server::state::AppState;
use otaas_server::store::sqlite::SqliteStore;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A TLS listener for `axum::serve`: handshakes that fail are dropped, not fatal.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[tokio::test]
async fn client_trusts_a_custom_ca() {
    // Given a private CA and a server certificate for 127.0.0.1 signed by it
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "otaas test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(leaf.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();

    // and the API served over it
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("otaas.db").display());
    let store = Arc::new(SqliteStore::open(&url).await.unwrap());
    let mut config = ServeConfig::for_data_dir(dir.path());
    config.admin_token = Some(Secret::new("tls-admin"));
    let state = AppState::new(store, config);
    let listener = TlsListener {
        tcp: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        acceptor: TlsAcceptor::from(Arc::new(tls)),
    };
    let addr = listener.tcp.local_addr().unwrap();
    let shutdown = state.shutdown.clone();
    let server = tokio::spawn(
        axum::serve(listener, otaas_server::api::router(state))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .into_future(),
    );

    // When the client is given the CA, it works end to end
    let mut cfg = ClientConfig::new(format!("https://{addr}"), "tls-admin");
    cfg.ca_cert_pem = Some(ca_cert.pem());
    let client = Client::new(cfg.clone()).unwrap();
    let p = client
        .create_pipeline(&common::pipeline_spec("over-tls"))
        .await
        .unwrap();
    assert_eq!(
        client
            .find_pipeline("over-tls")
            .await
            .unwrap()
            .map(|x| x.id),
        Some(p.id)
    );

    // Without the CA the server is not trusted: a transport error, not an API error
    cfg.ca_cert_pem = None;
    let untrusting = Client::new(cfg.clone()).unwrap();
    let err = untrusting.list_pipelines().await.unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert_eq!(err.status(), None);
    assert!(err.is_untrusted_certificate(), "{err:?}");
    let probed = untrusting.probe().await.unwrap_err();
    assert!(probed.is_untrusted_certificate(), "{probed:?}");
    // and neither is it with another CA
    let other_key = KeyPair::generate().unwrap();
    let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    cfg.ca_cert_pem = Some(other.self_signed(&other_key).unwrap().pem());
    let wrong_ca = Client::new(cfg.clone()).unwrap();
    assert!(
        wrong_ca
            .probe()
            .await
            .unwrap_err()
            .is_untrusted_certificate()
    );
    // With the right CA the probe passes; a closed port is not a certificate problem
    assert!(client.probe().await.is_ok());
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let mut nowhere = ClientConfig::new(format!("https://{closed_addr}"), "t");
    nowhere.ca_cert_pem = Some(ca_cert.pem());
    let err = Client::new(nowhere).unwrap().probe().await.unwrap_err();
    assert!(!err.is_untrusted_certificate(), "{err:?}");

    // A CA that is not PEM is a configuration error
    cfg.ca_cert_pem = Some("not a certificate".into());
    assert!(matches!(Client::new(cfg), Err(ClientError::Config(_))));

    server.abort();
}

#[test]
fn client_config_needs_a_scheme() {
    let err = Client::new(ClientConfig::new("otaas.internal:8080", "t")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid client configuration: endpoint must start with http:// or https://, got \"otaas.internal:8080\""
    );
}
