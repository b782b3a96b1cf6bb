//! OpAMP sessions are bound to one agent and to the token they were opened with, over real
//! WebSockets against the real `otaas serve` binary on 127.0.0.1:
//! - a second `instance_uid` on one connection is refused with a `ServerErrorResponse` and the
//!   connection closed; nothing is registered for it, and the session's own agent is marked
//!   disconnected at once (not after the heartbeat timeout);
//! - a uid the server assigned (`AgentIdentification.new_instance_uid`) becomes the binding;
//! - revoking the agent token a session was opened with, or its expiry, closes the session with
//!   a `ServerErrorResponse` and a close frame.
//!
//! No assertion depends on timing: every wait is bounded (passing the bound fails the test).

mod common;
use otaas_testkit::procs;

use futures::{SinkExt, StreamExt};
use otaas_api::*;
use otaas_opamp::framing;
use otaas_opamp::proto::{
    AgentToServer, AgentToServerFlags, ServerErrorResponseType, ServerToAgent,
};
use procs::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn message(uid: [u8; 16], seq: u64, flags: u64) -> AgentToServer {
    AgentToServer {
        instance_uid: bytes::Bytes::copy_from_slice(&uid),
        sequence_num: seq,
        // ReportsStatus only: no heartbeats, so only the socket says whether it is connected
        // (the silent-agent sweep never marks it).
        capabilities: 1,
        flags,
        ..Default::default()
    }
}

fn hex(uid: &[u8]) -> String {
    uid.iter().map(|b| format!("{b:02x}")).collect()
}

async fn connect(server: &Serve, token: Option<&str>) -> Ws {
    let mut request = format!("ws://{}/v1/opamp", server.opamp)
        .into_client_request()
        .unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
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

/// Expects a close frame with `code` next (within [`TIMEOUT`]).
async fn expect_close(ws: &mut Ws, code: u16) {
    loop {
        match tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a close in time")
        {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), code, "{frame:?}");
                return;
            }
            other => panic!("expected a close frame with {code}, got {other:?}"),
        }
    }
}

async fn wait_disconnected(client: &Client, id: &str) {
    wait_for(&format!("agent {id} to be disconnected"), || async {
        client
            .get_agent(id)
            .await
            .ok()
            .filter(|a| !a.connected)
            .map(|_| ())
    })
    .await;
}

