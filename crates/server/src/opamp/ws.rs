//! The WebSocket transport: one session per connection, binary messages with the varint
//! header, server pushes when the agent's group gets a new config.
//!
//! Memory per agent is kept small on purpose: a small read buffer (the library default is
//! 128 KiB, allocated eagerly; it grows to the largest message the agent sent), eager writes,
//! a write buffer bounded by the message limit, and no protobuf message held across an await
//! point (see [`frame`]).
//!
//! A session ends when the agent closes, sends something we refuse (a second agent's uid
//! included), stays silent for [`IDLE_INTERVALS`] ping intervals, when the agent token it was
//! opened with is revoked or expires (see `tokens.rs`), or at shutdown.

use std::sync::Arc;

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use otaas_opamp::framing::{self, FrameError};
use otaas_opamp::proto::{
    AgentToServer, ServerErrorResponse, ServerErrorResponseType, ServerToAgent,
};
use tokio::sync::Notify;

use super::OpampServer;
use super::tokens::SessionToken;
use crate::fleet::Transport;
use crate::listener::ConnectionGuard;

/// WebSocket close codes (RFC 6455) used here.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
const CLOSE_INVALID_PAYLOAD: u16 = 1007;
const CLOSE_POLICY_VIOLATION: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;

/// Ping interval for sessions when no heartbeat interval is configured (the OpAMP default).
const DEFAULT_PING: std::time::Duration = std::time::Duration::from_secs(30);
/// Silent ping intervals after which a session is closed.
const IDLE_INTERVALS: u32 = 3;

/// Initial read buffer per WebSocket. A heartbeat is a few dozen bytes; a larger message makes
/// the library reserve its whole length, after which the buffer keeps that capacity.
const READ_BUFFER: usize = 1024;

pub(crate) async fn upgrade(
    State(server): State<Arc<OpampServer>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    guard: Option<Extension<ConnectionGuard>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if server.state.shutdown.is_cancelled() {
        return super::retry_later(super::unavailable_delay(), "server is shutting down");
    }
    if server.overloaded() {
        tracing::warn!(peer = %peer, "Refused an OpAMP WebSocket: connection limit reached");
        server
            .state
            .metrics
            .inc("otaas_opamp_refused_total", &[("reason", "capacity")]);
        return super::retry_later(
            super::unavailable_delay(),
            "connection limit reached; retry later",
        );
    }
    // Before the token check: shedding a storm must not cost a database lookup per agent.
    if let Err(wait) = server.admit(peer) {
        return super::retry_later(wait, "too many agents connecting at once; retry later");
    }
    let token = match server.authorize(peer, &headers).await {
        Ok(token) => token,
        Err(err) => {
            tracing::info!(peer = %peer, reason = %err, "Refused an OpAMP WebSocket");
            server.count_refusal(
                peer,
                &headers,
                super::server::Refused {
                    interface: otaas_api::AuditInterface::Opamp,
                    method: "GET",
                    path: otaas_opamp::OPAMP_PATH,
                },
                &err,
            );
            return err.into_response();
        }
    };
    let endpoint = super::endpoint_url(&headers, "ws", server.tls);
    let limit = server.config.opamp_max_message_bytes;
    let tracker = server.sessions.clone();
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        // Room for one maximal message plus framing; beyond that the peer is not reading.
        .max_write_buffer_size(limit + 64 * 1024)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                // The connection counts against --opamp-max-conns-per-ip while the session runs.
                let _guard = guard;
                session(server, socket, endpoint, token).await;
            })
        })
}

/// The WebSocket message carrying `msg`. Replies are encoded before any `.await`: a
/// `ServerToAgent` is about 1.7 KB, and one held across an await point becomes part of every
/// session's state machine, i.e. of every idle agent's memory.
fn frame(msg: &ServerToAgent) -> Message {
    Message::Binary(Bytes::from(framing::encode(msg)))
}

/// A `ServerErrorResponse` of `kind` saying `message`, encoded.
fn error_frame(kind: ServerErrorResponseType, message: String) -> Message {
    frame(&ServerToAgent {
        error_response: Some(ServerErrorResponse {
            r#type: kind as i32,
            error_message: message,
            details: None,
        }),
        ..Default::default()
    })
}

/// Sends a ServerErrorResponse, then closes with `code`.
async fn refuse(socket: &mut WebSocket, kind: ServerErrorResponseType, message: String, code: u16) {
    // The close reason is limited to 123 bytes by the protocol.
    let reason: String = message.chars().take(120).collect();
    let _ = socket.send(error_frame(kind, message)).await;
    close(socket, code, reason).await;
    linger(socket).await;
}

