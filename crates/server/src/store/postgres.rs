//! PostgreSQL backend (`postgres://...`): several `otaas serve` replicas may share one database.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::migrations;

/// A store on PostgreSQL. Writes take a transaction-scoped advisory lock so replicas never
/// interleave two re-renders of the same group (group revision numbers stay gap-free).
pub struct PgStore {
    pool: sqlx::PgPool,
    key: TokenKey,
    /// The operator's config policy, used when rendering (see `Store::set_config_policy`).
    policy: std::sync::RwLock<crate::policy::ConfigPolicy>,
    /// In-process serialisation in front of the advisory lock, so one replica's writers queue
    /// here instead of holding pool connections while they wait in PostgreSQL.
    write_lock: tokio::sync::Mutex<()>,
}

const BACKEND: Backend = Backend::Postgres;

/// Advisory lock id for "config writes" (arbitrary, fixed: `otaas` in ASCII).
const WRITE_LOCK_ID: i64 = 0x6f_74_61_61_73;

/// Starts a write transaction (READ COMMITTED, serialised by [`lock_writes`]: no
/// serialization failures to retry).
async fn begin_write(
    pool: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    Ok(pool.begin().await?)
}

async fn lock_writes(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK_ID)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl PgStore {
    /// Connects to `url` and migrates. With `schema`, everything lives in that schema (created
    /// if missing) via `search_path`; tests use it to get a fresh, disposable namespace.
    pub async fn open(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let mut options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        // One direct connection first: an unreachable server or a wrong password is reported
        // as such, rather than as a pool timeout.
        let mut conn = options.connect().await?;
        if let Some(schema) = schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(StoreError::BadUrl(format!("schema name {schema:?}")));
            }
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
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect_with(options)
            .await?;
        migrations::postgres().run(&pool).await?;
        let key = load_or_create_key(&pool).await?;
        Ok(Self {
            pool,
            key,
            policy: Default::default(),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Drops a schema made by [`PgStore::open`] (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StoreError::BadUrl(format!("schema name {schema:?}")));
        }
        let options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        let mut conn = options.connect().await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }

    /// The connection pool, for other areas' queries (and `LISTEN/NOTIFY`) on the same database.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

fn pg_pool_of(pool: &sqlx::PgPool) -> Option<&sqlx::PgPool> {
    Some(pool)
}

super::sql::sql_store!(PgStore, sqlx::Postgres);
