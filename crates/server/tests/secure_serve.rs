//! Real-socket security tests on the real `otaas` binary (127.0.0.1, port 0): TLS with the
//! generated private CA (round trip through the typed client the provider uses, reuse across a
//! restart), the per-address connection cap, and canary secrets that must never show up in a
//! response, the debug log, or (for tokens) the database file.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use otaas_api::*;
use otaas_testkit::procs::Serve;

/// A server that generated its admin token into `data_dir`, with `args` and `env`.
fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut b = Serve::builder(data_dir)
        .bootstrap_admin()
        .defaults()
        .args(args);
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start()
}

fn https_client(addr: &str, token: &str, ca_pem: Option<&str>) -> Client {
    let mut config = ClientConfig::new(format!("https://{addr}"), token);
    config.ca_cert_pem = ca_pem.map(str::to_string);
    Client::new(config).unwrap()
}

#[tokio::test]
async fn tls_round_trip_with_the_generated_ca_and_reuse_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = "tls-admin-token-for-test";
    let env = [("OTAAS_ADMIN_TOKEN", admin)];

    // Given a server started with --tls-self-signed
    let server = start(&data, &["--tls-self-signed"], &env);
    let tls_dir = data.join("tls");
    let ca = std::fs::read_to_string(tls_dir.join("ca.pem")).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(tls_dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    // When the provider's client trusts ca.pem, the API works over https
    let c = https_client(&server.api, admin, Some(&ca));
    let p = c.create_pipeline(&pipeline_spec("tls")).await.unwrap();
    assert_eq!(c.get_pipeline(p.id).await.unwrap().name, "tls");

    // A client that does not trust the CA cannot connect, and plain HTTP gets no API answer
    let err = https_client(&server.api, admin, None)
        .list_pipelines()
        .await
        .unwrap_err();
    assert_eq!(err.status(), None, "{err}");
    let plain = Client::new(ClientConfig::new(format!("http://{}", server.api), admin))
        .unwrap()
        .list_pipelines()
        .await
        .expect_err("plain HTTP must not reach the API");
    // It is told so at once (a 400 naming https://), not left to retry a failing handshake
    assert_eq!(plain.status(), Some(400), "{plain}");
    assert!(plain.to_string().contains("https://"), "{plain}");
    let log = server.stop();
    assert!(
        log.contains(&format!(
            "otaas: tls enabled with a generated private CA; clients trust {}",
            tls_dir.join("ca.pem").display()
        )),
        "{log}"
    );

    // When it restarts, the same CA and certificate are reused and the old CA still works
    let server_pem = std::fs::read(tls_dir.join("server.pem")).unwrap();
    let server = start(&data, &["--tls-self-signed"], &env);
    assert_eq!(std::fs::read_to_string(tls_dir.join("ca.pem")).unwrap(), ca);
    assert_eq!(
        std::fs::read(tls_dir.join("server.pem")).unwrap(),
        server_pem
    );
    let c = https_client(&server.api, admin, Some(&ca));
    assert_eq!(c.list_pipelines().await.unwrap().len(), 1);
    drop(server);

    // With an extra name the serving certificate is re-issued from the same CA
    let server = start(
        &data,
        &["--tls-self-signed", "--tls-san", "otaas.test"],
        &env,
    );
    assert_ne!(
        std::fs::read(tls_dir.join("server.pem")).unwrap(),
        server_pem
    );
    assert_eq!(std::fs::read_to_string(tls_dir.join("ca.pem")).unwrap(), ca);
    let c = https_client(&server.api, admin, Some(&ca));
    assert_eq!(c.list_pipelines().await.unwrap().len(), 1);
}

