//! Registry and protocol scenarios (Given / When / Then), without sockets.

use super::*;
use crate::fleet::{AgentFilter, GroupConfig};
use crate::registry::FLUSH_ROWS;
use otaas_api::AgentGroupId;
use otaas_opamp::proto::{
    AgentDisconnect, AnyValue, ComponentHealth, EffectiveConfig, KeyValue, RemoteConfigStatus,
};

const PY_CAPS: u64 = 0x3007;
const SIM_CAPS: u64 = 0x3907 | 0x100;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn group(selector: &[(&str, &str)], age_secs: i64, yaml: &str) -> GroupConfig {
    let hash = hash::to_hex(&hash::sha256(yaml.as_bytes()));
    GroupConfig::new(
        AgentGroupId::new(),
        labels(selector),
        DateTime::from_timestamp(1_700_000_000 - age_secs, 0).unwrap(),
        1,
        yaml.to_owned(),
        hash,
    )
}

fn desc(pairs: &[(&str, &str)]) -> AgentDescription {
    AgentDescription {
        identifying_attributes: vec![],
        non_identifying_attributes: pairs
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue((*v).to_owned())),
                }),
            })
            .collect(),
    }
}

fn first(uid: InstanceUid, caps: u64, pairs: &[(&str, &str)]) -> AgentToServer {
    AgentToServer {
        instance_uid: Bytes::copy_from_slice(uid.as_bytes()),
        sequence_num: 0,
        capabilities: caps,
        agent_description: Some(desc(pairs)),
        ..Default::default()
    }
}

fn beat(uid: InstanceUid, seq: u64, caps: u64) -> AgentToServer {
    AgentToServer {
        instance_uid: Bytes::copy_from_slice(uid.as_bytes()),
        sequence_num: seq,
        capabilities: caps,
        ..Default::default()
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_100, 0).unwrap()
}

#[test]
fn most_specific_then_oldest_group_wins() {
    let broad = group(&[("env", "prod")], 100, "a: 1\n");
    let narrow_new = group(&[("env", "prod"), ("region", "eu")], 10, "b: 1\n");
    let narrow_old = group(&[("env", "prod"), ("region", "eu")], 50, "c: 1\n");
    let groups = [broad.clone(), narrow_new.clone(), narrow_old.clone()];
    let eu = labels(&[("env", "prod"), ("region", "eu"), ("host", "x")]);
    assert_eq!(match_group(&groups, &eu).map(|g| g.id), Some(narrow_old.id));
    let us = labels(&[("env", "prod"), ("region", "us")]);
    assert_eq!(match_group(&groups, &us).map(|g| g.id), Some(broad.id));
    assert_eq!(
        match_group(&groups, &labels(&[("env", "dev")])).map(|g| g.id),
        None
    );
}

#[test]
fn matched_agent_gets_its_group_config_until_it_reports_it() {
    // Given a group for env=prod and an HTTP agent with env=prod
    let reg = Registry::new(Duration::from_secs(30));
    let g = group(&[("env", "prod")], 1, "receivers: {}\n");
    reg.set_groups(vec![g.clone()]);
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Http, "http://x/v1/opamp".into(), None);
    // When it connects
    let reply = reg.handle(&mut ctx, first(uid, PY_CAPS, &[("env", "prod")]), now());
    // Then the reply carries our capabilities and the group's config byte for byte
    assert_eq!(reply.capabilities, SERVER_CAPS.0);
    assert_eq!(reply.instance_uid.as_ref(), uid.as_bytes());
    assert_eq!(reply.remote_config.as_ref(), Some(&g.remote));
    let rec = reg.get(uid).unwrap();
    assert_eq!(rec.labels, labels(&[("env", "prod")]));
    assert_eq!(rec.group_id, Some(g.id));
    assert_eq!(
        rec.desired_config_hash.as_deref(),
        Some(g.hash_hex.as_str())
    );
    assert!(rec.connected);

    // When it reports APPLIED with the hash and the config as effective config
    let mut report = beat(uid, 1, PY_CAPS);
    report.remote_config_status = Some(RemoteConfigStatus {
        last_remote_config_hash: g.remote.config_hash.clone(),
        status: RemoteConfigStatuses::Applied as i32,
        error_message: String::new(),
    });
    report.effective_config = Some(EffectiveConfig {
        config_map: g.remote.config.clone(),
    });
    let mut ctx = reg.connection(Transport::Http, "http://x/v1/opamp".into(), None);
    let reply = reg.handle(&mut ctx, report, now());
    // Then nothing is resent and the status is recorded
    assert_eq!(reply.remote_config, None);
    assert_eq!(reply.flags, 0);
    let rec = reg.get(uid).unwrap();
    assert_eq!(rec.remote_config_status, ConfigStatus::Applied);
    assert_eq!(
        rec.effective_config_hash.as_deref(),
        Some(g.hash_hex.as_str())
    );
    assert_eq!(rec.effective_config.as_deref(), Some("receivers: {}\n"));
    // Secrets in a reported effective config are redacted before they are kept.
    let mut secret = beat(uid, 2, PY_CAPS);
    let mut map = g.remote.config.clone().unwrap();
    map.config_map.get_mut(CONFIG_FILE).unwrap().body =
        Bytes::from_static(b"extensions:\n  auth:\n    token: hunter2\n");
    secret.effective_config = Some(EffectiveConfig {
        config_map: Some(map),
    });
    reg.handle(&mut ctx, secret, now());
    let rec = reg.get(uid).unwrap();
    assert_eq!(
        rec.effective_config.as_deref(),
        Some("extensions:\n  auth:\n    token: <redacted>\n")
    );
    assert_eq!(
        rec.effective_config_hash,
        Some(hash::to_hex(&hash::sha256(
            b"extensions:\n  auth:\n    token: hunter2\n"
        )))
    );
}

