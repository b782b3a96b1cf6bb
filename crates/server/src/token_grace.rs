//! Ends endpoint token grace periods on time: after a `token_version` bump the previous token
//! is rendered until its grace is over (the deadline is in the store, so it survives a
//! restart); this task notices the deadline, has the config writer drop the old token and
//! re-render the affected groups, and announces the new revisions like any write would.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::Events;
use crate::metrics::Metrics;
use crate::revisions::ConfigWriter;

/// What the grace task uses.
#[derive(Clone)]
pub struct TokenGrace {
    pub writer: ConfigWriter,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

/// How often the store is asked for grace periods that are over: the old token lives at most
/// this much longer than its grace.
pub const TICK: Duration = Duration::from_millis(500);

/// Runs until the server shuts down.
pub async fn run(grace: impl Into<TokenGrace>) {
    let state = grace.into();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.writer.expire_token_grace().await {
            Ok(written) => {
                if written.value > 0 {
                    tracing::info!(
                        endpoints = written.value,
                        revisions = written.revisions.len(),
                        "Endpoint token grace periods ended"
                    );
                }
                state.events.announce(&state.metrics, &written);
            }
            // A database outage: the next tick tries again; the old token stays meanwhile.
            Err(err) => tracing::warn!(error = %err, "Ending endpoint token grace periods failed"),
        }
    }
}
