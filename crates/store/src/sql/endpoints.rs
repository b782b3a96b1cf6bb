//! Endpoints: the `endpoints` table, with the token grace period of a rotation
//! (`previous_token_version` accepted until `previous_token_until`).

use std::collections::BTreeMap;

use otaas_api::{EndpointId, EndpointSpec, PipelineId};

use super::children::{self, Table};
use super::db::{Db, DbRow, now_ms, sql};
use super::records::get_record;
use crate::{EndpointRecord, Kind, Replaced, ServerKey, StoreError, TokenGrace, token_grace};

pub(crate) const TABLE: Table = Table {
    name: "endpoints",
    kind: Kind::Endpoint,
};

pub(crate) async fn get<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: EndpointId,
) -> Result<EndpointRecord, StoreError> {
    get_record::<B, _, _>(conn, key, TABLE.name, TABLE.kind, &id.to_string()).await
}

pub(crate) async fn create<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    spec: EndpointSpec,
) -> Result<EndpointRecord, StoreError> {
    let (name, pid) = (spec.name.clone(), spec.pipeline_id);
    children::create::<B, _, _>(conn, key, &TABLE, EndpointId::new(), &name, pid, spec).await
}

/// Also starts or ends the token grace as [`token_grace`] says.
pub(crate) async fn update<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: EndpointId,
    spec: EndpointSpec,
    if_match: Option<i64>,
) -> Result<Replaced<EndpointRecord>, StoreError> {
    let (name, pid) = (spec.name.clone(), spec.pipeline_id);
    let replaced = children::update::<B, _, _>(
        conn,
        key,
        &TABLE,
        id,
        &name,
        pid,
        spec,
        if_match,
        |_, new| new,
    )
    .await?;
    let sid = id.to_string();
    match token_grace(&replaced.before.spec, &replaced.after.spec) {
        TokenGrace::Keep => {}
        TokenGrace::Start {
            previous_version,
            seconds,
        } => {
            let q = sql(
                "UPDATE endpoints SET previous_token_version = $1, previous_token_until = $2 \
                 WHERE id = $3",
            )
            .bind(i64::from(previous_version))
            .bind(now_ms() + i64::from(seconds) * 1000)
            .bind(&sid);
            B::execute(conn, q).await?;
        }
        TokenGrace::End => {
            let q = sql("UPDATE endpoints SET previous_token_version = NULL, \
                 previous_token_until = NULL WHERE id = $1")
            .bind(&sid);
            B::execute(conn, q).await?;
        }
    }
    Ok(replaced)
}

pub(crate) async fn delete<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: EndpointId,
) -> Result<EndpointRecord, StoreError> {
    children::delete::<B, _, _>(conn, key, &TABLE, &id.to_string()).await
}

/// Endpoints whose grace is over at `now_ms`.
pub(crate) async fn count_expired_grace<B: Db>(
    conn: &mut B::Conn,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let q =
        sql("SELECT COUNT(*) AS n FROM endpoints WHERE previous_token_until <= $1").bind(now_ms);
    let due = match B::fetch_optional(conn, q).await? {
        Some(row) => row.int("n")?,
        None => 0,
    };
    Ok(usize::try_from(due).unwrap_or(0))
}

/// Ends the graces that are over at `now_ms`; the pipeline of each endpoint concerned.
pub(crate) async fn expire_grace<B: Db>(
    conn: &mut B::Conn,
    now_ms: i64,
) -> Result<Vec<PipelineId>, StoreError> {
    let q = sql("SELECT pipeline_id FROM endpoints WHERE previous_token_until <= $1").bind(now_ms);
    let rows = B::fetch_all(conn, q).await?;
    let mut pipelines = Vec::with_capacity(rows.len());
    for r in &rows {
        let pid = r.text("pipeline_id")?;
        pipelines.push(
            pid.parse()
                .map_err(|_| StoreError::Corrupt(format!("pipeline id {pid:?} is not a UUID")))?,
        );
    }
    let q = sql("UPDATE endpoints SET previous_token_version = NULL, \
         previous_token_until = NULL WHERE previous_token_until <= $1")
    .bind(now_ms);
    B::execute(conn, q).await?;
    Ok(pipelines)
}

/// The endpoints of a pipeline whose previous token is still accepted at `now_ms`, with
/// that token's version.
pub(crate) async fn grace_of_pipeline<B: Db>(
    conn: &mut B::Conn,
    pipeline_id: &str,
    now_ms: i64,
    into: &mut BTreeMap<EndpointId, u32>,
) -> Result<(), StoreError> {
    let q = sql("SELECT id, previous_token_version FROM endpoints \
         WHERE pipeline_id = $1 AND previous_token_until > $2")
    .bind(pipeline_id)
    .bind(now_ms);
    for r in &B::fetch_all(conn, q).await? {
        let id = r.text("id")?;
        let version = r.int("previous_token_version")?;
        let id = id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("endpoint id {id:?} is not a UUID")))?;
        let version = u32::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("endpoint {id} token version {version}")))?;
        into.insert(id, version);
    }
    Ok(())
}
