//! The OpAMP protocol decisions made on each `AgentToServer`: identity (duplicate and
//! requested uids), connection binding, sequence gaps, what the report changes in the agent's
//! record, group membership, which config to offer and the connection settings offer. It
//! works on the registry's maps under the registry's one lock (see `crate::registry`), one
//! named step at a time.
//!
//! Transport code (`ws.rs`, `http.rs`) only moves bytes; it calls [`Registry::handle`] with a
//! [`ConnCtx`] describing the connection and sends back what it returns.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use otaas_api::AgentGroupId;
use otaas_opamp::proto::{
    AgentConfigMap, AgentDescription, AgentIdentification, AgentToServer, AgentToServerFlags,
    AvailableComponents, ComponentHealth, ConnectionSettingsOffers, EffectiveConfig,
    OpAmpConnectionSettings, RemoteConfigStatus, RemoteConfigStatuses, ServerErrorResponse,
    ServerErrorResponseType, ServerToAgent, ServerToAgentFlags, TelemetryConnectionSettings,
    any_value,
};
use otaas_opamp::{AgentCaps, InstanceUid, ServerCaps, hash};
use tokio::sync::Notify;

use super::redact;
use crate::fleet::report_limits::{self, ReportLimits};
use crate::fleet::{
    AgentRecord, CONFIG_FILE, ComponentSet, ComponentSignals, ConfigStatus, GroupConfig,
    HealthNode, Transport, match_group,
};
use crate::registry::{Entry, Inner, LiveConn, Registry, queue, target_of};
use crate::secrets::KnownSecrets;

/// Capabilities this server declares in the first reply of every connection.
pub const SERVER_CAPS: ServerCaps = ServerCaps(
    ServerCaps::ACCEPTS_STATUS.0
        | ServerCaps::OFFERS_REMOTE_CONFIG.0
        | ServerCaps::ACCEPTS_EFFECTIVE_CONFIG.0
        | ServerCaps::OFFERS_CONNECTION_SETTINGS.0,
);

/// One transport connection (a WebSocket, or a single HTTP request).
#[derive(Debug)]
pub struct ConnCtx {
    pub id: u64,
    pub transport: Transport,
    /// The URL agents reach us at, for the OpAMP connection settings offer.
    pub endpoint: String,
    /// WebSocket only: poked when this agent has something new to receive.
    pub notify: Option<Arc<Notify>>,
    /// The uid this connection's agent currently uses (after any reassignment).
    pub uid: Option<InstanceUid>,
    /// A uid we replaced on this connection (old -> new), so repeats of the old one map over.
    alias: Option<(InstanceUid, InstanceUid)>,
    replied: bool,
}

/// An agent's health tree from its OpAMP report.
fn health_from_proto(h: ComponentHealth) -> HealthNode {
    HealthNode {
        healthy: h.healthy,
        status: h.status,
        last_error: h.last_error,
        start_time_unix_nano: h.start_time_unix_nano,
        status_time_unix_nano: h.status_time_unix_nano,
        components: {
            let mut components: Vec<(String, HealthNode)> = h
                .component_health_map
                .into_iter()
                .map(|(k, v)| (k, health_from_proto(v)))
                .collect();
            components.sort_by(|a, b| a.0.cmp(&b.0));
            components
        },
    }
}

/// The types an OpAMP `AvailableComponents` lists: its top-level keys are the kinds, each
/// kind's sub-components are the types (the shape the collector's OpAMP extension sends).
fn component_set(ac: &AvailableComponents) -> ComponentSet {
    ac.components
        .iter()
        .map(|(kind, details)| {
            (
                kind.clone(),
                details.sub_component_map.keys().cloned().collect(),
            )
        })
        .collect()
}

