//! The registry: this replica's agents in memory (the fast path of the OpAMP server and of
//! `GET /api/v1/agents`), the agent groups' current configs and the rollout engine's pins,
//! and what the flusher has to write. It is the index only: what an `AgentToServer` changes
//! is decided by the OpAMP protocol handling (`opamp/protocol.rs`), which works on these
//! maps under the same lock.
//!
//! Concurrency: one `std::sync::Mutex` around everything; every critical section is a few map
//! operations with no `.await` inside, so contention stays low even with thousands of agents.
//! Persistence is write-behind: changed agents are marked dirty and a flusher (see
//! `opamp/sync.rs`) writes them to the store in batches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use otaas_api::AgentGroupId;
use otaas_opamp::{AgentCaps, InstanceUid};
use tokio::sync::Notify;

use crate::fleet::report_limits::{self, ReportLimits};
use crate::fleet::{
    AgentFilter, AgentId, AgentRecord, ComponentSet, ComponentSignals, FLAP_WINDOW, GroupConfig,
    Transport, match_group,
};
use crate::secrets::KnownSecrets;

/// Wakes the WebSocket sessions whose agents have something new to receive (what the
/// registry's group and rollout changes return).
pub fn poke(notifies: Vec<Arc<Notify>>) {
    for n in notifies {
        n.notify_one();
    }
}

/// The live connection an agent is bound to.
pub(crate) struct LiveConn {
    pub(crate) id: u64,
    pub(crate) notify: Option<Arc<Notify>>,
}

/// One agent: its record and the protocol state of its connection.
pub(crate) struct Entry {
    pub(crate) rec: AgentRecord,
    /// Last sequence number seen; `None` until the first message since this process started.
    pub(crate) last_seq: Option<u64>,
    pub(crate) conn: Option<LiveConn>,
    /// Config hash offered on the current WebSocket connection (not resent until it changes).
    pub(crate) offered: Option<Bytes>,
    pub(crate) settings_offered: bool,
    /// Sequence number of the agent's AgentDisconnect message, if that was its last word.
    pub(crate) goodbye_seq: Option<u64>,
    /// When the agent (re)connected recently, oldest first, for the flapping-connection
    /// insight; kept for [`FLAP_WINDOW`] and at most [`MAX_CONNECTS`].
    pub(crate) connects: std::collections::VecDeque<DateTime<Utc>>,
}

/// Connect times kept per agent: enough to judge flapping, bounded whatever an agent does.
const MAX_CONNECTS: usize = 16;

impl Entry {
    pub(crate) fn new(rec: AgentRecord) -> Self {
        Self {
            rec,
            last_seq: None,
            conn: None,
            offered: None,
            settings_offered: false,
            goodbye_seq: None,
            connects: Default::default(),
        }
    }

    pub(crate) fn connected_at(&mut self, now: DateTime<Utc>) {
        let window = FLAP_WINDOW;
        while self
            .connects
            .front()
            .is_some_and(|t| now - *t > window || self.connects.len() >= MAX_CONNECTS)
        {
            self.connects.pop_front();
        }
        self.connects.push_back(now);
    }
}

#[derive(Default)]
/// Everything behind the registry's lock.
pub(crate) struct Inner {
    pub(crate) agents: HashMap<InstanceUid, Entry>,
    /// Redacted effective configs by the hash of the reported body (see `effective_config`).
    pub(crate) texts: HashMap<String, Arc<str>>,
    /// Component sets by the `AvailableComponents.hash` (hex) agents reported with them.
    pub(crate) components: HashMap<String, Arc<ComponentSet>>,
    /// Per-signal support by the same hash (only for lists that report any).
    pub(crate) signals: HashMap<String, Arc<ComponentSignals>>,
    /// Each group's default config: what its agents get unless pinned (set by the rollout
    /// engine: the last good revision while a rollout is under way, else the latest).
    pub(crate) groups: HashMap<AgentGroupId, Arc<GroupConfig>>,
    /// Per-agent targets set by the rollout engine: agents already moved to a revision that is
    /// still rolling out. A pin counts only while the agent belongs to the pin's group.
    pub(crate) pins: HashMap<InstanceUid, Arc<GroupConfig>>,
    pub(crate) dirty: HashSet<InstanceUid>,
    /// Agents whose only news is a later `last_seen` (a heartbeat): written as that one
    /// column, less often than `dirty` (see `opamp::sync`).
    pub(crate) touched: HashSet<InstanceUid>,
    pub(crate) next_conn: u64,
}

