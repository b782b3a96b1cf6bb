//! Handlers of `/api/v1`: thin glue from HTTP to validation, the store, and events.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use otaas_api::*;

use super::components::{Change, check};
use super::json::ApiJson;
use super::paging::Page;
use super::revisions::CallerActor;
use super::{ApiError, validate, views};
use crate::auth;
use crate::events::Event;
use crate::state::AppState;
use crate::store::GroupRevision;

type ApiResult<T> = Result<T, ApiError>;

/// A single object in a response, with `ETag: "<revision>"` so standard HTTP clients can
/// send it back in `If-Match`.
pub(super) struct Obj<T>(StatusCode, T);

impl<T> Obj<T> {
    fn ok(v: T) -> Self {
        Self(StatusCode::OK, v)
    }
    fn created(v: T) -> Self {
        Self(StatusCode::CREATED, v)
    }
}

pub(super) trait Revisioned {
    fn revision(&self) -> i64;
    fn object_id(&self) -> String;
}

macro_rules! revisioned {
    ($($t:ty),*) => {$(
        impl Revisioned for $t {
            fn revision(&self) -> i64 {
                self.revision
            }
            fn object_id(&self) -> String {
                self.id.to_string()
            }
        }
    )*};
}
revisioned!(Pipeline, Endpoint, ExporterBinding, AgentGroup);

impl<T: Revisioned + serde::Serialize> IntoResponse for Obj<T> {
    fn into_response(self) -> Response {
        let etag = format!("\"{}\"", self.1.revision());
        let note = super::audit::AuditNote {
            object_id: Some(self.1.object_id()),
            revision_after: Some(self.1.revision()),
            dry_run: false,
        };
        let mut resp = (self.0, Json(self.1)).into_response();
        resp.extensions_mut().insert(note);
        if let Ok(v) = http::HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(http::header::ETAG, v);
        }
        resp
    }
}

/// The query of the object lists: `?name=` and the page (`limit`, `cursor`).
fn list_query(
    s: &AppState,
    tag: &'static str,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    name: bool,
) -> ApiResult<(Option<String>, Page)> {
    let Query(mut q) = q.map_err(|e| ApiError::bad_request(format!("query string: {e}"), None))?;
    let page = Page::take(tag, &mut q, s.config.api_max_page_size)?;
    let known = if name {
        "name, limit and cursor"
    } else {
        "limit and cursor"
    };
    let name = if name { q.remove("name") } else { None };
    if let Some(k) = q.keys().next() {
        return Err(ApiError::bad_request(
            format!("unknown query parameter {k:?}; only {known} are supported"),
            Some(k),
        ));
    }
    Ok((name, page))
}

/// A page of `items` as a list answer.
fn page_of<T, V, K>(
    page: &Page,
    items: Vec<T>,
    key: impl Fn(&T) -> K,
    view: impl FnMut(T) -> V,
) -> ApiResult<Json<List<V>>>
where
    K: Ord + std::fmt::Display + FromStr,
{
    let (items, next_cursor) = page.apply(items, key)?;
    Ok(Json(List {
        items: items.into_iter().map(view).collect(),
        next_cursor,
    }))
}

/// Path ids: a malformed id names nothing, so it is a 404 like any unknown id.
fn parse_id<I: FromStr>(kind: &str, raw: &str) -> ApiResult<I> {
    I::from_str(raw).map_err(|_| ApiError::not_found(format!("{kind} {raw} not found")))
}

/// `If-Match: <revision>` (quotes and a weak `W/` prefix tolerated). Absent = unconditional.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse::<i64>().map(Some).map_err(|_| {
        ApiError::bad_request(
            format!("If-Match must be an object revision (a number), got {s:?}"),
            Some("If-Match"),
        )
    })
}

/// The groups a committed write re-rendered, by name, for the write's answer: clients wait
/// for these rollouts. The write is already committed, so a failed name lookup must not turn
/// it into an error; the group's id stands in for its name then.
async fn rollouts(s: &AppState, revisions: &[GroupRevision]) -> Option<Vec<GroupRollout>> {
    let mut out = Vec::with_capacity(revisions.len());
    for rev in revisions {
        let group_name = match s.store.get_group(rev.group_id).await {
            // A pinned group's agents stay on the pinned revision: the write started no
            // rollout there, and waiting for this revision would never end.
            Ok(g) if g.record.spec.pinned_revision.is_some() => continue,
            Ok(g) => g.record.spec.name,
            Err(e) => {
                tracing::warn!(error = %e, group_id = %rev.group_id, "Naming a re-rendered group failed");
                rev.group_id.to_string()
            }
        };
        out.push(GroupRollout {
            group_id: rev.group_id,
            group_name,
            config_revision: rev.revision,
            config_hash: rev.hash.clone(),
        });
    }
    Some(out)
}

