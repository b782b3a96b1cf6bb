//! The objects that hang off one pipeline (endpoints and exporter bindings): the same create,
//! update and delete steps, only the table and the spec type differ.

use std::str::FromStr;

use otaas_api::PipelineId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::db::{Db, name_error, now_ms, sql};
use super::records::{check_name, check_pipeline_exists, check_revision, encode_split, get_record};
use crate::{Kind, Record, Replaced, ServerKey, StoreError};

/// What the child tables have in common, for one of them.
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

pub(crate) async fn create<B: Db, I, S>(
    conn: &mut B::Conn,
    key: &ServerKey,
    table: &Table,
    id: I,
    name: &str,
    pipeline_id: PipelineId,
    spec: S,
) -> Result<Record<I, S>, StoreError>
where
    I: FromStr + ToString,
    S: Serialize + DeserializeOwned,
{
    let kind = table.kind;
    check_pipeline_exists::<B>(conn, "pipeline_id", pipeline_id).await?;
    let sid = id.to_string();
    check_name::<B>(conn, table.name, kind, name, &sid).await?;
    let (body, secrets) = encode_split(key, &spec);
    let q = format!(
        "INSERT INTO {} (id, name, pipeline_id, revision, body, secrets, created_at, updated_at) \
         VALUES ($1, $2, $3, 1, $4, $6, $5, $5)",
        table.name
    );
    let q = sql(q)
        .bind(&sid)
        .bind(name)
        .bind(pipeline_id.to_string())
        .bind(body)
        .bind(now_ms())
        .bind(secrets);
    B::execute(conn, q)
        .await
        .map_err(|e| name_error(e, kind, name))?;
    get_record::<B, I, S>(conn, key, table.name, kind, &sid).await
}

/// `merge` makes the spec to store from the stored one and the one sent.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn update<B: Db, I, S>(
    conn: &mut B::Conn,
    key: &ServerKey,
    table: &Table,
    id: I,
    name: &str,
    pipeline_id: PipelineId,
    spec: S,
    if_match: Option<i64>,
    merge: impl FnOnce(&S, S) -> S,
) -> Result<Replaced<Record<I, S>>, StoreError>
where
    I: FromStr + ToString,
    S: Serialize + DeserializeOwned,
{
    let kind = table.kind;
    let sid = id.to_string();
    let before: Record<I, S> = get_record::<B, I, S>(conn, key, table.name, kind, &sid).await?;
    check_revision(kind, &sid, before.revision, if_match)?;
    let spec = merge(&before.spec, spec);
    check_pipeline_exists::<B>(conn, "pipeline_id", pipeline_id).await?;
    check_name::<B>(conn, table.name, kind, name, &sid).await?;
    let (body, secrets) = encode_split(key, &spec);
    let q = format!(
        "UPDATE {} SET name = $1, pipeline_id = $2, body = $3, secrets = $6, \
         revision = revision + 1, updated_at = $4 WHERE id = $5",
        table.name
    );
    let q = sql(q)
        .bind(name)
        .bind(pipeline_id.to_string())
        .bind(body)
        .bind(now_ms())
        .bind(&sid)
        .bind(secrets);
    B::execute(conn, q)
        .await
        .map_err(|e| name_error(e, kind, name))?;
    let after = get_record::<B, I, S>(conn, key, table.name, kind, &sid).await?;
    Ok(Replaced { before, after })
}

/// The deleted record.
pub(crate) async fn delete<B: Db, I, S>(
    conn: &mut B::Conn,
    key: &ServerKey,
    table: &Table,
    id: &str,
) -> Result<Record<I, S>, StoreError>
where
    I: FromStr,
    S: DeserializeOwned,
{
    let current = get_record::<B, I, S>(conn, key, table.name, table.kind, id).await?;
    let q = format!("DELETE FROM {} WHERE id = $1", table.name);
    B::execute(conn, sql(q).bind(id)).await?;
    Ok(current)
}
