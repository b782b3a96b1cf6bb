//! Group revisions: the `group_revisions` history and the group's pointer to its latest
//! (`agent_groups.config_revision`, `config_hash`).

use std::collections::BTreeSet;

use otaas_api::{AgentGroupId, RevisionCause};

use super::db::{Db, DbRow, now_ms, sql, ts};
use crate::{GroupRevision, Kind, StoreError};

const COLS: &str = "group_id, revision, yaml, hash, created_at, token_id, token_description, \
                    cause_kind, cause_id, cause_name, cause_revision";

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
        cause: RevisionCause {
            token_id: match row.opt_text("token_id")? {
                Some(t) => Some(
                    t.parse()
                        .map_err(|_| StoreError::Corrupt(format!("bad token id {t:?}")))?,
                ),
                None => None,
            },
            token_description: row.opt_text("token_description")?,
            cause_kind: row.opt_text("cause_kind")?,
            cause_id: row.opt_text("cause_id")?,
            cause_name: row.opt_text("cause_name")?,
            cause_revision: row.opt_int("cause_revision")?,
        },
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
    cause: &RevisionCause,
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
        "INSERT INTO group_revisions (group_id, revision, yaml, hash, created_at, token_id, \
         token_description, cause_kind, cause_id, cause_name, cause_revision) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&sid)
    .bind(revision)
    .bind(yaml)
    .bind(hash)
    .bind(now)
    .bind(cause.token_id.map(|t| t.to_string()))
    .bind(cause.token_description.as_deref())
    .bind(cause.cause_kind.as_deref())
    .bind(cause.cause_id.as_deref())
    .bind(cause.cause_name.as_deref())
    .bind(cause.cause_revision);
    B::execute(conn, q).await?;
    Ok(GroupRevision {
        group_id: id,
        revision,
        yaml: yaml.to_string(),
        hash: hash.to_string(),
        created_at: ts(now)?,
        cause: cause.clone(),
    })
}

/// Deletes the group's revisions numbered `up_to` or less, except `keep` and the group's
/// latest (`agent_groups.config_revision`, read in the same statement so a concurrent write
/// cannot make it stale).
pub(crate) async fn delete_except<B: Db>(
    conn: &mut B::Conn,
    id: AgentGroupId,
    up_to: i64,
    keep: &BTreeSet<i64>,
) -> Result<u64, StoreError> {
    let mut q = String::from(
        "DELETE FROM group_revisions WHERE group_id = $1 AND revision <= $2 AND revision <> \
         (SELECT config_revision FROM agent_groups WHERE id = $3)",
    );
    if !keep.is_empty() {
        let list: Vec<String> = (0..keep.len()).map(|i| format!("${}", i + 4)).collect();
        q.push_str(&format!(" AND revision NOT IN ({})", list.join(", ")));
    }
    let sid = id.to_string();
    let mut stmt = sql(q).bind(&sid).bind(up_to).bind(&sid);
    for r in keep {
        stmt = stmt.bind(*r);
    }
    Ok(B::execute(conn, stmt).await?)
}
