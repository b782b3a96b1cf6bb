//! The group page: selector, pipelines, the rollout as it happens (live: steps, counts, each
//! failed agent and its error, and for admins pause / resume / roll back), and the revision
//! history with the YAML diff between any two kept revisions.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use http::{HeaderMap, StatusCode};
use maud::{Markup, html};
use otaas_api::{AgentGroupId, GroupStatus, RolloutState, RolloutStrategy};
use serde::Deserialize;

use super::context::{Console, Viewer};
use super::fleet;
use super::layout::{self, Nav, badge, short, when};
use super::session;
use crate::api::revisions::unified;
use crate::render::redact_known;
use crate::rollout::{Action, RolloutError};

/// Failed agents listed on the page (the rollout keeps more; the fleet page filters them).
const MAX_FAILURES_SHOWN: usize = 20;

/// `?from=&to=` of the revision diff, and the notice of an action just taken.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GroupQuery {
    from: Option<String>,
    to: Option<String>,
    done: Option<String>,
}

fn group_id(raw: &str) -> Option<AgentGroupId> {
    raw.parse().ok()
}

/// `GET /groups/{id}`.
pub(crate) async fn page(
    State(c): State<Console>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<GroupQuery>,
) -> Response {
    let Some(id) = group_id(&id) else {
        return not_found(&viewer, &id);
    };
    match render_group(&c, &viewer, id, &q).await {
        Ok(m) => layout::respond(StatusCode::OK, m),
        Err(r) => r,
    }
}

fn not_found(viewer: &Viewer, id: &str) -> Response {
    layout::error_page(
        StatusCode::NOT_FOUND,
        "Group not found",
        &format!("There is no agent group {id:?}."),
        Some(viewer),
    )
}

/// The rollout status, or `None` while the group has none (no revision yet).
pub(crate) async fn status(
    c: &Console,
    id: AgentGroupId,
) -> Result<Option<GroupStatus>, RolloutError> {
    match c.rollouts.status(id).await {
        Ok(s) => Ok(Some(s)),
        Err(RolloutError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The group page.
pub(crate) async fn render_group(
    c: &Console,
    viewer: &Viewer,
    id: AgentGroupId,
    q: &GroupQuery,
) -> Result<Markup, Response> {
    let group = c
        .store
        .get_group(id)
        .await
        .map_err(|e| layout::store_error(e, viewer))?;
    let spec = &group.record.spec;
    let pipelines = c
        .store
        .list_pipelines()
        .await
        .map_err(|e| layout::store_error(e, viewer))?;
    let revisions = c
        .store
        .group_revisions(id)
        .await
        .map_err(|e| layout::store_error(e, viewer))?;
    let rollout = status(c, id).await.map_err(|e| rollout_error(e, viewer))?;
    let parse_rev = |v: &Option<String>| v.as_deref().and_then(|v| v.trim().parse::<i64>().ok());
    let latest = revisions.last().map(|r| r.revision);
    let to = parse_rev(&q.to).or(latest);
    let from = parse_rev(&q.from)
        .or_else(|| to.and_then(|t| revisions.iter().rev().map(|r| r.revision).find(|r| *r < t)));
    // Both sides come from the revisions already read, redacted like the API's.
    let diff = match (from, to) {
        (Some(a), Some(b)) => {
            let known = crate::secrets::known(c.store.as_ref())
                .await
                .map_err(|e| layout::store_error(e, viewer))?;
            let yaml = |n: i64| -> Result<String, String> {
                let rev = revisions.iter().find(|r| r.revision == n).ok_or_else(|| {
                    format!(
                        "agent group {:?} has no revision {n} (its latest is {}; older ones may \
                         have been dropped by revision retention)",
                        spec.name, group.config_revision
                    )
                })?;
                redact_known(&rev.yaml, &known).map_err(|e| {
                    tracing::error!(error = %e, group_id = %id, "Stored group config does not parse");
                    "this revision's stored config cannot be shown".to_owned()
                })
            };
            Some(yaml(a).and_then(|ya| Ok(unified(&ya, &yaml(b)?, a, b))))
        }
        _ => None,
    };
    let names: std::collections::HashMap<_, _> = pipelines
        .iter()
        .map(|p| (p.id, p.spec.name.as_str()))
        .collect();
    let now = Utc::now();
    let body = html! {
        h1 { "Group " span #group-name { (spec.name) } }
        @if let Some(done) = &q.done {
            p.notice role="status" { (notice(done)) }
        }
        div.grid2 {
            section.card aria-labelledby="def-title" {
                h2 #def-title { "Definition" }
                dl.facts {
                    dt { "Selector" }
                    dd {
                        @if spec.selector.is_empty() { span.muted { "every agent" } }
                        @for (k, v) in &spec.selector { code { (k) "=" (v) } " " }
                    }
                    dt { "Pipelines" }
                    dd {
                        @for p in &spec.pipeline_ids {
                            a href=(super::pipelines::anchor(*p)) { (names.get(p).copied().unwrap_or("(deleted)")) } " "
                        }
                    }
                    dt { "Rollout" }
                    dd { (strategy(&spec.rollout)) }
                    dt { "Latest revision" }
                    dd { (group.config_revision) " " (short(&group.config_hash)) }
                    dt { "Pinned revision" }
                    dd { @match spec.pinned_revision { Some(r) => (r), None => span.muted { "none" } } }
                    dt { "Agents" }
                    dd { a href=(fleet::group_link(id)) { "Agents of this group" } }
                }
            }
            section.card aria-labelledby="rollout-title" {
                h2 #rollout-title { "Rollout" }
                div #rollout data-live={"/groups/" (id) "/live"} aria-live="polite" {
                    (rollout_fragment(id, rollout.as_ref(), viewer))
                }
                p.stale-note { "Live updates paused; reload to see the latest." }
            }
        }
        section aria-labelledby="revisions-title" {
            h2 #revisions-title { "Revisions" }
            @if revisions.is_empty() {
                p.muted { "No revision yet: the group has no pipeline that renders." }
            } @else {
                div.table-wrap {
                    table #revisions {
                        thead { tr {
                            th.num scope="col" { "Revision" }
                            th scope="col" { "Created" }
                            th scope="col" { "Cause" }
                            th scope="col" { "SHA-256" }
                        } }
                        tbody {
                            @for r in revisions.iter().rev() {
                                tr {
                                    td.num { (r.revision) }
                                    td { (layout::ago(Some(r.created_at), now)) }
                                    td { (cause(&r.cause)) }
                                    td { (short(&r.hash)) }
                                }
                            }
                        }
                    }
                }
                form.filters method="get" action={"/groups/" (id)} aria-label="Compare revisions" {
                    div.field {
                        label for="diff-from" { "From revision" }
                        select #diff-from name="from" {
                            @for r in revisions.iter().rev() {
                                option value=(r.revision) selected[Some(r.revision) == from] { (r.revision) }
                            }
                        }
                    }
                    div.field {
                        label for="diff-to" { "To revision" }
                        select #diff-to name="to" {
                            @for r in revisions.iter().rev() {
                                option value=(r.revision) selected[Some(r.revision) == to] { (r.revision) }
                            }
                        }
                    }
                    button type="submit" { "Compare" }
                }
                @match (&diff, from, to) {
                    (Some(Ok(text)), Some(a), Some(b)) => {
                        h3 { "Revision " (a) " → " (b) }
                        div #revision-diff { (layout::diff(text, &format!("Diff of revision {a} to {b}"))) }
                    }
                    (Some(Err(msg)), _, _) => p.problem role="alert" { (msg) },
                    _ => p.muted { "Only one revision: nothing to compare yet." },
                }
            }
        }
    };
    Ok(layout::page(&spec.name, Nav::Fleet, Some(viewer), body))
}

