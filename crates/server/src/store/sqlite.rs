//! SQLite backend: the embedded default (`sqlite://PATH`, file created on first open, WAL).

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::migrations;

/// A store on one SQLite file. One process owns the file; writes are serialised by
/// `write_lock` (SQLite has a single writer anyway, and queueing in-process keeps the wait out
/// of the pool), and every write transaction starts `BEGIN IMMEDIATE` (see [`begin_write`]).
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    key: TokenKey,
    /// The operator's config policy, used when rendering (see `Store::set_config_policy`).
    policy: std::sync::RwLock<crate::policy::ConfigPolicy>,
    /// Held for the whole of every write transaction.
    write_lock: tokio::sync::Mutex<()>,
}

const BACKEND: Backend = Backend::Sqlite;

/// Starts a write transaction. `IMMEDIATE` takes SQLite's write lock at `BEGIN`, waiting for
/// it up to the busy timeout. A deferred transaction would read first and upgrade to a writer
/// on its first write; in WAL mode that upgrade fails at once with `SQLITE_BUSY_SNAPSHOT`
/// (517) when another connection committed since the read, and the busy timeout cannot help.
async fn begin_write(
    pool: &sqlx::SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

async fn lock_writes(_tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<(), StoreError> {
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://PATH`) and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        migrations::sqlite().run(&pool).await?;
        let key = load_or_create_key(&pool).await?;
        Ok(Self {
            pool,
            key,
            policy: Default::default(),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The connection pool, for other areas' queries on the same database.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}

/// SQLite has no pool for `LISTEN/NOTIFY` and advisory locks: one process, nothing to share.
fn pg_pool_of(_: &sqlx::SqlitePool) -> Option<&sqlx::PgPool> {
    None
}

super::sql::sql_store!(SqliteStore, sqlx::Sqlite);
