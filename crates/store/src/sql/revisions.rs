//! Group revisions: the `group_revisions` history and the group's pointer to its latest
//! (`agent_groups.config_revision`, `config_hash`).

use otaas_api::AgentGroupId;

use super::db::{Db, DbRow, now_ms, sql, ts};
use crate::{GroupRevision, Kind, StoreError};

const COLS: &str = "group_id, revision, yaml, hash, created_at";

fn from_row(row: &impl DbRow) -> Result<GroupRevision, StoreError> {
    let id = row.text("group_id")?;
    Ok(GroupRevision {
        group_id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("bad id {id:?}")))?,
        revision: row.int("revision")?,
        yaml: row.text("yaml")?,
        hash: row.text("hash")?,
        created_at: ts(row.int("created_at")?)?,
    })
}

/// The latest revision when `revision` is `None`.
pub(crate) async fn get<B: Db>(
    conn: &mut B::Conn,
    id: AgentGroupId,
    revision: Option<i64>,
) -> Result<GroupRevision, StoreError> {
    let sid = id.to_string();
    let row = match revision {
        Some(r) => {
            let q =
                format!("SELECT {COLS} FROM group_revisions WHERE group_id = $1 AND revision = $2");
            B::fetch_optional(conn, sql(q).bind(&sid).bind(r)).await?
        }
        None => {
            let q = format!(
                "SELECT {COLS} FROM group_revisions WHERE group_id = $1 \
                 ORDER BY revision DESC LIMIT 1"
            );
            B::fetch_optional(conn, sql(q).bind(&sid)).await?
        }
    };
    match row {
        Some(row) => from_row(&row),
        None => Err(StoreError::NotFound {
            kind: Kind::AgentGroup,
            id: match revision {
                Some(r) => format!("{sid} revision {r}"),
                None => sid,
            },
        }),
    }
}

/// Oldest first.
pub(crate) async fn list<B: Db>(
    conn: &mut B::Conn,
    id: AgentGroupId,
) -> Result<Vec<GroupRevision>, StoreError> {
    let q = format!("SELECT {COLS} FROM group_revisions WHERE group_id = $1 ORDER BY revision");
    let rows = B::fetch_all(conn, sql(q).bind(id.to_string())).await?;
    rows.iter().map(from_row).collect()
}

/// Records revision `after + 1` and points the group at it, unless the group is no longer
/// at `after`.
pub(crate) async fn add<B: Db>(
    conn: &mut B::Conn,
    id: AgentGroupId,
    after: i64,
    yaml: &str,
    hash: &str,
) -> Result<GroupRevision, StoreError> {
    let sid = id.to_string();
    let revision = after + 1;
    let q = sql(
        "UPDATE agent_groups SET config_revision = $1, config_hash = $2 \
         WHERE id = $3 AND config_revision = $4",
    )
    .bind(revision)
    .bind(hash)
    .bind(&sid)
    .bind(after);
    if B::execute(conn, q).await? != 1 {
        let actual = super::groups::get::<B>(conn, id).await?.config_revision;
        return Err(StoreError::RevisionMismatch {
            kind: Kind::AgentGroup,
            id: format!("{sid} config"),
            expected: after,
            actual,
        });
    }
    let now = now_ms();
    let q = sql(
        "INSERT INTO group_revisions (group_id, revision, yaml, hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&sid)
    .bind(revision)
    .bind(yaml)
    .bind(hash)
    .bind(now);
    B::execute(conn, q).await?;
    Ok(GroupRevision {
        group_id: id,
        revision,
        yaml: yaml.to_string(),
        hash: hash.to_string(),
        created_at: ts(now)?,
    })
}
