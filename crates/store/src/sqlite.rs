//! SQLite backend: the embedded default (`sqlite://PATH`, file created on first open, WAL).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

use crate::sql::{Db, DbRow, Sql, SqlStore, load_or_create_key};
use crate::{Backend, StoreError, migrations};

/// The SQLite side of the shared SQL store.
#[derive(Debug)]
pub struct SqliteDb;

/// A store on one SQLite file. One process owns the file; writes are serialised in-process
/// (SQLite has a single writer anyway, and queueing in-process keeps the wait out of the
/// pool), and every write transaction starts `BEGIN IMMEDIATE` (see `SqliteDb::begin_write`).
pub type SqliteStore = SqlStore<SqliteDb>;

impl Db for SqliteDb {
    const BACKEND: Backend = Backend::Sqlite;
    type Pool = sqlx::SqlitePool;
    type Conn = sqlx::SqliteConnection;
    type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;
    type Pooled = sqlx::pool::PoolConnection<sqlx::Sqlite>;
    type Row = SqliteRow;

    async fn acquire(pool: &Self::Pool) -> Result<Self::Pooled, sqlx::Error> {
        pool.acquire().await
    }

    /// `IMMEDIATE` takes SQLite's write lock at `BEGIN`, waiting for it up to the busy
    /// timeout. A deferred transaction would read first and upgrade to a writer on its first
    /// write; in WAL mode that upgrade fails at once with `SQLITE_BUSY_SNAPSHOT` (517) when
    /// another connection committed since the read, and the busy timeout cannot help.
    async fn begin_write(pool: &Self::Pool) -> Result<Self::Tx, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    /// One process, and `BEGIN IMMEDIATE` already holds the only write lock there is.
    async fn lock_config_writes(_conn: &mut Self::Conn) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn execute(conn: &mut Self::Conn, q: Sql<'_>) -> Result<u64, sqlx::Error> {
        Ok(q.query::<sqlx::Sqlite>()
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn fetch_all(conn: &mut Self::Conn, q: Sql<'_>) -> Result<Vec<SqliteRow>, sqlx::Error> {
        q.query::<sqlx::Sqlite>().fetch_all(conn).await
    }

    async fn fetch_optional(
        conn: &mut Self::Conn,
        q: Sql<'_>,
    ) -> Result<Option<SqliteRow>, sqlx::Error> {
        q.query::<sqlx::Sqlite>().fetch_optional(conn).await
    }
}

impl DbRow for SqliteRow {
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
}

impl SqlStore<SqliteDb> {
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
        let key = load_or_create_key::<SqliteDb>(&mut *pool.acquire().await?).await?;
        Ok(Self {
            pool,
            key,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            // One process: nothing to coordinate with.
            coordination: None,
        })
    }

    /// The connection pool, for other areas' queries on the same database.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}
