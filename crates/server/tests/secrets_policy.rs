//! Secrets as a type and the operator's config policy, over real sockets against the real
//! `otaas serve` binary (issue 16, items 6 and 7):
//!
//! - declared secrets (`secrets` + `{"$secret": name}`) reach only the config pushed to the
//!   agent: reads (also with a `read_only` token), the group config view, the agent's stored
//!   effective config and the server log never show them; undeclared credentials in configs
//!   are shown redacted and survive a client writing back what it read;
//! - a reference to an undeclared secret is 422 naming the field;
//! - `${...}` in user values is escaped as `$${...}` unless the operator allows the provider;
//! - component types and file paths the policy denies are 422 `policy_denied` naming the rule
//!   and the field; allowed ones pass.

mod common;
use otaas_testkit::procs;

use std::collections::BTreeMap;

use common::{binding_spec, debug_binding_spec, group_spec, pipeline_spec};
use futures::{SinkExt, StreamExt};
use otaas_api::*;
use otaas_opamp::framing;
use otaas_opamp::proto::{
    AgentConfigFile, AgentConfigMap, AgentDescription, AgentToServer, AnyValue, EffectiveConfig,
    KeyValue, ServerToAgent, any_value,
};
use procs::{ADMIN, Serve, TIMEOUT, wait_for};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const KAFKA_PW: &str = "kafka-S3cret-pw-1";
const DD_KEY: &str = "dd-api-key-0123456789";
const INLINE_PW: &str = "inline-hunter2-pw";
const URL_PW: &str = "url-pa55word";