#[test]
fn failed_config_is_recorded_with_its_message_and_not_resent() {
    let reg = Registry::new(Duration::from_secs(30));
    let g = group(&[], 1, "x: 1\n");
    reg.set_groups(vec![g.clone()]);
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Ws, "ws://x/v1/opamp".into(), None);
    assert!(
        reg.handle(&mut ctx, first(uid, PY_CAPS, &[]), now())
            .remote_config
            .is_some()
    );
    let mut report = beat(uid, 1, PY_CAPS);
    report.remote_config_status = Some(RemoteConfigStatus {
        last_remote_config_hash: g.remote.config_hash.clone(),
        status: RemoteConfigStatuses::Failed as i32,
        error_message: "exporter kafka unknown".into(),
    });
    let reply = reg.handle(&mut ctx, report, now());
    assert_eq!(reply.remote_config, None);
    let rec = reg.get(uid).unwrap();
    assert_eq!(rec.remote_config_status, ConfigStatus::Failed);
    assert_eq!(
        rec.remote_config_error.as_deref(),
        Some("exporter kafka unknown")
    );
}

#[test]
fn sequence_gap_and_unknown_agent_ask_for_full_state() {
    let reg = Registry::new(Duration::from_secs(30));
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Ws, "ws://x/v1/opamp".into(), None);
    // An agent we have never heard from sends a compressed heartbeat.
    let reply = reg.handle(&mut ctx, beat(uid, 41, SIM_CAPS), now());
    assert_eq!(reply.flags, ServerToAgentFlags::ReportFullState as u64);
    // In sequence: nothing asked.
    assert_eq!(
        reg.handle(&mut ctx, beat(uid, 42, SIM_CAPS), now()).flags,
        0
    );
    // A gap.
    assert_eq!(
        reg.handle(&mut ctx, beat(uid, 45, SIM_CAPS), now()).flags,
        ServerToAgentFlags::ReportFullState as u64
    );
    // Capabilities only in the first reply of the connection.
    assert_eq!(
        reg.handle(&mut ctx, beat(uid, 46, SIM_CAPS), now())
            .capabilities,
        0
    );
}

#[test]
fn duplicate_uid_on_a_second_live_socket_gets_a_new_uid() {
    let reg = Registry::new(Duration::from_secs(30));
    let uid = InstanceUid::new_v7();
    let mut a = reg.connection(Transport::Ws, "ws://x/v1/opamp".into(), None);
    let mut b = reg.connection(Transport::Ws, "ws://x/v1/opamp".into(), None);
    assert_eq!(
        reg.handle(&mut a, first(uid, SIM_CAPS, &[]), now())
            .agent_identification,
        None
    );
    let reply = reg.handle(&mut b, first(uid, SIM_CAPS, &[]), now());
    let new =
        InstanceUid::from_bytes(&reply.agent_identification.unwrap().new_instance_uid).unwrap();
    assert_ne!(new, uid);
    // The reply still echoes the uid the agent sent.
    assert_eq!(reply.instance_uid.as_ref(), uid.as_bytes());
    assert_eq!(b.uid, Some(new));
    assert!(reg.get(new).unwrap().connected);
    assert!(reg.get(uid).unwrap().connected);
}

#[test]
fn label_change_moves_the_agent_and_pokes_its_socket() {
    let reg = Registry::new(Duration::from_secs(30));
    let eu = group(&[("region", "eu")], 2, "eu: 1\n");
    let us = group(&[("region", "us")], 1, "us: 1\n");
    reg.set_groups(vec![eu.clone(), us.clone()]);
    let uid = InstanceUid::new_v7();
    let notify = Arc::new(Notify::new());
    let mut ctx = reg.connection(Transport::Ws, "ws://x/v1/opamp".into(), Some(notify));
    let reply = reg.handle(&mut ctx, first(uid, SIM_CAPS, &[("region", "eu")]), now());
    assert_eq!(
        reply.remote_config.unwrap().config_hash,
        eu.remote.config_hash
    );
    let mut moved = beat(uid, 1, SIM_CAPS);
    moved.agent_description = Some(desc(&[("region", "us")]));
    let reply = reg.handle(&mut ctx, moved, now());
    assert_eq!(
        reply.remote_config.unwrap().config_hash,
        us.remote.config_hash
    );
    assert_eq!(reg.get(uid).unwrap().group_id, Some(us.id));

    // A new revision of the agent's group is pushed; the old one is not offered twice.
    let us2 = GroupConfig::new(
        us.id,
        us.selector.clone(),
        us.created_at,
        2,
        "us: 2\n".into(),
        hash::to_hex(&hash::sha256(b"us: 2\n")),
    );
    assert_eq!(reg.upsert_group(us2.clone()).len(), 1);
    let push = reg.pending_push(&ctx).unwrap();
    assert_eq!(
        push.remote_config.unwrap().config_hash,
        us2.remote.config_hash
    );
    assert_eq!(reg.pending_push(&ctx), None);
}