/// Sends our close frame (the peer may be gone already: nothing to do about a failure).
async fn close(socket: &mut WebSocket, code: u16, reason: impl Into<String>) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into().into(),
        })))
        .await;
}

/// After our close frame, reads (and drops) what the peer still sends until it closes too, for
/// at most a second. Dropping a socket with unread input makes the kernel reset the
/// connection, which can destroy our error reply and close frame before the agent reads them.
async fn linger(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        loop {
            match socket.recv().await {
                Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
                // The stream is unusable (e.g. the rest of an oversize frame is still unread,
                // and the library reports no more messages): give the agent the rest of the
                // second to read our close frame.
                None | Some(Err(_)) => std::future::pending::<()>().await,
            }
        }
    })
    .await;
}

/// A reply worth sending: anything beyond the echoed uid and the flags-free default.
fn is_empty_reply(reply: &ServerToAgent) -> bool {
    *reply
        == ServerToAgent {
            instance_uid: reply.instance_uid.clone(),
            ..Default::default()
        }
}

/// What the session does next, decided without awaiting anything (see [`frame`]).
enum Next {
    Wait,
    Send(Message),
    /// Send the reply (a `ServerErrorResponse`: the agent's message was refused, or the server
    /// is shutting down and says when to come back), then close.
    SendAndClose {
        reply: Message,
        code: u16,
        reason: &'static str,
    },
    /// Send a `ServerErrorResponse` saying `message`, close with `code` and linger.
    Refuse {
        kind: ServerErrorResponseType,
        message: String,
        code: u16,
    },
    /// Close with `code` (no error message: the agent is not listening anyway).
    Close {
        code: u16,
        reason: &'static str,
    },
    Stop,
}

/// Resolves at `at` (never for `None`), however far away: tokio timers cannot be set years
/// ahead, so a long wait is slept a day at a time.
async fn until(at: Option<DateTime<Utc>>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    loop {
        let left = (at - Utc::now()).to_std().unwrap_or_default();
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(std::time::Duration::from_secs(86_400))).await;
    }
}

async fn session(
    server: Arc<OpampServer>,
    mut socket: WebSocket,
    endpoint: String,
    token: Option<SessionToken>,
) {
    let notify = Arc::new(Notify::new());
    let registry = server.registry();
    let mut ctx = registry.connection(Transport::Ws, endpoint, Some(notify.clone()));
    let limit = server.config.opamp_max_message_bytes;
    // The session lives no longer than the token it was opened with: revoked (here or on
    // another replica, see `tokens.rs`) or expired, the agent is told and the socket closed
    // before any further config (with its secrets) could be pushed.
    let binding = token.map(|t| server.token_sessions.bind(t.id));
    let revoked = async {
        match &binding {
            Some(b) => b.revoked().await,
            None => std::future::pending().await,
        }
    };
    let expires_at = token.and_then(|t| t.expires_at);
    let expired = until(expires_at);
    tokio::pin!(revoked, expired);
    // A session that sends nothing (not even a pong to our pings) for IDLE_INTERVALS heartbeat
    // intervals is closed: a held, silent socket must not keep its connection slot.
    let interval = match registry.heartbeat() {
        h if h.is_zero() => DEFAULT_PING,
        h => h,
    };
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            // Before anything else the agent could be sent.
            biased;
            _ = &mut revoked => {
                tracing::info!(agent = ?ctx.uid, "Agent token revoked; closing its OpAMP session");
                Next::Refuse {
                    kind: ServerErrorResponseType::Unknown,
                    message: "the agent token this connection was opened with has been revoked; \
                              reconnect with an active token".to_owned(),
                    code: CLOSE_POLICY_VIOLATION,
                }
            }
            _ = &mut expired => {
                tracing::info!(agent = ?ctx.uid, "Agent token expired; closing its OpAMP session");
                let at = expires_at
                    .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                Next::Refuse {
                    kind: ServerErrorResponseType::Unknown,
                    message: format!("the agent token this connection was opened with expired at \
                                      {at}; reconnect with an active token"),
                    code: CLOSE_POLICY_VIOLATION,
                }
            }
            _ = server.state.shutdown.cancelled() => {
                let uid = ctx.uid.map(|u| Bytes::copy_from_slice(u.as_bytes())).unwrap_or_default();
                Next::SendAndClose {
                    reply: frame(&server.unavailable(uid)),
                    code: CLOSE_GOING_AWAY,
                    reason: "server shutting down",
                }
            }
            _ = notify.notified() => match registry.pending_push(&ctx) {
                Some(push) => Next::Send(frame(&push)),
                None => Next::Wait,
            },
            incoming = socket.recv() => {
                heard = tokio::time::Instant::now();
                received(&server, &mut ctx, incoming, limit)
            }
            _ = ping.tick() => {
                if heard.elapsed() >= interval * IDLE_INTERVALS {
                    tracing::info!(agent = ?ctx.uid, silent_secs = heard.elapsed().as_secs(), "OpAMP WebSocket silent; closing");
                    Next::Close { code: CLOSE_POLICY_VIOLATION, reason: "idle: nothing received" }
                } else if heard.elapsed() >= interval {
                    // Agents answer pings without any OpAMP traffic of their own. One that
                    // spoke within the last interval (a heartbeating agent) needs none: at
                    // 10,000 agents the pings were hundreds of wake-ups and writes a second.
                    Next::Send(Message::Ping(Bytes::new()))
                } else {
                    Next::Wait
                }
            }
        };
        match next {
            Next::Wait => {}
            Next::Send(reply) => {
                if socket.send(reply).await.is_err() {
                    break;
                }
            }
            Next::SendAndClose {
                reply,
                code,
                reason,
            } => {
                let _ = socket.send(reply).await;
                close(&mut socket, code, reason).await;
                // A refused agent may still be sending: read that off, or the kernel's reset
                // could destroy our reply before the agent reads it. (Shutting down, nobody
                // waits for stragglers.)
                if code != CLOSE_GOING_AWAY {
                    linger(&mut socket).await;
                }
                break;
            }
            Next::Refuse {
                kind,
                message,
                code,
            } => {
                refuse(&mut socket, kind, message, code).await;
                break;
            }
            Next::Close { code, reason } => {
                close(&mut socket, code, reason).await;
                // Its pongs to our last pings may be on the way: read them off (see `linger`).
                linger(&mut socket).await;
                break;
            }
            Next::Stop => break,
        }
    }
    registry.closed(&ctx);
}

