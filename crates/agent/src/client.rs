//! The agent's OpAMP side: builds `AgentToServer` messages from the supervisor's [`Report`],
//! turns `ServerToAgent` offers into [`Config`]s for the supervisor, and keeps a connection up —
//! WebSocket first, plain HTTP polling when the server does not do WebSocket — with backoff
//! and the server's retry info. The OpAMP wire types stay in this file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use otaas_api::components::STABILITY_KEY_PREFIX;
use otaas_opamp::proto::{
    AgentCapabilities, AgentConfigFile, AgentConfigMap, AgentDescription, AgentDisconnect,
    AgentToServer, AnyValue, AvailableComponents, ComponentDetails, ComponentHealth,
    EffectiveConfig, KeyValue, RemoteConfigStatus, RemoteConfigStatuses, ServerErrorResponseType,
    ServerToAgent, ServerToAgentFlags, any_value, server_error_response,
};
use otaas_opamp::{InstanceUid, framing, hash};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};
use tokio_util::sync::CancellationToken;

use otaas_opamp::client::{
    Backoff, MAX_MESSAGE, Posted, pause, post_opamp, retry_after_header, ws_config,
};
use otaas_opamp::names::{CONFIG_CONTENT_TYPE, CONFIG_FILE_NAME};

use crate::collector::BuildInfo;
use crate::events::emit;
use crate::supervisor::{ApplyState, Config, Health, Report};
/// Heartbeat (and HTTP poll) interval until the server offers one: the protocol's default.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// What the agent can do, declared in every message.
const CAPS: u64 = AgentCapabilities::ReportsStatus as u64
    | AgentCapabilities::AcceptsRemoteConfig as u64
    | AgentCapabilities::ReportsEffectiveConfig as u64
    | AgentCapabilities::ReportsHealth as u64
    | AgentCapabilities::ReportsRemoteConfig as u64
    | AgentCapabilities::ReportsHeartbeat as u64
    // Only the heartbeat interval of an OpAMP connection settings offer is taken.
    | AgentCapabilities::AcceptsOpAmpConnectionSettings as u64
    | AgentCapabilities::ReportsAvailableComponents as u64;

/// Where the agent connects and how it authenticates.
pub struct Target {
    /// `ws://`/`wss://` URL of the OpAMP endpoint.
    pub ws_url: String,
    /// The same endpoint as `http://`/`https://`, for polling.
    pub http_url: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
    pub ws_tls: Option<tokio_tungstenite::Connector>,
    /// Skip WebSocket and poll over HTTP from the start.
    pub http_only: bool,
}

/// The agent's identity and everything it says about itself.
pub struct Identity {
    pub uid: InstanceUid,
    /// Where the uid is kept (rewritten when the server assigns a new one).
    pub uid_file: PathBuf,
    pub labels: Vec<(String, String)>,
    pub host: String,
    pub build: BuildInfo,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
    }
}

impl Identity {
    fn description(&self) -> AgentDescription {
        // Identifying attributes name the collector build (as the collector's own resource
        // does); the host and the operator's labels are non-identifying.
        let identifying = vec![
            kv("service.name", &self.build.command),
            kv("service.version", &self.build.version),
            kv("service.instance.id", &self.uid.to_string()),
        ];
        let mut non_identifying = vec![
            kv("host.name", &self.host),
            kv("os.type", std::env::consts::OS),
            kv("otaas.agent.version", env!("CARGO_PKG_VERSION")),
        ];
        non_identifying.extend(self.labels.iter().map(|(k, v)| kv(k, v)));
        AgentDescription {
            identifying_attributes: identifying,
            non_identifying_attributes: non_identifying,
        }
    }

