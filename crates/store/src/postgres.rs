//! PostgreSQL backend (`postgres://...`): several `otaas serve` replicas may share one
//! database. Config writes take a transaction-scoped advisory lock so replicas never
//! interleave two re-renders of the same group (group revision numbers stay gap-free); the
//! replicas reach each other through [`Coordination`] (`NOTIFY`/`LISTEN`, session advisory
//! locks).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::sql::{Db, DbRow, Sql, SqlStore, load_or_create_key};
use crate::{Backend, Coordination, LockSession, Notices, StoreError, migrations};

/// The PostgreSQL side of the shared SQL store.
#[derive(Debug)]
pub struct PgDb;

/// A store on PostgreSQL. Writers of one replica queue in-process in front of the advisory
/// lock, so they wait there instead of holding pool connections while PostgreSQL makes
/// them wait.
pub type PgStore = SqlStore<PgDb>;

/// Advisory lock id for "config writes" (arbitrary, fixed: `otaas` in ASCII).
const WRITE_LOCK_ID: i64 = 0x6f_74_61_61_73;

impl Db for PgDb {
    const BACKEND: Backend = Backend::Postgres;
    type Pool = sqlx::PgPool;
    type Conn = PgConnection;
    type Tx = sqlx::Transaction<'static, sqlx::Postgres>;
    type Pooled = sqlx::pool::PoolConnection<sqlx::Postgres>;
    type Row = PgRow;

    async fn acquire(pool: &Self::Pool) -> Result<Self::Pooled, sqlx::Error> {
        pool.acquire().await
    }

    /// READ COMMITTED, serialised by [`Db::lock_config_writes`] where it matters: no
    /// serialization failures to retry.
    async fn begin_write(pool: &Self::Pool) -> Result<Self::Tx, sqlx::Error> {
        pool.begin().await
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn lock_config_writes(conn: &mut Self::Conn) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK_ID)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn execute(conn: &mut Self::Conn, q: Sql<'_>) -> Result<u64, sqlx::Error> {
        Ok(q.query::<sqlx::Postgres>()
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn fetch_all(conn: &mut Self::Conn, q: Sql<'_>) -> Result<Vec<PgRow>, sqlx::Error> {
        q.query::<sqlx::Postgres>().fetch_all(conn).await
    }

    async fn fetch_optional(
        conn: &mut Self::Conn,
        q: Sql<'_>,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        q.query::<sqlx::Postgres>().fetch_optional(conn).await
    }
}

impl DbRow for PgRow {
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

fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    if schema
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        Err(StoreError::BadUrl(format!("schema name {schema:?}")))
    }
}

impl SqlStore<PgDb> {
    /// Connects to `url` and migrates. With `schema`, everything lives in that schema (created
    /// if missing) via `search_path`; tests use it to get a fresh, disposable namespace.
    pub async fn open(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let mut options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        // One direct connection first: an unreachable server or a wrong password is reported
        // as such, rather than as a pool timeout.
        let mut conn = options.connect().await?;
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&mut conn)
                .await?;
            options = options.options([("search_path", schema)]);
        }
        conn.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            // While PostgreSQL is down, requests fail over to `503 + Retry-After` after this
            // long instead of queueing for sqlx's default 30 s (clients would see a hang).
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.clone())
            .await?;
        migrations::postgres().run(&pool).await?;
        let key = load_or_create_key::<PgDb>(&mut *pool.acquire().await?).await?;
        let scope: String = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&pool)
            .await?;
        let coordination = PgCoordination {
            pool: pool.clone(),
            options,
            scope,
        };
        Ok(Self {
            pool,
            key,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            coordination: Some(Arc::new(coordination)),
        })
    }

    /// Drops a schema made by [`PgStore::open`] (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        check_schema_name(schema)?;
        let options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        let mut conn = options.connect().await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }

    /// The connection pool, for other areas' queries on the same database.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

/// `NOTIFY` through the store's pool; listeners and lock sessions on connections of their
/// own, made with the store's connect options (so in its schema).
struct PgCoordination {
    pool: sqlx::PgPool,
    options: PgConnectOptions,
    scope: String,
}

#[async_trait]
impl Coordination for PgCoordination {
    fn scope(&self) -> &str {
        &self.scope
    }

    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn listen(
        &self,
        channel: &str,
        application_name: &str,
    ) -> Result<Box<dyn Notices>, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(self.options.clone().application_name(application_name))
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        // A lost connection ends the listener (`Ok(None)`), so the caller resynchronises.
        listener.ignore_pool_close_event(true);
        listener.listen(channel).await?;
        Ok(Box::new(PgNotices(listener)))
    }

    async fn lock_session(
        &self,
        application_name: &str,
    ) -> Result<Box<dyn LockSession>, StoreError> {
        let conn = self
            .options
            .clone()
            .application_name(application_name)
            .connect()
            .await?;
        Ok(Box::new(PgLocks(conn)))
    }
}

struct PgNotices(PgListener);

#[async_trait]
impl Notices for PgNotices {
    async fn recv(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.0.try_recv().await?.map(|n| n.payload().to_owned()))
    }
}

/// Session advisory locks, two-key form `(class, hashtext('<prefix>/<id>'))`: never
/// collides with the one-key config write lock.
struct PgLocks(PgConnection);

#[async_trait]
impl LockSession for PgLocks {
    async fn try_lock(&mut self, class: i32, prefix: &str, id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT pg_try_advisory_lock({class}, hashtext($1 || '/' || $2))"
        ))
        .bind(prefix)
        .bind(id)
        .fetch_one(&mut self.0)
        .await?)
    }

    async fn try_lock_each(
        &mut self,
        class: i32,
        prefix: &str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT g FROM unnest($1::text[]) AS g \
             WHERE pg_try_advisory_lock({class}, hashtext($2 || '/' || g))"
        ))
        .bind(ids)
        .bind(prefix)
        .fetch_all(&mut self.0)
        .await?)
    }

    async fn unlock_each(
        &mut self,
        class: i32,
        prefix: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "SELECT pg_advisory_unlock({class}, hashtext($2 || '/' || g)) \
             FROM unnest($1::text[]) AS g"
        ))
        .bind(ids)
        .bind(prefix)
        .execute(&mut self.0)
        .await?;
        Ok(())
    }

    async fn live_replicas(&mut self, class: i32, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT r.id FROM replicas r WHERE EXISTS (SELECT 1 FROM pg_locks l \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
             AND l.classid = {class}::oid AND l.objid = hashtext($1 || '/' || r.id)::oid)"
        ))
        .bind(prefix)
        .fetch_all(&mut self.0)
        .await?)
    }

    async fn close(self: Box<Self>) {
        let _ = self.0.close().await;
    }
}
