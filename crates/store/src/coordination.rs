//! What replicas sharing one database coordinate through: notices from one replica to the
//! others and session locks (PostgreSQL `NOTIFY`/`LISTEN` and advisory locks). The cluster
//! decides what the channels, lock classes and keys mean; the store only carries them.

use async_trait::async_trait;

use crate::StoreError;

/// Replica coordination on the store's database (see
/// [`Store::coordination`](crate::Store::coordination)).
#[async_trait]
pub trait Coordination: Send + Sync {
    /// Names this installation within the database (the PostgreSQL schema), so installations
    /// sharing one database keep their channels and locks apart.
    fn scope(&self) -> &str;

    /// Sends `payload` to every current listener of `channel`. A listener that is not
    /// connected at that moment never gets it.
    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError>;

    /// A new connection listening on `channel`, shown as `application_name` in the
    /// database's views.
    async fn listen(
        &self,
        channel: &str,
        application_name: &str,
    ) -> Result<Box<dyn Notices>, StoreError>;

    /// A new session for locks that are held until released or until the session ends
    /// (the process dies, the connection drops).
    async fn lock_session(
        &self,
        application_name: &str,
    ) -> Result<Box<dyn LockSession>, StoreError>;
}

/// The payloads sent to a channel, in order.
#[async_trait]
pub trait Notices: Send {
    /// The next payload; `Ok(None)` once the connection is lost (whatever was sent meanwhile
    /// is lost too).
    async fn recv(&mut self) -> Result<Option<String>, StoreError>;
}

/// Session locks, each named by a class and the text `"<prefix>/<id>"` (the prefix keeps
/// installations sharing a database apart, see [`Coordination::scope`]). Taking a held lock
/// again stacks it (one unlock per take).
#[async_trait]
pub trait LockSession: Send {
    /// Takes the lock when nobody else holds it, without waiting; true when taken.
    async fn try_lock(&mut self, class: i32, prefix: &str, id: &str) -> Result<bool, StoreError>;
    /// [`LockSession::try_lock`] for each id in one round trip; the ids taken.
    async fn try_lock_each(
        &mut self,
        class: i32,
        prefix: &str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError>;
    /// Releases one take of each id's lock.
    async fn unlock_each(
        &mut self,
        class: i32,
        prefix: &str,
        ids: &[String],
    ) -> Result<(), StoreError>;
    /// The recorded replicas ([`Store::register_replica`](crate::Store::register_replica))
    /// whose lock `(class, "<prefix>/<replica id>")` some session holds right now.
    async fn live_replicas(&mut self, class: i32, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Ends the session: every lock it holds is released.
    async fn close(self: Box<Self>);
}