    /// The build's components as OpAMP `AvailableComponents`: kind → type → module, the
    /// shape the OpenTelemetry Collector's OpAMP extension reports.
    fn available_components(&self) -> AvailableComponents {
        let components = self
            .build
            .components
            .iter()
            .map(|(kind, types)| {
                let sub = types
                    .iter()
                    .map(|(ty, module)| {
                        let (namespace, version) =
                            module.split_once(' ').unwrap_or((module.as_str(), ""));
                        let mut metadata =
                            vec![kv("code.namespace", namespace), kv("code.version", version)];
                        // Every level as `components` prints it, `Undefined` included: the
                        // server reads a signal without a defined level as unsupported.
                        for (signal, level) in self.stability(kind, ty) {
                            metadata.push(kv(&format!("{STABILITY_KEY_PREFIX}{signal}"), level));
                        }
                        let details = ComponentDetails {
                            metadata,
                            sub_component_map: Default::default(),
                        };
                        (ty.clone(), details)
                    })
                    .collect();
                (
                    kind.clone(),
                    ComponentDetails {
                        metadata: Vec::new(),
                        sub_component_map: sub,
                    },
                )
            })
            .collect();
        AvailableComponents {
            components,
            hash: Bytes::copy_from_slice(&hash::sha256(self.components_digest().as_bytes())),
        }
    }

    /// The per-signal levels `components` listed for one type (none when it listed none).
    fn stability<'a>(&'a self, kind: &str, ty: &str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.build
            .stability
            .get(kind)
            .and_then(|types| types.get(ty))
            .into_iter()
            .flatten()
            .map(|(s, l)| (s.as_str(), l.as_str()))
    }

    /// A stable text of the component list; its SHA-256 is the `AvailableComponents.hash`.
    fn components_digest(&self) -> String {
        let mut text = String::new();
        for (kind, types) in &self.build.components {
            for (ty, module) in types {
                text.push_str(&format!("{kind}\t{ty}\t{module}"));
                for (signal, level) in self.stability(kind, ty) {
                    text.push_str(&format!("\t{signal}={level}"));
                }
                text.push('\n');
            }
        }
        text
    }
}

/// The OpAMP state of the agent (sequence numbers, what was forwarded) and its messages.
pub struct Session {
    id: Identity,
    seq: u64,
    heartbeat: Duration,
    /// Hash (hex) of the last offer handed to the supervisor, so repeats are not re-applied.
    forwarded: Option<String>,
    offers: mpsc::Sender<Config>,
}

/// What to do after a server message.
#[derive(Default)]
struct Reaction {
    reply: Option<AgentToServer>,
    retry_after: Option<Duration>,
}

fn status_of(state: ApplyState) -> RemoteConfigStatuses {
    match state {
        ApplyState::Unset => RemoteConfigStatuses::Unset,
        ApplyState::Applying => RemoteConfigStatuses::Applying,
        ApplyState::Applied => RemoteConfigStatuses::Applied,
        ApplyState::Failed => RemoteConfigStatuses::Failed,
    }
}

impl Session {
    pub fn new(id: Identity, forwarded: Option<String>, offers: mpsc::Sender<Config>) -> Self {
        Self {
            id,
            seq: 0,
            heartbeat: DEFAULT_HEARTBEAT,
            forwarded,
            offers,
        }
    }

    fn base(&mut self) -> AgentToServer {
        let msg = AgentToServer {
            instance_uid: Bytes::copy_from_slice(self.id.uid.as_bytes()),
            sequence_num: self.seq,
            capabilities: CAPS,
            ..Default::default()
        };
        self.seq += 1;
        msg
    }

    /// Status, health and effective config from the supervisor's report.
    fn status(&mut self, report: &Report) -> AgentToServer {
        let mut msg = self.base();
        let hash = hash::from_hex(&report.remote_hash).unwrap_or_default();
        msg.remote_config_status = Some(RemoteConfigStatus {
            last_remote_config_hash: Bytes::from(hash),
            status: status_of(report.remote_state) as i32,
            error_message: report.remote_error.clone(),
        });
        let effective = report.effective.as_ref().map(|yaml| AgentConfigMap {
            config_map: [(
                CONFIG_FILE_NAME.to_owned(),
                AgentConfigFile {
                    body: Bytes::copy_from_slice(yaml.as_bytes()),
                    content_type: CONFIG_CONTENT_TYPE.to_owned(),
                },
            )]
            .into(),
        });
        msg.effective_config = Some(EffectiveConfig {
            config_map: Some(effective.unwrap_or_default()),
        });
        msg.health = Some(health_tree(&report.health));
        msg
    }

