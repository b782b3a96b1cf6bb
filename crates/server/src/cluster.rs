//! Several `otaas serve` replicas on one PostgreSQL: who this replica is, which rollouts it
//! drives, how changes reach the other replicas, and the fleet as every replica sees it.
//!
//! - Identity: `--replica-id` (default `<hostname>-<pid>`). A live replica holds a session
//!   advisory lock on its id on a dedicated connection ("lock connection"); a second process
//!   with the same id is refused at start-up. The lock vanishes with the process (kill -9
//!   included: PostgreSQL ends the session), so liveness is read from `pg_locks`, with no
//!   lease to expire.
//! - Propagation: every local change event (`events.rs`) and every stored rollout decision is
//!   sent as a `NOTIFY` on a channel named after the schema; each replica `LISTEN`s (the
//!   store's [`Coordination`]) and feeds what others sent into its own event bus.
//!   Notifications sent while a listener was disconnected are lost, so after every
//!   (re)connect — and every [`RESYNC_EVERY`] as a safety net — the replica resynchronises
//!   from the database.
//! - Driving: one replica at a time drives each group's rollout, the holder of the group's
//!   session advisory lock. Every [`ELECT_EVERY`] each replica tries the locks of the groups it
//!   does not drive (one round trip), so when the driver dies another takes over within about
//!   a second. Rollout records are written with compare-and-swap (`put_rollout_if`), so even a
//!   replica that lost its lock without noticing yet cannot overwrite a newer decision.
//! - Fleet view: agents live in the memory of the replica they talk to. The others read them
//!   from the `agents` table (written in batches, see `opamp/sync.rs`); rows held by a replica
//!   that is not live count as disconnected.
//!
//! On SQLite (one process) none of this runs: the replica drives every group and the registry
//! is the whole fleet.
//!
//! Lifecycle: [`Cluster::join`] before serving (fails on a duplicate id), [`spawn`] starts the
//! forwarder, listener and elector tasks, which stop with the server's shutdown token; then
//! [`Cluster::leave`] closes the lock connection so another replica takes over at once.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use otaas_api::{AgentGroupId, TokenId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, Events};
use crate::fleet::{AgentFilter, AgentId, AgentRecord};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::{AgentRow, AgentRowFilter, Coordination, LockSession, Store, StoreError};

/// How often a replica tries to take the rollouts nobody drives, and refreshes which
/// replicas are live.
pub const ELECT_EVERY: Duration = Duration::from_secs(1);
/// How often a replica resynchronises from the database even without a reconnect.
pub const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// Advisory lock classes (the two-key form; never collides with the store's one-key write
/// lock). Second key: `hashtext(<schema>/<id>)`.
const REPLICA_LOCK: i32 = 0x6f74_0001;
const GROUP_LOCK: i32 = 0x6f74_0002;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "replica id {0:?} is in use by a live replica on this database; give each replica its own --replica-id"
    )]
    DuplicateId(String),
    #[error("cluster connection: {0}")]
    Database(#[from] StoreError),
}

/// What one replica tells the others (the `NOTIFY` payload, JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Notice {
    from: String,
    #[serde(flatten)]
    what: What,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum What {
    GroupRevision {
        group: AgentGroupId,
        revision: i64,
        hash: String,
    },
    GroupChanged {
        group: AgentGroupId,
    },
    GroupDeleted {
        group: AgentGroupId,
    },
    Rollout {
        group: AgentGroupId,
        version: i64,
    },
    TokenRevoked {
        token: TokenId,
    },
}

impl What {
    fn from_event(e: Event) -> Self {
        match e {
            Event::GroupRevision {
                group_id,
                revision,
                hash,
            } => What::GroupRevision {
                group: group_id,
                revision,
                hash,
            },
            Event::GroupChanged { group_id } => What::GroupChanged { group: group_id },
            Event::GroupDeleted { group_id } => What::GroupDeleted { group: group_id },
            Event::RolloutChanged { group_id, version } => What::Rollout {
                group: group_id,
                version,
            },
            Event::TokenRevoked { token_id } => What::TokenRevoked { token: token_id },
        }
    }

