//! The audit trail recorder: [`Audit`] takes entries from the request paths (the `/api/v1`
//! middleware in `api/audit.rs`, the OpAMP and own-metrics refusals), queues them in memory
//! and a background writer appends them to the store in batches, so recording never waits for
//! the database; a full queue drops the entry and counts it (`otaas_audit_dropped_total`).
//! [`retention`] prunes the trail by age and count. Who a token is ([`Actor`]) is described
//! from its stored metadata only: never the token, its hash or any header value.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use otaas_api::{AuditEntry, AuditId, AuditInterface, AuditResult};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::{Principal, TokenCheck, TokenKey, check_token};
use crate::metrics::{MetricKind, Metrics};
use crate::store::{AuditRecord, Store};

/// Entries waiting for the writer at most; beyond it new ones are dropped (and counted).
pub const QUEUE: usize = 10_000;
/// Entries per store append.
const BATCH: usize = 500;
/// `token_id` of the `--admin-token` flag's token.
pub const FLAG_ADMIN: &str = "flag-admin";
/// Longest path kept: a refused request's path is whatever the client sent.
const MAX_PATH: usize = 256;

/// Who presented what, as the trail records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub token_id: Option<String>,
    pub description: Option<String>,
    pub fingerprint: Option<String>,
}

impl Actor {
    /// A verified token.
    pub fn of(principal: &Principal) -> Self {
        match principal {
            Principal::FlagAdmin => Self {
                token_id: Some(FLAG_ADMIN.into()),
                description: Some("the --admin-token flag".into()),
                fingerprint: None,
            },
            Principal::Token(t) => Self {
                token_id: Some(t.id.to_string()),
                description: Some(t.description.clone()),
                fingerprint: None,
            },
        }
    }

    /// No bearer token at all.
    pub fn none() -> Self {
        Self {
            description: Some("no token".into()),
            ..Self::default()
        }
    }

    /// A value that is no token we know: only a keyed, truncated fingerprint of it. Keyed,
    /// so a guessable value (a password pasted in the wrong place) cannot be confirmed from
    /// the trail without the server key; truncated, so it names no value, only tells
    /// repeated ones apart.
    pub fn unknown(key: &TokenKey, presented: &str) -> Self {
        Self {
            token_id: None,
            description: Some("unknown token".into()),
            fingerprint: Some(key.fingerprint(presented)),
        }
    }

    /// A refused token described from the store: a known (revoked, expired or out-of-scope)
    /// token by its id and description, anything else as [`Actor::unknown`]. For the refusal
    /// paths only: it costs a lookup.
    pub async fn refused(
        store: &dyn Store,
        admin_token_hash: Option<&str>,
        presented: Option<&str>,
    ) -> Self {
        let Some(presented) = presented.filter(|p| !p.is_empty()) else {
            return Self::none();
        };
        let key = TokenKey::from(store.server_key());
        match check_token(store, admin_token_hash, presented).await {
            Ok(TokenCheck::Valid(p)) => Self::of(&p),
            Ok(TokenCheck::Revoked | TokenCheck::Expired(_)) => {
                let hash = crate::auth::hash_token(presented);
                match store.find_token_by_hash(&hash).await {
                    Ok(Some(t)) => Self::of(&Principal::Token(t)),
                    _ => Self::unknown(&key, presented),
                }
            }
            Ok(TokenCheck::Unknown) | Err(_) => Self::unknown(&key, presented),
        }
    }
}

/// What a request was and how it ended, before it becomes an entry.
#[derive(Clone, Debug)]
pub struct Event {
    pub interface: AuditInterface,
    pub actor: Actor,
    pub source: Option<std::net::IpAddr>,
    pub method: String,
    pub path: String,
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    pub status: u16,
    pub error_code: Option<String>,
    pub revision_before: Option<i64>,
    pub revision_after: Option<i64>,
    pub dry_run: bool,
}

impl Event {
    fn into_record(self, at: DateTime<Utc>) -> AuditRecord {
        let success = (200..300).contains(&self.status);
        let mut path = self.path;
        if path.len() > MAX_PATH {
            let mut cut = MAX_PATH;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            path.truncate(cut);
        }
        AuditRecord {
            id: AuditId::new(),
            at,
            interface: self.interface.as_str().to_owned(),
            token_id: self.actor.token_id,
            token_description: self.actor.description,
            token_fingerprint: self.actor.fingerprint,
            source: self.source.map(|ip| ip.to_string()),
            method: self.method,
            path,
            object_kind: self.object_kind,
            object_id: self.object_id,
            status: self.status,
            error_code: self.error_code,
            success,
            revision_before: self.revision_before,
            revision_after: self.revision_after,
            dry_run: self.dry_run,
        }
    }
}

/// A stored entry as the API shows it.
pub fn entry(r: AuditRecord) -> AuditEntry {
    let interface = match r.interface.as_str() {
        "rest" => AuditInterface::Rest,
        "opamp" => AuditInterface::Opamp,
        "ingest" => AuditInterface::Ingest,
        "console" => AuditInterface::Console,
        _ => AuditInterface::Other,
    };
    AuditEntry {
        id: r.id,
        at: r.at,
        interface,
        token_id: r.token_id,
        token_description: r.token_description,
        token_fingerprint: r.token_fingerprint,
        source: r.source,
        method: r.method,
        path: r.path,
        object_kind: r.object_kind,
        object_id: r.object_id,
        status: r.status,
        error_code: r.error_code,
        result: if r.success {
            AuditResult::Success
        } else {
            AuditResult::Failure
        },
        revision_before: r.revision_before,
        revision_after: r.revision_after,
        dry_run: r.dry_run,
    }
}