#[test]
fn unmatched_agents_are_never_offered_a_config() {
    let reg = Registry::new(Duration::from_secs(30));
    reg.set_groups(vec![group(&[("env", "prod")], 1, "a: 1\n")]);
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Http, "http://x".into(), None);
    let reply = reg.handle(&mut ctx, first(uid, PY_CAPS, &[("env", "dev")]), now());
    assert_eq!(reply.remote_config, None);
    assert_eq!(reg.get(uid).unwrap().group_id, None);
}

#[test]
fn heartbeat_offer_needs_both_capabilities() {
    let reg = Registry::new(Duration::from_secs(7));
    let mut ctx = reg.connection(Transport::Ws, "ws://h:1/v1/opamp".into(), None);
    let reply = reg.handle(&mut ctx, first(InstanceUid::new_v7(), SIM_CAPS, &[]), now());
    let opamp = reply.connection_settings.unwrap().opamp.unwrap();
    assert_eq!(opamp.heartbeat_interval_seconds, 7);
    assert_eq!(opamp.destination_endpoint, "ws://h:1/v1/opamp");
    let mut ctx = reg.connection(Transport::Http, "http://h:1/v1/opamp".into(), None);
    let reply = reg.handle(&mut ctx, first(InstanceUid::new_v7(), PY_CAPS, &[]), now());
    assert_eq!(reply.connection_settings, None);
}

#[test]
fn silent_agents_and_disconnects() {
    let reg = Registry::new(Duration::from_secs(10));
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Http, "http://x".into(), None);
    reg.handle(&mut ctx, first(uid, PY_CAPS, &[]), now());
    // 3 x 30 s (not offered our interval) has not passed yet.
    assert_eq!(reg.sweep_silent(now() + chrono::Duration::seconds(80)), 0);
    assert_eq!(reg.sweep_silent(now() + chrono::Duration::seconds(91)), 1);
    assert!(!reg.get(uid).unwrap().connected);
    // It comes back, then says goodbye.
    reg.handle(&mut ctx, beat(uid, 1, PY_CAPS), now());
    assert!(reg.get(uid).unwrap().connected);
    let mut bye = beat(uid, 2, PY_CAPS);
    bye.agent_disconnect = Some(AgentDisconnect {});
    reg.handle(&mut ctx, bye, now());
    assert!(!reg.get(uid).unwrap().connected);
    // A heartbeat built before the goodbye, arriving after it, does not bring it back.
    let late = reg.handle(&mut ctx, beat(uid, 2, PY_CAPS), now());
    assert_eq!(late.flags, 0);
    assert!(!reg.get(uid).unwrap().connected);
    // A real new message does.
    reg.handle(&mut ctx, beat(uid, 3, PY_CAPS), now());
    assert!(reg.get(uid).unwrap().connected);
}

#[test]
fn bad_uid_is_a_bad_request() {
    let reg = Registry::new(Duration::from_secs(10));
    let mut ctx = reg.connection(Transport::Http, "http://x".into(), None);
    let mut msg = beat(InstanceUid::new_v7(), 0, PY_CAPS);
    msg.instance_uid = Bytes::from_static(b"short");
    let err = reg.handle(&mut ctx, msg, now()).error_response.unwrap();
    assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
    assert_eq!(err.error_message, "instance_uid must be 16 bytes, got 5");
}