    fn into_event(self) -> Event {
        match self {
            What::GroupRevision {
                group,
                revision,
                hash,
            } => Event::GroupRevision {
                group_id: group,
                revision,
                hash,
            },
            What::GroupChanged { group } => Event::GroupChanged { group_id: group },
            What::GroupDeleted { group } => Event::GroupDeleted { group_id: group },
            What::Rollout { group, version } => Event::RolloutChanged {
                group_id: group,
                version,
            },
            What::TokenRevoked { token } => Event::TokenRevoked { token_id: token },
        }
    }
}

/// The PostgreSQL side of a replica.
struct Shared {
    coordination: Arc<dyn Coordination>,
    /// `NOTIFY` channel and lock-key prefix: the schema, so installations sharing a database
    /// in different schemas (and parallel tests) stay apart.
    scope: String,
    /// Groups whose rollout this replica drives (holds the advisory lock of).
    driving: Mutex<HashSet<AgentGroupId>>,
    /// Replica ids holding their lock right now (refreshed every [`ELECT_EVERY`]).
    live: RwLock<HashSet<String>>,
    /// The session holding this replica's locks; `None` after it was lost (until reconnected).
    lock_conn: tokio::sync::Mutex<Option<Box<dyn LockSession>>>,
    outbox: mpsc::UnboundedSender<What>,
    outbox_rx: Mutex<Option<mpsc::UnboundedReceiver<What>>>,
}

/// This replica's place among the others.
pub struct Cluster {
    replica_id: String,
    shared: Option<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    /// A replica alone (SQLite): it drives everything.
    pub fn single(replica_id: String) -> Self {
        Self {
            replica_id,
            shared: None,
        }
    }

    /// Joins the replicas on the store's PostgreSQL database (a single replica on SQLite).
    /// Fails when another live replica uses `replica_id`.
    pub async fn join(store: &dyn Store, replica_id: String) -> Result<Self, ClusterError> {
        let Some(coordination) = store.coordination() else {
            return Ok(Self::single(replica_id));
        };
        let scope = coordination.scope().to_owned();
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let shared = Shared {
            coordination,
            scope,
            driving: Mutex::default(),
            live: RwLock::default(),
            lock_conn: tokio::sync::Mutex::new(None),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
        };
        let conn = shared.lock_connection(&replica_id).await?;
        *shared.lock_conn.lock().await = Some(conn);
        *shared.live.write().unwrap_or_else(|p| p.into_inner()) =
            HashSet::from([replica_id.clone()]);
        Ok(Self {
            replica_id,
            shared: Some(shared),
        })
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// True when other replicas may share the database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Does this replica drive the group's rollout?
    pub fn drives(&self, id: AgentGroupId) -> bool {
        match &self.shared {
            None => true,
            Some(s) => lock(&s.driving).contains(&id),
        }
    }

    /// Is the replica `id` running (holding its lock)? Always true alone.
    pub fn is_live(&self, id: Option<&str>) -> bool {
        match (&self.shared, id) {
            (None, _) => true,
            (Some(_), Some(id)) if id == self.replica_id => true,
            (Some(s), Some(id)) => s
                .live
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(id),
            // Rows from before replicas existed: nobody holds them.
            (Some(_), None) => false,
        }
    }

    /// Tries to become the group's driver right away (a change to a group nobody may drive
    /// yet, e.g. a new one), rather than at the next election round. True when this replica
    /// drives it.
    pub async fn claim(&self, id: AgentGroupId) -> bool {
        let Some(s) = &self.shared else {
            return true;
        };
        let mut guard = s.lock_conn.lock().await;
        if lock(&s.driving).contains(&id) {
            return true;
        }
        let Some(conn) = guard.as_mut() else {
            return false;
        };
        let got = conn.try_lock(GROUP_LOCK, &s.scope, &id.to_string()).await;
        match got {
            Ok(true) => {
                lock(&s.driving).insert(id);
                true
            }
            Ok(false) => false,
            Err(err) => {
                // The elector notices too, drops what we drove and reconnects.
                tracing::debug!(group = %id, error = %err, "Claiming a rollout lock failed");
                false
            }
        }
    }

    /// Tells the other replicas that the group's rollout record is at `version` now.
    pub fn announce_rollout(&self, group: AgentGroupId, version: i64) {
        if let Some(s) = &self.shared {
            let _ = s.outbox.send(What::Rollout { group, version });
        }
    }

    /// Records where this replica serves (after binding; informational).
    pub async fn register(&self, store: &dyn Store, api: &str, opamp: &str) {
        if let Err(err) = store.register_replica(&self.replica_id, api, opamp).await {
            tracing::warn!(error = %err, "Recording this replica failed");
        }
    }

    /// Closes the lock connection: the rollouts this replica drove are free for the others.
    pub async fn leave(&self) {
        if let Some(s) = &self.shared {
            lock(&s.driving).clear();
            if let Some(conn) = s.lock_conn.lock().await.take() {
                conn.close().await;
            }
        }
    }
}

impl Shared {
    fn channel(&self) -> String {
        // Channel names are identifiers (at most 63 bytes); schemas are at most that already.
        let mut c = format!("otaas_{}", self.scope);
        c.truncate(63);
        c
    }