/// The fleet registry: this replica's agents, for the life of the server.
#[derive(Default)]
pub struct Registry {
    pub(crate) inner: Mutex<Inner>,
    /// Heartbeat interval offered to agents (0 = offer none).
    pub(crate) heartbeat: Mutex<Duration>,
    /// This process's `--replica-id`, written into the record of every agent that talks to us.
    pub(crate) replica_id: std::sync::OnceLock<String>,
    /// Woken when [`FLUSH_ROWS`] agents are dirty, so the flusher writes them before its
    /// next period (a reconnect storm does not pile up in memory).
    pub(crate) dirty_wake: Notify,
    /// Bounds on what an agent may report (see `report_limits.rs`).
    pub(crate) limits: Mutex<ReportLimits>,
    /// The secret values the server knows, by which reported effective configs and error
    /// messages are redacted (refreshed by `opamp::sync` whenever a group's config changes).
    pub(crate) known: std::sync::RwLock<Arc<KnownSecrets>>,
}

/// Dirty agents that make the flusher write at once rather than at its next period.
pub const FLUSH_ROWS: usize = 2000;

/// The config `uid` should run as a member of `group`: its pin if it has one for that group,
/// else the group's default.
pub(crate) fn target_of<'a>(
    pins: &'a HashMap<InstanceUid, Arc<GroupConfig>>,
    uid: &InstanceUid,
    group: &'a Arc<GroupConfig>,
) -> &'a Arc<GroupConfig> {
    match pins.get(uid) {
        Some(pin) if pin.id == group.id => pin,
        _ => group,
    }
}

/// Queues `uid` for the flusher: its whole record when `changed`, else only its `last_seen`.
pub(crate) fn queue(
    dirty: &mut HashSet<InstanceUid>,
    touched: &mut HashSet<InstanceUid>,
    dirty_wake: &Notify,
    uid: InstanceUid,
    changed: bool,
) {
    if changed {
        dirty.insert(uid);
        if dirty.len() == FLUSH_ROWS {
            dirty_wake.notify_one();
        }
    } else {
        touched.insert(uid);
    }
}