    /// Everything: the first message of a connection, or on ReportFullState.
    fn full(&mut self, report: &Report) -> AgentToServer {
        let mut msg = self.status(report);
        msg.agent_description = Some(self.id.description());
        msg.available_components = Some(self.id.available_components());
        msg
    }

    fn goodbye(&mut self) -> AgentToServer {
        let mut msg = self.base();
        msg.agent_disconnect = Some(AgentDisconnect {});
        msg
    }

    /// Reacts to one server message.
    async fn handle(&mut self, msg: ServerToAgent, report: &Report) -> Reaction {
        let mut reaction = Reaction::default();
        if let Some(err) = msg.error_response {
            let retry = err
                .details
                .map(|server_error_response::Details::RetryInfo(info)| {
                    Duration::from_nanos(info.retry_after_nanoseconds)
                });
            emit(
                "server_error",
                serde_json::json!({ "message": err.error_message, "type": err.r#type,
                    "retry_after_seconds": retry.map(|d| d.as_secs_f64()) }),
            );
            if err.r#type == ServerErrorResponseType::Unavailable as i32 {
                reaction.retry_after = Some(retry.unwrap_or(Duration::ZERO));
            }
            return reaction;
        }
        if let Some(ident) = msg.agent_identification {
            match InstanceUid::from_bytes(&ident.new_instance_uid) {
                Ok(uid) => {
                    emit(
                        "new_uid",
                        serde_json::json!({ "instance_uid": uid.to_string() }),
                    );
                    self.id.uid = uid;
                    if let Err(err) = std::fs::write(&self.id.uid_file, format!("{uid}\n")) {
                        tracing::warn!(error = %err, "Could not save the new instance uid");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "Server sent an invalid instance uid"),
            }
        }
        if let Some(secs) = msg
            .connection_settings
            .as_ref()
            .and_then(|c| c.opamp.as_ref())
            .map(|o| o.heartbeat_interval_seconds)
            .filter(|s| *s > 0)
        {
            self.heartbeat = Duration::from_secs(secs);
        }
        if let Some(remote) = msg.remote_config {
            let hash_hex = hash::to_hex(&remote.config_hash);
            if self.forwarded.as_deref() != Some(hash_hex.as_str()) {
                self.forwarded = Some(hash_hex.clone());
                match config_body(remote.config.unwrap_or_default()) {
                    Ok(yaml) => {
                        emit("offer", serde_json::json!({ "hash": hash_hex }));
                        let _ = self
                            .offers
                            .send(Config {
                                hash: hash_hex,
                                yaml,
                            })
                            .await;
                    }
                    Err(reason) => {
                        // Nothing reaches the collector; tell the server why.
                        let mut r = report.clone();
                        r.remote_hash = hash_hex;
                        r.remote_state = ApplyState::Failed;
                        r.remote_error = reason;
                        reaction.reply = Some(self.status(&r));
                        return reaction;
                    }
                }
            }
        }
        let flags = msg.flags;
        if flags & ServerToAgentFlags::ReportFullState as u64 != 0 {
            reaction.reply = Some(self.full(report));
        } else if flags & ServerToAgentFlags::ReportAvailableComponents as u64 != 0 {
            let mut reply = self.base();
            reply.available_components = Some(self.id.available_components());
            reaction.reply = Some(reply);
        }
        reaction
    }
}