/// `GET` with a bearer token: status and the raw body text.
async fn get_raw(server: &Serve, token: &str, path: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("http://{}{path}", server.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A request with a JSON body: status and the JSON answer.
async fn send(server: &Serve, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(
            method.parse().unwrap(),
            format!("http://{}{path}", server.api),
        )
        .bearer_auth(ADMIN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[track_caller]
fn assert_policy_denied(got: &(u16, Value), field: &str, rule: &str) {
    assert_eq!(got.0, 422, "{}", got.1);
    let e = &got.1["error"];
    assert_eq!(e["code"], "policy_denied", "{e}");
    assert_eq!(e["field"], field, "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains(rule),
        "{msg:?} does not name the rule {rule:?}"
    );
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_reply(ws: &mut Ws) -> ServerToAgent {
    loop {
        let msg = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a reply in time")
            .expect("open")
            .expect("no error");
        if let Message::Binary(data) = msg {
            return framing::decode(&data, 1 << 20).unwrap();
        }
    }
}

/// The secret-bearing objects every test of this file starts from: a pipeline whose kafka
/// receiver takes its password from a declared secret and whose second receiver holds an
/// undeclared password and a URL password inline; a binding whose destination takes an API
/// key from its own declared secret; a group selecting `tier=secret`.
async fn secret_fixture(client: &Client) -> (Pipeline, ExporterBinding, AgentGroup) {
    let mut p = pipeline_spec("vault");
    p.signals = vec![Signal::Logs];
    p.processors.clear();
    p.secrets = BTreeMap::from([("kafka-pw".to_string(), KAFKA_PW.to_string())]);
    p.receivers.insert(
        "kafka".into(),
        json!({"brokers": ["kafka:9092"], "auth": {"sasl": {"username": "bob", "password": {"$secret": "kafka-pw"}, "mechanism": "PLAIN"}}}),
    );
    p.receivers.insert(
        "kafka/inline".into(),
        json!({"brokers": [format!("https://bob:{URL_PW}@kafka:9093")], "auth": {"sasl": {"username": "bob", "password": INLINE_PW, "mechanism": "PLAIN"}}}),
    );
    let pipeline = client.create_pipeline(&p).await.unwrap();
    let mut b = debug_binding_spec("vault", pipeline.id);
    b.destinations[0].kind = "otlphttp".into();
    b.destinations[0].endpoint = Some("https://intake.example:4318".into());
    b.destinations[0].config = json!({"headers": {"DD-API-KEY": {"$secret": "dd"}}});
    b.secrets = BTreeMap::from([("dd".to_string(), DD_KEY.to_string())]);
    let binding = client.create_exporter_binding(&b).await.unwrap();
    let mut g = group_spec("vault", vec![pipeline.id]);
    g.selector = BTreeMap::from([("tier".to_string(), "secret".to_string())]);
    let group = client.create_agent_group(&g).await.unwrap();
    (pipeline, binding, group)
}

#[tokio::test(flavor = "multi_thread")]
async fn declared_secrets_reach_only_the_agent_and_are_redacted_by_value_everywhere_else() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given a pipeline and a binding with declared secrets and inline credentials, in a group
    let (pipeline, binding, group) = secret_fixture(&client).await;
    let secrets = [KAFKA_PW, DD_KEY, INLINE_PW, URL_PW];

    // Then the write answers and reads show digests and redacted credentials, never a value,
    // to an admin and to a read_only token alike
    assert_eq!(
        pipeline.secret_digests,
        BTreeMap::from([("kafka-pw".to_string(), header_digest(KAFKA_PW))])
    );
    assert_eq!(
        binding.secret_digests,
        BTreeMap::from([("dd".to_string(), header_digest(DD_KEY))])
    );
    let ro = client
        .create_token(&TokenCreate {
            scope: TokenScope::ReadOnly,
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    for token in [ADMIN, ro.as_str()] {
        for path in [
            "/api/v1/pipelines".to_string(),
            format!("/api/v1/pipelines/{}", pipeline.id),
            "/api/v1/exporter-bindings".to_string(),
            format!("/api/v1/exporter-bindings/{}", binding.id),
            format!("/api/v1/agent-groups/{}/config", group.id),
        ] {
            let (status, body) = get_raw(&server, token, &path).await;
            assert_eq!(status, 200, "{path}: {body}");
            for s in secrets {
                assert!(!body.contains(s), "{path} shows {s}: {body}");
            }
        }
    }
    let read = client.get_pipeline(pipeline.id).await.unwrap();
    let inline = &read.receivers["kafka/inline"];
    assert_eq!(inline["auth"]["sasl"]["password"], "<redacted>");
    assert_eq!(inline["brokers"][0], "https://bob:<redacted>@kafka:9093");
    // (references are names, not values: they are shown as written)
    assert_eq!(
        read.receivers["kafka"]["auth"]["sasl"]["password"],
        json!({"$secret": "kafka-pw"})
    );
    let view = client.agent_group_config(group.id).await.unwrap();
    assert!(view.yaml.contains("<redacted>"), "{}", view.yaml);

    // When an agent of the group connects
    let url = format!("ws://{}/v1/opamp", server.opamp);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let uid = *uuid::Uuid::now_v7().as_bytes();
    let id = uuid::Uuid::from_bytes(uid).simple().to_string();
    let hello = AgentToServer {
        instance_uid: bytes::Bytes::copy_from_slice(&uid),
        sequence_num: 0,
        // ReportsStatus | AcceptsRemoteConfig | ReportsEffectiveConfig
        capabilities: 0x1 | 0x2 | 0x4,
        agent_description: Some(AgentDescription {
            identifying_attributes: vec![kv("service.name", "vault-agent")],
            non_identifying_attributes: vec![kv("tier", "secret")],
        }),
        ..Default::default()
    };
    ws.send(Message::Binary(framing::encode(&hello).into()))
        .await
        .unwrap();
    // Then the config pushed to it carries the real values (and is the one the view hashes)
    let pushed = loop {
        let reply = next_reply(&mut ws).await;
        if let Some(rc) = reply.remote_config {
            break rc;
        }
    };
    let file = &pushed.config.as_ref().unwrap().config_map["collector.yaml"];
    let yaml = String::from_utf8(file.body.to_vec()).unwrap();
    for s in secrets {
        assert!(yaml.contains(s), "the agent's config lacks {s}: {yaml}");
    }
    assert_eq!(hex::encode(&pushed.config_hash), view.sha256);

    // When the agent reports it as its effective config, with one more known value (the
    // declared kafka password) under a key that names no credential
    let reported = format!("{yaml}extra:\n  note: {KAFKA_PW}\n");
    let report = AgentToServer {
        instance_uid: bytes::Bytes::copy_from_slice(&uid),
        sequence_num: 1,
        capabilities: hello.capabilities,
        effective_config: Some(EffectiveConfig {
            config_map: Some(AgentConfigMap {
                config_map: [(
                    "collector.yaml".to_string(),
                    AgentConfigFile {
                        body: reported.into_bytes().into(),
                        content_type: "text/yaml".into(),
                    },
                )]
                .into(),
            }),
        }),
        ..Default::default()
    };
    ws.send(Message::Binary(framing::encode(&report).into()))
        .await
        .unwrap();
    // Then the stored effective config has every known value redacted
    let agent = wait_for("the effective config", || async {
        let a = client.get_agent(&id).await.ok()?;
        a.effective_config.clone().filter(|e| e.contains("extra"))?;
        Some(a)
    })
    .await;
    let effective = agent.effective_config.unwrap();
    for s in secrets {
        assert!(
            !effective.contains(s),
            "effective config shows {s}: {effective}"
        );
    }
    assert!(effective.contains("note: <redacted>"), "{effective}");
    let (_, raw) = get_raw(&server, &ro, &format!("/api/v1/agents/{id}")).await;
    for s in secrets {
        assert!(!raw.contains(s), "agent view shows {s}");
    }
    drop(ws);
    // And the server log never had one
    let log = server.log();
    for s in secrets {
        assert!(!log.contains(s), "log shows {s}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_kept_on_request_and_credentials_survive_writing_back_what_was_read() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let (pipeline, binding, group) = secret_fixture(&client).await;
    let before = client.get_agent_group(group.id).await.unwrap();

    // When a client writes back the pipeline as it read it (redacted inline credentials), and
    // keeps the secrets it never saw
    let read = client.get_pipeline(pipeline.id).await.unwrap();
    let mut back = json!({
        "name": read.name, "description": "written back", "signals": read.signals,
        "receivers": read.receivers, "processors": read.processors, "keep_secrets": true,
    });
    let (status, answer) = send(
        &server,
        "PUT",
        &format!("/api/v1/pipelines/{}", pipeline.id),
        &back,
    )
    .await;
    // Then it is accepted and the collector config did not change: no credential was lost
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["secret_digests"]["kafka-pw"],
        header_digest(KAFKA_PW)
    );
    let after = client.get_agent_group(group.id).await.unwrap();
    assert_eq!(after.config_hash, before.config_hash);

    // When the same is written without keep_secrets (and no secrets)
    back["keep_secrets"] = json!(false);
    let (status, answer) = send(
        &server,
        "PUT",
        &format!("/api/v1/pipelines/{}", pipeline.id),
        &back,
    )
    .await;
    // Then the reference names an undeclared secret: 422 at the referring field
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_field");
    assert_eq!(
        answer["error"]["field"],
        "receivers.kafka.auth.sasl.password"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"kafka-pw\"")
    );

    // And a binding update that keeps its secrets keeps rendering them
    let mut b = debug_binding_spec("vault", pipeline.id);
    b.destinations[0].kind = "otlphttp".into();
    b.destinations[0].endpoint = Some("https://intake.example:4318".into());
    b.destinations[0].config = json!({"headers": {"DD-API-KEY": {"$secret": "dd"}}});
    b.keep_secrets = true;
    let updated = client
        .update_exporter_binding(binding.id, &b, None)
        .await
        .unwrap();
    assert_eq!(updated.secret_digests, binding.secret_digests);
    // Sending both is refused
    b.secrets = BTreeMap::from([("dd".to_string(), "x-new-key".to_string())]);
    let err = client
        .update_exporter_binding(binding.id, &b, None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    let ClientError::Api { error, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(error.field.as_deref(), Some("keep_secrets"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_malformed_secret_references_are_refused_naming_the_field() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let p = client
        .create_pipeline(&pipeline_spec("refs"))
        .await
        .unwrap();
    // Given a binding whose destination refers to a secret it does not declare
    let mut b = binding_spec("refs", p.id);
    b.destinations[0].config = json!({"headers": {"authorization": {"$secret": "nope"}}});
    let body = serde_json::to_value(&b).unwrap();
    // Then create and the dry run answer 422 naming the field and nothing is stored
    let (status, answer) = send(&server, "POST", "/api/v1/exporter-bindings", &body).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["error"]["field"],
        "destinations[0].config.headers.authorization"
    );
    let dry = json!({"exporter_binding": {"spec": body}});
    let (status, answer) = send(&server, "POST", "/api/v1/component-check", &dry).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["error"]["field"],
        "destinations[0].config.headers.authorization"
    );
    assert_eq!(
        client.list_exporter_bindings().await.unwrap().len(),
        0,
        "nothing stored"
    );
    // And a malformed reference, or a bad secret name, is refused too
    let mut spec = pipeline_spec("refs2");
    spec.receivers
        .insert("kafka".into(), json!({"password": {"$secret": 42}}));
    let (status, answer) = send(
        &server,
        "POST",
        "/api/v1/pipelines",
        &serde_json::to_value(&spec).unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "receivers.kafka.password");
    spec.receivers.clear();
    spec.secrets = BTreeMap::from([("Not OK".to_string(), "v".to_string())]);
    let (status, answer) = send(
        &server,
        "POST",
        "/api/v1/pipelines",
        &serde_json::to_value(&spec).unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "secrets");
}

/// A logs pipeline with `receivers` and a `file` exporter writing to `path`, as JSON bodies.
fn file_bodies(name: &str, receivers: Value) -> Value {
    json!({"name": name, "signals": ["logs"], "receivers": receivers})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_policy_refuses_sensitive_paths_and_accepts_var_log() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    // Given the default policy
    // When filelog would read /etc/shadow, or a glob that reaches it
    for (include, rule) in [
        ("/etc/shadow", "--deny-paths /etc/shadow*"),
        ("/etc/*", "--deny-paths /etc/shadow*"),
        ("/var/log/../../root/.ssh/id_rsa", "no `..` in paths"),
        ("/proc/*/environ", "--deny-paths /proc"),
    ] {
        let body = file_bodies(
            "shadow",
            json!({"filelog": {"include": ["/var/log/ok.log", include]}}),
        );
        let got = send(&server, "POST", "/api/v1/pipelines", &body).await;
        // Then 422 policy_denied names the rule and the field
        assert_policy_denied(&got, "receivers.filelog.include[1]", rule);
    }
    // When a file exporter would write into /etc/cron.d
    let (status, p) = send(
        &server,
        "POST",
        "/api/v1/pipelines",
        &file_bodies(
            "logs",
            json!({"filelog": {"include": ["/var/log/**/*.log"]}}),
        ),
    )
    .await;
    // (a /var/log glob is fine)
    assert_eq!(status, 201, "{p}");
    let binding = json!({
        "name": "cron", "pipeline_id": p["id"],
        "destinations": [{"name": "f", "type": "file", "config": {"path": "/etc/cron.d/evil"}}],
    });
    let got = send(&server, "POST", "/api/v1/exporter-bindings", &binding).await;
    assert_policy_denied(
        &got,
        "destinations[0].config.path",
        "--deny-paths /etc/cron*",
    );
    // And the same through the dry run
    let dry = json!({"exporter_binding": {"spec": binding}});
    let got = send(&server, "POST", "/api/v1/component-check", &dry).await;
    assert_policy_denied(
        &got,
        "destinations[0].config.path",
        "--deny-paths /etc/cron*",
    );
    // And TLS files count as paths too
    let endpoint = json!({
        "name": "e", "pipeline_id": p["id"], "protocol": "otlp_http", "port": 4318,
        "tls": {"cert_file": "/etc/ssl/certs/x.pem", "key_file": "/root/key.pem"},
    });
    let got = send(&server, "POST", "/api/v1/endpoints", &endpoint).await;
    assert_policy_denied(&got, "tls.key_file", "--deny-paths /root");
    // When the file exporter writes under /tmp
    let ok = json!({
        "name": "tmp", "pipeline_id": p["id"],
        "destinations": [{"name": "f", "type": "file", "config": {"path": "/tmp/otaas-out.json"}}],
    });
    // Then it is accepted
    let (status, answer) = send(&server, "POST", "/api/v1/exporter-bindings", &ok).await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_lists_deny_component_types_and_carve_out_paths() {
    let data = tempfile::tempdir().unwrap();
    // Given a server that denies the file exporter and allows /etc/myapp
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &[
            "--deny-components",
            "exporter/file,processor/transform",
            "--allow-paths",
            "/etc/myapp/**",
        ],
    );
    let (status, p) = send(
        &server,
        "POST",
        "/api/v1/pipelines",
        &file_bodies("app", json!({"filelog": {"include": ["/etc/myapp/*.log"]}})),
    )
    .await;
    // Then the carved-out path is accepted
    assert_eq!(status, 201, "{p}");
    // And the denied types are refused naming the rule and the field
    let binding = json!({
        "name": "out", "pipeline_id": p["id"],
        "destinations": [{"name": "f", "type": "file", "config": {"path": "/tmp/x.json"}}],
    });
    let got = send(&server, "POST", "/api/v1/exporter-bindings", &binding).await;
    assert_policy_denied(
        &got,
        "destinations[0].type",
        "--deny-components exporter/file",
    );
    let mut body = file_bodies("t", json!({"filelog": {"include": ["/var/log/a.log"]}}));
    body["processors"] = json!([{"id": "batch"}, {"id": "transform/x", "config": {}}]);
    let got = send(&server, "POST", "/api/v1/pipelines", &body).await;
    assert_policy_denied(
        &got,
        "processors[1].id",
        "--deny-components processor/transform",
    );
}

/// A group config's YAML for a pipeline whose receiver config holds `${...}` references.
async fn rendered_with_references(extra: &[&str]) -> String {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", extra);
    let client = server.client();
    let mut p = pipeline_spec("dollar");
    p.receivers.insert(
        "otlp".into(),
        json!({"protocols": {"http": {"endpoint": "${env:LISTEN}", "include_metadata": true}}}),
    );
    p.processors = vec![ProcessorSpec {
        id: "attributes".into(),
        config: json!({"actions": [
            {"key": "leak", "value": "${file:/etc/shadow}", "action": "insert"},
            {"key": "price", "value": "5$ or $$", "action": "insert"},
        ]}),
    }];
    let p = client.create_pipeline(&p).await.unwrap();
    client
        .create_exporter_binding(&debug_binding_spec("dollar", p.id))
        .await
        .unwrap();
    let g = client
        .create_agent_group(&group_spec("dollar", vec![p.id]))
        .await
        .unwrap();
    client.agent_group_config(g.id).await.unwrap().yaml
}

#[tokio::test(flavor = "multi_thread")]
async fn dollar_references_are_escaped_unless_the_operator_allows_the_provider() {
    // Given the default policy, Then every `$` of a user value is doubled
    let yaml = rendered_with_references(&[]).await;
    assert!(yaml.contains("endpoint: $${env:LISTEN}"), "{yaml}");
    assert!(yaml.contains("value: $${file:/etc/shadow}"), "{yaml}");
    assert!(yaml.contains("value: 5$$ or $$$$"), "{yaml}");
    // Given --config-allow-expansion env, Then env references stay and file ones do not
    let yaml = rendered_with_references(&["--config-allow-expansion", "env"]).await;
    assert!(yaml.contains("endpoint: ${env:LISTEN}"), "{yaml}");
    assert!(yaml.contains("value: $${file:/etc/shadow}"), "{yaml}");
}