impl Registry {
    pub fn new(heartbeat: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            heartbeat: Mutex::new(heartbeat),
            replica_id: std::sync::OnceLock::new(),
            known: Default::default(),
            dirty_wake: Notify::new(),
            limits: Mutex::default(),
        }
    }

    /// The bounds on agent reports (the defaults until set).
    pub fn report_limits(&self) -> ReportLimits {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the bounds on agent reports; set before [`Registry::load`], which applies them to
    /// the stored records too.
    pub fn set_report_limits(&self, limits: ReportLimits) {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// Resolves when many agents are waiting to be written (see [`FLUSH_ROWS`]).
    pub async fn many_dirty(&self) {
        self.dirty_wake.notified().await
    }

    /// Replaces the secret values reports are redacted by. Redacted effective configs already
    /// kept stay (they were redacted by the values of their time).
    pub fn set_known_secrets(&self, known: KnownSecrets) {
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(known);
    }

    pub(crate) fn known_secrets(&self) -> Arc<KnownSecrets> {
        self.known.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the replica id agents are recorded as held by (once, at start-up).
    pub fn set_replica_id(&self, id: &str) {
        let _ = self.replica_id.set(id.to_owned());
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug; the data is still consistent map
        // state, so keep serving rather than poisoning every later request.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn heartbeat(&self) -> Duration {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_heartbeat(&self, interval: Duration) {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = interval;
    }

    /// Loads persisted agents at start-up: all disconnected, sequence unknown (so the first
    /// message after a restart that is not a full report gets ReportFullState).
    pub fn load(&self, records: Vec<AgentRecord>) {
        let limits = self.report_limits();
        let mut inner = self.lock();
        for mut rec in records {
            let uid = rec.id.uid();
            // Stored before the limits (or under larger ones): dropped, and written back so.
            let trimmed = report_limits::trim_record(&mut rec, &limits);
            if trimmed {
                tracing::info!(agent = %uid, "A stored agent record was over the report limits; dropped the parts over them");
            }
            // Written back: a record stored as connected (now disconnected), or trimmed.
            let rewrite = rec.connected || trimmed;
            rec.connected = false;
            if let (Some(hash), Some(text)) = (&rec.effective_config_hash, &rec.effective_config) {
                let shared = inner
                    .texts
                    .entry(hash.clone())
                    .or_insert_with(|| text.clone());
                rec.effective_config = Some(shared.clone());
            }
            if let (Some(hash), Some(set)) =
                (&rec.available_components_hash, &rec.available_components)
            {
                let shared = inner
                    .components
                    .entry(hash.clone())
                    .or_insert_with(|| set.clone());
                rec.available_components = Some(shared.clone());
                if let Some(signals) = &rec.component_signals {
                    let shared = inner
                        .signals
                        .entry(hash.clone())
                        .or_insert_with(|| signals.clone());
                    rec.component_signals = Some(shared.clone());
                }
            }
            if rewrite {
                inner.dirty.insert(uid);
            }
            inner.agents.insert(uid, Entry::new(rec));
        }
    }

    /// Replaces the whole group cache (start-up, or after missing events); returns the
    /// connections to poke.
    pub fn set_groups(&self, groups: Vec<GroupConfig>) -> Vec<Arc<Notify>> {
        let mut inner = self.lock();
        inner.groups = groups.into_iter().map(|g| (g.id, Arc::new(g))).collect();
        Self::reassign(&mut inner)
    }

    /// Adds or replaces one group; returns the connections to poke.
    pub fn upsert_group(&self, group: GroupConfig) -> Vec<Arc<Notify>> {
        let mut inner = self.lock();
        inner.groups.insert(group.id, Arc::new(group));
        Self::reassign(&mut inner)
    }

    pub fn remove_group(&self, id: AgentGroupId) -> Vec<Arc<Notify>> {
        let mut inner = self.lock();
        inner.groups.remove(&id);
        inner.pins.retain(|_, pin| pin.id != id);
        Self::reassign(&mut inner)
    }

    /// The rollout engine's one write: sets the group's default config and replaces the
    /// group's per-agent pins (`pinned` agents get `target`), in one critical section so no
    /// agent ever sees a half-applied decision. Returns the connections to poke.
    pub fn set_rollout(
        &self,
        default: GroupConfig,
        target: Option<Arc<GroupConfig>>,
        pinned: &[InstanceUid],
    ) -> Vec<Arc<Notify>> {
        let mut inner = self.lock();
        let id = default.id;
        inner.groups.insert(id, Arc::new(default));
        inner.pins.retain(|_, pin| pin.id != id);
        if let Some(target) = target {
            for uid in pinned {
                inner.pins.insert(*uid, target.clone());
            }
        }
        Self::reassign(&mut inner)
    }

    /// The connected agents among `agents` (this registry's, or the whole fleet across
    /// replicas) that would belong to group `id` if it had `selector` (and was created at
    /// `created_at`), with every other group as this registry knows it: what a change to that
    /// group would reach. Ordered by id.
    pub fn members_if_among(
        &self,
        agents: &[AgentRecord],
        id: AgentGroupId,
        selector: &BTreeMap<String, String>,
        created_at: DateTime<Utc>,
    ) -> Vec<AgentRecord> {
        let inner = self.lock();
        let matches = |sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
            sel.iter()
                .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
        };
        // The same order as `match_group`: most specific, then oldest, then smallest id.
        let key = |sel_len: usize, created: DateTime<Utc>, gid: AgentGroupId| {
            (std::cmp::Reverse(sel_len), created, gid)
        };
        let mine = key(selector.len(), created_at, id);
        let mut out: Vec<AgentRecord> = agents
            .iter()
            .filter(|r| r.connected && matches(selector, &r.labels))
            .filter(|r| {
                !inner.groups.values().any(|g| {
                    g.id != id
                        && matches(&g.selector, &r.labels)
                        && key(g.selector.len(), g.created_at, g.id) < mine
                })
            })
            .cloned()
            .collect();
        out.sort_by_key(|a| a.id);
        out
    }

    /// Whether any connected agent reported its available components.
    pub fn any_reports_components(&self) -> bool {
        self.lock()
            .agents
            .values()
            .any(|e| e.rec.connected && e.rec.available_components.is_some())
    }

    pub fn group_revision(&self, id: AgentGroupId) -> Option<i64> {
        self.lock().groups.get(&id).map(|g| g.revision)
    }

    /// Recomputes every agent's group and desired hash; returns the WebSocket connections of
    /// agents whose desired config changed.
    fn reassign(inner: &mut Inner) -> Vec<Arc<Notify>> {
        let mut poke = Vec::new();
        let Inner {
            agents,
            groups,
            pins,
            dirty,
            ..
        } = inner;
        for (uid, entry) in agents.iter_mut() {
            let group = match_group(groups.values().map(|g| &**g), &entry.rec.labels)
                .and_then(|g| groups.get(&g.id))
                .map(|g| target_of(pins, uid, g));
            let group_id = group.map(|g| g.id);
            let desired = group.map(|g| g.hash_hex.clone());
            if entry.rec.group_id != group_id || entry.rec.desired_config_hash != desired {
                entry.rec.group_id = group_id;
                entry.rec.desired_config_hash = desired;
                dirty.insert(*uid);
                if let Some(notify) = entry.conn.as_ref().and_then(|c| c.notify.clone()) {
                    poke.push(notify);
                }
            }
        }
        poke
    }

    /// Marks agents silent for more than 3 heartbeat intervals as disconnected. Agents that
    /// were not offered our interval are assumed to use the protocol default of 30 s.
    pub fn sweep_silent(&self, now: DateTime<Utc>) -> usize {
        let heartbeat = self.heartbeat();
        let mut guard = self.lock();
        let inner = &mut *guard;
        // Forget interned configs no agent runs any more.
        inner.texts.retain(|_, text| Arc::strong_count(text) > 1);
        inner.components.retain(|_, set| Arc::strong_count(set) > 1);
        inner.signals.retain(|_, set| Arc::strong_count(set) > 1);
        let mut marked = 0;
        for (uid, entry) in inner.agents.iter_mut() {
            if !entry.rec.connected {
                continue;
            }
            let caps = entry.rec.caps();
            let over_ws = entry.rec.transport == Some(Transport::Ws);
            // A WebSocket agent without heartbeats is alive as long as its socket is.
            if over_ws && !caps.contains(AgentCaps::REPORTS_HEARTBEAT) {
                continue;
            }
            let interval = if entry.settings_offered && !heartbeat.is_zero() {
                heartbeat
            } else {
                Duration::from_secs(30).max(heartbeat)
            };
            let limit = chrono::Duration::from_std(interval * 3).unwrap_or(chrono::Duration::MAX);
            if entry.rec.last_seen.is_some_and(|seen| now - seen > limit) {
                entry.rec.connected = false;
                inner.dirty.insert(*uid);
                marked += 1;
            }
        }
        marked
    }

    /// The recent connect times (see `Entry::connects`) and group of the agents that
    /// connected at least `min` times lately: the only ones that can be flapping. Walked in
    /// place and cheap when none is, as in a settled fleet.
    pub fn frequent_connects(
        &self,
        min: usize,
    ) -> Vec<(AgentId, Option<AgentGroupId>, Vec<DateTime<Utc>>)> {
        let inner = self.lock();
        inner
            .agents
            .values()
            .filter(|e| e.connects.len() >= min)
            .map(|e| {
                (
                    e.rec.id,
                    e.rec.group_id,
                    e.connects.iter().copied().collect(),
                )
            })
            .collect()
    }

    /// Marks every agent disconnected (graceful shutdown).
    pub fn disconnect_all(&self) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (uid, entry) in inner.agents.iter_mut() {
            if entry.rec.connected {
                entry.rec.connected = false;
                entry.conn = None;
                inner.dirty.insert(*uid);
            }
        }
    }

    /// Takes up to `max` of the agents changed since they were last taken, handing each
    /// record to `f` under the registry lock (the flusher serialises them right there: copying
    /// thousands of records out after a reconnect storm left the heap fragmented, see
    /// `opamp::sync`). Returns how many were taken.
    pub fn take_dirty_with(&self, max: usize, mut f: impl FnMut(&AgentRecord)) -> usize {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let taken: Vec<InstanceUid> = inner.dirty.iter().take(max).copied().collect();
        for uid in &taken {
            inner.dirty.remove(uid);
            if let Some(entry) = inner.agents.get(uid) {
                f(&entry.rec);
            }
        }
        taken.len()
    }

    /// Takes all records changed since the last call.
    #[cfg(test)]
    pub(crate) fn take_dirty(&self) -> Vec<AgentRecord> {
        let mut records = Vec::new();
        self.take_dirty_with(usize::MAX, |r| records.push(r.clone()));
        records
    }

    /// Takes the agents heard from since the last call whose record did not otherwise change,
    /// with when they were last seen (agents also dirty are left to the full write).
    pub fn take_touched(&self) -> Vec<(String, DateTime<Utc>)> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let touched = std::mem::take(&mut inner.touched);
        touched
            .into_iter()
            .filter(|uid| !inner.dirty.contains(uid))
            .filter_map(|uid| {
                let rec = &inner.agents.get(&uid)?.rec;
                // The store keys agents by the hex id.
                Some((rec.id.to_string(), rec.last_seen?))
            })
            .collect()
    }

    /// Puts records back on the dirty list after a failed write.
    pub fn mark_dirty(&self, ids: impl IntoIterator<Item = String>) {
        let mut inner = self.lock();
        for id in ids {
            if let Ok(uid) = InstanceUid::parse(&id) {
                inner.dirty.insert(uid);
            }
        }
    }

    /// Whether `uid` is a known agent that is connected now.
    pub fn is_connected(&self, uid: InstanceUid) -> bool {
        self.lock()
            .agents
            .get(&uid)
            .is_some_and(|e| e.rec.connected)
    }

    pub fn get(&self, uid: InstanceUid) -> Option<AgentRecord> {
        self.lock().agents.get(&uid).map(|e| e.rec.clone())
    }

    /// Agents matching `filter`, ordered by id.
    pub fn list(&self, filter: &AgentFilter) -> Vec<AgentRecord> {
        let inner = self.lock();
        let mut out: Vec<AgentRecord> = inner
            .agents
            .values()
            .map(|e| &e.rec)
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        out.sort_by_key(|a| a.id);
        out
    }

    /// Calls `f` on every agent matching `filter`, in no particular order, without copying
    /// them: for counts and summaries over the whole fleet, where [`Registry::list`] would clone
    /// 10,000 records (and hold the lock meanwhile) every time. `f` runs under the registry
    /// lock, so it must be short and must not call back into the registry.
    pub fn visit(&self, filter: &AgentFilter, mut f: impl FnMut(&AgentRecord)) {
        let inner = self.lock();
        for rec in inner.agents.values().map(|e| &e.rec) {
            if filter.matches(rec) {
                f(rec);
            }
        }
    }

    /// Connections of every live WebSocket agent (to tell them we are shutting down).
    pub fn live_connections(&self) -> usize {
        self.lock()
            .agents
            .values()
            .filter(|e| e.conn.is_some())
            .count()
    }
}