/// The recorder: a bounded queue and the writer draining it (started by the first entry, so
/// every embedder of the router records without starting anything).
pub struct Audit {
    tx: mpsc::Sender<AuditRecord>,
    rx: Mutex<Option<mpsc::Receiver<AuditRecord>>>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// Queued but not yet appended (or dropped): what [`Audit::flush`] waits for.
    pending: Arc<AtomicU64>,
}

impl Audit {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self::with_capacity(store, metrics, QUEUE)
    }

    pub fn with_capacity(store: Arc<dyn Store>, metrics: Arc<Metrics>, capacity: usize) -> Self {
        metrics.describe(
            "otaas_audit_dropped_total",
            MetricKind::Counter,
            "Audit trail entries dropped: the in-memory queue was full or the store refused \
             them.",
        );
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            store,
            metrics,
            pending: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues an entry; never waits.
    pub fn record(&self, event: Event) {
        self.start_writer();
        match self.tx.try_send(event.into_record(Utc::now())) {
            Ok(()) => {
                self.pending.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => self.metrics.inc("otaas_audit_dropped_total", &[]),
        }
    }

    fn start_writer(&self) {
        let Ok(mut slot) = self.rx.lock() else {
            return;
        };
        let Some(rx) = slot.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(write(
                    rx,
                    self.store.clone(),
                    self.metrics.clone(),
                    self.pending.clone(),
                ));
            }
            // No runtime (a synchronous embedder): try again with the next entry.
            Err(_) => *slot = Some(rx),
        }
    }

    /// Waits (at most `timeout`) until every queued entry is in the store or dropped: for a
    /// graceful shutdown, and for tests reading the trail right after a request.
    pub async fn flush(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The writer: appends what is queued in batches, until every sender is gone. A batch the
/// store refuses is retried a few times (a database blip), then dropped and counted.
async fn write(
    mut rx: mpsc::Receiver<AuditRecord>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    pending: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut tries = 0;
        loop {
            tries += 1;
            match store.append_audit(&batch).await {
                Ok(()) => break,
                Err(err) if tries < 5 => {
                    tracing::warn!(error = %err, entries = batch.len(),
                        "Writing audit entries failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(err) => {
                    tracing::error!(error = %err, entries = batch.len(),
                        "Writing audit entries failed; dropping them");
                    metrics.add("otaas_audit_dropped_total", &[], batch.len() as f64);
                    break;
                }
            }
        }
        pending.fetch_sub(batch.len() as u64, Ordering::SeqCst);
        batch.clear();
    }
}

/// How often [`retention`] prunes.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Prunes the trail now and every `every` until shutdown: entries older than `days` days go,
/// then all but the newest `count`.
pub async fn retention(
    store: Arc<dyn Store>,
    days: u32,
    count: u64,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = Utc::now() - chrono::Duration::days(i64::from(days));
        match store.prune_audit(before, count).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "Pruned the audit trail"),
            Err(err) => tracing::warn!(error = %err, "Pruning the audit trail failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> Event {
        Event {
            interface: AuditInterface::Rest,
            actor: Actor::none(),
            source: None,
            method: "POST".into(),
            path: format!("/api/v1/pipelines/{n}"),
            object_kind: None,
            object_id: None,
            status: 201,
            error_code: None,
            revision_before: None,
            revision_after: None,
            dry_run: false,
        }
    }

    /// Given a queue of one entry whose writer has not run yet, when three entries are
    /// recorded at once, then the first is written and the other two are dropped and counted,
    /// without the recording waiting.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let store: Arc<dyn Store> =
            Arc::new(crate::store::sqlite::SqliteStore::open(&url).await.unwrap());
        let metrics = Arc::new(Metrics::new());
        let audit = Audit::with_capacity(store.clone(), metrics.clone(), 1);
        for n in 0..3 {
            audit.record(event(n));
        }
        audit.flush(Duration::from_secs(10)).await;
        let written = store
            .list_audit(&crate::store::AuditFilter::default())
            .await
            .unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].path, "/api/v1/pipelines/0");
        assert!(
            metrics.render().contains("otaas_audit_dropped_total 2"),
            "{}",
            metrics.render()
        );
    }

    /// Given a path longer than the limit (a refused request's path is whatever was sent),
    /// when it is recorded, then it is cut at a character boundary.
    #[test]
    fn long_paths_are_cut() {
        let mut e = event(0);
        e.path = format!("/api/v1/{}", "é".repeat(300));
        let r = e.into_record(Utc::now());
        assert!(r.path.len() <= MAX_PATH);
        assert!(r.path.ends_with('é'));
    }

    /// Given one server key, when two values are fingerprinted, then each has 12 hex digits,
    /// the same value the same ones, and neither is a prefix of the value's SHA-256 (what the
    /// tokens table keeps).
    #[test]
    fn fingerprints_are_keyed_and_short() {
        let key = TokenKey::from_bytes([3; 32]);
        let a = Actor::unknown(&key, "otaas_admin_guess")
            .fingerprint
            .unwrap();
        let b = Actor::unknown(&key, "otaas_admin_other")
            .fingerprint
            .unwrap();
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(a, key.fingerprint("otaas_admin_guess"));
        assert!(!crate::auth::hash_token("otaas_admin_guess").starts_with(&a));
        assert_ne!(
            a,
            TokenKey::from_bytes([4; 32]).fingerprint("otaas_admin_guess")
        );
    }
}