/// Handles what the socket delivered: an agent message goes to the registry, anything else
/// ends the session (with a reason for the agent when there is one).
fn received(
    server: &OpampServer,
    ctx: &mut super::protocol::ConnCtx,
    incoming: Option<Result<Message, axum::Error>>,
    limit: usize,
) -> Next {
    let data = match incoming {
        None | Some(Ok(Message::Close(_))) => return Next::Stop,
        Some(Ok(Message::Binary(data))) => data,
        Some(Ok(Message::Text(_))) => {
            return Next::Refuse {
                kind: ServerErrorResponseType::BadRequest,
                message: "OpAMP messages are binary WebSocket messages".to_owned(),
                code: CLOSE_UNSUPPORTED_DATA,
            };
        }
        Some(Ok(_)) => return Next::Wait, // ping/pong: answered by the library
        Some(Err(err)) => {
            return match too_long(err) {
                Some((size, max)) => Next::Refuse {
                    kind: ServerErrorResponseType::BadRequest,
                    message: format!("message of {size} bytes exceeds the limit of {max} bytes"),
                    code: CLOSE_TOO_BIG,
                },
                None => Next::Stop,
            };
        }
    };
    let msg = match framing::decode::<AgentToServer>(&data, limit) {
        Ok(msg) => msg,
        Err(err) => {
            let code = match err {
                FrameError::TooLarge { .. } => CLOSE_TOO_BIG,
                FrameError::Protobuf(_) => CLOSE_INVALID_PAYLOAD,
                _ => CLOSE_PROTOCOL_ERROR,
            };
            tracing::info!(agent = ?ctx.uid, error = %err, "Malformed OpAMP message; closing");
            return Next::Refuse {
                kind: ServerErrorResponseType::BadRequest,
                message: err.to_string(),
                code,
            };
        }
    };
    let goodbye = msg.agent_disconnect.is_some();
    let first = ctx.uid.is_none();
    let reply = server.registry().handle(ctx, msg, chrono::Utc::now());
    // A refused message ends the session even when it says goodbye (e.g. a second agent's
    // AgentDisconnect on this connection).
    if reply.error_response.is_some() {
        Next::SendAndClose {
            reply: frame(&reply),
            code: CLOSE_PROTOCOL_ERROR,
            reason: "bad request",
        }
    } else if goodbye {
        Next::Wait
    } else if first || !is_empty_reply(&reply) {
        // Heartbeats need no answer over WebSocket; the first message always gets one (it
        // carries our capabilities).
        Next::Send(frame(&reply))
    } else {
        Next::Wait
    }
}

/// The size and limit of an oversize message, if that is what `err` is.
fn too_long(err: axum::Error) -> Option<(usize, usize)> {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    match err.into_inner().downcast::<Error>().ok().map(|e| *e) {
        Some(Error::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
            Some((size, max_size))
        }
        _ => None,
    }
}
