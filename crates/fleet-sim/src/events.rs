//! The simulator's machine-readable output: one JSON object per line on stdout (`event` key),
//! plus fleet-wide counters for the final `summary` line.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use otaas_opamp::InstanceUid;
use otaas_opamp::proto::RemoteConfigStatuses;
use serde_json::{Value, json};

/// Counters shared by all agent tasks; read once for the summary.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connects: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) configs_received: AtomicU64,
    pub(crate) full_state_requests: AtomicU64,
    pub(crate) new_uids: AtomicU64,
    pub(crate) server_errors: AtomicU64,
}

/// The agent an event is about (the simulator's `SimAgent`; events sit below it).
pub(crate) trait Subject {
    fn index(&self) -> usize;
    fn uid(&self) -> InstanceUid;
    fn labels(&self) -> &std::collections::BTreeMap<String, String>;
}

/// Where events go. `quiet` keeps per-agent events off stdout (counters still count).
#[derive(Debug, Default)]
pub(crate) struct Events {
    quiet: bool,
    pub(crate) counters: Counters,
}

pub(crate) fn status_name(status: RemoteConfigStatuses) -> &'static str {
    match status {
        RemoteConfigStatuses::Unset => "UNSET",
        RemoteConfigStatuses::Applied => "APPLIED",
        RemoteConfigStatuses::Applying => "APPLYING",
        RemoteConfigStatuses::Failed => "FAILED",
    }
}

impl Events {
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            quiet,
            counters: Counters::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn silent() -> Self {
        Self::new(true)
    }

    /// Writes one line; stdout errors (a closed pipe) are ignored, the simulation goes on.
    pub(crate) fn emit(&self, value: Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    fn agent_event(&self, agent: &impl Subject, event: &str, mut fields: Value) {
        if self.quiet {
            return;
        }
        fields["event"] = json!(event);
        fields["agent"] = json!(agent.index());
        fields["uid"] = json!(agent.uid().to_string());
        self.emit(fields);
    }

    pub(crate) fn connected(&self, agent: &impl Subject, transport: &str, reconnect: bool) {
        self.counters.connects.fetch_add(1, Ordering::Relaxed);
        if reconnect {
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.agent_event(
            agent,
            "connected",
            json!({"transport": transport, "reconnect": reconnect}),
        );
    }

    pub(crate) fn disconnected(&self, agent: &impl Subject, reason: &str) {
        self.agent_event(agent, "disconnected", json!({"reason": reason}));
    }

    /// A refused or failed connection attempt; `retry_after` is the delay the server asked for
    /// (`Retry-After`, or `RetryInfo` in an HTTP 503 body), which the agent waits.
    pub(crate) fn connect_failed(
        &self,
        agent: &impl Subject,
        error: &str,
        auth: bool,
        retry_after: Option<Duration>,
    ) {
        self.counters
            .connect_failures
            .fetch_add(1, Ordering::Relaxed);
        if auth {
            self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.agent_event(
            agent,
            "connect_failed",
            json!({"error": error, "auth": auth,
                "retry_after_ms": retry_after.map(|d| d.as_millis() as u64)}),
        );
    }

    pub(crate) fn config(
        &self,
        agent: &impl Subject,
        hash: &str,
        status: RemoteConfigStatuses,
        error: &str,
    ) {
        self.counters
            .configs_received
            .fetch_add(1, Ordering::Relaxed);
        self.agent_event(
            agent,
            "config",
            json!({"hash": hash, "status": status_name(status), "error": error}),
        );
    }

    pub(crate) fn full_state_requested(&self, agent: &impl Subject) {
        self.counters
            .full_state_requests
            .fetch_add(1, Ordering::Relaxed);
        self.agent_event(agent, "full_state_requested", json!({}));
    }

    pub(crate) fn new_uid(&self, agent: &impl Subject, uid: InstanceUid) {
        self.counters.new_uids.fetch_add(1, Ordering::Relaxed);
        self.agent_event(agent, "new_uid", json!({"new_uid": uid.to_string()}));
    }

    pub(crate) fn server_error(
        &self,
        agent: &impl Subject,
        message: &str,
        kind: i32,
        retry: Option<Duration>,
    ) {
        self.counters.server_errors.fetch_add(1, Ordering::Relaxed);
        let kind = match kind {
            1 => "BadRequest",
            2 => "Unavailable",
            _ => "Unknown",
        };
        self.agent_event(
            agent,
            "server_error",
            json!({"type": kind, "message": message, "retry_after_ms": retry.map(|d| d.as_millis() as u64)}),
        );
    }

    pub(crate) fn protocol_error(&self, agent: &impl Subject, error: &str) {
        self.agent_event(agent, "protocol_error", json!({"error": error}));
    }

    pub(crate) fn labels_changed(&self, agent: &impl Subject) {
        self.agent_event(agent, "labels_changed", json!({"labels": agent.labels()}));
    }
}
