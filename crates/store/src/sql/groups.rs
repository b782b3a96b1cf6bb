//! Agent groups: the `agent_groups` table, the pipelines each runs (`agent_group_pipelines`,
//! the reference index for "in use" checks) and what a group's config is rendered from.

use std::collections::{BTreeMap, BTreeSet};

use otaas_api::{AgentGroupId, AgentGroupSpec, PipelineId};

use super::db::{Db, DbRow, name_error, now_ms, sql};
use super::endpoints;
use super::records::{
    check_name, check_pipeline_exists, check_revision, encode, fetch_by_pipeline, get_record,
    record_from_row,
};
use crate::{GroupInputs, GroupRecord, Kind, Replaced, ServerKey, StoreError};

const COLS: &str = "id, revision, body, created_at, updated_at, config_revision, config_hash";

fn from_row(row: &impl DbRow) -> Result<GroupRecord, StoreError> {
    Ok(GroupRecord {
        record: record_from_row(row, None)?,
        config_revision: row.int("config_revision")?,
        config_hash: row.text("config_hash")?,
    })
}

pub(crate) async fn fetch<B: Db>(
    conn: &mut B::Conn,
    id: &str,
) -> Result<Option<GroupRecord>, StoreError> {
    let q = format!("SELECT {COLS} FROM agent_groups WHERE id = $1");
    let row = B::fetch_optional(conn, sql(q).bind(id)).await?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn get<B: Db>(
    conn: &mut B::Conn,
    id: AgentGroupId,
) -> Result<GroupRecord, StoreError> {
    let sid = id.to_string();
    fetch::<B>(conn, &sid).await?.ok_or(StoreError::NotFound {
        kind: Kind::AgentGroup,
        id: sid,
    })
}

pub(crate) async fn find<B: Db>(
    conn: &mut B::Conn,
    name: &str,
) -> Result<Option<GroupRecord>, StoreError> {
    let q = format!("SELECT {COLS} FROM agent_groups WHERE name = $1");
    let row = B::fetch_optional(conn, sql(q).bind(name)).await?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn list<B: Db>(conn: &mut B::Conn) -> Result<Vec<GroupRecord>, StoreError> {
    let q = format!("SELECT {COLS} FROM agent_groups ORDER BY name");
    let rows = B::fetch_all(conn, sql(q)).await?;
    rows.iter().map(from_row).collect()
}

/// Replaces the group's rows of `agent_group_pipelines`; every pipeline must exist.
async fn write_pipelines<B: Db>(
    conn: &mut B::Conn,
    id: &str,
    spec: &AgentGroupSpec,
) -> Result<(), StoreError> {
    for (i, pid) in spec.pipeline_ids.iter().enumerate() {
        check_pipeline_exists::<B>(conn, &format!("pipeline_ids[{i}]"), *pid).await?;
    }
    let q = sql("DELETE FROM agent_group_pipelines WHERE group_id = $1").bind(id);
    B::execute(conn, q).await?;
    let mut seen = BTreeSet::new();
    for (i, pid) in spec.pipeline_ids.iter().enumerate() {
        if !seen.insert(*pid) {
            continue;
        }
        let q = sql(
            "INSERT INTO agent_group_pipelines (group_id, pipeline_id, position) \
             VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(pid.to_string())
        .bind(i as i64);
        B::execute(conn, q).await?;
    }
    Ok(())
}

pub(crate) async fn create<B: Db>(
    conn: &mut B::Conn,
    spec: AgentGroupSpec,
) -> Result<GroupRecord, StoreError> {
    let id = AgentGroupId::new();
    let sid = id.to_string();
    check_name::<B>(conn, "agent_groups", Kind::AgentGroup, &spec.name, &sid).await?;
    let q = sql(
        "INSERT INTO agent_groups (id, name, revision, body, config_revision, \
         config_hash, created_at, updated_at) VALUES ($1, $2, 1, $3, 0, '', $4, $4)",
    )
    .bind(&sid)
    .bind(spec.name.as_str())
    .bind(encode(&spec))
    .bind(now_ms());
    B::execute(conn, q)
        .await
        .map_err(|e| name_error(e, Kind::AgentGroup, &spec.name))?;
    write_pipelines::<B>(conn, &sid, &spec).await?;
    get::<B>(conn, id).await
}

pub(crate) async fn update<B: Db>(
    conn: &mut B::Conn,
    id: AgentGroupId,
    spec: AgentGroupSpec,
    if_match: Option<i64>,
) -> Result<Replaced<GroupRecord>, StoreError> {
    let sid = id.to_string();
    let before = get::<B>(conn, id).await?;
    check_revision(Kind::AgentGroup, &sid, before.record.revision, if_match)?;
    check_name::<B>(conn, "agent_groups", Kind::AgentGroup, &spec.name, &sid).await?;
    let q = sql(
        "UPDATE agent_groups SET name = $1, body = $2, revision = revision + 1, \
         updated_at = $3 WHERE id = $4",
    )
    .bind(spec.name.as_str())
    .bind(encode(&spec))
    .bind(now_ms())
    .bind(&sid);
    B::execute(conn, q)
        .await
        .map_err(|e| name_error(e, Kind::AgentGroup, &spec.name))?;
    write_pipelines::<B>(conn, &sid, &spec).await?;
    let after = get::<B>(conn, id).await?;
    Ok(Replaced { before, after })
}

/// Deletes the group with its revision history; the deleted group.
pub(crate) async fn delete<B: Db>(
    conn: &mut B::Conn,
    id: AgentGroupId,
) -> Result<GroupRecord, StoreError> {
    let current = get::<B>(conn, id).await?;
    let sid = id.to_string();
    for q in [
        "DELETE FROM agent_group_pipelines WHERE group_id = $1",
        "DELETE FROM group_revisions WHERE group_id = $1",
        "DELETE FROM agent_groups WHERE id = $1",
    ] {
        B::execute(conn, sql(q).bind(&sid)).await?;
    }
    Ok(current)
}

pub(crate) async fn of_pipeline<B: Db>(
    conn: &mut B::Conn,
    pipeline_id: PipelineId,
) -> Result<BTreeSet<AgentGroupId>, StoreError> {
    let q = sql("SELECT group_id FROM agent_group_pipelines WHERE pipeline_id = $1")
        .bind(pipeline_id.to_string());
    let rows = B::fetch_all(conn, q).await?;
    rows.iter()
        .map(|r| {
            let id = r.text("group_id")?;
            id.parse()
                .map_err(|_| StoreError::Corrupt(format!("group id {id:?} is not a UUID")))
        })
        .collect()
}

/// What the group's config is rendered from; `None` for an unknown group.
pub(crate) async fn inputs<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: AgentGroupId,
) -> Result<Option<GroupInputs>, StoreError> {
    let gid = id.to_string();
    let Some(group) = fetch::<B>(conn, &gid).await? else {
        return Ok(None);
    };
    let mut inputs = GroupInputs {
        pipelines: Vec::new(),
        endpoints: Vec::new(),
        bindings: Vec::new(),
        grace: BTreeMap::new(),
        group,
    };
    let pids: BTreeSet<PipelineId> = inputs
        .group
        .record
        .spec
        .pipeline_ids
        .iter()
        .copied()
        .collect();
    for pid in pids {
        let pid = pid.to_string();
        let p = get_record::<B, _, _>(conn, key, "pipelines", Kind::Pipeline, &pid)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => {
                    StoreError::Corrupt(format!("group {gid} uses missing pipeline {pid}"))
                }
                e => e,
            })?;
        inputs.pipelines.push(p);
        inputs
            .endpoints
            .extend(fetch_by_pipeline::<B, _, _>(conn, key, endpoints::TABLE.name, &pid).await?);
        endpoints::grace_of_pipeline::<B>(conn, &pid, now_ms(), &mut inputs.grace).await?;
        inputs.bindings.extend(
            fetch_by_pipeline::<B, _, _>(conn, key, super::bindings::TABLE.name, &pid).await?,
        );
    }
    Ok(Some(inputs))
}