#[test]
fn filters_and_persistence_round_trip() {
    let reg = Registry::new(Duration::from_secs(10));
    let g = group(&[("env", "prod")], 1, "a: 1\n");
    reg.set_groups(vec![g.clone()]);
    let (a, b) = (InstanceUid::new_v7(), InstanceUid::new_v7());
    let mut ctx = reg.connection(Transport::Http, "http://x".into(), None);
    reg.handle(&mut ctx, first(a, PY_CAPS, &[("env", "prod")]), now());
    // Every HTTP request is a connection of its own (one agent each).
    ctx = reg.connection(Transport::Http, "http://x".into(), None);
    reg.handle(&mut ctx, first(b, PY_CAPS, &[("env", "dev")]), now());
    let by_sel = reg.list(&AgentFilter {
        selector: labels(&[("env", "dev")]),
        ..Default::default()
    });
    assert_eq!(
        by_sel.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
        [b.to_string()]
    );
    let by_group = reg.list(&AgentFilter {
        group_id: Some(g.id),
        ..Default::default()
    });
    assert_eq!(
        by_group
            .iter()
            .map(|r| r.id.to_string())
            .collect::<Vec<_>>(),
        [a.to_string()]
    );
    let dirty = reg.take_dirty();
    assert_eq!(dirty.len(), 2);
    assert!(reg.take_dirty().is_empty());
    // A restarted registry loads them disconnected.
    let json: Vec<String> = dirty
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let back: Vec<AgentRecord> = json
        .iter()
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    let reg2 = Registry::new(Duration::from_secs(10));
    reg2.load(back);
    let rec = reg2.get(a).unwrap();
    assert!(!rec.connected);
    assert_eq!(rec.labels, labels(&[("env", "prod")]));
}

#[test]
fn agents_running_one_config_share_one_copy_of_it() {
    let reg = Registry::new(Duration::from_secs(30));
    let g = group(
        &[],
        1,
        "exporters:\n  otlp:\n    headers:\n      k: secret\n",
    );
    reg.set_groups(vec![g.clone()]);
    let (a, b) = (InstanceUid::new_v7(), InstanceUid::new_v7());
    for uid in [a, b] {
        let mut ctx = reg.connection(Transport::Http, "http://x".into(), None);
        let mut msg = first(uid, PY_CAPS, &[]);
        msg.effective_config = Some(EffectiveConfig {
            config_map: g.remote.config.clone(),
        });
        reg.handle(&mut ctx, msg, now());
    }
    let (ra, rb) = (reg.get(a).unwrap(), reg.get(b).unwrap());
    let (ta, tb) = (ra.effective_config.unwrap(), rb.effective_config.unwrap());
    assert!(Arc::ptr_eq(&ta, &tb));
    assert_eq!(
        &*ta,
        "exporters:\n  otlp:\n    headers:\n      k: <redacted>\n"
    );
}

#[test]
fn an_agent_may_ask_for_a_new_uid() {
    let reg = Registry::new(Duration::from_secs(30));
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Ws, "ws://x".into(), None);
    let mut msg = first(uid, SIM_CAPS, &[("a", "b")]);
    msg.flags = AgentToServerFlags::RequestInstanceUid as u64;
    let reply = reg.handle(&mut ctx, msg, now());
    let new =
        InstanceUid::from_bytes(&reply.agent_identification.unwrap().new_instance_uid).unwrap();
    assert_ne!(new, uid);
    assert_eq!(reg.get(new).unwrap().labels, labels(&[("a", "b")]));
    // Messages still carrying the old uid on this connection map to the new one.
    let again = reg.handle(&mut ctx, beat(uid, 1, SIM_CAPS), now());
    assert_eq!(
        again
            .agent_identification
            .unwrap()
            .new_instance_uid
            .as_ref(),
        new.as_bytes()
    );
    assert_eq!(reg.get(uid), None);
}

fn applied_report(
    uid: InstanceUid,
    seq: u64,
    sent: &GroupConfig,
    effective_body: &'static [u8],
) -> AgentToServer {
    let mut report = beat(uid, seq, SIM_CAPS);
    report.remote_config_status = Some(RemoteConfigStatus {
        last_remote_config_hash: sent.remote.config_hash.clone(),
        status: RemoteConfigStatuses::Applied as i32,
        error_message: String::new(),
    });
    let mut map = sent.remote.config.clone().unwrap();
    map.config_map.get_mut(CONFIG_FILE).unwrap().body = Bytes::from_static(effective_body);
    report.effective_config = Some(EffectiveConfig {
        config_map: Some(map),
    });
    report
}

