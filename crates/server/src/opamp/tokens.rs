//! WebSocket sessions by the agent token they were opened with, so that revoking a token ends
//! its sessions within seconds instead of leaving them to receive configs (and their secrets).
//!
//! A session whose upgrade presented a stored token registers here (see [`TokenSessions::bind`])
//! and holds a [`Binding`] for its life; the binding's `CancellationToken` fires when the token
//! is revoked. Expiry needs no notice: the session sleeps until the token's `expires_at`.
//!
//! Revocation reaches us three ways, all ending in [`TokenSessions::revoke`]:
//! - `DELETE /api/v1/tokens/{id}` publishes [`crate::events::Event::TokenRevoked`]; the watcher
//!   (`watch`) hears it at once;
//! - on PostgreSQL, other replicas' revocations arrive as the same event through `cluster.rs`;
//! - every [`RECHECK_EVERY`] (and after missed events) the watcher reads the tokens of the live
//!   sessions from the store and ends those that are no longer active, which covers notices
//!   lost while a replica's cluster listener was reconnecting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use otaas_api::TokenId;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::OpampDeps;
use crate::events::Event;

/// How often the live sessions' tokens are re-read from the store (the safety net for lost
/// notices; a revocation on this replica or a delivered notice acts at once).
pub const RECHECK_EVERY: Duration = Duration::from_secs(15);

/// The stored token a session authenticated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionToken {
    pub id: TokenId,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// Token → session key → what ends that session.
    sessions: HashMap<TokenId, HashMap<u64, CancellationToken>>,
}

/// The registry; one per OpAMP server.
#[derive(Clone, Default)]
pub struct TokenSessions {
    inner: Arc<Mutex<Inner>>,
}

/// A session's place in [`TokenSessions`]; dropping it (the session ended) removes it.
pub struct Binding {
    sessions: TokenSessions,
    token: TokenId,
    key: u64,
    revoked: CancellationToken,
}

impl Binding {
    /// Resolves when the session's token has been revoked.
    pub async fn revoked(&self) {
        self.revoked.cancelled().await
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        let mut inner = self.sessions.lock();
        if let Some(by_key) = inner.sessions.get_mut(&self.token) {
            by_key.remove(&self.key);
            if by_key.is_empty() {
                inner.sessions.remove(&self.token);
            }
        }
    }
}

impl TokenSessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The maps stay consistent whatever panicked while holding the lock.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session opened with `token`.
    pub fn bind(&self, token: TokenId) -> Binding {
        let revoked = CancellationToken::new();
        let mut inner = self.lock();
        inner.next += 1;
        let key = inner.next;
        inner
            .sessions
            .entry(token)
            .or_default()
            .insert(key, revoked.clone());
        Binding {
            sessions: self.clone(),
            token,
            key,
            revoked,
        }
    }

    /// Ends every session opened with `token`; returns how many there were.
    pub fn revoke(&self, token: TokenId) -> usize {
        let ended = self.lock().sessions.remove(&token).unwrap_or_default();
        for revoked in ended.values() {
            revoked.cancel();
        }
        ended.len()
    }

    /// The tokens live sessions were opened with.
    fn tokens(&self) -> Vec<TokenId> {
        self.lock().sessions.keys().copied().collect()
    }

    /// Reads the live sessions' tokens from the store and ends the sessions of those that are
    /// revoked or gone. A store error leaves every session as it is (retried next time).
    async fn recheck(&self, state: &OpampDeps) {
        let live = self.tokens();
        if live.is_empty() {
            return;
        }
        let stored = match state.store.list_tokens().await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(error = %err, "Re-reading agent tokens failed; retrying later");
                return;
            }
        };
        // Expiry is each session's own timer; here only revoked (or deleted) tokens.
        let active: std::collections::HashSet<TokenId> = stored
            .iter()
            .filter(|t| t.revoked_at.is_none())
            .map(|t| t.id)
            .collect();
        for token in live {
            if !active.contains(&token) {
                let n = self.revoke(token);
                tracing::info!(token_id = %token, sessions = n, "Agent token no longer active; closed its OpAMP sessions");
            }
        }
    }
}

/// Ends sessions as their tokens are revoked (see the module docs) until shutdown.
pub(crate) async fn watch(state: OpampDeps, sessions: TokenSessions) {
    let mut rx = state.events.subscribe();
    let mut every = tokio::time::interval(RECHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Ok(Event::TokenRevoked { token_id }) => {
                    let n = sessions.revoke(token_id);
                    if n > 0 {
                        tracing::info!(token_id = %token_id, sessions = n, "Agent token revoked; closed its OpAMP sessions");
                    }
                }
                Ok(_) => {}
                // Events are hints: after missing some, ask the store.
                Err(RecvError::Lagged(_)) => sessions.recheck(&state).await,
                Err(RecvError::Closed) => return,
            },
            _ = every.tick() => sessions.recheck(&state).await,
            _ = state.shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_ends_only_that_tokens_sessions_and_drop_unregisters() {
        let sessions = TokenSessions::default();
        let (a, b) = (TokenId::new(), TokenId::new());
        let a1 = sessions.bind(a);
        let a2 = sessions.bind(a);
        let b1 = sessions.bind(b);
        drop(a2);
        assert_eq!(sessions.revoke(a), 1);
        assert!(a1.revoked.is_cancelled());
        assert!(!b1.revoked.is_cancelled());
        assert_eq!(sessions.revoke(a), 0);
        drop(b1);
        assert!(sessions.tokens().is_empty());
    }
}
