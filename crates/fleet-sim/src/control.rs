//! Run-time control of a running simulation (`--control-stdin`): label changes per agent, so a
//! test can move a live agent between groups, own-metrics rates (`throughput N`, `refused N`,
//! to inject a throughput drop), `drift on|off`, `unhealthy on|off`, `flap on|off` (reconnect
//! loops), and `stop`.
//!
//! Lifecycle: one `watch` channel holds the current overrides; every agent task holds a
//! receiver and re-reads its own entry when the value changes. When stdin closes the sender is
//! dropped, receivers see the channel closed and stop polling it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::labels::LabelTemplate;

/// Label overrides: per agent index, and one for every agent (`*`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    all: Option<LabelTemplate>,
    per_agent: HashMap<usize, LabelTemplate>,
}

/// An agent's view of the control channel.
pub(crate) struct Control {
    rx: Option<watch::Receiver<Arc<Overrides>>>,
}

impl Control {
    pub(crate) fn closed() -> Self {
        Self { rx: None }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.rx.is_some()
    }

    /// Waits for the next change; false when the channel closed (and it stays closed).
    pub(crate) async fn changed(&mut self) -> bool {
        let Some(rx) = self.rx.as_mut() else {
            return false;
        };
        if rx.changed().await.is_ok() {
            true
        } else {
            self.rx = None;
            false
        }
    }

    /// The labels agent `index` should have now, if overridden.
    pub(crate) fn labels_for(&self, index: usize) -> Option<BTreeMap<String, String>> {
        let rx = self.rx.as_ref()?;
        let current = rx.borrow();
        let template = current.per_agent.get(&index).or(current.all.as_ref())?;
        Some(template.expand(index))
    }
}

/// Creates the channel; agents get `Control`s from the returned sender.
pub(crate) fn channel() -> (watch::Sender<Arc<Overrides>>, impl Fn() -> Control) {
    let (tx, rx) = watch::channel(Arc::new(Overrides::default()));
    (tx, move || Control {
        rx: Some(rx.clone()),
    })
}

/// Reads commands from stdin until EOF or `stop`, then cancels `stop`.
///
/// Commands (one per line): `labels <index|*> k=v,...` replaces the labels of one agent (or
/// all); `throughput N`, `refused N`, `drift on|off`, `unhealthy on|off`, `flap on|off` change
/// every agent (see `own_metrics::Rates`); `stop` ends the simulation. Bad lines are reported
/// as `control_error` events.
pub(crate) async fn read_stdin(
    tx: watch::Sender<Arc<Overrides>>,
    stop: CancellationToken,
    rates: Arc<crate::own_metrics::Rates>,
    emit: impl Fn(serde_json::Value),
) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = stop.cancelled() => return,
        };
        let Ok(Some(line)) = line else { break };
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some("stop"), None, None) => break,
            (Some(which @ ("drift" | "unhealthy")), Some(state @ ("on" | "off")), None) => {
                let flag = if which == "drift" {
                    &rates.drift
                } else {
                    &rates.unhealthy
                };
                flag.store(state == "on", std::sync::atomic::Ordering::Relaxed);
                emit(serde_json::json!({"event": "control_ok", "command": line}));
            }
            // Every agent drops its connection shortly after connecting, and reconnects.
            (Some("flap"), Some(state @ ("on" | "off")), None) => {
                rates.flap.send_replace(state == "on");
                emit(serde_json::json!({"event": "control_ok", "command": line}));
            }
            // Own-metrics rates of every agent: `throughput N` / `refused N` items per second.
            (Some(which @ ("throughput" | "refused")), Some(n), None) => match n.parse::<u64>() {
                Ok(n) => {
                    let rate = if which == "throughput" {
                        &rates.accepted
                    } else {
                        &rates.refused
                    };
                    rate.store(n, std::sync::atomic::Ordering::Relaxed);
                    emit(serde_json::json!({"event": "control_ok", "command": line}));
                }
                Err(_) => emit(
                    serde_json::json!({"event": "control_error", "error": format!("bad rate {n:?}")}),
                ),
            },
            (Some("labels"), Some(who), labels) => {
                let template = match LabelTemplate::parse(labels.unwrap_or("")) {
                    Ok(t) => t,
                    Err(err) => {
                        emit(
                            serde_json::json!({"event": "control_error", "error": err.to_string()}),
                        );
                        continue;
                    }
                };
                let mut next = (**tx.borrow()).clone();
                if who == "*" {
                    next.all = Some(template);
                    next.per_agent.clear();
                } else if let Ok(index) = who.parse::<usize>() {
                    next.per_agent.insert(index, template);
                } else {
                    emit(
                        serde_json::json!({"event": "control_error", "error": format!("bad agent index {who:?}")}),
                    );
                    continue;
                }
                tx.send_replace(Arc::new(next));
                emit(serde_json::json!({"event": "control_ok", "command": line}));
            }
            (None, _, _) => {}
            _ => emit(
                serde_json::json!({"event": "control_error", "error": format!("unknown command {line:?}")}),
            ),
        }
    }
    stop.cancel();
}