fn strategy(r: &otaas_api::RolloutSpec) -> String {
    let mut s = match r.strategy {
        RolloutStrategy::AllAtOnce => "all at once".to_string(),
        RolloutStrategy::Batched => format!("batches of {:?}", r.batch_sizes),
        RolloutStrategy::Canary => format!("canary {} %", r.canary_percent.unwrap_or(10)),
    };
    if r.bake_seconds > 0 {
        s.push_str(&format!(", bake {} s", r.bake_seconds));
    }
    s.push_str(&format!(", up to {} failures", r.max_failures));
    if r.auto_rollback {
        s.push_str(", automatic rollback");
    }
    s
}

fn cause(c: &otaas_api::RevisionCause) -> Markup {
    html! {
        @if let (Some(kind), Some(name)) = (&c.cause_kind, &c.cause_name) {
            (kind.replace('_', " ")) " " code { (name) }
            @if let Some(r) = c.cause_revision { " (revision " (r) ")" }
        } @else if let Some(kind) = &c.cause_kind {
            (kind.replace('_', " ")) " deleted"
        }
        @if let Some(t) = &c.token_description {
            " by " span.muted { (t) }
        }
    }
}

fn notice(done: &str) -> &'static str {
    match done {
        "pause" => "Rollout paused.",
        "resume" => "Rollout resumed.",
        "rollback" => "Rolling back to the last good revision.",
        _ => "Done.",
    }
}

