//! What the tables of API objects have in common: the row ↔ [`Record`] mapping (the spec as
//! JSON in `body`, its secret values sealed in `secrets`), lookups by id, name and pipeline,
//! and the checks every write makes (unique names, `If-Match`, existing references).

use std::str::FromStr;

use otaas_api::PipelineId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::db::{Db, DbRow, sql, ts};
use crate::seal::{join_secrets, split_secrets};
use crate::{Kind, Record, ServerKey, StoreError};

const COLS: &str = "id, revision, body, secrets, created_at, updated_at";

pub(crate) fn encode<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("specs always serialise")
}

/// A spec as its `body` and `secrets` columns, the latter sealed with the server key unless
/// there is nothing in it.
pub(crate) fn encode_split<T: Serialize>(key: &ServerKey, v: &T) -> (String, String) {
    let value = serde_json::to_value(v).expect("specs always serialise");
    let (body, secrets) = split_secrets(value);
    let secrets = if secrets.as_object().is_some_and(|m| m.is_empty()) {
        encode(&secrets)
    } else {
        key.seal(&encode(&secrets))
    };
    (encode(&body), secrets)
}

/// `key` opens the sealed `secrets` column (group rows have none: `None`).
pub(crate) fn record_from_row<I, S>(
    row: &impl DbRow,
    key: Option<&ServerKey>,
) -> Result<Record<I, S>, StoreError>
where
    I: FromStr,
    S: DeserializeOwned,
{
    let id = row.text("id")?;
    let body = row.text("body")?;
    // Group rows have no `secrets` column.
    let secrets = row.text("secrets").ok();
    let mut body: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| StoreError::Corrupt(format!("body of {id}: {e}")))?;
    if let (Some(s), Some(key)) = (secrets, key) {
        // '{}' (nothing to keep) is stored as is; anything else sealed.
        let s = if s.starts_with('{') {
            s
        } else {
            key.open(&s).ok_or_else(|| {
                StoreError::Corrupt(format!("secrets of {id} do not open with the server key"))
            })?
        };
        let s: serde_json::Value = serde_json::from_str(&s)
            .map_err(|e| StoreError::Corrupt(format!("secrets of {id}: {e}")))?;
        join_secrets(&mut body, s);
    }
    Ok(Record {
        id: I::from_str(&id).map_err(|_| StoreError::Corrupt(format!("bad id {id:?}")))?,
        revision: row.int("revision")?,
        created_at: ts(row.int("created_at")?)?,
        updated_at: ts(row.int("updated_at")?)?,
        spec: serde_json::from_value(body)
            .map_err(|e| StoreError::Corrupt(format!("body of {id}: {e}")))?,
    })
}

pub(crate) async fn fetch_record<B: Db, I, S>(
    conn: &mut B::Conn,
    key: &ServerKey,
    table: &str,
    id: &str,
) -> Result<Option<Record<I, S>>, StoreError>
where
    I: FromStr,
    S: DeserializeOwned,
{
    let q = format!("SELECT {COLS} FROM {table} WHERE id = $1");
    let row = B::fetch_optional(conn, sql(q).bind(id)).await?;
    row.as_ref()
        .map(|r| record_from_row(r, Some(key)))
        .transpose()
}

/// [`fetch_record`], [`StoreError::NotFound`] when there is none.
pub(crate) async fn get_record<B: Db, I, S>(
    conn: &mut B::Conn,
    key: &ServerKey,
    table: &str,
    kind: Kind,
    id: &str,
) -> Result<Record<I, S>, StoreError>
where
    I: FromStr,
    S: DeserializeOwned,
{
    fetch_record::<B, I, S>(conn, key, table, id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            kind,
            id: id.to_string(),
        })
}

pub(crate) async fn fetch_by_name<B: Db, I, S>(
    conn: &mut B::Conn,
    key: &ServerKey,
    table: &str,
    name: &str,
) -> Result<Option<Record<I, S>>, StoreError>
where
    I: FromStr,
    S: DeserializeOwned,
{
    let q = format!("SELECT {COLS} FROM {table} WHERE name = $1");
    let row = B::fetch_optional(conn, sql(q).bind(name)).await?;
    row.as_ref()
        .map(|r| record_from_row(r, Some(key)))
        .transpose()
}

pub(crate) async fn fetch_all<B: Db, I, S>(
    conn: &mut B::Conn,
    key: &ServerKey,
    table: &str,
) -> Result<Vec<Record<I, S>>, StoreError>
where
    I: FromStr,
    S: DeserializeOwned,
{
    let q = format!("SELECT {COLS} FROM {table} ORDER BY name");
    let rows = B::fetch_all(conn, sql(q)).await?;
    rows.iter().map(|r| record_from_row(r, Some(key))).collect()
}

/// The objects of `table` hanging off a pipeline, by name.
pub(crate) async fn fetch_by_pipeline<B: Db, I, S>(
    conn: &mut B::Conn,
    key: &ServerKey,
    table: &str,
    pipeline_id: &str,
) -> Result<Vec<Record<I, S>>, StoreError>
where
    I: FromStr,
    S: DeserializeOwned,
{
    let q = format!("SELECT {COLS} FROM {table} WHERE pipeline_id = $1 ORDER BY name");
    let rows = B::fetch_all(conn, sql(q).bind(pipeline_id)).await?;
    rows.iter().map(|r| record_from_row(r, Some(key))).collect()
}

/// Fails with `NameTaken` when another object of the table has `name`.
pub(crate) async fn check_name<B: Db>(
    conn: &mut B::Conn,
    table: &str,
    kind: Kind,
    name: &str,
    except_id: &str,
) -> Result<(), StoreError> {
    let q = format!("SELECT id FROM {table} WHERE name = $1 AND id <> $2");
    match B::fetch_optional(conn, sql(q).bind(name).bind(except_id)).await? {
        Some(_) => Err(StoreError::NameTaken {
            kind,
            name: name.to_string(),
        }),
        None => Ok(()),
    }
}

pub(crate) fn check_revision(
    kind: Kind,
    id: &str,
    actual: i64,
    if_match: Option<i64>,
) -> Result<(), StoreError> {
    match if_match {
        Some(expected) if expected != actual => Err(StoreError::RevisionMismatch {
            kind,
            id: id.to_string(),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

/// Fails with `DanglingReference` at `field` when the pipeline does not exist.
pub(crate) async fn check_pipeline_exists<B: Db>(
    conn: &mut B::Conn,
    field: &str,
    id: PipelineId,
) -> Result<(), StoreError> {
    let q = sql("SELECT id FROM pipelines WHERE id = $1").bind(id.to_string());
    match B::fetch_optional(conn, q).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::DanglingReference {
            field: field.to_string(),
            kind: Kind::Pipeline,
            id: id.to_string(),
        }),
    }
}
