//! `GET /api/v1/agents` and `GET /api/v1/agents/{id}`, served from the in-memory registry
//! (and, with several replicas, the other replicas' agents from the database: see
//! [`FleetView`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use otaas_api::{
    Agent, AgentGroupId, AgentStatus, AgentTransport, ComponentHealth, List, RemoteConfigState,
};
use otaas_opamp::{AgentCaps, InstanceUid};
use serde::Deserialize;

use crate::api::ApiError;
use crate::api::paging::Page;
use crate::cluster::FleetView;
use crate::config::ServeConfig;
use crate::fleet::{AgentFilter, AgentRecord, ConfigStatus, HealthNode, Transport};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list))
        .route("/agents/{id}", get(get_one))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    selector: Option<String>,
    group_id: Option<String>,
    health: Option<String>,
    connected: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse_filter(q: ListQuery) -> Result<AgentFilter, ApiError> {
    let mut filter = AgentFilter::default();
    if let Some(sel) = q.selector {
        let mut selector = BTreeMap::new();
        for item in sel.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                ApiError::bad_request(
                    format!("selector entry {item:?} is not k=v"),
                    Some("selector"),
                )
            })?;
            selector.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        filter.selector = selector;
    }
    if let Some(g) = q.group_id {
        let id = g.parse::<AgentGroupId>().map_err(|_| {
            ApiError::bad_request(
                format!("group_id {g:?} is not a group id"),
                Some("group_id"),
            )
        })?;
        filter.group_id = Some(id);
    }
    filter.healthy = match q.health.as_deref() {
        None => None,
        Some("healthy") => Some(true),
        Some("unhealthy") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("health must be healthy or unhealthy, not {other:?}"),
                Some("health"),
            ));
        }
    };
    filter.connected = match q.connected.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("connected must be true or false, not {other:?}"),
                Some("connected"),
            ));
        }
    };
    Ok(filter)
}

async fn list(
    State(fleet): State<FleetView>,
    State(config): State<std::sync::Arc<ServeConfig>>,
    Query(mut q): Query<ListQuery>,
) -> Result<Json<List<Agent>>, ApiError> {
    let page = Page::parse(
        "agents",
        q.limit.take(),
        q.cursor.take(),
        config.api_max_page_size,
    )?;
    let filter = parse_filter(q)?;
    let all = fleet.agents(&filter).await?;
    let (items, next_cursor) = page.apply(all, |r| r.id.to_string())?;
    Ok(Json(List {
        items: items.into_iter().map(|r| to_api(r, false)).collect(),
        next_cursor,
    }))
}

async fn get_one(
    State(fleet): State<FleetView>,
    Path(id): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    let uid = InstanceUid::parse(&id)
        .map_err(|_| ApiError::not_found(format!("agent {id} not found")))?;
    let rec = fleet
        .agent(uid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("agent {id} not found")))?;
    Ok(Json(to_api(rec, true)))
}

fn health_to_api(h: HealthNode) -> ComponentHealth {
    ComponentHealth {
        healthy: h.healthy,
        status: h.status,
        last_error: h.last_error,
        start_time_unix_nano: h.start_time_unix_nano,
        components: h
            .components
            .into_iter()
            .map(|(k, v)| (k, health_to_api(v)))
            .collect(),
    }
}

/// The summary status: unmanaged without a group; otherwise what the agent reported for the
/// desired config (anything reported for another config counts as pending).
pub(crate) fn status_of(r: &AgentRecord) -> AgentStatus {
    let Some(desired) = r.desired_config_hash.as_deref() else {
        return AgentStatus::Unmanaged;
    };
    if r.remote_config_hash.as_deref() != Some(desired) {
        return AgentStatus::Pending;
    }
    match r.remote_config_status {
        ConfigStatus::Applied => match r.effective_config_hash.as_deref() {
            Some(effective) if effective != desired => AgentStatus::Drifted,
            _ => AgentStatus::Applied,
        },
        ConfigStatus::Applying => AgentStatus::Applying,
        ConfigStatus::Failed => AgentStatus::Failed,
        ConfigStatus::Unset => AgentStatus::Pending,
    }
}

fn to_api(r: AgentRecord, with_config: bool) -> Agent {
    let status = status_of(&r);
    Agent {
        capabilities: AgentCaps(r.capabilities).names(),
        connected: r.connected,
        transport: r.transport.map(|t| match t {
            Transport::Ws => AgentTransport::Ws,
            Transport::Http => AgentTransport::Http,
        }),
        last_seen: r.last_seen,
        healthy: r.health.as_ref().map(|h| h.healthy),
        health: r.health.map(health_to_api),
        status,
        remote_config_status: match r.remote_config_status {
            ConfigStatus::Unset => RemoteConfigState::Unset,
            ConfigStatus::Applied => RemoteConfigState::Applied,
            ConfigStatus::Applying => RemoteConfigState::Applying,
            ConfigStatus::Failed => RemoteConfigState::Failed,
        },
        remote_config_error: r.remote_config_error,
        remote_config_hash: r.remote_config_hash,
        config_hash: r.desired_config_hash,
        effective_config_hash: r.effective_config_hash,
        effective_config: if with_config {
            r.effective_config.map(|t| t.to_string())
        } else {
            None
        },
        group_id: r.group_id,
        agent_version: r.agent_version,
        replica_id: r.replica_id,
        available_components: r.available_components.map(|set| {
            set.iter()
                .map(|(kind, types)| (kind.clone(), types.iter().cloned().collect()))
                .collect()
        }),
        // Only in the single-agent view: lists of thousands of agents of one build would
        // repeat the same map in every row.
        component_signals: r.component_signals.filter(|_| with_config).map(|kinds| {
            kinds
                .iter()
                .map(|(kind, types)| {
                    let types = types
                        .iter()
                        .map(|(ty, signals)| (ty.clone(), signals.iter().cloned().collect()))
                        .collect();
                    (kind.clone(), types)
                })
                .collect()
        }),
        labels: r.labels,
        id: r.id.to_string(),
    }
}
