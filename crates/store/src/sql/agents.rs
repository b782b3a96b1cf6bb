//! Agent rows: the `agents` table, the OpAMP server's write-behind copy of its registry
//! (written in multi-row batches).

use chrono::{DateTime, Utc};

use super::db::{Db, DbRow, Sql, now_ms, sql, ts, values_list};
use crate::{AGENT_ROWS_PER_STATEMENT, AgentRow, AgentRowFilter, StoreError};

const COLS: &str = "id, group_id, connected, last_seen, state, replica_id";

fn from_row(row: &impl DbRow) -> Result<AgentRow, StoreError> {
    Ok(AgentRow {
        id: row.text("id")?,
        group_id: row.opt_text("group_id")?,
        connected: row.boolean("connected")?,
        last_seen: row.opt_int("last_seen")?.map(ts).transpose()?,
        state: row.text("state")?,
        replica_id: row.opt_text("replica_id")?,
    })
}

/// `rows`: at most one per id, sorted by id, so two writers lock rows in the same order.
pub(crate) async fn upsert<B: Db>(
    conn: &mut B::Conn,
    rows: &[&AgentRow],
) -> Result<(), StoreError> {
    let now = now_ms();
    for chunk in rows.chunks(AGENT_ROWS_PER_STATEMENT) {
        // "Disconnected" from one replica must not hide that another replica holds the agent
        // now (it reconnected there before this replica noticed).
        let text = format!(
            "INSERT INTO agents \
             (id, group_id, connected, last_seen, state, updated_at, replica_id) VALUES {} \
             ON CONFLICT (id) DO UPDATE SET group_id = excluded.group_id, \
             connected = excluded.connected, last_seen = excluded.last_seen, \
             state = excluded.state, updated_at = excluded.updated_at, \
             replica_id = excluded.replica_id \
             WHERE excluded.connected OR NOT agents.connected \
             OR agents.replica_id IS NULL OR excluded.replica_id IS NULL \
             OR agents.replica_id = excluded.replica_id",
            values_list(chunk.len(), 7)
        );
        let mut q = sql(text);
        for agent in chunk {
            q = q
                .bind(agent.id.as_str())
                .bind(agent.group_id.as_deref())
                .bind(agent.connected)
                .bind(agent.last_seen.map(|t| t.timestamp_millis()))
                .bind(agent.state.as_str())
                .bind(now)
                .bind(agent.replica_id.as_deref());
        }
        B::execute(conn, q).await?;
    }
    Ok(())
}

/// `seen`: sorted by id (the lock order of [`upsert`]).
pub(crate) async fn touch<B: Db>(
    conn: &mut B::Conn,
    seen: &[&(String, DateTime<Utc>)],
) -> Result<(), StoreError> {
    for chunk in seen.chunks(AGENT_ROWS_PER_STATEMENT) {
        // Only moves forward: a touch queued before a newer full write loses.
        let text = format!(
            "WITH seen (id, last_seen) AS (VALUES {}) \
             UPDATE agents SET last_seen = seen.last_seen FROM seen \
             WHERE agents.id = seen.id \
             AND (agents.last_seen IS NULL OR agents.last_seen < seen.last_seen)",
            values_list(chunk.len(), 2)
        );
        let mut q = sql(text);
        for (id, at) in chunk {
            q = q.bind(id.as_str()).bind(at.timestamp_millis());
        }
        B::execute(conn, q).await?;
    }
    Ok(())
}

/// Ordered by id.
pub(crate) async fn list<B: Db>(
    conn: &mut B::Conn,
    filter: &AgentRowFilter,
) -> Result<Vec<AgentRow>, StoreError> {
    let mut text = format!("SELECT {COLS} FROM agents WHERE 1 = 1");
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    if filter.group_id.is_some() {
        text.push_str(&format!(" AND group_id = {}", next()));
    }
    if filter.not_replica.is_some() {
        text.push_str(&format!(
            " AND (replica_id IS NULL OR replica_id <> {})",
            next()
        ));
    }
    text.push_str(" ORDER BY id");
    let mut q: Sql<'_> = sql(text);
    if let Some(group) = &filter.group_id {
        q = q.bind(group);
    }
    if let Some(replica) = &filter.not_replica {
        q = q.bind(replica);
    }
    let rows = B::fetch_all(conn, q).await?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn get<B: Db>(
    conn: &mut B::Conn,
    id: &str,
) -> Result<Option<AgentRow>, StoreError> {
    let q = format!("SELECT {COLS} FROM agents WHERE id = $1");
    let row = B::fetch_optional(conn, sql(q).bind(id)).await?;
    row.as_ref().map(from_row).transpose()
}