// ---- pipelines

pub(super) async fn create_pipeline(
    State(s): State<AppState>,
    ApiJson(spec): ApiJson<PipelineSpec>,
) -> ApiResult<Obj<Pipeline>> {
    validate::pipeline(&spec)?;
    // On create there is nothing to keep.
    let spec = PipelineSpec {
        keep_secrets: false,
        ..spec
    };
    validate::pipeline(&spec)?;
    s.policy.pipeline(&spec).map_err(validate::policy_error)?;
    check(&s, &Change::Pipeline(None, &spec)).await?;
    let w = s.writer.create_pipeline(spec).await?;
    s.announce(&w);
    let mut p = views::pipeline(w.value);
    p.rollouts = rollouts(&s, &w.revisions).await;
    Ok(Obj::created(p))
}

pub(super) async fn list_pipelines(
    State(s): State<AppState>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<List<Pipeline>>> {
    let (name, page) = list_query(&s, "pipelines", q, true)?;
    let items = match name {
        Some(n) => s.store.find_pipeline(&n).await?.into_iter().collect(),
        None => s.store.list_pipelines().await?,
    };
    page_of(&page, items, |r| r.id, views::pipeline)
}

pub(super) async fn get_pipeline(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Obj<Pipeline>> {
    let id = parse_id("pipeline", &id)?;
    Ok(Obj::ok(views::pipeline(s.store.get_pipeline(id).await?)))
}

pub(super) async fn update_pipeline(
    State(s): State<AppState>,
    CallerActor(actor): CallerActor,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(spec): ApiJson<PipelineSpec>,
) -> ApiResult<Obj<Pipeline>> {
    let id = parse_id("pipeline", &id)?;
    let rev = if_match(&headers)?;
    validate::pipeline(&spec)?;
    let spec = validate::resolve_pipeline(s.store.as_ref(), id, spec).await?;
    s.policy.pipeline(&spec).map_err(validate::policy_error)?;
    check(&s, &Change::Pipeline(Some(id), &spec)).await?;
    let w = s.writer.update_pipeline(&actor, id, spec, rev).await?;
    s.announce(&w);
    let mut p = views::pipeline(w.value);
    p.rollouts = rollouts(&s, &w.revisions).await;
    Ok(Obj::ok(p))
}

pub(super) async fn delete_pipeline(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id("pipeline", &id)?;
    let w = s.writer.delete_pipeline(id).await?;
    s.announce(&w);
    Ok(StatusCode::NO_CONTENT)
}

// ---- endpoints

pub(super) async fn create_endpoint(
    State(s): State<AppState>,
    CallerActor(actor): CallerActor,
    ApiJson(spec): ApiJson<EndpointSpec>,
) -> ApiResult<Obj<Endpoint>> {
    validate::endpoint(&spec)?;
    s.policy.endpoint(&spec).map_err(validate::policy_error)?;
    check(&s, &Change::Endpoint(None, &spec)).await?;
    let w = s.writer.create_endpoint(&actor, spec).await?;
    s.announce(&w);
    let r = w.value;
    // The only moment the token is shown (besides a rotation).
    let token = (r.spec.auth == EndpointAuth::Bearer).then(|| {
        s.writer
            .token_key()
            .endpoint_token(r.id, r.spec.token_version)
    });
    let mut e = views::endpoint(r, token);
    e.rollouts = rollouts(&s, &w.revisions).await;
    Ok(Obj::created(e))
}

pub(super) async fn list_endpoints(
    State(s): State<AppState>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<List<Endpoint>>> {
    let (name, page) = list_query(&s, "endpoints", q, true)?;
    let items = match name {
        Some(n) => s.store.find_endpoint(&n).await?.into_iter().collect(),
        None => s.store.list_endpoints().await?,
    };
    page_of(&page, items, |r| r.id, |r| views::endpoint(r, None))
}

pub(super) async fn get_endpoint(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Obj<Endpoint>> {
    let id = parse_id("endpoint", &id)?;
    Ok(Obj::ok(views::endpoint(
        s.store.get_endpoint(id).await?,
        None,
    )))
}

pub(super) async fn update_endpoint(
    State(s): State<AppState>,
    CallerActor(actor): CallerActor,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(spec): ApiJson<EndpointSpec>,
) -> ApiResult<Obj<Endpoint>> {
    let id: EndpointId = parse_id("endpoint", &id)?;
    let rev = if_match(&headers)?;
    validate::endpoint(&spec)?;
    s.policy.endpoint(&spec).map_err(validate::policy_error)?;
    check(&s, &Change::Endpoint(Some(id), &spec)).await?;
    let before = s.store.get_endpoint(id).await?;
    let w = s.writer.update_endpoint(&actor, id, spec, rev).await?;
    s.announce(&w);
    let r = w.value;
    // A new token exists when the version moved or bearer auth was just switched on.
    let minted = r.spec.auth == EndpointAuth::Bearer
        && (before.spec.token_version != r.spec.token_version
            || before.spec.auth != EndpointAuth::Bearer);
    let token = minted.then(|| {
        s.writer
            .token_key()
            .endpoint_token(r.id, r.spec.token_version)
    });
    let mut e = views::endpoint(r, token);
    e.rollouts = rollouts(&s, &w.revisions).await;
    Ok(Obj::ok(e))
}

pub(super) async fn delete_endpoint(
    State(s): State<AppState>,
    CallerActor(actor): CallerActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id("endpoint", &id)?;
    let w = s.writer.delete_endpoint(&actor, id).await?;
    s.announce(&w);
    Ok(StatusCode::NO_CONTENT)
}

// ---- exporter bindings

pub(super) async fn create_binding(
    State(s): State<AppState>,
    CallerActor(actor): CallerActor,
    ApiJson(spec): ApiJson<ExporterBindingSpec>,
) -> ApiResult<Obj<ExporterBinding>> {
    validate::binding(&spec)?;
    let spec = ExporterBindingSpec {
        keep_secrets: false,
        ..spec
    };
    validate::binding(&spec)?;
    s.policy.binding(&spec).map_err(validate::policy_error)?;
    check(&s, &Change::Binding(None, &spec)).await?;
    let w = s.writer.create_binding(&actor, spec).await?;
    s.announce(&w);
    let mut b = views::binding(w.value);
    b.rollouts = rollouts(&s, &w.revisions).await;
    Ok(Obj::created(b))
}

pub(super) async fn list_bindings(
    State(s): State<AppState>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<List<ExporterBinding>>> {
    let (name, page) = list_query(&s, "exporter-bindings", q, true)?;
    let items = match name {
        Some(n) => s.store.find_binding(&n).await?.into_iter().collect(),
        None => s.store.list_bindings().await?,
    };
    page_of(&page, items, |r| r.id, views::binding)
}

pub(super) async fn get_binding(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Obj<ExporterBinding>> {
    let id = parse_id("exporter binding", &id)?;
    Ok(Obj::ok(views::binding(s.store.get_binding(id).await?)))
}

pub(super) async fn update_binding(
    State(s): State<AppState>,
    CallerActor(actor): CallerActor,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(spec): ApiJson<ExporterBindingSpec>,
) -> ApiResult<Obj<ExporterBinding>> {
    let id = parse_id("exporter binding", &id)?;
    let rev = if_match(&headers)?;
    validate::binding(&spec)?;
    let spec = validate::resolve_binding(s.store.as_ref(), id, spec).await?;
    s.policy.binding(&spec).map_err(validate::policy_error)?;
    check(&s, &Change::Binding(Some(id), &spec)).await?;
    let w = s.writer.update_binding(&actor, id, spec, rev).await?;
    s.announce(&w);
    let mut b = views::binding(w.value);
    b.rollouts = rollouts(&s, &w.revisions).await;
    Ok(Obj::ok(b))
}

pub(super) async fn delete_binding(
    State(s): State<AppState>,
    CallerActor(actor): CallerActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id("exporter binding", &id)?;
    let w = s.writer.delete_binding(&actor, id).await?;
    s.announce(&w);
    Ok(StatusCode::NO_CONTENT)
}

// ---- agent groups

pub(super) async fn create_group(
    State(s): State<AppState>,
    CallerActor(actor): CallerActor,
    ApiJson(spec): ApiJson<AgentGroupSpec>,
) -> ApiResult<Obj<AgentGroup>> {
    validate::new_group(&spec)?;
    check(&s, &Change::Group(None, &spec)).await?;
    let w = s.writer.create_group(&actor, spec).await?;
    s.announce(&w);
    s.events.publish(Event::GroupChanged {
        group_id: w.value.record.id,
    });
    Ok(Obj::created(views::group(w.value)))
}

pub(super) async fn list_groups(
    State(s): State<AppState>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<List<AgentGroup>>> {
    let (name, page) = list_query(&s, "agent-groups", q, true)?;
    let items = match name {
        Some(n) => s.store.find_group(&n).await?.into_iter().collect(),
        None => s.store.list_groups().await?,
    };
    page_of(&page, items, |r| r.record.id, views::group)
}

pub(super) async fn get_group(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Obj<AgentGroup>> {
    let id = parse_id("agent group", &id)?;
    Ok(Obj::ok(views::group(s.store.get_group(id).await?)))
}

pub(super) async fn update_group(
    State(s): State<AppState>,
    CallerActor(actor): CallerActor,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(spec): ApiJson<AgentGroupSpec>,
) -> ApiResult<Obj<AgentGroup>> {
    let id = parse_id("agent group", &id)?;
    let rev = if_match(&headers)?;
    validate::group(&spec)?;
    validate::pin(s.store.as_ref(), id, &spec).await?;
    check(&s, &Change::Group(Some(id), &spec)).await?;
    let w = s.writer.update_group(&actor, id, spec, rev).await?;
    s.announce(&w);
    s.events.publish(Event::GroupChanged { group_id: id });
    Ok(Obj::ok(views::group(w.value)))
}

pub(super) async fn delete_group(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id("agent group", &id)?;
    let w = s.writer.delete_group(id).await?;
    s.announce(&w);
    s.events.publish(Event::GroupDeleted { group_id: id });
    Ok(StatusCode::NO_CONTENT)
}

// ---- tokens

/// Longest lifetime a token may be given (ten years); beyond that, use no expiry.
const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;

pub(super) async fn create_token(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<TokenCreate>,
) -> ApiResult<(
    StatusCode,
    axum::Extension<super::audit::AuditNote>,
    Json<TokenCreated>,
)> {
    if req.description.len() > 256 {
        return Err(ApiError::invalid(
            "description",
            "description is longer than 256 bytes",
        ));
    }
    let now = chrono::Utc::now();
    let expires_at = match (req.expires_in, req.expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "expires_in",
                "give either expires_in or expires_at, not both",
            ));
        }
        (Some(secs), None) => {
            if secs == 0 || secs > MAX_TOKEN_LIFETIME_SECS {
                return Err(ApiError::invalid(
                    "expires_in",
                    format!("expires_in must be between 1 and {MAX_TOKEN_LIFETIME_SECS} seconds"),
                ));
            }
            Some(now + chrono::Duration::seconds(secs as i64))
        }
        (None, Some(at)) => {
            if at <= now {
                return Err(ApiError::invalid(
                    "expires_at",
                    "expires_at must be in the future",
                ));
            }
            Some(at)
        }
        (None, None) => None,
    };
    let token = auth::generate_token(req.scope);
    let rec = s
        .store
        .create_token_expiring(
            req.scope,
            &req.description,
            &auth::hash_token(&token),
            now,
            expires_at,
        )
        .await?;
    tracing::info!(token_id = %rec.id, scope = req.scope.as_str(), "Token created");
    Ok((
        StatusCode::CREATED,
        axum::Extension(super::audit::AuditNote {
            object_id: Some(rec.id.to_string()),
            ..Default::default()
        }),
        Json(TokenCreated {
            id: rec.id,
            scope: rec.scope,
            description: rec.description,
            token,
            created_at: rec.created_at,
            expires_at: rec.expires_at,
        }),
    ))
}

pub(super) async fn list_tokens(
    State(s): State<AppState>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<List<TokenInfo>>> {
    let (_, page) = list_query(&s, "tokens", q, false)?;
    let items = s.store.list_tokens().await?;
    page_of(&page, items, |r| r.id, views::token)
}

pub(super) async fn revoke_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id("token", &id)?;
    let rec = s.store.revoke_token(id).await?;
    tracing::info!(token_id = %rec.id, scope = rec.scope.as_str(), "Token revoked");
    // OpAMP sessions opened with it end now, on this replica and (through the cluster) on the
    // others; revoking again re-sends the notice, which is harmless.
    s.events.publish(Event::TokenRevoked { token_id: rec.id });
    Ok(StatusCode::NO_CONTENT)
}
