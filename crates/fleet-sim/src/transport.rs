//! The two OpAMP transports of a simulated agent: a WebSocket session (server pushes) and
//! plain HTTP polling. Each agent is one tokio task running one of these loops; buffers are
//! kept small so thousands of agents fit in one process.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use otaas_opamp::framing;
use otaas_opamp::proto::{AgentToServer, ServerToAgent};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};
use tokio_util::sync::CancellationToken;

use otaas_opamp::client::{
    Backoff, MAX_MESSAGE, Posted, Target, pause, post_opamp, retry_after_header, ws_config,
};

use crate::agent::SimAgent;
use crate::control::Control;

/// Starts the agent's own-metrics sender (it runs until the simulation stops).
fn start_own_metrics(
    agent: &SimAgent,
    url: String,
    target: &Arc<Target>,
    stop: &CancellationToken,
) {
    // `--own-metrics-seconds 0`: this fleet does not export.
    if agent.shared.rates.every.is_zero() {
        return;
    }
    tokio::spawn(crate::own_metrics::run(
        agent.uid.to_string(),
        url,
        target.clone(),
        agent.shared.rates.clone(),
        agent.running_pipelines.clone(),
        stop.clone(),
    ));
}

/// How long a connection lasts while `flap on`: long enough for the server to register the
/// agent, short enough that several reconnects land within the flapping window.
const FLAP_SESSION: Duration = Duration::from_secs(1);

enum SessionEnd {
    Stopped,
    Broken(String),
    RetryAfter(Duration),
    /// `flap on`: the agent hung up itself.
    Flapped,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, msg: &AgentToServer) -> Result<(), tungstenite::Error> {
    ws.send(Message::Binary(framing::encode(msg).into())).await
}

/// Runs one agent over WebSocket until `stop`; returns its final state.
pub(crate) async fn run_ws(
    mut agent: SimAgent,
    target: Arc<Target>,
    mut control: Control,
    stop: CancellationToken,
) -> (SimAgent, bool) {
    let mut backoff = Backoff::new();
    let mut delay = Duration::ZERO;
    let mut ever = false;
    loop {
        if pause(delay, &stop).await {
            return (agent, false);
        }
        let mut request = match target.url.as_str().into_client_request() {
            Ok(r) => r,
            Err(err) => {
                agent
                    .shared
                    .events
                    .connect_failed(&agent, &err.to_string(), false, None);
                return (agent, false);
            }
        };
        if let Some(token) = &target.token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        let connected = tokio::select! {
            r = tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config()), true, target.ws_tls.clone()) => r,
            _ = stop.cancelled() => return (agent, false),
        };
        let mut ws = match connected {
            Ok((ws, _)) => ws,
            Err(err) => {
                let auth = matches!(&err, tungstenite::Error::Http(resp) if resp.status() == 401);
                let retry_after = match &err {
                    tungstenite::Error::Http(resp) => retry_after_header(resp.headers()),
                    _ => None,
                };
                agent
                    .shared
                    .events
                    .connect_failed(&agent, &connect_error(&err), auth, retry_after);
                delay = retry_after.unwrap_or_else(|| backoff.next_delay());
                continue;
            }
        };
        agent.shared.events.connected(&agent, "ws", ever);
        // A new agent sends everything; a reconnecting one sends a compressed status and lets
        // the server ask for full state (ReportFullState) if it lost track of it.
        let first = if ever {
            agent.heartbeat_msg()
        } else {
            agent.full_state()
        };
        ever = true;
        if let Err(err) = send(&mut ws, &first).await {
            agent.shared.events.disconnected(&agent, &err.to_string());
            delay = backoff.next_delay();
            continue;
        }
        match ws_session(&mut agent, &mut ws, &mut control, &stop, &target).await {
            SessionEnd::Stopped => {
                let bye = agent.disconnect_msg();
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = send(&mut ws, &bye).await;
                    let _ = ws.close(None).await;
                })
                .await;
                return (agent, true);
            }
            SessionEnd::Broken(reason) => {
                agent.shared.events.disconnected(&agent, &reason);
                backoff.reset();
                delay = Duration::ZERO;
            }
            SessionEnd::Flapped => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                agent
                    .shared
                    .events
                    .disconnected(&agent, "flapping (control)");
                backoff.reset();
                delay = Duration::ZERO;
            }
            SessionEnd::RetryAfter(after) => {
                let _ = ws.close(None).await;
                agent
                    .shared
                    .events
                    .disconnected(&agent, "server unavailable");
                delay = if after.is_zero() {
                    backoff.next_delay()
                } else {
                    after
                };
            }
        }
    }
}

