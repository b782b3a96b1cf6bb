//! The reusable TLS accept loop (`tls::server_config` + `listener::serve`) with client
//! certificate auth, as an mTLS listener uses it: a client with a
//! certificate from the trusted CA gets through, one without a certificate or with one from
//! another CA fails the handshake.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use otaas_server::limits::ConnLimiter;
use otaas_server::listener::{self, ListenerOptions};
use otaas_server::tls::{self, Alpn};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A CA: (certificate PEM, issuer).
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A client identity (certificate + key PEM) issued by `issuer`.
fn client_identity(issuer: &Issuer<'static, KeyPair>) -> reqwest::Identity {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "agent-1");
    let cert = params.signed_by(&key, issuer).unwrap();
    reqwest::Identity::from_pem(format!("{}{}", cert.pem(), key.serialize_pem()).as_bytes())
        .unwrap()
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    // Given the server's own material from --tls-self-signed and a separate agent CA
    let dir = tempfile::tempdir().unwrap();
    let material = tls::self_signed(&dir.path().join("tls"), &["127.0.0.1".into()]).unwrap();
    let server_ca = std::fs::read(material.ca_pem_path.as_ref().unwrap()).unwrap();
    let (agent_ca_pem, agent_ca) = ca("agents");
    let (_, other_ca) = ca("someone else");
    let client_ca_path = dir.path().join("agents-ca.pem");
    std::fs::write(&client_ca_path, &agent_ca_pem).unwrap();
    let config = tls::server_config(&material, Some(&client_ca_path), Alpn::Http1).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);

    // and a listener serving through the shared accept loop
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/v1/opamp", tcp.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(listener::serve(
        tcp,
        Router::new().route("/v1/opamp", get(|| async { "hello agent" })),
        ListenerOptions {
            name: "opamp",
            tls: Some(config),
            conn_limit: ConnLimiter::new(0),
        },
        shutdown.clone(),
    ));
    let client = |identity: Option<reqwest::Identity>| {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&server_ca).unwrap())
            .timeout(Duration::from_secs(20));
        if let Some(id) = identity {
            b = b.identity(id);
        }
        b.build().unwrap()
    };

    // When an agent presents a certificate from the agent CA, it is served
    let resp = client(Some(client_identity(&agent_ca)))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hello agent");

    // Without a certificate, or with one from another CA, the handshake fails
    let err = client(None).get(&url).send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    let err = client(Some(client_identity(&other_ca)))
        .get(&url)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("listener drains")
        .unwrap();
}