#[test]
fn tls_flags_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(otaas_testkit::bin::otaas())
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(dir.path().join("missing.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("missing.key"))
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("OTAAS_DATABASE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("otaas serve: TLS: reading certificate") && stderr.contains("missing.pem"),
        "{stderr}"
    );
    // --tls-cert without --tls-key is a usage error
    let out = Command::new(otaas_testkit::bin::otaas())
        .args(["serve", "--tls-cert", "x.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

/// Sends one request on a fresh connection; returns the raw response text.
fn raw_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Whether the server already answered (or closed) a connection that sent only part of a
/// request: a refusal, since an admitted one waits for the rest.
fn answered(conn: &TcpStream) -> bool {
    conn.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let answered =
        !matches!(conn.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    conn.set_nonblocking(false).unwrap();
    answered
}

#[test]
fn connections_per_address_are_capped_with_a_clear_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir.path().join("data"),
        &["--max-conns-per-ip", "2"],
        &[("OTAAS_ADMIN_TOKEN", "conn-admin")],
    );
    // Given two connections from 127.0.0.1 in the middle of a request (a silent connection
    // does not count: see tests/timeouts.rs)
    let started = || {
        let mut s = TcpStream::connect(&server.api).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        s
    };
    let mut held = [started(), started()];

    // When a third one asks for something, it gets a 429 with our body and is closed (once
    // the server has read the first two's first bytes: a bounded wait)
    let mut resp = String::new();
    for _ in 0..100 {
        resp = raw_get(&server.api, "/healthz");
        if resp.starts_with("HTTP/1.1 429") {
            break;
        }
        // The server admits connections in the order their first bytes reach it: a probe
        // that overtook a held connection took its slot, and the held one was refused. Open
        // that one again, so the two held connections are the ones holding the slots.
        for conn in &mut held {
            if answered(conn) {
                *conn = started();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        resp.starts_with("HTTP/1.1 429"),
        "{resp}\nserver log:\n{}",
        server.log()
    );
    let lower = resp.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1\r\n"), "{resp}");
    assert!(lower.contains("connection: close\r\n"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        body["error"]["message"],
        "too many open connections from your address (limit 2); close some and retry"
    );

    // Then once one closes, new connections are served again (bounded wait for the server to
    // notice the close)
    let [a, b] = held;
    drop(a);
    let mut served = String::new();
    for _ in 0..100 {
        served = raw_get(&server.api, "/healthz");
        if served.starts_with("HTTP/1.1 200") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    drop(b);
    let log = server.stop();
    assert!(
        log.contains("Too many connections from one address; refusing"),
        "{log}"
    );
}

/// Every place a secret could leak to, as text.
fn assert_absent(canaries: &[&str], what: &str, text: &str) {
    for c in canaries {
        assert!(!text.contains(c), "canary {c:?} found in {what}:\n{text}");
    }
}

#[tokio::test]
async fn canary_secrets_never_appear_in_responses_logs_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = format!("canary-admin-{}", uuid::Uuid::new_v4().simple());
    let header_secret = format!("canary-header-{}", uuid::Uuid::new_v4().simple());
    let server = start(
        &data,
        &[],
        &[
            ("OTAAS_ADMIN_TOKEN", admin.as_str()),
            ("OTAAS_LOG", "debug"),
            ("RUST_LOG", "debug"),
        ],
    );
    let base = format!("http://{}/api/v1", server.api);
    let http = reqwest::Client::new();
    // Every response body we get, for the final grep
    let mut bodies: Vec<(String, String)> = Vec::new();
    let mut call = async |method: reqwest::Method, path: &str, body: Option<String>| {
        let mut req = http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(&admin);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        bodies.push((format!("{method} {path} -> {status}"), text.clone()));
        (status, text)
    };

    // Given a pipeline, a bearer endpoint, a binding with a secret header and a group
    let (_, p) = call(
        reqwest::Method::POST,
        "/pipelines",
        Some(serde_json::to_string(&pipeline_spec("canary")).unwrap()),
    )
    .await;
    let pid: PipelineId = serde_json::from_str::<Pipeline>(&p).unwrap().id;
    let mut espec = endpoint_spec("canary-in", pid, 4318);
    espec.auth = EndpointAuth::Bearer;
    let (status, e) = call(
        reqwest::Method::POST,
        "/endpoints",
        Some(serde_json::to_string(&espec).unwrap()),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    let e: Endpoint = serde_json::from_str(&e).unwrap();
    let ingest = e.token.clone().unwrap();
    let mut bspec = binding_spec("canary-out", pid);
    bspec.destinations[0]
        .headers
        .insert("x-api-key".into(), header_secret.clone());
    let (status, b) = call(
        reqwest::Method::POST,
        "/exporter-bindings",
        Some(serde_json::to_string(&bspec).unwrap()),
    )
    .await;
    assert_eq!(status, 201, "{b}");
    let bid = serde_json::from_str::<ExporterBinding>(&b).unwrap().id;
    let (status, g) = call(
        reqwest::Method::POST,
        "/agent-groups",
        Some(serde_json::to_string(&group_spec("canary-group", vec![pid])).unwrap()),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let gid = serde_json::from_str::<AgentGroup>(&g).unwrap().id;
    // and a minted API token
    let (status, t) = call(
        reqwest::Method::POST,
        "/tokens",
        Some(r#"{"scope":"read_only","description":"canary"}"#.into()),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let minted = serde_json::from_str::<TokenCreated>(&t).unwrap().token;

    // When everything is read back, updated, and sent in wrong in ways that make errors
    let mut bspec2 = bspec.clone();
    bspec2.destinations[0].endpoint = Some("tempo:4317".into());
    for (method, path, body) in [
        (reqwest::Method::GET, "/pipelines".to_string(), None),
        (reqwest::Method::GET, "/endpoints".to_string(), None),
        (reqwest::Method::GET, format!("/endpoints/{}", e.id), None),
        (reqwest::Method::GET, "/exporter-bindings".to_string(), None),
        (
            reqwest::Method::GET,
            format!("/exporter-bindings/{bid}"),
            None,
        ),
        (
            reqwest::Method::PUT,
            format!("/exporter-bindings/{bid}"),
            Some(serde_json::to_string(&bspec2).unwrap()),
        ),
        (reqwest::Method::GET, "/agent-groups".to_string(), None),
        (reqwest::Method::GET, format!("/agent-groups/{gid}"), None),
        (
            reqwest::Method::GET,
            format!("/agent-groups/{gid}/config"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/agent-groups/{gid}/revisions"),
            None,
        ),
        (reqwest::Method::GET, "/tokens".to_string(), None),
        // A header map of the wrong shape: serde would quote the value
        (
            reqwest::Method::POST,
            "/exporter-bindings".to_string(),
            Some(
                serde_json::json!({
                    "name": "bad", "pipeline_id": pid,
                    "destinations": [{"name": "d", "type": "otlp", "headers": header_secret}]
                })
                .to_string(),
            ),
        ),
        // A header value of the wrong type next to the secret one
        (
            reqwest::Method::POST,
            "/exporter-bindings".to_string(),
            Some(
                serde_json::json!({
                    "name": "bad2", "pipeline_id": pid,
                    "destinations": [{"name": "d", "type": "otlp",
                        "headers": {"x-api-key": header_secret, "x-n": 5}}]
                })
                .to_string(),
            ),
        ),
        // A duplicate name with the secret header
        (
            reqwest::Method::POST,
            "/exporter-bindings".to_string(),
            Some(serde_json::to_string(&bspec).unwrap()),
        ),
        // Truncated JSON containing the secret
        (
            reqwest::Method::POST,
            "/exporter-bindings".to_string(),
            Some(format!(
                r#"{{"name":"t","pipeline_id":"{pid}","destinations":[{{"name":"d","type":"otlp","headers":{{"k":"{header_secret}"#
            )),
        ),
        // An invalid header name next to the secret value
        (
            reqwest::Method::POST,
            "/exporter-bindings".to_string(),
            Some(
                serde_json::json!({
                    "name": "bad3", "pipeline_id": pid,
                    "destinations": [{"name": "d", "type": "otlp",
                        "headers": {"bad header\n": header_secret}}]
                })
                .to_string(),
            ),
        ),
    ] {
        call(method, &path, body).await;
    }
    // Rotate the ingest token: the new one is shown once, in that response only
    espec.token_version = 2;
    let (status, e2) = call(
        reqwest::Method::PUT,
        &format!("/endpoints/{}", e.id),
        Some(serde_json::to_string(&espec).unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{e2}");
    let rotated = serde_json::from_str::<Endpoint>(&e2)
        .unwrap()
        .token
        .unwrap();
    call(reqwest::Method::GET, &format!("/endpoints/{}", e.id), None).await;
    call(
        reqwest::Method::GET,
        &format!("/agent-groups/{gid}/config"),
        None,
    )
    .await;
    // Wrong tokens that contain the secrets
    for bad in [header_secret.as_str(), &format!("{admin}x")] {
        let resp = http
            .get(format!("{base}/pipelines"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        bodies.push(("wrong token".into(), resp.text().await.unwrap()));
    }
    let metrics = reqwest::get(format!("http://{}/metrics", server.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let log = server.stop();

    // Then: the header secret and the admin token are in no response, and each generated token
    // only in the one response that minted it
    let minted_in = |secret: &str| {
        bodies
            .iter()
            .filter(|(_, b)| b.contains(secret))
            .map(|(what, _)| what.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(minted_in(&header_secret), Vec::<String>::new());
    assert_eq!(minted_in(&admin), Vec::<String>::new());
    assert_eq!(minted_in(&ingest), ["POST /endpoints -> 201"]);
    assert_eq!(
        minted_in(&rotated),
        [format!("PUT /endpoints/{} -> 200", e.id)]
    );
    assert_eq!(minted_in(&minted), ["POST /tokens -> 201"]);
    // The wrong-input requests were refused (so their error bodies were checked above)
    let refused = bodies
        .iter()
        .filter(|(what, _)| what.starts_with("POST /exporter-bindings -> 4"))
        .count();
    assert_eq!(refused, 5, "{bodies:#?}");
    // No secret in the debug log (which did log the requests) or the metrics
    assert!(log.contains("DEBUG"), "debug logging was not on:\n{log}");
    let all = [
        header_secret.as_str(),
        admin.as_str(),
        ingest.as_str(),
        rotated.as_str(),
        minted.as_str(),
    ];
    assert_absent(&all, "the server log", &log);
    assert_absent(&all, "/metrics", &metrics);
    // The database keeps only hashes of API tokens. (It does hold header values and the
    // rendered configs with ingest tokens: the renderer needs them; see the README.)
    for f in std::fs::read_dir(&data).unwrap() {
        let f = f.unwrap().path();
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert_absent(&[&admin, &minted], &f.display().to_string(), &text);
    }
}

/// Runs `otaas token ...` against a data dir; returns stdout (the command must succeed).
fn token_cmd(data: &Path, args: &[&str]) -> String {
    let out = Command::new(otaas_testkit::bin::otaas())
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("OTAAS_DATABASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "otaas token {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn token_cli_creates_lists_and_revokes_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data, &[], &[("OTAAS_ADMIN_TOKEN", "cli-admin")]);
    let url = format!("http://{}", server.api);

    // Given a read-only token minted with the CLI
    let token = token_cmd(
        &data,
        &[
            "create",
            "--scope",
            "read-only",
            "--description",
            "dash",
            "--expires-in",
            "3600",
        ],
    );
    let token = token.trim();
    assert!(token.starts_with("otaas_read_only_"), "{token}");
    let c = Client::new(ClientConfig::new(url.clone(), token)).unwrap();
    assert_eq!(c.list_pipelines().await.unwrap().len(), 0);
    let err = c.create_pipeline(&pipeline_spec("nope")).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(403), Some(ErrorCode::Forbidden))
    );

    // When it is listed and revoked with the CLI
    let list = token_cmd(&data, &["list"]);
    assert!(!list.contains(token), "{list}");
    let line = list
        .lines()
        .find(|l| l.contains("\tread_only\t"))
        .unwrap_or_else(|| panic!("{list}"));
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!((cols[2], cols[5]), ("active", "dash"), "{line}");
    token_cmd(&data, &["revoke", cols[0]]);

    // Then the running server refuses it on the next request, and the list says so
    let err = c.list_pipelines().await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some(ErrorCode::Unauthorized))
    );
    let list = token_cmd(&data, &["list"]);
    assert!(
        list.contains(&format!("{}\tread_only\trevoked\t", cols[0])),
        "{list}"
    );
    drop(server);
}
