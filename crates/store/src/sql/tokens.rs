//! API and enrollment tokens: the `tokens` table (hashes and metadata, never a token).

use chrono::{DateTime, Utc};
use otaas_api::{TokenId, TokenScope};

use super::db::{Db, DbRow, now_ms, sql, ts};
use crate::{Kind, StoreError, TokenRecord};

const COLS: &str = "id, scope, hash, description, created_at, expires_at, revoked_at";

fn from_row(row: &impl DbRow) -> Result<TokenRecord, StoreError> {
    let id = row.text("id")?;
    let scope = row.text("scope")?;
    let scope = TokenScope::parse(&scope)
        .ok_or_else(|| StoreError::Corrupt(format!("token scope {scope:?}")))?;
    let opt_ts = |v: Option<i64>| v.map(ts).transpose();
    Ok(TokenRecord {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("bad id {id:?}")))?,
        scope,
        hash: row.text("hash")?,
        description: row.text("description")?,
        created_at: ts(row.int("created_at")?)?,
        expires_at: opt_ts(row.opt_int("expires_at")?)?,
        revoked_at: opt_ts(row.opt_int("revoked_at")?)?,
    })
}

async fn fetch<B: Db>(conn: &mut B::Conn, id: &str) -> Result<Option<TokenRecord>, StoreError> {
    let q = format!("SELECT {COLS} FROM tokens WHERE id = $1");
    let row = B::fetch_optional(conn, sql(q).bind(id)).await?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn create<B: Db>(
    conn: &mut B::Conn,
    scope: TokenScope,
    description: &str,
    hash: &str,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<TokenRecord, StoreError> {
    let id = TokenId::new().to_string();
    let q = sql(
        "INSERT INTO tokens (id, scope, hash, description, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(scope.as_str())
    .bind(hash)
    .bind(description)
    .bind(created_at.timestamp_millis())
    .bind(expires_at.map(|t| t.timestamp_millis()));
    B::execute(conn, q).await?;
    fetch::<B>(conn, &id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("token {id} vanished")))
}

pub(crate) async fn find_by_hash<B: Db>(
    conn: &mut B::Conn,
    hash: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    let q = format!("SELECT {COLS} FROM tokens WHERE hash = $1");
    let row = B::fetch_optional(conn, sql(q).bind(hash)).await?;
    row.as_ref().map(from_row).transpose()
}

/// Oldest first.
pub(crate) async fn list<B: Db>(conn: &mut B::Conn) -> Result<Vec<TokenRecord>, StoreError> {
    let q = format!("SELECT {COLS} FROM tokens ORDER BY created_at, id");
    let rows = B::fetch_all(conn, sql(q)).await?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn revoke<B: Db>(
    conn: &mut B::Conn,
    id: TokenId,
) -> Result<TokenRecord, StoreError> {
    let sid = id.to_string();
    // COALESCE keeps the first revocation time when revoked twice.
    let q = sql("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
        .bind(now_ms())
        .bind(&sid);
    B::execute(conn, q).await?;
    fetch::<B>(conn, &sid).await?.ok_or(StoreError::NotFound {
        kind: Kind::Token,
        id: sid,
    })
}

pub(crate) async fn count_active<B: Db>(
    conn: &mut B::Conn,
    scope: TokenScope,
) -> Result<u64, StoreError> {
    let q = sql(
        "SELECT COUNT(*) AS n FROM tokens WHERE scope = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(scope.as_str())
    .bind(now_ms());
    let n = match B::fetch_optional(conn, q).await? {
        Some(row) => row.int("n")?,
        None => 0,
    };
    Ok(n.max(0) as u64)
}