async fn ws_session(
    agent: &mut SimAgent,
    ws: &mut Ws,
    control: &mut Control,
    stop: &CancellationToken,
    target: &Arc<Target>,
) -> SessionEnd {
    let mut next_beat = Instant::now() + agent.heartbeat;
    let mut flap = agent.shared.rates.flap.subscribe();
    let flap_deadline = |on: bool| on.then(|| Instant::now() + FLAP_SESSION);
    let mut hang_up = flap_deadline(*flap.borrow_and_update());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return SessionEnd::Stopped,
            _ = sleep_until(hang_up.unwrap_or_else(Instant::now)), if hang_up.is_some() => {
                return SessionEnd::Flapped;
            }
            // The sender lives as long as the simulation, so this never errors in practice.
            Ok(()) = flap.changed() => {
                hang_up = flap_deadline(*flap.borrow_and_update());
            }
            frame = ws.next() => {
                let data = match frame {
                    None => return SessionEnd::Broken("connection closed".to_owned()),
                    Some(Err(err)) => return SessionEnd::Broken(err.to_string()),
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(frame))) => {
                        let reason = frame.map(|f| format!("closed by server: {} {}", u16::from(f.code), f.reason))
                            .unwrap_or_else(|| "closed by server".to_owned());
                        return SessionEnd::Broken(reason);
                    }
                    // tungstenite answers pings itself.
                    Some(Ok(_)) => continue,
                };
                let msg = match framing::decode::<ServerToAgent>(&data, MAX_MESSAGE) {
                    Ok(msg) => msg,
                    Err(err) => {
                        agent.shared.events.protocol_error(agent, &err.to_string());
                        continue;
                    }
                };
                let before = agent.heartbeat;
                let reaction = agent.handle(msg);
                if let Some(reply) = reaction.reply
                    && let Err(err) = send(ws, &reply).await
                {
                    return SessionEnd::Broken(err.to_string());
                }
                if let Some(url) = reaction.own_metrics {
                    start_own_metrics(agent, url, target, stop);
                }
                if let Some(after) = reaction.retry_after {
                    return SessionEnd::RetryAfter(after);
                }
                if agent.heartbeat != before {
                    next_beat = Instant::now() + agent.heartbeat;
                }
            }
            _ = sleep_until(next_beat), if !agent.heartbeat.is_zero() => {
                let beat = agent.heartbeat_msg();
                if let Err(err) = send(ws, &beat).await {
                    return SessionEnd::Broken(err.to_string());
                }
                next_beat = Instant::now() + agent.heartbeat;
            }
            changed = control.changed(), if control.is_open() => {
                if changed && let Some(msg) = apply_control(agent, control)
                    && let Err(err) = send(ws, &msg).await
                {
                    return SessionEnd::Broken(err.to_string());
                }
            }
        }
    }
}

/// Applies a label change from the control channel; returns the message reporting it.
fn apply_control(agent: &mut SimAgent, control: &Control) -> Option<AgentToServer> {
    let labels = control.labels_for(agent.index)?;
    if labels == agent.labels {
        return None;
    }
    agent.labels = labels;
    agent.shared.events.labels_changed(agent);
    Some(agent.description_msg())
}

fn connect_error(err: &tungstenite::Error) -> String {
    match err {
        tungstenite::Error::Http(resp) => format!("http status {}", resp.status()),
        other => other.to_string(),
    }
}

async fn post(target: &Target, msg: &AgentToServer) -> Posted {
    post_opamp(&target.http, &target.url, target.token.as_deref(), msg).await
}

/// Runs one agent over plain HTTP polling until `stop`; returns its final state.
pub(crate) async fn run_http(
    mut agent: SimAgent,
    target: Arc<Target>,
    mut control: Control,
    stop: CancellationToken,
) -> (SimAgent, bool) {
    let mut backoff = Backoff::new();
    let mut pending = Some(agent.full_state());
    let mut online = false;
    let mut ever = false;
    loop {
        let msg = pending.take().unwrap_or_else(|| agent.heartbeat_msg());
        let posted = tokio::select! {
            p = post(&target, &msg) => p,
            _ = stop.cancelled() => break,
        };
        // HTTP must poll to hear from the server at all: without a heartbeat interval, poll at
        // the protocol's default of 30 s rather than never (or in a tight loop).
        let mut delay = if agent.heartbeat.is_zero() {
            Duration::from_secs(30)
        } else {
            agent.heartbeat
        };
        match posted {
            Posted::Failed {
                error,
                auth,
                retry_after,
            } => {
                if online {
                    agent.shared.events.disconnected(&agent, &error);
                }
                online = false;
                agent
                    .shared
                    .events
                    .connect_failed(&agent, &error, auth, retry_after);
                // Like a real client, retry the same report.
                pending = Some(msg);
                delay = retry_after.unwrap_or_else(|| backoff.next_delay());
            }
            Posted::Reply(reply) => {
                if !online {
                    agent.shared.events.connected(&agent, "http", ever);
                    online = true;
                    ever = true;
                    backoff.reset();
                }
                let reaction = agent.handle(reply);
                if let Some(url) = reaction.own_metrics {
                    start_own_metrics(&agent, url, &target, &stop);
                }
                if let Some(next) = reaction.reply {
                    pending = Some(next);
                    delay = Duration::ZERO;
                } else if *agent.shared.rates.flap.borrow() {
                    // `flap on`: say goodbye, and come back after a moment.
                    let bye = agent.disconnect_msg();
                    let _ = tokio::time::timeout(Duration::from_secs(2), post(&target, &bye)).await;
                    agent
                        .shared
                        .events
                        .disconnected(&agent, "flapping (control)");
                    online = false;
                    delay = delay.min(FLAP_SESSION);
                }
                if let Some(after) = reaction.retry_after {
                    delay = if after.is_zero() {
                        backoff.next_delay()
                    } else {
                        after
                    };
                }
            }
        }
        if delay.is_zero() {
            continue;
        }
        // Wait for the next poll, a label change or stop.
        let deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = sleep_until(deadline) => break,
                _ = stop.cancelled() => {
                    return finish_http(agent, &target, online).await;
                }
                changed = control.changed(), if control.is_open() => {
                    if changed && let Some(msg) = apply_control(&mut agent, &control) {
                        pending = Some(msg);
                        break;
                    }
                }
            }
        }
        if stop.is_cancelled() {
            break;
        }
    }
    finish_http(agent, &target, online).await
}

async fn finish_http(mut agent: SimAgent, target: &Target, online: bool) -> (SimAgent, bool) {
    if online {
        let bye = agent.disconnect_msg();
        let _ = tokio::time::timeout(Duration::from_secs(2), post(target, &bye)).await;
    }
    (agent, online)
}
