//! Limits on what agents report, over real sockets against the real `otaas serve` binary:
//! - an agent description, health tree, available-components list or effective config over
//!   its limit is answered with a `ServerErrorResponse` (BadRequest) naming the field and the
//!   limit, over WebSocket and over HTTP, and nothing of it is kept: the agent's record (REST,
//!   and after a restart) is what it was before the message;
//! - three agents with 300,000 attributes each leave no trace and do not grow the server's
//!   memory;
//! - a record stored under larger limits comes back trimmed to the limits after a restart.
//!
//! No assertion depends on timing: every wait is bounded (passing the bound fails the test).

use otaas_testkit::procs;

use futures::{SinkExt, StreamExt};
use otaas_opamp::framing;
use otaas_opamp::proto::{
    AgentConfigFile, AgentConfigMap, AgentDescription, AgentToServer, AnyValue,
    AvailableComponents, ComponentDetails, ComponentHealth, EffectiveConfig, KeyValue,
    ServerErrorResponseType, ServerToAgent, any_value,
};
use procs::*;
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// ReportsStatus | ReportsEffectiveConfig | ReportsHealth | ReportsAvailableComponents.
const CAPS: u64 = 0x1 | 0x4 | 0x800 | 0x4000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

fn hex(uid: &[u8; 16]) -> String {
    uid.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_uid() -> [u8; 16] {
    *uuid::Uuid::now_v7().as_bytes()
}

fn message(uid: [u8; 16], seq: u64) -> AgentToServer {
    AgentToServer {
        instance_uid: bytes::Bytes::copy_from_slice(&uid),
        sequence_num: seq,
        capabilities: CAPS,
        ..Default::default()
    }
}

/// A well-behaved full report: a small description, health and effective config.
fn hello(uid: [u8; 16]) -> AgentToServer {
    let mut m = message(uid, 0);
    m.agent_description = Some(AgentDescription {
        identifying_attributes: vec![kv("service.name", "otelcol")],
        non_identifying_attributes: vec![kv("env", "prod")],
    });
    m.health = Some(ComponentHealth {
        healthy: true,
        status: "StatusOK".into(),
        ..Default::default()
    });
    m.effective_config = Some(effective_config(b"receivers: {}\n".to_vec()));
    m
}

fn description(attributes: usize) -> AgentDescription {
    AgentDescription {
        identifying_attributes: vec![kv("service.name", "otelcol")],
        non_identifying_attributes: (0..attributes).map(|i| kv(&format!("k{i}"), "v")).collect(),
    }
}

fn effective_config(body: Vec<u8>) -> EffectiveConfig {
    EffectiveConfig {
        config_map: Some(AgentConfigMap {
            config_map: [(
                "collector.yaml".to_owned(),
                AgentConfigFile {
                    body: body.into(),
                    content_type: "text/yaml".into(),
                },
            )]
            .into(),
        }),
    }
}

/// A health tree `depth` levels deep (the agent at level 1).
fn deep_health(depth: usize) -> ComponentHealth {
    let mut node = ComponentHealth {
        healthy: true,
        ..Default::default()
    };
    for _ in 1..depth {
        node = ComponentHealth {
            healthy: true,
            component_health_map: [("c".to_owned(), node)].into(),
            ..Default::default()
        };
    }
    node
}

fn components(types: usize) -> AvailableComponents {
    AvailableComponents {
        components: [(
            "receivers".to_owned(),
            ComponentDetails {
                metadata: vec![],
                sub_component_map: (0..types)
                    .map(|i| (format!("r{i}"), ComponentDetails::default()))
                    .collect(),
            },
        )]
        .into(),
        hash: vec![7; 32].into(),
    }
}

async fn connect(server: &Serve) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{}/v1/opamp", server.opamp))
        .await
        .unwrap()
        .0
}

async fn send(ws: &mut Ws, msg: &AgentToServer) {
    ws.send(Message::Binary(framing::encode(msg).into()))
        .await
        .unwrap();
}

