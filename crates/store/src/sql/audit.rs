//! The audit trail: the `audit_log` table (appended in batches by the server's audit writer,
//! read with filters and an id cursor, pruned by age and count).

use chrono::{DateTime, Utc};

use super::db::{Arg, Db, DbRow, sql, ts, values_list};
use crate::{AuditFilter, AuditRecord, StoreError};

const COLS: &str = "id, at, interface, token_id, token_description, token_fingerprint, source, \
                    method, path, object_kind, object_id, status, error_code, success, \
                    revision_before, revision_after, dry_run";
const WIDTH: usize = 17;
/// Rows per INSERT: 17 values each stays far below both backends' placeholder limits.
const ROWS_PER_STATEMENT: usize = 500;

fn from_row(row: &impl DbRow) -> Result<AuditRecord, StoreError> {
    let id = row.text("id")?;
    let status = row.int("status")?;
    Ok(AuditRecord {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("audit id {id:?}")))?,
        at: ts(row.int("at")?)?,
        interface: row.text("interface")?,
        token_id: row.opt_text("token_id")?,
        token_description: row.opt_text("token_description")?,
        token_fingerprint: row.opt_text("token_fingerprint")?,
        source: row.opt_text("source")?,
        method: row.text("method")?,
        path: row.text("path")?,
        object_kind: row.opt_text("object_kind")?,
        object_id: row.opt_text("object_id")?,
        status: u16::try_from(status)
            .map_err(|_| StoreError::Corrupt(format!("audit status {status}")))?,
        error_code: row.opt_text("error_code")?,
        success: row.boolean("success")?,
        revision_before: row.opt_int("revision_before")?,
        revision_after: row.opt_int("revision_after")?,
        dry_run: row.boolean("dry_run")?,
    })
}

/// Appends entries, as multi-row statements.
pub(crate) async fn append<B: Db>(
    conn: &mut B::Conn,
    entries: &[AuditRecord],
) -> Result<(), StoreError> {
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let text = format!(
            "INSERT INTO audit_log ({COLS}) VALUES {}",
            values_list(chunk.len(), WIDTH)
        );
        let mut q = sql(text);
        for e in chunk {
            q = q
                .bind(e.id.to_string())
                .bind(e.at.timestamp_millis())
                .bind(e.interface.as_str())
                .bind(e.token_id.as_deref())
                .bind(e.token_description.as_deref())
                .bind(e.token_fingerprint.as_deref())
                .bind(e.source.as_deref())
                .bind(e.method.as_str())
                .bind(e.path.as_str())
                .bind(e.object_kind.as_deref())
                .bind(e.object_id.as_deref())
                .bind(i64::from(e.status))
                .bind(e.error_code.as_deref())
                .bind(e.success)
                .bind(e.revision_before)
                .bind(e.revision_after)
                .bind(e.dry_run);
        }
        B::execute(conn, q).await?;
    }
    Ok(())
}

/// The entries matching `filter`, in id (recording) order.
pub(crate) async fn list<B: Db>(
    conn: &mut B::Conn,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Arg<'static>> = Vec::new();
    let mut cond = |clause: &str, arg: Arg<'static>| {
        args.push(arg);
        clauses.push(format!("{clause} ${}", args.len()));
    };
    let text_of = |v: &Option<String>| v.clone().map(Arg::from);
    for (clause, v) in [
        ("token_id =", text_of(&filter.token_id)),
        ("object_kind =", text_of(&filter.object_kind)),
        ("object_id =", text_of(&filter.object_id)),
        ("method =", text_of(&filter.method)),
        ("id >", filter.after.map(|a| Arg::from(a.to_string()))),
        (
            "at >=",
            filter.since.map(|t| Arg::from(t.timestamp_millis())),
        ),
        (
            "at <",
            filter.until.map(|t| Arg::from(t.timestamp_millis())),
        ),
        ("success =", filter.success.map(Arg::from)),
    ] {
        if let Some(v) = v {
            cond(clause, v);
        }
    }
    let mut text = format!("SELECT {COLS} FROM audit_log");
    if !clauses.is_empty() {
        text.push_str(" WHERE ");
        text.push_str(&clauses.join(" AND "));
    }
    text.push_str(" ORDER BY id");
    if let Some(limit) = filter.limit {
        text.push_str(&format!(" LIMIT {limit}"));
    }
    let mut q = sql(text);
    for arg in args {
        q = q.bind(arg);
    }
    let rows = B::fetch_all(conn, q).await?;
    rows.iter().map(from_row).collect()
}

/// Deletes the entries recorded before `before`, then all but the newest `keep`; how many
/// went.
pub(crate) async fn prune<B: Db>(
    conn: &mut B::Conn,
    before: DateTime<Utc>,
    keep: u64,
) -> Result<u64, StoreError> {
    let by_age = B::execute(
        conn,
        sql("DELETE FROM audit_log WHERE at < $1").bind(before.timestamp_millis()),
    )
    .await?;
    // The id at offset `keep` from the newest is the newest to go; none when fewer are kept
    // (the comparison with NULL matches nothing).
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let by_count = B::execute(
        conn,
        sql(
            "DELETE FROM audit_log WHERE id <= (SELECT id FROM audit_log ORDER BY id DESC \
             LIMIT 1 OFFSET $1)",
        )
        .bind(keep),
    )
    .await?;
    Ok(by_age + by_count)
}