/// The one YAML file of an offered config map (`collector.yaml`, or the only file).
fn config_body(map: AgentConfigMap) -> Result<String, String> {
    let file = match map.config_map.get(CONFIG_FILE_NAME) {
        Some(f) => f.clone(),
        None if map.config_map.len() == 1 => {
            map.config_map.into_values().next().unwrap_or_default()
        }
        None => {
            return Err(format!(
                "expected one config file (or one named {:?}), got {}",
                CONFIG_FILE_NAME,
                map.config_map.len()
            ));
        }
    };
    String::from_utf8(file.body.to_vec()).map_err(|_| "the config file is not UTF-8".to_owned())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send_ws(ws: &mut Ws, msg: &AgentToServer) -> Result<(), tungstenite::Error> {
    ws.send(Message::Binary(framing::encode(msg).into())).await
}

enum End {
    Stopped,
    Broken(String),
    RetryAfter(Duration),
}

/// Keeps the agent connected until `stop`: WebSocket, or HTTP polling when the server does not
/// upgrade. Says goodbye (AgentDisconnect) when stopped.
pub async fn run(
    mut session: Session,
    target: Arc<Target>,
    mut reports: watch::Receiver<Report>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut delay = Duration::ZERO;
    let mut http = target.http_only;
    loop {
        if pause(delay, &stop).await {
            return;
        }
        if http {
            run_http(&mut session, &target, &mut reports, &stop).await;
            return;
        }
        let mut request = match target.ws_url.as_str().into_client_request() {
            Ok(r) => r,
            Err(err) => {
                emit(
                    "connect_failed",
                    serde_json::json!({ "error": err.to_string() }),
                );
                return;
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
            _ = stop.cancelled() => return,
        };
        let mut ws = match connected {
            Ok((ws, _)) => ws,
            Err(err) if refuses_upgrade(&err) => {
                // The server answered HTTP but would not upgrade: it does OpAMP over plain HTTP
                // only (or a proxy strips the upgrade). Poll instead.
                emit(
                    "transport_fallback",
                    serde_json::json!({ "from": "ws", "to": "http", "reason": err.to_string() }),
                );
                http = true;
                delay = Duration::ZERO;
                continue;
            }
            Err(err) => {
                let retry_after = match &err {
                    tungstenite::Error::Http(resp) => retry_after_header(resp.headers()),
                    _ => None,
                };
                let error = match &err {
                    tungstenite::Error::Http(resp) => format!("http status {}", resp.status()),
                    other => other.to_string(),
                };
                emit(
                    "connect_failed",
                    serde_json::json!({ "transport": "ws", "error": error }),
                );
                delay = retry_after.unwrap_or_else(|| backoff.next_delay());
                continue;
            }
        };
        emit(
            "connected",
            serde_json::json!({ "transport": "ws", "instance_uid": session.id.uid.to_string() }),
        );
        backoff.reset();
        let first = session.full(&reports.borrow_and_update().clone());
        let end = match send_ws(&mut ws, &first).await {
            Ok(()) => ws_session(&mut session, &mut ws, &mut reports, &stop).await,
            Err(err) => End::Broken(err.to_string()),
        };
        match end {
            End::Stopped => {
                let bye = session.goodbye();
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = send_ws(&mut ws, &bye).await;
                    let _ = ws.close(None).await;
                })
                .await;
                return;
            }
            End::Broken(reason) => {
                emit("disconnected", serde_json::json!({ "reason": reason }));
                delay = backoff.next_delay();
            }
            End::RetryAfter(after) => {
                let _ = ws.close(None).await;
                emit(
                    "disconnected",
                    serde_json::json!({ "reason": "server unavailable" }),
                );
                delay = if after.is_zero() {
                    backoff.next_delay()
                } else {
                    after
                };
            }
        }
    }
}

/// Whether a failed WebSocket handshake means "this server answers HTTP but does not do
/// WebSocket here" (as opposed to: down, overloaded, or refusing our token).
fn refuses_upgrade(err: &tungstenite::Error) -> bool {
    match err {
        tungstenite::Error::Http(resp) => {
            !matches!(resp.status().as_u16(), 401 | 403 | 429 | 500..)
        }
        // An HTTP answer that is no upgrade (HTTP/1.0, no Upgrade header, ...).
        tungstenite::Error::Protocol(_) => true,
        _ => false,
    }
}