async fn agent_token(client: &Client, expires_in: Option<u64>) -> TokenCreated {
    client
        .create_token(&TokenCreate {
            description: "session test".into(),
            scope: TokenScope::Agent,
            expires_in,
            expires_at: None,
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_uid_on_one_websocket_is_refused_and_the_session_closed() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let first = *uuid::Uuid::now_v7().as_bytes();
    let mut ws = connect(&server, None).await;
    send(&mut ws, &message(first, 0, 0)).await;
    let hello = next_binary(&mut ws).await;
    assert!(hello.error_response.is_none(), "{hello:?}");
    wait_for("the first agent to be connected", || async {
        client
            .get_agent(&hex(&first))
            .await
            .ok()
            .filter(|a| a.connected)
    })
    .await;

    // Another agent's messages on the same connection: refused, the connection closed.
    let mut others = Vec::new();
    for seq in 0..20 {
        let other = *uuid::Uuid::now_v7().as_bytes();
        others.push(other);
        // The server may have closed already (after the first of them).
        if ws
            .send(Message::Binary(
                framing::encode(&message(other, seq, 0)).into(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let refusal = next_binary(&mut ws).await;
    let err = refusal.error_response.expect("a ServerErrorResponse");
    assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
    assert!(
        err.error_message.contains(&hex(&first)) && err.error_message.contains("one agent"),
        "{:?}",
        err.error_message
    );
    expect_close(&mut ws, 1002).await;

    // The session's agent is disconnected at once: it reports no heartbeats, so only the end
    // of its session can say so.
    wait_disconnected(&client, &hex(&first)).await;
    // Nothing was registered for the others.
    let all = client.list_agents(&AgentQuery::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        vec![hex(&first)]
    );
    for other in others {
        assert!(client.get_agent(&hex(&other)).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_uid_the_server_assigned_binds_the_session_and_is_not_reissued() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let asked = *uuid::Uuid::now_v7().as_bytes();
    let request = AgentToServerFlags::RequestInstanceUid as u64;
    let mut ws = connect(&server, None).await;
    send(&mut ws, &message(asked, 0, request)).await;
    let reply = next_binary(&mut ws).await;
    let assigned = reply
        .agent_identification
        .expect("a new instance uid")
        .new_instance_uid
        .to_vec();
    assert_ne!(assigned, asked);
    let assigned: [u8; 16] = assigned.try_into().unwrap();
    // Asking again on the same connection gives the same uid, not another agent.
    send(&mut ws, &message(assigned, 1, request)).await;
    let again = next_binary(&mut ws).await;
    assert_eq!(
        again
            .agent_identification
            .expect("the assigned uid again")
            .new_instance_uid
            .to_vec(),
        assigned.to_vec()
    );
    // The agent's old uid still maps to the new one (a message in flight before the rename).
    send(&mut ws, &message(asked, 2, 0)).await;
    // A third uid is refused: the error is the first thing after the messages above, so none
    // of them was refused.
    let third = *uuid::Uuid::now_v7().as_bytes();
    send(&mut ws, &message(third, 3, 0)).await;
    let refusal = loop {
        let reply = next_binary(&mut ws).await;
        if reply.error_response.is_some() {
            break reply;
        }
    };
    let err = refusal.error_response.unwrap();
    assert!(
        err.error_message.contains(&hex(&assigned)) && err.error_message.contains(&hex(&third)),
        "{:?}",
        err.error_message
    );
    expect_close(&mut ws, 1002).await;
    wait_disconnected(&client, &hex(&assigned)).await;
    let all = client.list_agents(&AgentQuery::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        vec![hex(&assigned)]
    );
}

/// Connects an agent with `token` and waits for its first reply.
async fn connected_agent(server: &Serve, token: &str) -> (Ws, [u8; 16]) {
    let uid = *uuid::Uuid::now_v7().as_bytes();
    let mut ws = connect(server, Some(token)).await;
    send(&mut ws, &message(uid, 0, 0)).await;
    let hello = next_binary(&mut ws).await;
    assert!(hello.error_response.is_none(), "{hello:?}");
    (ws, uid)
}

async fn expect_token_refusal(ws: &mut Ws, says: &str) {
    let reply = next_binary(ws).await;
    let err = reply.error_response.expect("a ServerErrorResponse");
    assert_eq!(err.r#type, ServerErrorResponseType::Unknown as i32);
    assert!(err.error_message.contains(says), "{:?}", err.error_message);
    expect_close(ws, 1008).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_an_agent_token_closes_its_websocket_sessions() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start_default(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let revoked = agent_token(&client, None).await;
    let kept = agent_token(&client, None).await;
    let (mut a, _) = connected_agent(&server, &revoked.token).await;
    let (mut b, _) = connected_agent(&server, &revoked.token).await;
    let (mut c, c_uid) = connected_agent(&server, &kept.token).await;

    let status = reqwest::Client::new()
        .delete(format!(
            "http://{}/api/v1/tokens/{}",
            server.api, revoked.id
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    expect_token_refusal(&mut a, "revoked").await;
    expect_token_refusal(&mut b, "revoked").await;

    // The other token's session is still served: a sequence gap is answered with a request
    // for the full state.
    send(&mut c, &message(c_uid, 7, 0)).await;
    let reply = next_binary(&mut c).await;
    assert!(reply.error_response.is_none(), "{reply:?}");
    assert_ne!(reply.flags, 0, "{reply:?}");
    // And the revoked token cannot open a new one.
    let mut request = format!("ws://{}/v1/opamp", server.opamp)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", revoked.token).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401)
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_presented_where_anonymous_agents_are_allowed_still_ends_its_sessions() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let token = agent_token(&client, None).await;
    let (mut ws, _) = connected_agent(&server, &token.token).await;
    let status = reqwest::Client::new()
        .delete(format!("http://{}/api/v1/tokens/{}", server.api, token.id))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    expect_token_refusal(&mut ws, "revoked").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expiring_agent_token_closes_its_websocket_session_when_it_expires() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start_default(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let token = agent_token(&client, Some(3)).await;
    let (mut ws, _) = connected_agent(&server, &token.token).await;
    expect_token_refusal(&mut ws, "expired").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_default_server_serves_enrolled_agents_only() {
    // Given `otaas serve` with no flag about agents (the default a user gets)
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start_default(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let hello = framing::encode(&message([7; 16], 0, 0));

    // When an agent comes without a token, over WebSocket or HTTP
    let ws = format!("ws://{}/v1/opamp", server.opamp).into_client_request();
    match tokio_tungstenite::connect_async(ws.unwrap()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            // Then it is refused before any upgrade
            assert_eq!(resp.status(), 401);
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    let poll = reqwest::Client::new()
        .post(format!("http://{}/v1/opamp", server.opamp))
        .header("content-type", "application/x-protobuf")
        .body(hello.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status().as_u16(), 401);
    // And nothing was registered
    assert!(
        client
            .list_agents(&AgentQuery::default())
            .await
            .unwrap()
            .is_empty()
    );

    // When it presents an agent enrollment token
    let token = agent_token(&client, None).await;
    let (_ws, uid) = connected_agent(&server, &token.token).await;
    // Then it is served and listed
    let agents = client.list_agents(&AgentQuery::default()).await.unwrap();
    assert_eq!(
        agents.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        [hex(&uid)]
    );
    // And the server said at start that agents need tokens
    assert!(
        server
            .log()
            .contains("otaas: agents must present an agent token"),
        "{}",
        server.log()
    );
}