    /// A fresh lock connection holding this replica's id lock.
    async fn lock_connection(
        &self,
        replica_id: &str,
    ) -> Result<Box<dyn LockSession>, ClusterError> {
        let mut conn = self
            .coordination
            .lock_session(&format!("otaas-locks {replica_id}"))
            .await?;
        let got = conn.try_lock(REPLICA_LOCK, &self.scope, replica_id).await?;
        if !got {
            conn.close().await;
            return Err(ClusterError::DuplicateId(replica_id.to_owned()));
        }
        Ok(conn)
    }
}

/// A boxed future borrowing its engine, for [`Driven`].
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the cluster's tasks ask of the rollout engine (it sits above the cluster, so it is
/// handed in rather than imported).
pub trait Driven: Send + Sync {
    /// Reloads every group's rollout from the database (after missed notices).
    fn resync(&self) -> Pending<'_, ()>;
    /// This replica now drives the group: bring its rollout up to date.
    fn take_over(&self, id: AgentGroupId) -> Pending<'_, Result<(), StoreError>>;
}

/// What the cluster's tasks use.
#[derive(Clone)]
pub struct ClusterTasks {
    pub cluster: Arc<Cluster>,
    pub store: Arc<dyn Store>,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    pub rollouts: Arc<dyn Driven>,
}

/// Starts the cluster's tasks (nothing on SQLite); they stop with the server.
pub fn spawn(state: &ClusterTasks) -> Vec<JoinHandle<()>> {
    let Some(shared) = &state.cluster.shared else {
        return Vec::new();
    };
    describe_metrics(&state.metrics);
    let (to_forward, from_events) = mpsc::unbounded_channel();
    state.events.forward_to(to_forward);
    let outbox = lock(&shared.outbox_rx).take();
    let mut tasks = vec![
        tokio::spawn(bridge_events(state.clone(), from_events)),
        tokio::spawn(listen(state.clone())),
        tokio::spawn(elect(state.clone())),
    ];
    if let Some(outbox) = outbox {
        tasks.push(tokio::spawn(forward(state.clone(), outbox)));
    }
    tasks
}

fn describe_metrics(m: &crate::metrics::Metrics) {
    use crate::metrics::MetricKind::{Counter, Gauge};
    for (name, kind, help) in [
        (
            "otaas_cluster_notices_sent_total",
            Counter,
            "Change notices this replica sent to the others (NOTIFY).",
        ),
        (
            "otaas_cluster_notices_received_total",
            Counter,
            "Change notices received from other replicas (LISTEN).",
        ),
        (
            "otaas_cluster_resyncs_total",
            Counter,
            "Resynchronisations from the database (after each listener (re)connect and periodically).",
        ),
        (
            "otaas_cluster_listener_reconnects_total",
            Counter,
            "Times the LISTEN connection was lost and re-established.",
        ),
        (
            "otaas_cluster_rollouts_taken_total",
            Counter,
            "Group rollouts this replica started driving (new groups and takeovers).",
        ),
        (
            "otaas_cluster_driving_groups",
            Gauge,
            "Groups whose rollout this replica drives now.",
        ),
    ] {
        m.describe(name, kind, help);
    }
}

/// Local events → the outbox (the forwarder sends them in order with the rollout notices).
async fn bridge_events(state: ClusterTasks, mut rx: mpsc::UnboundedReceiver<Event>) {
    let Some(shared) = &state.cluster.shared else {
        return;
    };
    loop {
        tokio::select! {
            e = rx.recv() => match e {
                Some(e) => { let _ = shared.outbox.send(What::from_event(e)); }
                None => return,
            },
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// Sends the outbox as `NOTIFY`s, in order. A notice that cannot be sent is dropped (the
/// others resynchronise after their own reconnects and every [`RESYNC_EVERY`]).
async fn forward(state: ClusterTasks, mut outbox: mpsc::UnboundedReceiver<What>) {
    let Some(shared) = &state.cluster.shared else {
        return;
    };
    let channel = shared.channel();
    loop {
        let what = tokio::select! {
            w = outbox.recv() => match w { Some(w) => w, None => return },
            _ = state.shutdown.cancelled() => {
                // Decisions made while shutting down still go out.
                outbox.close();
                match outbox.recv().await { Some(w) => w, None => return }
            }
        };
        let payload = match serde_json::to_string(&Notice {
            from: state.cluster.replica_id.clone(),
            what,
        }) {
            Ok(p) => p,
            Err(err) => {
                tracing::error!(error = %err, "Encoding a cluster notice failed");
                continue;
            }
        };
        let sent = shared.coordination.notify(&channel, &payload).await;
        match sent {
            Ok(_) => state.metrics.inc("otaas_cluster_notices_sent_total", &[]),
            Err(err) => {
                tracing::warn!(error = %err, "Sending a cluster notice failed; the other replicas will resync")
            }
        }
    }
}

/// `LISTEN`s for the other replicas' notices; after every (re)connect and every
/// [`RESYNC_EVERY`], resynchronises from the database.
async fn listen(state: ClusterTasks) {
    let Some(shared) = &state.cluster.shared else {
        return;
    };
    let channel = shared.channel();
    let mut backoff = Duration::from_millis(200);
    let mut first = true;
    loop {
        let application_name = format!("otaas-listen {}", state.cluster.replica_id);
        let connected = shared.coordination.listen(&channel, &application_name);
        let mut listener = tokio::select! {
            l = connected => match l {
                Ok(l) => l,
                Err(err) => {
                    tracing::warn!(error = %err, "Cluster listener cannot connect; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = state.shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
            _ = state.shutdown.cancelled() => return,
        };
        backoff = Duration::from_millis(200);
        // Listening from here on: whatever was missed before is read from the database now.
        if first {
            tracing::info!(channel = %channel, "Cluster listener connected");
        } else {
            tracing::info!(channel = %channel, "Cluster listener reconnected; resynchronising");
            state
                .metrics
                .inc("otaas_cluster_listener_reconnects_total", &[]);
        }
        first = false;
        resync(&state).await;
        let mut every = tokio::time::interval(RESYNC_EVERY);
        every.reset();
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(Some(n)) => receive(&state, &n),
                    Ok(None) => {
                        tracing::warn!("Cluster listener lost its connection");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "Cluster listener failed");
                        break;
                    }
                },
                _ = every.tick() => resync(&state).await,
                _ = state.shutdown.cancelled() => return,
            }
        }
    }
}

fn receive(state: &ClusterTasks, payload: &str) {
    let notice: Notice = match serde_json::from_str(payload) {
        Ok(n) => n,
        Err(err) => {
            tracing::warn!(error = %err, "Ignoring an unreadable cluster notice");
            return;
        }
    };
    if notice.from == state.cluster.replica_id {
        return;
    }
    state
        .metrics
        .inc("otaas_cluster_notices_received_total", &[]);
    state.events.publish_remote(notice.what.into_event());
}

async fn resync(state: &ClusterTasks) {
    state.metrics.inc("otaas_cluster_resyncs_total", &[]);
    state.rollouts.resync().await;
}

/// Takes the rollouts nobody drives, lets go of deleted groups, refreshes the live set;
/// reconnects the lock connection when it was lost.
async fn elect(state: ClusterTasks) {
    let Some(shared) = &state.cluster.shared else {
        return;
    };
    let mut every = tokio::time::interval(ELECT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = state.shutdown.cancelled() => return,
        }
        let groups: Vec<AgentGroupId> = match state.store.list_groups().await {
            Ok(gs) => gs.into_iter().map(|g| g.record.id).collect(),
            Err(err) => {
                tracing::debug!(error = %err, "Listing groups for the rollout locks failed");
                continue;
            }
        };
        match elect_once(&state, shared, &groups).await {
            Ok(taken) => {
                for id in taken {
                    tracing::info!(group = %id, "Driving this group's rollout");
                    state.metrics.inc("otaas_cluster_rollouts_taken_total", &[]);
                    if let Err(err) = state.rollouts.take_over(id).await {
                        tracing::error!(group = %id, error = %err, "Taking over a rollout failed");
                    }
                }
            }
            Err(ElectError::Duplicate(err)) => {
                // Another process took our id while our session was gone: two replicas with
                // one id would overwrite each other's agents. Stop.
                tracing::error!(error = %err, "Stopping");
                eprintln!("otaas: {err}");
                state.shutdown.cancel();
                return;
            }
            Err(ElectError::Db(err)) => {
                let dropped = std::mem::take(&mut *lock(&shared.driving));
                *shared.lock_conn.lock().await = None;
                if !dropped.is_empty() {
                    tracing::warn!(error = %err, groups = dropped.len(), "Lost the rollout locks; another replica may drive now");
                } else {
                    tracing::debug!(error = %err, "Lock connection unavailable");
                }
            }
        }
        state.metrics.set(
            "otaas_cluster_driving_groups",
            &[],
            lock(&shared.driving).len() as f64,
        );
    }
}

enum ElectError {
    Duplicate(ClusterError),
    Db(StoreError),
}

async fn elect_once(
    state: &ClusterTasks,
    shared: &Shared,
    groups: &[AgentGroupId],
) -> Result<Vec<AgentGroupId>, ElectError> {
    let mut guard = shared.lock_conn.lock().await;
    if guard.is_none() {
        match shared.lock_connection(&state.cluster.replica_id).await {
            Ok(c) => {
                tracing::info!("Lock connection re-established");
                *guard = Some(c);
            }
            Err(ClusterError::Database(e)) => return Err(ElectError::Db(e)),
            Err(e) => return Err(ElectError::Duplicate(e)),
        }
    }
    let Some(conn) = guard.as_mut() else {
        return Ok(Vec::new());
    };
    let driving = lock(&shared.driving).clone();
    let wanted: Vec<String> = groups
        .iter()
        .filter(|g| !driving.contains(g))
        .map(|g| g.to_string())
        .collect();
    // One round trip for every group nobody is known to drive; the lock is re-entrant, so
    // asking again for a held one would stack it, hence the filter above.
    let taken = conn
        .try_lock_each(GROUP_LOCK, &shared.scope, &wanted)
        .await
        .map_err(ElectError::Db)?;
    let present: HashSet<&AgentGroupId> = groups.iter().collect();
    let gone: Vec<String> = driving
        .iter()
        .filter(|g| !present.contains(g))
        .map(|g| g.to_string())
        .collect();
    if !gone.is_empty() {
        conn.unlock_each(GROUP_LOCK, &shared.scope, &gone)
            .await
            .map_err(ElectError::Db)?;
    }
    let live = conn
        .live_replicas(REPLICA_LOCK, &shared.scope)
        .await
        .map_err(ElectError::Db)?;
    drop(guard);
    *shared.live.write().unwrap_or_else(|p| p.into_inner()) = live.into_iter().collect();
    let taken: Vec<AgentGroupId> = taken
        .iter()
        .filter_map(|g| AgentGroupId::from_str(g).ok())
        .collect();
    {
        let mut driving = lock(&shared.driving);
        for g in &gone {
            if let Ok(id) = AgentGroupId::from_str(g) {
                driving.remove(&id);
            }
        }
        driving.extend(taken.iter().copied());
    }
    Ok(taken)
}

/// A stored agent record without its effective config text: lists and rollout gates do not
/// need it, and skipping it (serde passes over an unknown key without unescaping or copying)
/// is most of the cost of reading thousands of rows every rollout tick.
#[derive(Deserialize)]
struct RecordSummary {
    id: AgentId,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    capabilities: u64,
    #[serde(default)]
    agent_version: Option<String>,
    #[serde(default)]
    health: Option<crate::fleet::HealthNode>,
    #[serde(default)]
    remote_config_status: crate::fleet::ConfigStatus,
    #[serde(default)]
    remote_config_error: Option<String>,
    #[serde(default)]
    remote_config_hash: Option<String>,
    #[serde(default)]
    effective_config_hash: Option<String>,
    #[serde(default)]
    group_id: Option<AgentGroupId>,
    #[serde(default)]
    desired_config_hash: Option<String>,
    #[serde(default)]
    last_seen: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    connected: bool,
    #[serde(default)]
    transport: Option<crate::fleet::Transport>,
    #[serde(default)]
    replica_id: Option<String>,
    #[serde(default, with = "crate::fleet::shared_components")]
    available_components: Option<std::sync::Arc<crate::fleet::ComponentSet>>,
    #[serde(default)]
    available_components_hash: Option<String>,
    #[serde(default, with = "crate::fleet::shared_signals")]
    component_signals: Option<std::sync::Arc<crate::fleet::ComponentSignals>>,
    #[serde(default)]
    config_history: Vec<crate::fleet::ConfigChange>,
}

impl From<RecordSummary> for AgentRecord {
    fn from(s: RecordSummary) -> Self {
        // A struct literal on purpose: a field added to `AgentRecord` must be added here.
        AgentRecord {
            id: s.id,
            labels: s.labels,
            capabilities: s.capabilities,
            agent_version: s.agent_version,
            health: s.health,
            remote_config_status: s.remote_config_status,
            remote_config_error: s.remote_config_error,
            remote_config_hash: s.remote_config_hash,
            effective_config_hash: s.effective_config_hash,
            effective_config: None,
            group_id: s.group_id,
            desired_config_hash: s.desired_config_hash,
            last_seen: s.last_seen,
            connected: s.connected,
            transport: s.transport,
            replica_id: s.replica_id,
            available_components: s.available_components,
            available_components_hash: s.available_components_hash,
            component_signals: s.component_signals,
            config_history: s.config_history,
        }
    }
}

/// An agent row as the fleet view shows it: the stored record (with its effective config
/// text only when `full`), connected only while the replica holding it is live, without any
/// part over this replica's report limits (a row written under larger ones, by a replica that
/// has not come back to trim it).
fn from_row(
    cluster: &Cluster,
    limits: &crate::fleet::report_limits::ReportLimits,
    row: AgentRow,
    full: bool,
) -> Option<AgentRecord> {
    let parsed = if full {
        serde_json::from_str::<AgentRecord>(&row.state)
    } else {
        serde_json::from_str::<RecordSummary>(&row.state).map(AgentRecord::from)
    };
    let mut rec: AgentRecord = match parsed {
        Ok(r) => r,
        Err(err) => {
            tracing::warn!(agent = %row.id, error = %err, "Skipping an unreadable stored agent");
            return None;
        }
    };
    crate::fleet::report_limits::trim_record(&mut rec, limits);
    rec.connected = row.connected && cluster.is_live(row.replica_id.as_deref());
    // Heartbeats move only the column (`Store::touch_agents`), not the JSON.
    rec.last_seen = rec.last_seen.max(row.last_seen);
    rec.replica_id = row.replica_id;
    Some(rec)
}

/// The fleet as every replica sees it: this replica's registry and, with other replicas, their
/// agents' rows in the database. Cheap to clone.
#[derive(Clone)]
pub struct FleetView {
    cluster: Arc<Cluster>,
    store: Arc<dyn Store>,
    agents: Arc<Registry>,
}

impl FleetView {
    pub fn new(cluster: Arc<Cluster>, store: Arc<dyn Store>, agents: Arc<Registry>) -> Self {
        Self {
            cluster,
            store,
            agents,
        }
    }

    /// This replica among the others.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// This replica's own agents.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.agents
    }

    /// Every agent of the fleet matching `filter`, ordered by id: this replica's own from memory,
    /// the others' from the database (without their effective config text).
    pub async fn agents(&self, filter: &AgentFilter) -> Result<Vec<AgentRecord>, StoreError> {
        if !self.cluster.is_shared() {
            return Ok(self.agents.list(filter));
        }
        let mut all = Vec::new();
        self.visit_agents(filter, |r| all.push(r.clone())).await?;
        all.sort_by_key(|a| a.id);
        Ok(all)
    }

    /// Runs `f` on every agent of the fleet matching `filter`, in no particular order: this
    /// replica's own in place, under the registry lock (a group's status is polled often, and
    /// copying 10,000 records each time cost CPU and, through the allocator, memory), so `f` must
    /// be short; the others' from the database (without their effective config text).
    pub async fn visit_agents(
        &self,
        filter: &AgentFilter,
        mut f: impl FnMut(&AgentRecord),
    ) -> Result<(), StoreError> {
        let cluster = &self.cluster;
        if !cluster.is_shared() {
            self.agents.visit(filter, f);
            return Ok(());
        }
        let rows = self
            .store
            .list_agent_rows(&AgentRowFilter {
                group_id: filter.group_id.map(|g| g.to_string()),
                not_replica: Some(cluster.replica_id.clone()),
            })
            .await?;
        let limits = self.agents.report_limits();
        let mut others: BTreeMap<AgentId, AgentRecord> = rows
            .into_iter()
            .filter_map(|row| from_row(cluster, &limits, row, false))
            .map(|r| (r.id, r))
            .collect();
        self.agents.visit(filter, |local| {
            // Ours: connected here, or last held here and not taken by another replica since.
            if local.replica_id.as_deref() != Some(cluster.replica_id.as_str()) {
                return;
            }
            if local.connected || !others.contains_key(&local.id) {
                others.remove(&local.id);
                f(local);
            }
        });
        others.values().filter(|r| filter.matches(r)).for_each(f);
        Ok(())
    }

    /// One agent, wherever it is held.
    pub async fn agent(
        &self,
        uid: otaas_opamp::InstanceUid,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let cluster = &self.cluster;
        let local = self.agents.get(uid);
        if !cluster.is_shared() {
            return Ok(local);
        }
        if let Some(l) = &local
            && l.connected
            && l.replica_id.as_deref() == Some(cluster.replica_id.as_str())
        {
            return Ok(local);
        }
        let row = self.store.get_agent_row(&uid.to_string()).await?;
        let limits = self.agents.report_limits();
        Ok(match row {
            Some(row) if row.replica_id.as_deref() != Some(cluster.replica_id.as_str()) => {
                from_row(cluster, &limits, row, true)
            }
            Some(row) => local.or_else(|| from_row(cluster, &limits, row, true)),
            None => local,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_is_the_record_without_its_config_text() {
        let full = serde_json::json!({
            "id": "0123456789abcdef0123456789abcdef",
            "labels": {"env": "prod"},
            "capabilities": 4103,
            "agent_version": "1.2",
            "health": {"healthy": true, "status": "ok"},
            "remote_config_status": "applied",
            "remote_config_error": "none",
            "remote_config_hash": "aa",
            "effective_config_hash": "bb",
            "effective_config": "receivers:\n  otlp: {}\n",
            "group_id": AgentGroupId::new().to_string(),
            "desired_config_hash": "aa",
            "last_seen": "2026-12-05T10:00:00Z",
            "connected": true,
            "transport": "ws",
            "replica_id": "r-1"
        })
        .to_string();
        let mut want: AgentRecord = serde_json::from_str(&full).unwrap();
        assert!(want.effective_config.is_some());
        want.effective_config = None;
        let summary: RecordSummary = serde_json::from_str(&full).unwrap();
        assert_eq!(AgentRecord::from(summary), want);
    }

    #[test]
    fn notices_round_trip_as_json() {
        let group = AgentGroupId::new();
        let n = Notice {
            from: "a-1".into(),
            what: What::Rollout { group, version: 3 },
        };
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(
            text,
            format!(r#"{{"from":"a-1","kind":"rollout","group":"{group}","version":3}}"#)
        );
        assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), n);
        let e = Event::GroupRevision {
            group_id: group,
            revision: 2,
            hash: "ab".into(),
        };
        assert_eq!(What::from_event(e.clone()).into_event(), e);
        let e = Event::TokenRevoked {
            token_id: TokenId::new(),
        };
        assert_eq!(What::from_event(e.clone()).into_event(), e);
    }
}