#[test]
fn pinned_agents_get_the_rollout_target_and_the_others_the_group_default() {
    // Given a group whose default is revision 1 and two agents in it
    let reg = Registry::new(Duration::from_secs(30));
    let good = group(&[("env", "prod")], 1, "v: 1\n");
    let mut next = group(&[("env", "prod")], 1, "v: 2\n");
    next.id = good.id;
    next.revision = 2;
    let next = Arc::new(next);
    reg.set_rollout(good.clone(), None, &[]);
    let (a, b) = (InstanceUid::new_v7(), InstanceUid::new_v7());
    let notify = Arc::new(Notify::new());
    let mut ca = reg.connection(Transport::Ws, "ws://x".into(), Some(notify.clone()));
    let mut cb = reg.connection(Transport::Ws, "ws://x".into(), None);
    let ra = reg.handle(&mut ca, first(a, SIM_CAPS, &[("env", "prod")]), now());
    let rb = reg.handle(&mut cb, first(b, SIM_CAPS, &[("env", "prod")]), now());
    assert_eq!(ra.remote_config.as_ref(), Some(&good.remote));
    assert_eq!(rb.remote_config.as_ref(), Some(&good.remote));

    // When the engine pins `a` to revision 2
    let poked = reg.set_rollout(good.clone(), Some(next.clone()), &[a]);
    // Then only `a`'s socket is poked, and `a` is pushed revision 2; `b` keeps revision 1
    assert_eq!(poked.len(), 1);
    assert!(Arc::ptr_eq(&poked[0], &notify));
    let push = reg.pending_push(&ca).unwrap();
    assert_eq!(push.remote_config.as_ref(), Some(&next.remote));
    assert_eq!(reg.pending_push(&cb), None);
    assert_eq!(
        reg.get(a).unwrap().desired_config_hash.as_deref(),
        Some(next.hash_hex.as_str())
    );
    assert_eq!(
        reg.get(b).unwrap().desired_config_hash.as_deref(),
        Some(good.hash_hex.as_str())
    );

    // When the engine rolls back (no pins, default revision 1)
    reg.set_rollout(good.clone(), Some(next.clone()), &[]);
    // Then `a` is offered revision 1 again
    assert_eq!(
        reg.pending_push(&ca).unwrap().remote_config.as_ref(),
        Some(&good.remote)
    );
    // A pin for a group the agent does not belong to is ignored.
    let other = group(&[("env", "dev")], 1, "v: 9\n");
    let other_id = other.id;
    reg.set_rollout(other, Some(Arc::new(group(&[], 1, "v: 10\n"))), &[b]);
    assert_eq!(reg.get(b).unwrap().group_id, Some(good.id));
    assert_ne!(Some(other_id), reg.get(b).unwrap().group_id);
    assert_eq!(
        reg.get(b).unwrap().desired_config_hash.as_deref(),
        Some(good.hash_hex.as_str())
    );
}

#[test]
fn drift_compares_what_the_agent_runs_with_what_we_sent_not_the_redacted_copy() {
    // Given a group config with a secret in it, and an agent in the group
    const SENT: &[u8] = b"extensions:\n  auth:\n    token: hunter2\n";
    let reg = Registry::new(Duration::from_secs(30));
    let g = group(&[], 1, std::str::from_utf8(SENT).unwrap());
    reg.set_groups(vec![g.clone()]);
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Ws, "ws://x".into(), None);
    reg.handle(&mut ctx, first(uid, SIM_CAPS, &[]), now());

    // When it reports APPLIED and runs exactly what we sent
    reg.handle(&mut ctx, applied_report(uid, 1, &g, SENT), now());
    let rec = reg.get(uid).unwrap();
    // Then the stored copy is redacted, yet the agent is not drifted (hash of the real body)
    assert_eq!(
        rec.effective_config.as_deref(),
        Some("extensions:\n  auth:\n    token: <redacted>\n")
    );
    assert_eq!(
        rec.effective_config_hash.as_deref(),
        Some(g.hash_hex.as_str())
    );
    assert!(!rec.is_drifted());

    // When someone edits the collector's config by hand (same APPLIED hash, other content)
    reg.handle(
        &mut ctx,
        applied_report(uid, 2, &g, b"extensions:\n  auth:\n    token: other\n"),
        now(),
    );
    // Then it is drifted
    assert!(reg.get(uid).unwrap().is_drifted());

    // And an agent reporting the redacted text it was never sent is drifted too
    reg.handle(
        &mut ctx,
        applied_report(uid, 3, &g, b"extensions:\n  auth:\n    token: <redacted>\n"),
        now(),
    );
    assert!(reg.get(uid).unwrap().is_drifted());
    // Back on the real config: not drifted.
    reg.handle(&mut ctx, applied_report(uid, 4, &g, SENT), now());
    assert!(!reg.get(uid).unwrap().is_drifted());
}

#[test]
fn agents_reporting_own_metrics_are_offered_the_ingest_once_per_connection() {
    const OWN_METRICS: u64 = 0x40;
    let reg = Registry::new(Duration::from_secs(7));
    // A WebSocket agent with heartbeats and own metrics: one offer with both.
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Ws, "wss://h:1/v1/opamp".into(), None);
    let reply = reg.handle(&mut ctx, first(uid, SIM_CAPS | OWN_METRICS, &[]), now());
    let offer = reply.connection_settings.unwrap();
    assert_eq!(offer.opamp.unwrap().heartbeat_interval_seconds, 7);
    assert_eq!(
        offer.own_metrics.unwrap().destination_endpoint,
        "https://h:1/v1/metrics"
    );
    // Not repeated on the same connection.
    let reply = reg.handle(&mut ctx, beat(uid, 1, SIM_CAPS | OWN_METRICS), now());
    assert_eq!(reply.connection_settings, None);
    // An HTTP agent with own metrics but no heartbeat settings: the metrics part only.
    let mut ctx = reg.connection(Transport::Http, "http://h:2/v1/opamp".into(), None);
    let reply = reg.handle(
        &mut ctx,
        first(InstanceUid::new_v7(), PY_CAPS | OWN_METRICS, &[]),
        now(),
    );
    let offer = reply.connection_settings.unwrap();
    assert_eq!(offer.opamp, None);
    assert_eq!(
        offer.own_metrics.unwrap().destination_endpoint,
        "http://h:2/v1/metrics"
    );
    assert_eq!(offer.hash.len(), 32);
}

