//! Rollout state rows: the `rollouts` table (the rollout engine's JSON record per group,
//! written with compare-and-swap on `version`).

use otaas_api::AgentGroupId;

use super::db::{Db, DbRow, now_ms, sql};
use crate::{RolloutRow, StoreError};

fn from_row(row: &impl DbRow) -> Result<RolloutRow, StoreError> {
    let id = row.text("group_id")?;
    Ok(RolloutRow {
        group_id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("rollout group id {id:?}")))?,
        state: row.text("state")?,
        version: row.int("version")?,
    })
}

pub(crate) async fn put<B: Db>(
    conn: &mut B::Conn,
    group_id: AgentGroupId,
    state: &str,
) -> Result<(), StoreError> {
    let q = sql(
        "INSERT INTO rollouts (group_id, state, updated_at, version) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (group_id) DO UPDATE SET state = excluded.state, \
         updated_at = excluded.updated_at, version = rollouts.version + 1",
    )
    .bind(group_id.to_string())
    .bind(state)
    .bind(now_ms());
    B::execute(conn, q).await?;
    Ok(())
}

pub(crate) async fn get<B: Db>(
    conn: &mut B::Conn,
    group_id: AgentGroupId,
) -> Result<Option<RolloutRow>, StoreError> {
    let q = sql("SELECT group_id, state, version FROM rollouts WHERE group_id = $1")
        .bind(group_id.to_string());
    let row = B::fetch_optional(conn, q).await?;
    row.as_ref().map(from_row).transpose()
}

/// The new version, `None` when the stored one is not `expected`.
pub(crate) async fn put_if<B: Db>(
    conn: &mut B::Conn,
    group_id: AgentGroupId,
    state: &str,
    expected: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let q = match expected {
        None => sql(
            "INSERT INTO rollouts (group_id, state, updated_at, version) \
             VALUES ($1, $2, $3, 1) ON CONFLICT (group_id) DO NOTHING",
        )
        .bind(group_id.to_string())
        .bind(state)
        .bind(now_ms()),
        Some(version) => sql(
            "UPDATE rollouts SET state = $2, updated_at = $3, version = $4 + 1 \
             WHERE group_id = $1 AND version = $4",
        )
        .bind(group_id.to_string())
        .bind(state)
        .bind(now_ms())
        .bind(version),
    };
    let done = B::execute(conn, q).await?;
    Ok((done == 1).then(|| expected.unwrap_or(0) + 1))
}

/// Ordered by group id.
pub(crate) async fn list<B: Db>(conn: &mut B::Conn) -> Result<Vec<RolloutRow>, StoreError> {
    let q = sql("SELECT group_id, state, version FROM rollouts ORDER BY group_id");
    let rows = B::fetch_all(conn, q).await?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn delete<B: Db>(
    conn: &mut B::Conn,
    group_id: AgentGroupId,
) -> Result<(), StoreError> {
    let q = sql("DELETE FROM rollouts WHERE group_id = $1").bind(group_id.to_string());
    B::execute(conn, q).await?;
    Ok(())
}