async fn ws_session(
    session: &mut Session,
    ws: &mut Ws,
    reports: &mut watch::Receiver<Report>,
    stop: &CancellationToken,
) -> End {
    let mut next_beat = Instant::now() + session.heartbeat;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return End::Stopped,
            frame = ws.next() => {
                let data = match frame {
                    None => return End::Broken("connection closed".to_owned()),
                    Some(Err(err)) => return End::Broken(err.to_string()),
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(_))) => return End::Broken("closed by server".to_owned()),
                    Some(Ok(_)) => continue,
                };
                let msg = match framing::decode::<ServerToAgent>(&data, MAX_MESSAGE) {
                    Ok(msg) => msg,
                    Err(err) => {
                        tracing::warn!(error = %err, "Undecodable server message");
                        continue;
                    }
                };
                let before = session.heartbeat;
                let report = reports.borrow().clone();
                let reaction = session.handle(msg, &report).await;
                if let Some(reply) = reaction.reply
                    && let Err(err) = send_ws(ws, &reply).await
                {
                    return End::Broken(err.to_string());
                }
                if let Some(after) = reaction.retry_after {
                    return End::RetryAfter(after);
                }
                if session.heartbeat != before {
                    next_beat = Instant::now() + session.heartbeat;
                }
            }
            changed = reports.changed() => {
                if changed.is_err() {
                    return End::Stopped;
                }
                let report = reports.borrow_and_update().clone();
                let msg = session.status(&report);
                if let Err(err) = send_ws(ws, &msg).await {
                    return End::Broken(err.to_string());
                }
                next_beat = Instant::now() + session.heartbeat;
            }
            _ = sleep_until(next_beat) => {
                let beat = session.base();
                if let Err(err) = send_ws(ws, &beat).await {
                    return End::Broken(err.to_string());
                }
                next_beat = Instant::now() + session.heartbeat;
            }
        }
    }
}

async fn post(target: &Target, msg: &AgentToServer) -> Posted {
    post_opamp(&target.http, &target.http_url, target.token.as_deref(), msg).await
}