/// The flusher is woken as soon as `FLUSH_ROWS` agents wait to be written, and every agent
/// that talks to us is recorded as held by this replica.
#[tokio::test]
async fn many_dirty_agents_wake_the_flusher_and_carry_the_replica_id() {
    let reg = Registry::new(Duration::from_secs(30));
    reg.set_replica_id("replica-x");
    for _ in 0..FLUSH_ROWS {
        let mut ctx = reg.connection(Transport::Http, "http://x/v1/opamp".into(), None);
        reg.handle(&mut ctx, first(InstanceUid::new_v7(), 0, &[]), now());
    }
    tokio::time::timeout(Duration::from_secs(30), reg.many_dirty())
        .await
        .expect("woken at FLUSH_ROWS dirty agents");
    let dirty = reg.take_dirty();
    assert_eq!(dirty.len(), FLUSH_ROWS);
    assert!(
        dirty
            .iter()
            .all(|r| r.replica_id.as_deref() == Some("replica-x"))
    );
}

fn components(pairs: &[(&str, &[&str])], digest: &[u8]) -> AvailableComponents {
    use otaas_opamp::proto::ComponentDetails;
    AvailableComponents {
        components: pairs
            .iter()
            .map(|(kind, types)| {
                let sub = types
                    .iter()
                    .map(|t| ((*t).to_owned(), ComponentDetails::default()))
                    .collect();
                (
                    (*kind).to_owned(),
                    ComponentDetails {
                        metadata: vec![],
                        sub_component_map: sub,
                    },
                )
            })
            .collect(),
        hash: Bytes::copy_from_slice(digest),
    }
}

#[test]
fn available_components_are_kept_shared_and_asked_for_when_only_hashed() {
    let reg = Registry::new(Duration::from_secs(30));
    let (a, b, c) = (
        InstanceUid::new_v7(),
        InstanceUid::new_v7(),
        InstanceUid::new_v7(),
    );
    let full = components(
        &[("receivers", &["filelog"]), ("exporters", &["otlphttp"])],
        b"h1",
    );
    // Given an agent that reports its full component list
    let mut ctx = reg.connection(Transport::Http, "http://x".into(), None);
    let mut msg = first(a, PY_CAPS, &[("env", "prod")]);
    msg.available_components = Some(full.clone());
    let reply = reg.handle(&mut ctx, msg, now());
    assert_eq!(
        reply.flags & ServerToAgentFlags::ReportAvailableComponents as u64,
        0
    );
    let ra = reg.get(a).unwrap();
    let set = ra.available_components.clone().unwrap();
    assert_eq!(set["receivers"].iter().collect::<Vec<_>>(), ["filelog"]);
    assert_eq!(ra.available_components_hash.as_deref(), Some("6831"));
    // When a second agent of the same build sends only the hash, it shares the known list
    // Every HTTP request is a connection of its own (one agent each).
    ctx = reg.connection(Transport::Http, "http://x".into(), None);
    let mut msg = first(b, PY_CAPS, &[]);
    msg.available_components = Some(components(&[], b"h1"));
    let reply = reg.handle(&mut ctx, msg, now());
    assert_eq!(
        reply.flags & ServerToAgentFlags::ReportAvailableComponents as u64,
        0
    );
    assert!(Arc::ptr_eq(
        &reg.get(b).unwrap().available_components.unwrap(),
        &set
    ));
    // And an agent whose hash is unknown is asked for the list
    ctx = reg.connection(Transport::Http, "http://x".into(), None);
    let mut msg = first(c, PY_CAPS, &[]);
    msg.available_components = Some(components(&[], b"zz"));
    let reply = reg.handle(&mut ctx, msg, now());
    assert_ne!(
        reply.flags & ServerToAgentFlags::ReportAvailableComponents as u64,
        0
    );
    assert_eq!(reg.get(c).unwrap().available_components, None);
    // The list survives persistence
    let back: AgentRecord = serde_json::from_str(&serde_json::to_string(&ra).unwrap()).unwrap();
    assert_eq!(back.available_components.as_deref(), Some(&*set));
}

