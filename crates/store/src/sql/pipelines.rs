//! Pipelines: the `pipelines` table.

use otaas_api::{PipelineId, PipelineSpec};

use super::db::{Db, DbRow, name_error, now_ms, sql};
use super::records::{check_name, check_revision, encode_split, get_record};
use crate::{Kind, PipelineRecord, Replaced, ServerKey, StoreError, merge_pipeline};

const TABLE: &str = "pipelines";

pub(crate) async fn get<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: PipelineId,
) -> Result<PipelineRecord, StoreError> {
    get_record::<B, _, _>(conn, key, TABLE, Kind::Pipeline, &id.to_string()).await
}

pub(crate) async fn create<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    spec: PipelineSpec,
) -> Result<PipelineRecord, StoreError> {
    let id = PipelineId::new();
    let sid = id.to_string();
    check_name::<B>(conn, TABLE, Kind::Pipeline, &spec.name, &sid).await?;
    let now = now_ms();
    let (body, secrets) = encode_split(key, &spec);
    let q = sql(
        "INSERT INTO pipelines (id, name, revision, body, secrets, created_at, updated_at) \
         VALUES ($1, $2, 1, $3, $5, $4, $4)",
    )
    .bind(&sid)
    .bind(spec.name.as_str())
    .bind(body)
    .bind(now)
    .bind(secrets);
    B::execute(conn, q)
        .await
        .map_err(|e| name_error(e, Kind::Pipeline, &spec.name))?;
    get::<B>(conn, key, id).await
}

pub(crate) async fn update<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: PipelineId,
    spec: PipelineSpec,
    if_match: Option<i64>,
) -> Result<Replaced<PipelineRecord>, StoreError> {
    let sid = id.to_string();
    let before = get::<B>(conn, key, id).await?;
    check_revision(Kind::Pipeline, &sid, before.revision, if_match)?;
    let spec = merge_pipeline(&before.spec, spec);
    check_name::<B>(conn, TABLE, Kind::Pipeline, &spec.name, &sid).await?;
    let (body, secrets) = encode_split(key, &spec);
    let q = sql(
        "UPDATE pipelines SET name = $1, body = $2, secrets = $5, revision = revision + 1, \
         updated_at = $3 WHERE id = $4",
    )
    .bind(spec.name.as_str())
    .bind(body)
    .bind(now_ms())
    .bind(&sid)
    .bind(secrets);
    B::execute(conn, q)
        .await
        .map_err(|e| name_error(e, Kind::Pipeline, &spec.name))?;
    let after = get::<B>(conn, key, id).await?;
    Ok(Replaced { before, after })
}

/// Refused with `InUse` while anything refers to the pipeline.
pub(crate) async fn delete<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: PipelineId,
) -> Result<PipelineRecord, StoreError> {
    let sid = id.to_string();
    let current = get::<B>(conn, key, id).await?;
    // Referrers, in a fixed order so the error is predictable.
    let checks: [(&str, Kind); 3] = [
        (
            "SELECT id, name FROM endpoints WHERE pipeline_id = $1 ORDER BY name LIMIT 1",
            Kind::Endpoint,
        ),
        (
            "SELECT id, name FROM exporter_bindings WHERE pipeline_id = $1 ORDER BY name LIMIT 1",
            Kind::ExporterBinding,
        ),
        (
            "SELECT g.id AS id, g.name AS name FROM agent_group_pipelines gp \
             JOIN agent_groups g ON g.id = gp.group_id \
             WHERE gp.pipeline_id = $1 ORDER BY g.name LIMIT 1",
            Kind::AgentGroup,
        ),
    ];
    for (q, referrer_kind) in checks {
        if let Some(row) = B::fetch_optional(conn, sql(q).bind(&sid)).await? {
            return Err(StoreError::InUse {
                kind: Kind::Pipeline,
                name: current.spec.name.clone(),
                referrer_kind,
                referrer_name: row.text("name")?,
                referrer_id: row.text("id")?,
            });
        }
    }
    B::execute(conn, sql("DELETE FROM pipelines WHERE id = $1").bind(&sid)).await?;
    Ok(current)
}