/// Plain HTTP: one POST per status change or heartbeat; the reply carries the server's news.
async fn run_http(
    session: &mut Session,
    target: &Target,
    reports: &mut watch::Receiver<Report>,
    stop: &CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut pending = Some(session.full(&reports.borrow_and_update().clone()));
    let mut online = false;
    loop {
        let msg = match pending.take() {
            Some(m) => m,
            None => session.base(),
        };
        let posted = tokio::select! {
            p = post(target, &msg) => p,
            _ = stop.cancelled() => break,
        };
        let mut delay = session.heartbeat;
        match posted {
            Posted::Failed {
                error, retry_after, ..
            } => {
                if online {
                    emit("disconnected", serde_json::json!({ "reason": error }));
                }
                online = false;
                emit(
                    "connect_failed",
                    serde_json::json!({ "transport": "http", "error": error }),
                );
                // The report is resent; its sequence number is already spent, which the server
                // answers with ReportFullState, so nothing is lost.
                pending = Some(msg);
                delay = retry_after.unwrap_or_else(|| backoff.next_delay());
            }
            Posted::Reply(reply) => {
                if !online {
                    emit(
                        "connected",
                        serde_json::json!({ "transport": "http", "instance_uid": session.id.uid.to_string() }),
                    );
                    online = true;
                    backoff.reset();
                }
                let report = reports.borrow().clone();
                let reaction = session.handle(reply, &report).await;
                if let Some(next) = reaction.reply {
                    pending = Some(next);
                    delay = Duration::ZERO;
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
        let deadline = Instant::now() + delay;
        tokio::select! {
            _ = sleep_until(deadline) => {}
            _ = stop.cancelled() => break,
            changed = reports.changed() => {
                if changed.is_ok() {
                    let report = reports.borrow_and_update().clone();
                    // A report still waiting to be delivered may be the first full one: resend
                    // everything rather than lose the description.
                    pending = Some(if pending.is_some() {
                        session.full(&report)
                    } else {
                        session.status(&report)
                    });
                }
            }
        }
    }
    if online {
        let bye = session.goodbye();
        let _ = tokio::time::timeout(Duration::from_secs(2), post(target, &bye)).await;
    }
}

/// The OpAMP health tree of a report: the agent at the root, a `pipeline:<id>` node per
/// pipeline of the running config and, below it, an `exporter:<id>` node per exporter it
/// lists. A failing exporter (for the pipeline's signal) makes its pipeline and the agent
/// unhealthy, and its error is the agent's last error, so the server's one-line reason names it.
pub fn health_tree(h: &Health) -> ComponentHealth {
    let running_status = if h.healthy {
        "StatusOK"
    } else {
        "StatusStopped"
    };
    let failing_in = |pipeline: &str, exporter: &str| {
        let signal = pipeline.split('/').next().unwrap_or_default();
        h.failing
            .get(exporter)
            .filter(|f| f.signals.is_empty() || f.signals.contains(signal))
    };
    let mut reasons: Vec<String> = Vec::new();
    let components = h
        .pipelines
        .iter()
        .map(|p| {
            let exporters: std::collections::HashMap<String, ComponentHealth> = h
                .exporters
                .get(p)
                .into_iter()
                .flatten()
                .map(|e| {
                    let node = match failing_in(p, e).filter(|_| h.healthy) {
                        Some(f) => {
                            let reason = format!("exporter {e} fails to send: {}", f.error);
                            if !reasons.contains(&reason) {
                                reasons.push(reason);
                            }
                            ComponentHealth {
                                healthy: false,
                                status: "StatusRecoverableError".to_owned(),
                                last_error: f.error.clone(),
                                start_time_unix_nano: h.start_time_unix_nano,
                                ..Default::default()
                            }
                        }
                        None => ComponentHealth {
                            healthy: h.healthy,
                            status: running_status.to_owned(),
                            start_time_unix_nano: h.start_time_unix_nano,
                            ..Default::default()
                        },
                    };
                    (format!("exporter:{e}"), node)
                })
                .collect();
            let failing = exporters.values().any(|n| n.healthy != h.healthy);
            let node = ComponentHealth {
                healthy: h.healthy && !failing,
                status: if failing {
                    "StatusRecoverableError"
                } else {
                    running_status
                }
                .to_owned(),
                start_time_unix_nano: h.start_time_unix_nano,
                component_health_map: exporters,
                ..Default::default()
            };
            (format!("pipeline:{p}"), node)
        })
        .collect();
    let (status, last_error) = match reasons.first() {
        None => (h.status.clone(), h.last_error.clone()),
        Some(first) => (
            format!("{}; {} exporter(s) failing", h.status, reasons.len()),
            first.clone(),
        ),
    };
    ComponentHealth {
        healthy: h.healthy && reasons.is_empty(),
        start_time_unix_nano: h.start_time_unix_nano,
        last_error,
        status,
        component_health_map: components,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otaas_opamp::proto::AgentRemoteConfig;

    fn running_health() -> Health {
        Health {
            healthy: true,
            status: "running (pid 7)".into(),
            start_time_unix_nano: 5,
            pipelines: vec!["logs/app".into(), "metrics/app".into()],
            exporters: [
                ("logs/app".to_owned(), vec!["otlphttp/out".to_owned()]),
                ("metrics/app".to_owned(), vec!["otlphttp/out".to_owned()]),
            ]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_failing_exporter_makes_its_pipeline_and_the_agent_unhealthy() {
        // Given a running collector whose exporter fails to send logs (not metrics)
        let mut watch = crate::exporter_health::ExporterWatch::default();
        watch.record(
            crate::exporter_health::ExportFailure {
                component: "otlphttp/out".into(),
                signal: Some("logs".into()),
                error: "connection refused".into(),
            },
            Instant::now(),
        );
        let mut h = running_health();
        h.failing = watch.failing().clone();
        // When the health tree is built
        let tree = health_tree(&h);
        // Then the exporter under the logs pipeline is unhealthy with the error, and so are
        // the pipeline and the agent; the metrics pipeline is not
        let logs = &tree.component_health_map["pipeline:logs/app"];
        let exporter = &logs.component_health_map["exporter:otlphttp/out"];
        assert_eq!(
            (
                exporter.healthy,
                exporter.status.as_str(),
                exporter.last_error.as_str()
            ),
            (false, "StatusRecoverableError", "connection refused")
        );
        assert_eq!(
            (logs.healthy, logs.status.as_str()),
            (false, "StatusRecoverableError")
        );
        let metrics = &tree.component_health_map["pipeline:metrics/app"];
        assert_eq!(
            (metrics.healthy, metrics.status.as_str()),
            (true, "StatusOK")
        );
        assert!(metrics.component_health_map["exporter:otlphttp/out"].healthy);
        assert!(!tree.healthy);
        assert_eq!(
            tree.last_error,
            "exporter otlphttp/out fails to send: connection refused"
        );
        assert_eq!(tree.status, "running (pid 7); 1 exporter(s) failing");
    }

    #[test]
    fn a_running_collector_without_failures_is_healthy_throughout() {
        let tree = health_tree(&running_health());
        assert!(tree.healthy);
        assert_eq!(tree.status, "running (pid 7)");
        let logs = &tree.component_health_map["pipeline:logs/app"];
        assert_eq!((logs.healthy, logs.status.as_str()), (true, "StatusOK"));
        assert_eq!(
            logs.component_health_map["exporter:otlphttp/out"].status,
            "StatusOK"
        );
    }

    fn identity() -> Identity {
        let mut build = BuildInfo {
            command: "otelcontribcol".into(),
            version: "0.135.0-dev".into(),
            ..Default::default()
        };
        build.components.insert(
            "receivers".into(),
            [(
                "filelog".to_owned(),
                "github.com/x/filelogreceiver v0.135.0".to_owned(),
            )]
            .into(),
        );
        build.stability.insert(
            "receivers".into(),
            [(
                "filelog".to_owned(),
                [
                    ("logs".to_owned(), "Beta".to_owned()),
                    ("metrics".to_owned(), "Undefined".to_owned()),
                ]
                .into(),
            )]
            .into(),
        );
        Identity {
            uid: InstanceUid::new_v7(),
            uid_file: std::env::temp_dir().join("otaas-agent-test-uid-unused"),
            labels: vec![("env".into(), "test".into())],
            host: "h1".into(),
            build,
        }
    }

    #[test]
    fn full_state_describes_the_build() {
        let (tx, _rx) = mpsc::channel(1);
        let mut s = Session::new(identity(), None, tx);
        let msg = s.full(&Report::default());
        assert_eq!(msg.capabilities, CAPS);
        let comps = msg.available_components.unwrap();
        let filelog = &comps.components["receivers"].sub_component_map["filelog"];
        assert_eq!(
            filelog.metadata[0],
            kv("code.namespace", "github.com/x/filelogreceiver")
        );
        assert_eq!(filelog.metadata[1], kv("code.version", "v0.135.0"));
        assert_eq!(
            filelog.metadata[2..],
            [
                kv("stability.logs", "Beta"),
                kv("stability.metrics", "Undefined")
            ]
        );
        assert_eq!(comps.hash.len(), 32);
        let desc = msg.agent_description.unwrap();
        assert!(
            desc.identifying_attributes
                .contains(&kv("service.version", "0.135.0-dev"))
        );
        assert!(desc.non_identifying_attributes.contains(&kv("env", "test")));
        assert!(
            desc.non_identifying_attributes
                .contains(&kv("host.name", "h1"))
        );
    }

    #[tokio::test]
    async fn an_offer_is_forwarded_once() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut s = Session::new(identity(), None, tx);
        let body = Bytes::from_static(b"receivers: {}\n");
        let offer = ServerToAgent {
            remote_config: Some(AgentRemoteConfig {
                config_hash: Bytes::copy_from_slice(&hash::sha256(&body)),
                config: Some(AgentConfigMap {
                    config_map: [(
                        "collector.yaml".to_owned(),
                        AgentConfigFile {
                            body: body.clone(),
                            content_type: "text/yaml".into(),
                        },
                    )]
                    .into(),
                }),
            }),
            ..Default::default()
        };
        s.handle(offer.clone(), &Report::default()).await;
        s.handle(offer, &Report::default()).await;
        let got = rx.try_recv().unwrap();
        assert_eq!(got.yaml, "receivers: {}\n");
        assert_eq!(got.hash, hash::to_hex(&hash::sha256(&body)));
        assert!(rx.try_recv().is_err());
    }
}