#[test]
fn per_signal_support_is_kept_for_the_components_that_report_it_and_shared() {
    use otaas_opamp::proto::{AnyValue, ComponentDetails, KeyValue};
    let kv = |k: &str, v: &str| KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
    };
    let reg = Registry::new(Duration::from_secs(30));
    let (a, b) = (InstanceUid::new_v7(), InstanceUid::new_v7());
    // Given a build whose filelog says logs-only and whose otlphttp says nothing per signal
    let mut full = components(
        &[("receivers", &["filelog"]), ("exporters", &["otlphttp"])],
        b"h2",
    );
    full.components
        .get_mut("receivers")
        .unwrap()
        .sub_component_map
        .insert(
            "filelog".into(),
            ComponentDetails {
                metadata: vec![
                    kv("code.namespace", "x"),
                    kv("stability.logs", "Beta"),
                    kv("stability.metrics", "Undefined"),
                    kv("stability.traces", "Undefined"),
                ],
                sub_component_map: Default::default(),
            },
        );
    // When one agent reports it in full and another only by hash
    let mut ctx = reg.connection(Transport::Http, "http://x".into(), None);
    let mut msg = first(a, PY_CAPS, &[]);
    msg.available_components = Some(full);
    reg.handle(&mut ctx, msg, now());
    // Every HTTP request is a connection of its own (one agent each).
    ctx = reg.connection(Transport::Http, "http://x".into(), None);
    let mut msg = first(b, PY_CAPS, &[]);
    msg.available_components = Some(components(&[], b"h2"));
    reg.handle(&mut ctx, msg, now());
    // Then filelog is kept as logs-only, otlphttp not at all, and both share one copy
    let ra = reg.get(a).unwrap();
    let signals = ra.component_signals.clone().unwrap();
    assert_eq!(
        *signals,
        BTreeMap::from([(
            "receivers".to_owned(),
            BTreeMap::from([(
                "filelog".to_owned(),
                std::collections::BTreeSet::from(["logs".to_owned()])
            )])
        )])
    );
    assert!(Arc::ptr_eq(
        &reg.get(b).unwrap().component_signals.unwrap(),
        &signals
    ));
    // And it survives persistence
    let back: AgentRecord = serde_json::from_str(&serde_json::to_string(&ra).unwrap()).unwrap();
    assert_eq!(back.component_signals.as_deref(), Some(&*signals));
}

#[test]
fn members_if_follows_the_group_matching_rules() {
    let reg = Registry::new(Duration::from_secs(30));
    let specific = group(&[("env", "prod"), ("region", "eu")], 10, "a: 1\n");
    reg.set_groups(vec![specific.clone()]);
    let (eu, us) = (InstanceUid::new_v7(), InstanceUid::new_v7());
    let mut ctx = reg.connection(Transport::Http, "http://x".into(), None);
    reg.handle(
        &mut ctx,
        first(eu, PY_CAPS, &[("env", "prod"), ("region", "eu")]),
        now(),
    );
    // Every HTTP request is a connection of its own (one agent each).
    ctx = reg.connection(Transport::Http, "http://x".into(), None);
    reg.handle(
        &mut ctx,
        first(us, PY_CAPS, &[("env", "prod"), ("region", "us")]),
        now(),
    );
    // A broader new group would get only the agent the more specific group does not hold.
    let ids = |v: Vec<AgentRecord>| v.into_iter().map(|r| r.id.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(reg.members_if_among(
            &reg.list(&AgentFilter::default()),
            AgentGroupId::new(),
            &labels(&[("env", "prod")]),
            now()
        )),
        [us.to_string()]
    );
    // The specific group itself, with its selector as it is, holds the eu agent.
    assert_eq!(
        ids(reg.members_if_among(
            &reg.list(&AgentFilter::default()),
            specific.id,
            &specific.selector,
            specific.created_at
        )),
        [eu.to_string()]
    );
}

#[test]
fn a_plain_heartbeat_only_touches_last_seen_and_news_rewrite_the_record() {
    let reg = Registry::new(Duration::from_secs(30));
    reg.upsert_group(group(&[("env", "prod")], 0, "a: 1\n"));
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Ws, "ws://x".into(), None);
    // Given an agent whose first report was written
    reg.handle(&mut ctx, first(uid, SIM_CAPS, &[("env", "prod")]), now());
    assert_eq!(reg.take_dirty().len(), 1);
    assert!(reg.take_touched().is_empty());
    // When it sends a heartbeat with nothing new
    let later = now() + chrono::Duration::seconds(30);
    reg.handle(&mut ctx, beat(uid, 1, SIM_CAPS), later);
    // Then only its last_seen is queued, not its record
    assert!(reg.take_dirty().is_empty());
    assert_eq!(reg.take_touched(), vec![(uid.to_string(), later)]);
    assert!(reg.take_touched().is_empty(), "taken once");
    // When a heartbeat carries news (health), or the capabilities change, the whole record goes
    let mut sick = beat(uid, 2, SIM_CAPS);
    sick.health = Some(ComponentHealth {
        healthy: false,
        ..Default::default()
    });
    reg.handle(&mut ctx, sick, later);
    assert_eq!(reg.take_dirty().len(), 1);
    reg.handle(&mut ctx, beat(uid, 3, SIM_CAPS & !0x100), later);
    assert_eq!(reg.take_dirty().len(), 1);
    // An agent both touched and changed in one period is left to the full write
    reg.handle(&mut ctx, beat(uid, 4, SIM_CAPS & !0x100), later);
    reg.handle(&mut ctx, beat(uid, 5, SIM_CAPS), later);
    assert!(reg.take_touched().is_empty());
    assert_eq!(reg.take_dirty().len(), 1);
}

