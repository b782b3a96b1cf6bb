//! `GET /api/v1/discovered-pipelines[/{id}]` and `POST /api/v1/discovered-pipelines/{id}/adopt`,
//! over the discovery engine; an adoption's objects are checked by the same rules as the
//! `POST`s that create them one by one, and announced like any other write.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use otaas_api::List;
use otaas_api::discovery::{AdoptRequest, Adoption, DiscoveredPipeline};

use super::json::ApiJson;
use super::paging::Page;
use super::{ApiError, validate};
use crate::discovery::adopt::AdoptError;
use crate::events::Event;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/discovered-pipelines", get(list))
        .route("/discovered-pipelines/{id}", get(get_one))
        .route("/discovered-pipelines/{id}/adopt", post(adopt))
}

/// A discovered pipeline id: 64 lowercase hex digits.
fn parse_id(id: &str) -> Result<&str, ApiError> {
    if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(id)
    } else {
        Err(ApiError::bad_request(
            format!(
                "{:?} is not a discovered pipeline id (64 lowercase hex digits)",
                id.chars().take(80).collect::<String>()
            ),
            Some("id"),
        ))
    }
}

async fn list(
    State(s): State<AppState>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<List<DiscoveredPipeline>>, ApiError> {
    let Query(mut q) = q.map_err(|e| ApiError::bad_request(format!("query string: {e}"), None))?;
    let page = Page::take("discovered-pipelines", &mut q, s.config.api_max_page_size)?;
    if let Some(k) = q.keys().next() {
        return Err(ApiError::bad_request(
            format!("unknown query parameter {k:?}; only limit and cursor are supported"),
            Some(k),
        ));
    }
    let all = s.discovery.list().await?;
    let (items, next_cursor) = page.apply(all, |p| p.id.clone())?;
    Ok(Json(List { items, next_cursor }))
}

async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DiscoveredPipeline>, ApiError> {
    let id = parse_id(&id)?;
    match s.discovery.get(id).await? {
        Some(p) => Ok(Json(p)),
        None => Err(ApiError::not_found(format!(
            "no connected agent runs discovered pipeline {id}"
        ))),
    }
}

impl From<AdoptError> for ApiError {
    fn from(e: AdoptError) -> Self {
        match e {
            AdoptError::NotFound(_) => ApiError::not_found(e.to_string()),
            AdoptError::Invalid { field, message } => ApiError::invalid(&field, message),
            AdoptError::Store(e) => e.into(),
            AdoptError::Write(e) => e.into(),
        }
    }
}

/// The objects of a plan, checked as their own `POST`s would check them; errors name the field
/// as it stands in the adoption's answer (`pipeline.receivers.filelog`, ...).
fn check(s: &AppState, plan: &Adoption) -> Result<(), ApiError> {
    let within = |prefix: String, mut e: ApiError| {
        if let Some(f) = e.body.error.field.take() {
            e.body.error.field = Some(format!("{prefix}.{f}"));
        }
        e
    };
    validate::pipeline(&plan.pipeline).map_err(|e| within("pipeline".into(), e))?;
    s.policy
        .pipeline(&plan.pipeline)
        .map_err(|e| within("pipeline".into(), validate::policy_error(e)))?;
    for (i, e) in plan.endpoints.iter().enumerate() {
        validate::endpoint(e).map_err(|x| within(format!("endpoints[{i}]"), x))?;
        s.policy
            .endpoint(e)
            .map_err(|x| within(format!("endpoints[{i}]"), validate::policy_error(x)))?;
    }
    for (i, b) in plan.exporter_bindings.iter().enumerate() {
        validate::binding(b).map_err(|x| within(format!("exporter_bindings[{i}]"), x))?;
        validate::binding_signals(b, &plan.pipeline.signals)
            .map_err(|x| within(format!("exporter_bindings[{i}]"), x))?;
        s.policy
            .binding(b)
            .map_err(|x| within(format!("exporter_bindings[{i}]"), validate::policy_error(x)))?;
    }
    if let Some(g) = &plan.group {
        validate::new_group(g).map_err(|x| within("group".into(), x))?;
    }
    Ok(())
}

/// The adoption, its answer marked as a dry run for the audit trail when it is one.
async fn adopt(
    State(s): State<AppState>,
    super::revisions::CallerActor(actor): super::revisions::CallerActor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AdoptRequest>,
) -> Response {
    let dry_run = req.dry_run;
    let mut resp = adopt_or_plan(s, actor, id, req).await.into_response();
    if dry_run {
        resp.extensions_mut()
            .insert(super::audit::AuditNote::dry_run());
    }
    resp
}

async fn adopt_or_plan(
    s: AppState,
    actor: crate::revisions::Actor,
    id: String,
    req: AdoptRequest,
) -> Result<Json<Adoption>, ApiError> {
    let id = parse_id(&id)?.to_owned();
    if let Some(name) = &req.name {
        validate::name("name", name)?;
    }
    if let Some(g) = &req.group {
        validate::name("group.name", &g.name)?;
    }
    // A plan that fails the usual checks is refused before anything is written.
    let planned = s.discovery.plan(&id, &req).await?;
    check(&s, &planned.answer)?;
    if req.dry_run {
        return Ok(Json(planned.answer));
    }
    let (done, written) = s.discovery.write(planned, &actor).await?;
    s.announce(&written);
    if let Some(g) = &written.value.group {
        s.events.publish(Event::GroupChanged {
            group_id: g.record.id,
        });
    }
    Ok(Json(done))
}
