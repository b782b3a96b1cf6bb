//! `GET /api/v1/agent-groups/{id}/status` and `POST /api/v1/agent-groups/{id}/rollout/{pause,
//! resume,rollback}`; every answer is the group's [`GroupStatus`] from the rollout engine.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use http::StatusCode;
use otaas_api::{AgentGroupId, ErrorCode, GroupStatus};

use crate::api::ApiError;
use crate::rollout::{Action, RolloutError, Rollouts};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent-groups/{id}/status", get(status))
        .route("/agent-groups/{id}/rollout/pause", post(pause))
        .route("/agent-groups/{id}/rollout/resume", post(resume))
        .route("/agent-groups/{id}/rollout/rollback", post(rollback))
}

impl From<RolloutError> for ApiError {
    fn from(err: RolloutError) -> Self {
        match err {
            RolloutError::NotFound(_) => ApiError::not_found(err.to_string()),
            RolloutError::BadState { .. } | RolloutError::NoLastGood(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::StateConflict,
                err.to_string(),
                None,
            ),
            RolloutError::Store(e) => e.into(),
        }
    }
}

fn parse(raw: &str) -> Result<AgentGroupId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("agent group {raw} not found")))
}

async fn status(
    State(rollouts): State<Arc<Rollouts>>,
    Path(id): Path<String>,
) -> Result<Json<GroupStatus>, ApiError> {
    Ok(Json(rollouts.status(parse(&id)?).await?))
}

async fn pause(
    State(rollouts): State<Arc<Rollouts>>,
    Path(id): Path<String>,
) -> Result<Json<GroupStatus>, ApiError> {
    Ok(Json(rollouts.act(parse(&id)?, Action::Pause).await?))
}

async fn resume(
    State(rollouts): State<Arc<Rollouts>>,
    Path(id): Path<String>,
) -> Result<Json<GroupStatus>, ApiError> {
    Ok(Json(rollouts.act(parse(&id)?, Action::Resume).await?))
}

async fn rollback(
    State(rollouts): State<Arc<Rollouts>>,
    Path(id): Path<String>,
) -> Result<Json<GroupStatus>, ApiError> {
    Ok(Json(rollouts.act(parse(&id)?, Action::Rollback).await?))
}