/// The next ServerToAgent, skipping pings.
async fn next_binary(ws: &mut Ws) -> ServerToAgent {
    loop {
        let msg = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a message in time")
            .expect("still open")
            .expect("no error");
        match msg {
            Message::Binary(data) => return framing::decode(&data, 1 << 20).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
}

/// POSTs `msg` to the OpAMP HTTP endpoint and decodes the answer (which must be 200).
async fn http_poll(server: &Serve, msg: &AgentToServer) -> ServerToAgent {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/opamp", server.opamp))
        .header("content-type", "application/x-protobuf")
        .body(msg.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    ServerToAgent::decode(resp.bytes().await.unwrap()).unwrap()
}

/// Asserts `reply` refuses the message naming `field` and `limit`.
fn assert_refused(reply: &ServerToAgent, field: &str, limit: &str) {
    let err = reply
        .error_response
        .as_ref()
        .unwrap_or_else(|| panic!("expected a ServerErrorResponse, got {reply:?}"));
    assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
    assert!(
        err.error_message.contains(field) && err.error_message.contains(limit),
        "the message should name {field:?} and {limit:?}: {}",
        err.error_message
    );
}

async fn agent(server: &Serve, uid: &[u8; 16]) -> Option<serde_json::Value> {
    let resp = reqwest::Client::new()
        .get(format!("http://{}/api/v1/agents/{}", server.api, hex(uid)))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    match resp.status().as_u16() {
        404 => None,
        200 => Some(resp.json().await.unwrap()),
        s => panic!("GET agent: {s}"),
    }
}

/// The agent record as the REST API shows it, once it exists.
async fn agent_when_known(server: &Serve, uid: &[u8; 16]) -> serde_json::Value {
    wait_for("the agent to be known", || agent(server, uid)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_reports_over_websocket_are_refused_and_nothing_of_them_is_kept() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    // Given an agent that reported a small, valid state
    let uid = new_uid();
    let mut ws = connect(&server).await;
    send(&mut ws, &hello(uid)).await;
    assert!(next_binary(&mut ws).await.error_response.is_none());
    let before = agent_when_known(&server, &uid).await;
    assert_eq!(before["labels"]["env"], "prod");

    // When it sends a description with more attributes than the default limit (256)
    let mut big = message(uid, 1);
    big.agent_description = Some(description(300));
    send(&mut ws, &big).await;
    // Then the message is refused naming the field and the limit, and the session ends
    assert_refused(
        &next_binary(&mut ws).await,
        "agent_description attributes",
        "256",
    );

    // When (on a new session) it sends a health tree deeper than the default limit (8)
    let mut ws = connect(&server).await;
    let mut deep = message(uid, 2);
    deep.health = Some(deep_health(9));
    send(&mut ws, &deep).await;
    assert_refused(&next_binary(&mut ws).await, "health depth", "8");

    // Then the record is what it was before: neither the attributes nor the deep tree
    let after = agent(&server, &uid).await.unwrap();
    assert_eq!(after["labels"], before["labels"]);
    assert_eq!(after["health"], before["health"]);
    assert_eq!(
        after["health"]["components"],
        serde_json::json!({}),
        "{after}"
    );

    // And so it is after a restart
    let opamp = server.opamp.clone();
    server.stop();
    let server = Serve::start(data.path(), &opamp, &[]);
    let restarted = agent(&server, &uid).await.unwrap();
    assert_eq!(restarted["labels"], before["labels"]);
    assert_eq!(restarted["health"], before["health"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_reports_over_http_are_refused_and_nothing_of_them_is_kept() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    // Given an agent that reported a small, valid state over HTTP
    let uid = new_uid();
    assert!(
        http_poll(&server, &hello(uid))
            .await
            .error_response
            .is_none()
    );
    let before = agent(&server, &uid).await.expect("registered");
    assert_eq!(before["effective_config"], "receivers: {}\n");

    // When it reports a 2 MiB effective config (default limit 1 MiB)
    let mut big = message(uid, 1);
    let mut body = b"receivers: {}\n".to_vec();
    body.extend(std::iter::repeat_n(b'#', 2 << 20));
    big.effective_config = Some(effective_config(body));
    // Then it is refused naming the field and the limit
    assert_refused(
        &http_poll(&server, &big).await,
        "effective_config",
        "1048576",
    );

    // When it reports 5,000 component types (default limit 4,096 entries)
    let mut many = message(uid, 2);
    many.available_components = Some(components(5000));
    assert_refused(
        &http_poll(&server, &many).await,
        "available_components",
        "4096",
    );

    // When it reports a health tree of 3,000 components (default limit 2,048)
    let mut wide = message(uid, 3);
    wide.health = Some(ComponentHealth {
        healthy: true,
        component_health_map: (0..3000)
            .map(|i| (format!("c{i}"), ComponentHealth::default()))
            .collect(),
        ..Default::default()
    });
    assert_refused(
        &http_poll(&server, &wide).await,
        "health components",
        "2048",
    );

    // Then the record still has the small config, no component list, the small health
    let after = agent(&server, &uid).await.unwrap();
    assert_eq!(after["effective_config"], before["effective_config"]);
    assert_eq!(
        after["effective_config_hash"],
        before["effective_config_hash"]
    );
    assert!(after["available_components"].is_null(), "{after}");
    assert_eq!(after["health"], before["health"]);

    // And a report within the limits is still taken
    let mut ok = message(uid, 4);
    ok.available_components = Some(components(300));
    assert!(http_poll(&server, &ok).await.error_response.is_none());
    let taken = agent(&server, &uid).await.unwrap();
    assert_eq!(
        taken["available_components"]["receivers"]
            .as_array()
            .map(Vec::len),
        Some(300)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_agents_with_300k_attributes_leave_no_trace_and_no_memory() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let rss_before = server.rss_bytes();
    // Given three agents, each sending a description with 300,000 attributes
    let uids = [new_uid(), new_uid(), new_uid()];
    for uid in uids {
        let mut ws = connect(&server).await;
        let mut msg = message(uid, 0);
        msg.agent_description = Some(description(300_000));
        send(&mut ws, &msg).await;
        // Then each is refused naming the field and the limit
        assert_refused(
            &next_binary(&mut ws).await,
            "agent_description attributes",
            "256",
        );
    }
    // And none of them is registered
    for uid in &uids {
        assert_eq!(agent(&server, uid).await, None);
    }
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/api/v1/agents", server.api))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    // And the server kept (almost) nothing: on main this grew it by about 240 MiB
    let grown = server.rss_bytes().saturating_sub(rss_before);
    assert!(grown < 100 << 20, "the server grew by {} MiB", grown >> 20);
    // And nothing comes back after a restart
    let opamp = server.opamp.clone();
    server.stop();
    let server = Serve::start(data.path(), &opamp, &[]);
    for uid in &uids {
        assert_eq!(agent(&server, uid).await, None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_stored_under_larger_limits_comes_back_within_the_limits() {
    let data = tempfile::tempdir().unwrap();
    // Given a server with a larger attribute limit, and an agent with 1,000 attributes
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--opamp-max-attributes", "5000"],
    );
    let uid = new_uid();
    let mut msg = message(uid, 0);
    msg.agent_description = Some(description(1000));
    assert!(http_poll(&server, &msg).await.error_response.is_none());
    let stored = agent(&server, &uid).await.unwrap();
    assert_eq!(stored["labels"].as_object().map(|m| m.len()), Some(1001));

    // When the server restarts with the default limits (256 attributes)
    let opamp = server.opamp.clone();
    server.stop();
    let server = Serve::start(data.path(), &opamp, &[]);

    // Then the agent is known but its over-limit labels are gone
    let loaded = agent(&server, &uid).await.expect("still known");
    assert_eq!(loaded["labels"], serde_json::json!({}), "{loaded}");
}