/// The per-signal support an OpAMP `AvailableComponents` reports: a component with any
/// `stability.<signal>` metadata supports the signals whose level is not `Undefined`.
fn component_signals(ac: &AvailableComponents) -> Option<ComponentSignals> {
    use otaas_api::components::{STABILITY_KEY_PREFIX, UNDEFINED_STABILITY};
    let mut out = ComponentSignals::new();
    for (kind, details) in &ac.components {
        for (ty, sub) in &details.sub_component_map {
            let mut reported = false;
            let mut supported = std::collections::BTreeSet::new();
            for kv in &sub.metadata {
                let Some(signal) = kv.key.strip_prefix(STABILITY_KEY_PREFIX) else {
                    continue;
                };
                reported = true;
                let level = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.as_str(),
                    _ => "",
                };
                if !level.is_empty() && level != UNDEFINED_STABILITY {
                    supported.insert(signal.to_owned());
                }
            }
            if reported {
                out.entry(kind.clone())
                    .or_default()
                    .insert(ty.clone(), supported);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn error_reply(uid: Bytes, kind: ServerErrorResponseType, message: String) -> ServerToAgent {
    ServerToAgent {
        instance_uid: uid,
        error_response: Some(ServerErrorResponse {
            r#type: kind as i32,
            error_message: message,
            details: None,
        }),
        capabilities: SERVER_CAPS.0,
        ..Default::default()
    }
}

/// Labels from an agent description: identifying and non-identifying attributes, values as
/// strings (non-string values in their natural text form). Also returns `service.version`.
fn labels_of(desc: &AgentDescription) -> (BTreeMap<String, String>, Option<String>) {
    let mut labels = BTreeMap::new();
    for kv in desc
        .identifying_attributes
        .iter()
        .chain(&desc.non_identifying_attributes)
    {
        let text = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            Some(any_value::Value::BoolValue(b)) => b.to_string(),
            Some(any_value::Value::IntValue(i)) => i.to_string(),
            Some(any_value::Value::DoubleValue(d)) => d.to_string(),
            Some(any_value::Value::BytesValue(b)) => hash::to_hex(b),
            // Arrays and maps are not selector material.
            Some(_) | None => continue,
        };
        labels.insert(kv.key.clone(), text);
    }
    let version = labels.get("service.version").cloned();
    (labels, version)
}

/// Hash of a reported effective config: SHA-256 of the body when it is one file (so it
/// compares with the desired config hash), else of the name/body pairs in name order.
fn effective_hash(map: &AgentConfigMap) -> Option<String> {
    match map.config_map.len() {
        0 => None,
        1 => map
            .config_map
            .values()
            .next()
            .map(|f| hash::to_hex(&hash::sha256(&f.body))),
        _ => {
            let mut names: Vec<_> = map.config_map.keys().collect();
            names.sort();
            let mut buf = Vec::new();
            for name in names {
                buf.extend_from_slice(name.as_bytes());
                buf.push(0);
                buf.extend_from_slice(&map.config_map[name].body);
                buf.push(0);
            }
            Some(hash::to_hex(&hash::sha256(&buf)))
        }
    }
}

fn redacted_body(map: &AgentConfigMap, known: &KnownSecrets) -> Option<String> {
    let file = map
        .config_map
        .get(CONFIG_FILE)
        .or_else(|| map.config_map.values().next())?;
    redact::redact_yaml(&file.body, known)
}

/// The OTLP/HTTP metrics URL on the listener the agent reached us at (`ws://h/v1/opamp` ->
/// `http://h/v1/metrics`).
fn own_metrics_url(endpoint: &str) -> String {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("http", endpoint));
    let scheme = match scheme {
        "wss" | "https" => "https",
        _ => "http",
    };
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}{}", crate::insights::ingest::METRICS_PATH)
}