/// The live part of the group page: the rollout's state, steps, counts, failures and controls.
pub(crate) fn rollout_fragment(
    id: AgentGroupId,
    status: Option<&GroupStatus>,
    viewer: &Viewer,
) -> Markup {
    let Some(s) = status else {
        return html! { p.muted { "No rollout yet." } };
    };
    let total = s.matched.max(1);
    html! {
        p {
            "State: " span #rollout-state data-state=(s.state.as_str()) { (badge(s.state.as_str())) }
            " · revision " strong #rollout-revision { (s.revision) }
            @if let Some(g) = s.last_good_revision { " · last good " (g) }
        }
        @if !s.message.is_empty() { p #rollout-message { (s.message) } }
        label for="rollout-progress" { (s.applied) " of " (s.matched) " agents applied" }
        progress #rollout-progress max=(total) value=(s.applied) { (s.applied) " of " (s.matched) }
        dl.facts #rollout-counts {
            dt { "Applying" } dd { (s.applying) }
            dt { "Pending" } dd { (s.pending) }
            dt { "Failed" } dd data-count="failed" { (s.failed) }
            dt { "Healthy" } dd { (s.healthy) }
            dt { "Unhealthy" } dd { (s.unhealthy) }
            dt { "Drifted" } dd { (s.drifted) }
        }
        @if !s.steps.is_empty() {
            h3 { "Steps" }
            ol.steps #rollout-steps {
                @for st in &s.steps {
                    li data-step=(st.index) {
                        (st.agents) " agents"
                        @if st.last { " (last)" }
                        " · started " (when(st.started_at))
                        @match st.healthy_at {
                            Some(h) => { " · healthy at " (when(h)) },
                            None if s.state.is_final() => { " · " (badge(s.state.as_str())) },
                            None => { " · " (badge(if Some(st.index) == s.current_step { "in_progress" } else { "pending" })) },
                        }
                    }
                }
            }
        }
        @if !s.failures.is_empty() {
            h3 { "Failed agents" }
            ul.failures #rollout-failures {
                @for f in s.failures.iter().take(MAX_FAILURES_SHOWN) {
                    li {
                        a href={"/agents/" (f.agent_id)} { (layout::agent_id(&f.agent_id)) }
                        ": " span.error-text { (f.message) }
                    }
                }
            }
            @if s.failures.len() > MAX_FAILURES_SHOWN {
                p.muted { "and " (s.failures.len() - MAX_FAILURES_SHOWN) " more ("
                    a href={"/fleet?group=" (id) "&health="} { "see the group's agents" } ")" }
            }
        }
        p.muted { "Updated " (when(s.updated_at)) @if let Some(d) = &s.driver { " by replica " (d) } }
        @if viewer.is_admin() {
            div.controls #rollout-controls {
                @if s.state == RolloutState::InProgress {
                    (action_form(id, "pause", "Pause rollout", "secondary", viewer))
                }
                @if s.state == RolloutState::Paused {
                    (action_form(id, "resume", "Resume rollout", "", viewer))
                }
                @if s.last_good_revision.is_some_and(|g| g != s.revision) {
                    (action_form(id, "rollback", "Roll back", "danger", viewer))
                }
            }
        }
    }
}

fn action_form(
    id: AgentGroupId,
    action: &str,
    label: &str,
    class: &str,
    viewer: &Viewer,
) -> Markup {
    html! {
        form method="post" action={"/groups/" (id) "/rollout/" (action)} {
            (layout::csrf_input(viewer))
            button #{"rollout-" (action)} class=(class) type="submit" { (label) }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /groups/{id}/rollout/{action}`: admins only, with this session's CSRF token; the
/// same engine call as `POST /api/v1/agent-groups/{id}/rollout/{action}`, recorded in the audit
/// trail as a console action.
pub(crate) async fn act(
    State(c): State<Console>,
    viewer: Viewer,
    Path((id, action)): Path<(String, String)>,
    parts: http::request::Parts,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let path = parts.uri.path().to_owned();
    let peer = session::peer(&parts);
    let headers: &HeaderMap = &parts.headers;
    let csrf = form.ok().and_then(|Form(f)| f.csrf);
    let audit = |status: StatusCode| {
        super::context::record(
            &c,
            viewer.actor(),
            peer,
            "POST",
            &path,
            status,
            Some(("agent_group", id.clone())),
        )
    };
    if !session::same_origin(headers) || !viewer.csrf_ok(csrf.as_deref()) {
        audit(StatusCode::FORBIDDEN);
        return layout::forged();
    }
    if !viewer.is_admin() {
        audit(StatusCode::FORBIDDEN);
        return layout::error_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "Read-only tokens cannot pause, resume or roll back a rollout.",
            Some(&viewer),
        );
    }
    let Some(gid) = group_id(&id) else {
        audit(StatusCode::NOT_FOUND);
        return not_found(&viewer, &id);
    };
    let act = match action.as_str() {
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        "rollback" => Action::Rollback,
        _ => {
            audit(StatusCode::NOT_FOUND);
            return layout::error_page(
                StatusCode::NOT_FOUND,
                "No such action",
                "A rollout can be paused, resumed or rolled back.",
                Some(&viewer),
            );
        }
    };
    match c.rollouts.act(gid, act).await {
        Ok(_) => {
            audit(StatusCode::SEE_OTHER);
            Redirect::to(&format!("/groups/{gid}?done={action}")).into_response()
        }
        Err(e) => {
            let resp = rollout_error(e, &viewer);
            audit(resp.status());
            resp
        }
    }
}

fn rollout_error(e: RolloutError, viewer: &Viewer) -> Response {
    match e {
        RolloutError::NotFound(id) => not_found(viewer, &id.to_string()),
        RolloutError::BadState { .. } | RolloutError::NoLastGood(_) => layout::error_page(
            StatusCode::CONFLICT,
            "Not possible now",
            &e.to_string(),
            Some(viewer),
        ),
        RolloutError::Store(e) => layout::store_error(e, viewer),
    }
}