#[test]
fn component_health_is_sorted_and_stored_as_a_json_object() {
    let reg = Registry::new(Duration::from_secs(30));
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Ws, "ws://x".into(), None);
    let mut msg = first(uid, SIM_CAPS, &[]);
    let node = |healthy| ComponentHealth {
        healthy,
        status: "StatusOK".to_owned(),
        ..Default::default()
    };
    msg.health = Some(ComponentHealth {
        healthy: true,
        component_health_map: [
            ("pipeline:traces".to_owned(), node(true)),
            ("pipeline:logs".to_owned(), node(false)),
            ("pipeline:metrics".to_owned(), node(true)),
        ]
        .into(),
        ..Default::default()
    });
    reg.handle(&mut ctx, msg, now());
    let rec = reg.get(uid).unwrap();
    let health = rec.health.clone().unwrap();
    let names: Vec<&str> = health.components.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["pipeline:logs", "pipeline:metrics", "pipeline:traces"]
    );
    let json = serde_json::to_value(&rec).unwrap();
    assert_eq!(
        json["health"]["components"]["pipeline:logs"],
        serde_json::json!({"healthy": false, "status": "StatusOK", "start_time_unix_nano": 0, "status_time_unix_nano": 0})
    );
    let back: AgentRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back.health, rec.health);
}

#[test]
fn a_connection_serves_one_agent_and_its_close_disconnects_it() {
    let reg = Registry::new(Duration::from_secs(30));
    let (a, b) = (InstanceUid::new_v7(), InstanceUid::new_v7());
    let mut ctx = reg.connection(Transport::Ws, "ws://x".into(), None);
    assert!(
        reg.handle(&mut ctx, first(a, PY_CAPS, &[]), now())
            .error_response
            .is_none()
    );
    // A second uid is refused and registers nothing.
    let err = reg
        .handle(&mut ctx, first(b, PY_CAPS, &[]), now())
        .error_response
        .unwrap();
    assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
    assert!(err.error_message.contains(&a.to_string()), "{err:?}");
    assert!(reg.get(b).is_none());
    assert_eq!(ctx.uid, Some(a));
    reg.closed(&ctx);
    assert!(!reg.is_connected(a));
}

#[test]
fn a_requested_uid_replaces_the_binding_once_per_connection() {
    let reg = Registry::new(Duration::from_secs(30));
    let a = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Ws, "ws://x".into(), None);
    reg.handle(&mut ctx, first(a, PY_CAPS, &[]), now());
    // Asking for a new uid after binding: the old agent is gone with the rename.
    let mut ask = beat(a, 1, PY_CAPS);
    ask.flags = AgentToServerFlags::RequestInstanceUid as u64;
    let reply = reg.handle(&mut ctx, ask.clone(), now());
    let new =
        InstanceUid::from_bytes(&reply.agent_identification.unwrap().new_instance_uid).unwrap();
    assert_ne!(new, a);
    assert!(!reg.is_connected(a));
    assert!(reg.is_connected(new));
    // Asking again gets the same uid: no agent is minted per request.
    ask.instance_uid = Bytes::copy_from_slice(new.as_bytes());
    ask.sequence_num = 2;
    let again = reg.handle(&mut ctx, ask, now());
    assert_eq!(
        again.agent_identification.unwrap().new_instance_uid,
        Bytes::copy_from_slice(new.as_bytes())
    );
    assert_eq!(
        reg.list(&AgentFilter::default())
            .iter()
            .filter(|r| r.connected)
            .count(),
        1
    );
    reg.closed(&ctx);
    assert!(!reg.is_connected(new));
}

#[test]
fn secret_values_in_health_texts_are_redacted_before_they_are_kept() {
    // Given a server that knows a secret value
    let reg = Registry::new(Duration::from_secs(30));
    reg.set_known_secrets(crate::secrets::KnownSecrets::new([
        "s3cr3t-in-url".to_string()
    ]));
    let uid = InstanceUid::new_v7();
    let mut ctx = reg.connection(Transport::Ws, "ws://x/v1/opamp".into(), None);
    reg.handle(&mut ctx, first(uid, PY_CAPS, &[]), now());
    // When an agent's health quotes it, in a component's error and in the root's status
    let mut report = beat(uid, 1, PY_CAPS);
    let exporter = ComponentHealth {
        healthy: false,
        last_error: "POST https://u:s3cr3t-in-url@tempo/v1/traces: 401".into(),
        ..Default::default()
    };
    report.health = Some(ComponentHealth {
        healthy: false,
        status: "degraded (s3cr3t-in-url)".into(),
        component_health_map: [("exporter:otlphttp".to_string(), exporter)].into(),
        ..Default::default()
    });
    reg.handle(&mut ctx, report, now());
    // Then what is kept has the value replaced, the rest of the text intact
    let health = reg.get(uid).unwrap().health.unwrap();
    assert_eq!(health.status, "degraded (<redacted>)");
    assert_eq!(
        health.components[0].1.last_error,
        "POST https://u:<redacted>@tempo/v1/traces: 401"
    );
}