fn heartbeat_offer(endpoint: &str, interval: Duration) -> ConnectionSettingsOffers {
    let secs = interval.as_secs().max(1);
    let digest = hash::sha256(format!("{endpoint}\n{secs}").as_bytes());
    ConnectionSettingsOffers {
        hash: Bytes::copy_from_slice(&digest),
        opamp: Some(OpAmpConnectionSettings {
            destination_endpoint: endpoint.to_owned(),
            heartbeat_interval_seconds: secs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Registry {
    /// A context for a new connection.
    pub fn connection(
        &self,
        transport: Transport,
        endpoint: String,
        notify: Option<Arc<Notify>>,
    ) -> ConnCtx {
        let mut inner = self.lock();
        inner.next_conn += 1;
        ConnCtx {
            id: inner.next_conn,
            transport,
            endpoint,
            notify,
            uid: None,
            alias: None,
            replied: false,
        }
    }

    /// Handles one agent message and returns the reply. One pass under the registry lock,
    /// step by step: admission (uid, one agent per connection, report limits), identity,
    /// connection binding, sequence, the report itself, membership, then the offers.
    pub fn handle(
        &self,
        ctx: &mut ConnCtx,
        msg: AgentToServer,
        now: DateTime<Utc>,
    ) -> ServerToAgent {
        let first_reply = !ctx.replied;
        ctx.replied = true;
        let limits = self.report_limits();
        let (uid, mut reply) = match admit(ctx, &msg, &limits, first_reply) {
            Admission::Admitted(uid, reply) => (uid, reply),
            Admission::Refused(refusal) => return refusal,
        };
        let heartbeat = self.heartbeat();
        let mut guard = self.lock();
        let uid = identify(&mut guard, ctx, uid, &msg, &mut reply);
        let Inner {
            agents,
            texts,
            components,
            signals,
            groups,
            pins,
            dirty,
            touched,
            ..
        } = &mut *guard;
        let entry = agents
            .entry(uid)
            .or_insert_with(|| Entry::new(AgentRecord::new(uid)));
        bind_connection(entry, ctx, now);
        // A message built before the agent said goodbye can arrive after it (the Python client
        // does this with the same sequence number): answer it, but keep the agent disconnected.
        if msg.agent_disconnect.is_none() && entry.goodbye_seq == Some(msg.sequence_num) {
            return reply;
        }
        let Sequence { gap, fresh_start } = track_sequence(entry, ctx, &msg, now);
        if gap {
            reply.flags |= ServerToAgentFlags::ReportFullState as u64;
        }

        let disconnect = msg.agent_disconnect.is_some();
        let Report {
            mut changed,
            labels_changed,
        } = self.apply_report(
            &mut entry.rec,
            ctx,
            msg,
            now,
            &limits,
            &mut Interned {
                texts,
                components,
                signals,
            },
            &mut reply,
        );
        if disconnect {
            entry.conn = None;
            queue(dirty, touched, &self.dirty_wake, uid, true);
            return reply;
        }

        let group = membership(groups, pins, uid, &entry.rec);
        if labels_changed {
            tracing::debug!(agent = %uid, group = ?group.as_ref().map(|g| g.id), "Agent labels changed");
        }
        changed |= assign_group(&mut entry.rec, group.as_deref());
        queue(dirty, touched, &self.dirty_wake, uid, changed);

        if let Some(group) = &group {
            offer_config(entry, ctx, group, gap || fresh_start, &mut reply);
        }
        offer_settings(entry, ctx, heartbeat, &mut reply);
        reply
    }

    /// What the report says, into the agent's record: capabilities, transport, replica,
    /// description, health, remote config status, effective config, available components.
    /// Returns whether the record changed beyond `last_seen` (only then is it written back
    /// whole; a plain heartbeat only touches `last_seen`) and whether its labels did.
    #[allow(clippy::too_many_arguments)]
    fn apply_report(
        &self,
        rec: &mut AgentRecord,
        ctx: &ConnCtx,
        msg: AgentToServer,
        now: DateTime<Utc>,
        limits: &ReportLimits,
        interned: &mut Interned<'_>,
        reply: &mut ServerToAgent,
    ) -> Report {
        let mut changed = msg.agent_description.is_some()
            || msg.health.is_some()
            || msg.remote_config_status.is_some()
            || msg.effective_config.is_some()
            || msg.available_components.is_some()
            || msg.agent_disconnect.is_some()
            || rec.capabilities != msg.capabilities
            || rec.transport != Some(ctx.transport)
            || !rec.connected
            || rec.last_seen.is_none();
        rec.capabilities = msg.capabilities;
        rec.last_seen = Some(now);
        rec.transport = Some(ctx.transport);
        rec.connected = msg.agent_disconnect.is_none();
        if rec.replica_id.as_deref() != self.replica_id.get().map(String::as_str) {
            rec.replica_id = self.replica_id.get().cloned();
            changed = true;
        }
        let mut labels_changed = false;
        if let Some(desc) = &msg.agent_description {
            let (labels, version) = labels_of(desc);
            labels_changed = labels != rec.labels;
            rec.labels = labels;
            rec.agent_version = version;
        }
        if let Some(health) = msg.health {
            let mut health = health_from_proto(health);
            health.redact(&self.known_secrets());
            rec.health = Some(health);
        }
        if let Some(status) = msg.remote_config_status {
            self.apply_config_status(rec, status);
        }
        if let Some(effective) = msg.effective_config {
            self.apply_effective_config(rec, effective, limits, interned.texts);
        }
        if let Some(ac) = &msg.available_components {
            apply_components(rec, ac, interned, reply);
        }
        Report {
            changed,
            labels_changed,
        }
    }

    /// The agent's report on the last remote config it received (its error message redacted
    /// and cut like any stored text).
    fn apply_config_status(&self, rec: &mut AgentRecord, status: RemoteConfigStatus) {
        rec.remote_config_status = match RemoteConfigStatuses::try_from(status.status) {
            Ok(RemoteConfigStatuses::Applied) => ConfigStatus::Applied,
            Ok(RemoteConfigStatuses::Applying) => ConfigStatus::Applying,
            Ok(RemoteConfigStatuses::Failed) => ConfigStatus::Failed,
            Ok(RemoteConfigStatuses::Unset) | Err(_) => ConfigStatus::Unset,
        };
        rec.remote_config_error = (!status.error_message.is_empty()).then(|| {
            let redacted = self.known_secrets().redact_text(&status.error_message);
            report_limits::cut_config_error(redacted)
        });
        rec.remote_config_hash = (!status.last_remote_config_hash.is_empty())
            .then(|| hash::to_hex(&status.last_remote_config_hash));
        rec.note_config_status(chrono::Utc::now());
    }

    /// The effective config: its hash (of the real body, for drift) and its redacted text,
    /// shared by every agent reporting the same body.
    fn apply_effective_config(
        &self,
        rec: &mut AgentRecord,
        effective: EffectiveConfig,
        limits: &ReportLimits,
        texts: &mut HashMap<String, Arc<str>>,
    ) {
        let map = effective.config_map.unwrap_or_default();
        let digest = effective_hash(&map);
        rec.effective_config = match &digest {
            Some(d) => match texts.get(d) {
                Some(text) => Some(text.clone()),
                None => {
                    // Redaction re-writes the YAML: its output is bounded like its input.
                    let known = self.known_secrets();
                    let text: Option<Arc<str>> = redacted_body(&map, &known)
                        .filter(|t| t.len() <= limits.effective_config_bytes)
                        .map(Arc::from);
                    if let Some(t) = &text {
                        texts.insert(d.clone(), t.clone());
                    }
                    text
                }
            },
            None => None,
        };
        rec.effective_config_hash = digest;
    }

    /// What a WebSocket agent should be pushed now (a newer config), if anything.
    pub fn pending_push(&self, ctx: &ConnCtx) -> Option<ServerToAgent> {
        let uid = ctx.uid?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let entry = inner.agents.get_mut(&uid)?;
        if entry.conn.as_ref().map(|c| c.id) != Some(ctx.id) {
            return None;
        }
        let group = entry.rec.group_id.and_then(|id| inner.groups.get(&id))?;
        let group = target_of(&inner.pins, &uid, group);
        if !entry.rec.caps().contains(AgentCaps::ACCEPTS_REMOTE_CONFIG)
            || entry.rec.remote_config_hash.as_deref() == Some(group.hash_hex.as_str())
            || entry.offered.as_ref() == Some(&group.remote.config_hash)
        {
            return None;
        }
        entry.offered = Some(group.remote.config_hash.clone());
        Some(ServerToAgent {
            instance_uid: Bytes::copy_from_slice(uid.as_bytes()),
            remote_config: Some(group.remote.clone()),
            ..Default::default()
        })
    }

    /// The connection ended (WebSocket closed): its agent is disconnected.
    pub fn closed(&self, ctx: &ConnCtx) {
        let Some(uid) = ctx.uid else { return };
        let mut inner = self.lock();
        if let Some(entry) = inner.agents.get_mut(&uid)
            && entry.conn.as_ref().map(|c| c.id) == Some(ctx.id)
        {
            entry.conn = None;
            entry.rec.connected = false;
            inner.dirty.insert(uid);
        }
    }
}

/// The registry's maps of texts and component lists shared between agents (by hash).
struct Interned<'a> {
    texts: &'a mut HashMap<String, Arc<str>>,
    components: &'a mut HashMap<String, Arc<ComponentSet>>,
    signals: &'a mut HashMap<String, Arc<ComponentSignals>>,
}

/// What [`Registry::apply_report`] found.
struct Report {
    changed: bool,
    labels_changed: bool,
}

/// Where a message stands in the agent's sequence.
struct Sequence {
    /// We may have missed state: the agent is asked for a full report.
    gap: bool,
    /// A restarted agent starting again at 0 with its description.
    fresh_start: bool,
}

/// What [`admit`] decided.
enum Admission {
    /// The message's uid, and the reply to build on.
    Admitted(InstanceUid, ServerToAgent),
    /// The answer to a refused message.
    Refused(ServerToAgent),
}

/// Admission of a message before anything of it is registered: a valid uid, the one agent of
/// this connection, within the report limits.
fn admit(
    ctx: &ConnCtx,
    msg: &AgentToServer,
    limits: &ReportLimits,
    first_reply: bool,
) -> Admission {
    let uid = match InstanceUid::from_bytes(&msg.instance_uid) {
        Ok(uid) => uid,
        Err(err) => {
            return Admission::Refused(error_reply(
                msg.instance_uid.clone(),
                ServerErrorResponseType::BadRequest,
                err.to_string(),
            ));
        }
    };
    let mut reply = ServerToAgent {
        instance_uid: msg.instance_uid.clone(),
        ..Default::default()
    };
    if first_reply || ctx.transport == Transport::Http {
        reply.capabilities = SERVER_CAPS.0;
    }
    // One agent per connection: the first uid binds it (a uid we assigned replaces the
    // binding, and the agent's repeats of its old uid map over). Another uid is refused
    // before anything is registered, so one socket cannot stand for a fleet and bypass
    // the per-address, connection and admission limits.
    if let Some(bound) = ctx.uid
        && uid != bound
        && ctx.alias.is_none_or(|(old, _)| uid != old)
    {
        tracing::info!(agent = %bound, other = %uid, "A second instance uid on one OpAMP connection; closing it");
        return Admission::Refused(error_reply(
            msg.instance_uid.clone(),
            ServerErrorResponseType::BadRequest,
            format!(
                "this connection belongs to agent {bound}; an OpAMP connection serves one \
                 agent, so a message for agent {uid} needs a connection of its own"
            ),
        ));
    }
    // Over a limit: refused as a whole, before anything of it is registered or kept.
    if let Err(over) = limits.check(msg) {
        tracing::info!(agent = %uid, error = %over, "Refused an agent report over a limit");
        return Admission::Refused(error_reply(
            msg.instance_uid.clone(),
            ServerErrorResponseType::BadRequest,
            over.to_string(),
        ));
    }
    Admission::Admitted(uid, reply)
}

/// Identity: a uid another live WebSocket holds, or an explicit request, gets a new one (once
/// per connection: later requests are answered with the uid already assigned, so a
/// connection cannot mint agents one request at a time). Returns the uid the message is for.
fn identify(
    inner: &mut Inner,
    ctx: &mut ConnCtx,
    mut uid: InstanceUid,
    msg: &AgentToServer,
    reply: &mut ServerToAgent,
) -> InstanceUid {
    let mut new_uid = None;
    let requested = msg.flags & AgentToServerFlags::RequestInstanceUid as u64 != 0;
    if let Some((old, new)) = ctx.alias
        && (uid == old || requested)
    {
        uid = new;
        new_uid = Some(new);
    } else {
        let duplicate = ctx.transport == Transport::Ws
            && inner.agents.get(&uid).is_some_and(|e| {
                e.rec.connected && e.conn.as_ref().is_some_and(|c| c.id != ctx.id)
            });
        if requested || duplicate {
            let fresh = InstanceUid::new_v7();
            tracing::info!(agent = %uid, new_uid = %fresh, duplicate, "Assigning a new instance uid");
            // The uid this connection held until now (if any) is gone with the rename.
            if ctx.uid == Some(uid)
                && let Some(entry) = inner.agents.get_mut(&uid)
                && entry.conn.as_ref().map(|c| c.id) == Some(ctx.id)
            {
                entry.conn = None;
                entry.rec.connected = false;
                inner.dirty.insert(uid);
            }
            ctx.alias = Some((uid, fresh));
            uid = fresh;
            new_uid = Some(fresh);
        }
    }
    if let Some(new) = new_uid {
        reply.agent_identification = Some(AgentIdentification {
            new_instance_uid: Bytes::copy_from_slice(new.as_bytes()),
        });
    }
    ctx.uid = Some(uid);
    uid
}

/// Connection binding: a new WebSocket starts with nothing offered on it; over HTTP there is
/// no connection to bind.
fn bind_connection(entry: &mut Entry, ctx: &ConnCtx, now: DateTime<Utc>) {
    match ctx.transport {
        Transport::Ws => {
            if entry.conn.as_ref().map(|c| c.id) != Some(ctx.id) {
                entry.connected_at(now);
                entry.conn = Some(LiveConn {
                    id: ctx.id,
                    notify: ctx.notify.clone(),
                });
                entry.offered = None;
                entry.settings_offered = false;
            }
        }
        Transport::Http => entry.conn = None,
    }
}

/// Goodbyes, HTTP reconnects and sequence numbers: a restarted agent starts again at 0 with
/// its description; anything else that is not last+1 means we may have missed state.
fn track_sequence(
    entry: &mut Entry,
    ctx: &ConnCtx,
    msg: &AgentToServer,
    now: DateTime<Utc>,
) -> Sequence {
    entry.goodbye_seq = msg.agent_disconnect.is_some().then_some(msg.sequence_num);
    // Over HTTP there is no connection: an agent that was offline and speaks again has
    // (re)connected.
    if ctx.transport == Transport::Http && !entry.rec.connected && msg.agent_disconnect.is_none() {
        entry.connected_at(now);
    }
    let fresh_start = msg.sequence_num == 0 && msg.agent_description.is_some();
    let gap = match entry.last_seq {
        None => !fresh_start,
        Some(last) => msg.sequence_num != last.wrapping_add(1) && !fresh_start,
    };
    if fresh_start && ctx.transport == Transport::Http {
        entry.settings_offered = false;
    }
    entry.last_seq = Some(msg.sequence_num);
    Sequence { gap, fresh_start }
}

/// The component types the agent's build has, shared by every agent reporting the same list
/// (by its hash); a report of the hash alone is fine when we know that list, else the agent
/// is asked for it.
fn apply_components(
    rec: &mut AgentRecord,
    ac: &AvailableComponents,
    interned: &mut Interned<'_>,
    reply: &mut ServerToAgent,
) {
    let digest = hash::to_hex(&ac.hash);
    if !ac.components.is_empty() {
        let set = interned
            .components
            .entry(digest.clone())
            .or_insert_with(|| Arc::new(component_set(ac)))
            .clone();
        rec.component_signals = match interned.signals.get(&digest) {
            Some(shared) => Some(shared.clone()),
            None => component_signals(ac).map(|signals| {
                let shared = Arc::new(signals);
                interned.signals.insert(digest.clone(), shared.clone());
                shared
            }),
        };
        rec.available_components = Some(set);
        rec.available_components_hash = Some(digest);
    } else if rec.available_components_hash.as_deref() != Some(digest.as_str())
        || rec.available_components.is_none()
    {
        match interned.components.get(&digest) {
            Some(set) => {
                rec.available_components = Some(set.clone());
                rec.component_signals = interned.signals.get(&digest).cloned();
                rec.available_components_hash = Some(digest);
            }
            None => {
                reply.flags |= ServerToAgentFlags::ReportAvailableComponents as u64;
            }
        }
    }
}

/// Membership, recomputed on every report (cheap: a scan over the groups), so label changes
/// and group changes are both covered: the config the agent should run (its pin, else its
/// group's default), if it belongs to a group.
fn membership(
    groups: &HashMap<AgentGroupId, Arc<GroupConfig>>,
    pins: &HashMap<InstanceUid, Arc<GroupConfig>>,
    uid: InstanceUid,
    rec: &AgentRecord,
) -> Option<Arc<GroupConfig>> {
    match_group(groups.values().map(|g| &**g), &rec.labels)
        .and_then(|g| groups.get(&g.id))
        .map(|g| target_of(pins, &uid, g).clone())
}

/// Records the agent's group and desired config; true when either changed.
fn assign_group(rec: &mut AgentRecord, group: Option<&GroupConfig>) -> bool {
    let group_id = group.map(|g| g.id);
    let desired = group.map(|g| g.hash_hex.as_str());
    if rec.group_id != group_id || rec.desired_config_hash.as_deref() != desired {
        rec.group_id = group_id;
        rec.desired_config_hash = desired.map(str::to_owned);
        return true;
    }
    false
}

/// Remote config: offered while the agent's last received hash differs from the desired one;
/// over WebSocket only once per connection and hash (it is still being applied) unless the
/// agent restarted or we may have missed state (`resend`), over HTTP on every poll until the
/// agent reports it.
fn offer_config(
    entry: &mut Entry,
    ctx: &ConnCtx,
    group: &GroupConfig,
    resend: bool,
    reply: &mut ServerToAgent,
) {
    if entry.rec.caps().contains(AgentCaps::ACCEPTS_REMOTE_CONFIG)
        && entry.rec.remote_config_hash.as_deref() != Some(group.hash_hex.as_str())
        && (ctx.transport == Transport::Http
            || resend
            || entry.offered.as_ref() != Some(&group.remote.config_hash))
    {
        reply.remote_config = Some(group.remote.clone());
        entry.offered = Some(group.remote.config_hash.clone());
    }
}

/// Heartbeat interval, through the OpAMP connection settings, to agents that both send
/// heartbeats and accept OpAMP connection settings (the spec gates the `opamp` offer on the
/// latter). Agents that report their own metrics are offered our OTLP/HTTP ingest for them
/// (see `crate::insights`), in the same offer. Once per connection.
fn offer_settings(
    entry: &mut Entry,
    ctx: &ConnCtx,
    heartbeat: Duration,
    reply: &mut ServerToAgent,
) {
    let caps = AgentCaps(entry.rec.capabilities);
    let offer_heartbeat = !heartbeat.is_zero()
        && caps.contains(AgentCaps::REPORTS_HEARTBEAT)
        && caps.contains(AgentCaps::ACCEPTS_OPAMP_CONNECTION_SETTINGS);
    let offer_metrics = caps.contains(AgentCaps::REPORTS_OWN_METRICS);
    if entry.settings_offered || !(offer_heartbeat || offer_metrics) {
        return;
    }
    entry.settings_offered = true;
    let mut offer = heartbeat_offer(&ctx.endpoint, heartbeat);
    if !offer_heartbeat {
        offer.opamp = None;
    }
    if offer_metrics {
        let url = own_metrics_url(&ctx.endpoint);
        let mut digest = offer.hash.to_vec();
        digest.extend_from_slice(url.as_bytes());
        offer.hash = Bytes::copy_from_slice(&hash::sha256(&digest));
        offer.own_metrics = Some(TelemetryConnectionSettings {
            destination_endpoint: url,
            ..Default::default()
        });
    }
    reply.connection_settings = Some(offer);
}

#[cfg(test)]
mod tests;
