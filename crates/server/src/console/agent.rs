//! The agent page: identity and labels, connection and replica, the config status with its
//! error, the health tree with each component's error, the components its collector has, and
//! the desired config against the effective one as a diff (both redacted).

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::Utc;
use http::StatusCode;
use maud::{Markup, html};

use super::context::{Console, Viewer};
use super::fleet::{connection, health_badge, status_word};
use super::layout::{self, Nav, ago, badge, short};
use crate::api::agents::status_of;
use crate::api::revisions::unified;
use crate::fleet::{AgentId, AgentRecord, ConfigStatus, HealthNode};
use crate::render::redact_known;

/// `GET /agents/{id}`.
pub(crate) async fn page(
    State(c): State<Console>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let missing = || {
        layout::error_page(
            StatusCode::NOT_FOUND,
            "Agent not found",
            &format!("No agent {id:?} is known to this fleet."),
            Some(&viewer),
        )
    };
    let Ok(uid) = AgentId::parse(&id) else {
        return missing();
    };
    let agent = match c.fleet.agent(uid.0).await {
        Ok(Some(a)) => a,
        Ok(None) => return missing(),
        Err(e) => return layout::store_error(e, &viewer),
    };
    let group = match agent.group_id {
        Some(g) => c.store.get_group(g).await.ok(),
        None => None,
    };
    let desired = desired_config(&c, &agent).await;
    let now = Utc::now();
    let status = status_of(&agent);
    let body = html! {
        h1 { "Agent " code #agent-id { (agent.id) } }
        div.grid2 {
            section.card aria-labelledby="agent-facts" {
                h2 #agent-facts { "Overview" }
                dl.facts {
                    dt { "Group" }
                    dd { @match &group {
                        Some(g) => a href={"/groups/" (g.record.id)} { (g.record.spec.name) },
                        None => span.muted { "unmanaged" },
                    } }
                    dt { "Connection" } dd { (connection(&agent)) }
                    dt { "Replica" } dd { (agent.replica_id.as_deref().unwrap_or("—")) }
                    dt { "Last seen" } dd { (ago(agent.last_seen, now)) }
                    dt { "Collector" } dd { (agent.agent_version.as_deref().unwrap_or("—")) }
                    dt { "Health" } dd { (health_badge(&agent)) }
                }
                h3 { "Labels" }
                @if agent.labels.is_empty() {
                    p.muted { "No labels." }
                } @else {
                    dl.facts #agent-labels {
                        @for (k, v) in &agent.labels { dt { code { (k) } } dd { code { (v) } } }
                    }
                }
            }
            section.card aria-labelledby="agent-config" {
                h2 #agent-config { "Config" }
                dl.facts {
                    dt { "Status" } dd #agent-status { (badge(status_word(status))) }
                    dt { "Reported" } dd { (badge(config_word(agent.remote_config_status))) }
                    dt { "Desired" } dd { (hash(agent.desired_config_hash.as_deref())) }
                    dt { "Received" } dd { (hash(agent.remote_config_hash.as_deref())) }
                    dt { "Effective" } dd { (hash(agent.effective_config_hash.as_deref())) }
                }
                @if let Some(e) = agent.remote_config_error.as_deref().filter(|e| !e.is_empty()) {
                    h3 { "Config error" }
                    p.error-text #agent-config-error { (e) }
                }
                h3 { "Status history" }
                @if agent.config_history.is_empty() {
                    p.muted { "No config status reported yet." }
                } @else {
                    ol #config-history reversed {
                        @for ch in agent.config_history.iter().rev() {
                            li { (badge(config_word(ch.status))) " " (ago(Some(ch.at), now))
                                @if let Some(h) = &ch.hash { " · " code { (h) } }
                                @if let Some(e) = &ch.error { br; span.error-text { (e) } } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="health-title" {
            h2 #health-title { "Health" }
            @match &agent.health {
                Some(h) => ul.tree #health-tree { (health_node("collector", h)) },
                None => p.muted { "This agent does not report health." },
            }
        }
        section aria-labelledby="diff-title" {
            h2 #diff-title { "Desired and effective config" }
            @match (&desired, &agent.effective_config) {
                (Some((rev, yaml)), Some(eff)) => {
                    p { "Differences between revision " (rev) " of the group's config and what the collector reports it runs (both with secrets redacted)." }
                    div #config-diff { (layout::diff(&unified(yaml, eff, *rev, 0).replace("+++ revision 0", "+++ effective"), "Desired against effective config")) }
                }
                (None, Some(eff)) => {
                    p.muted { "No desired config (the agent is unmanaged, or its revision is no longer kept). Effective config:" }
                    pre.yaml tabindex="0" aria-label="Effective config" { (eff) }
                }
                (Some((rev, yaml)), None) => {
                    p.muted { "The agent reports no effective config. Desired (revision " (rev) "):" }
                    pre.yaml tabindex="0" aria-label="Desired config" { (yaml) }
                }
                (None, None) => p.muted { "Neither a desired nor an effective config is known." },
            }
        }
        section aria-labelledby="components-title" {
            h2 #components-title { "Available components" }
            @match &agent.available_components {
                Some(set) => {
                    @for (kind, types) in set.iter() {
                        details {
                            summary { (kind) " (" (types.len()) ")" }
                            p { @for (i, t) in types.iter().enumerate() { @if i > 0 { ", " } code { (t) } } }
                        }
                    }
                }
                None => p.muted { "This agent does not report its components." },
            }
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(
            &format!("Agent {}", short_text(&agent)),
            Nav::Fleet,
            Some(&viewer),
            body,
        ),
    )
}

fn short_text(a: &AgentRecord) -> String {
    a.id.to_string().chars().take(12).collect()
}

fn hash(h: Option<&str>) -> Markup {
    match h {
        Some(h) => short(h),
        None => html! { span.muted { "—" } },
    }
}

fn config_word(s: ConfigStatus) -> &'static str {
    match s {
        ConfigStatus::Unset => "unset",
        ConfigStatus::Applied => "applied",
        ConfigStatus::Applying => "applying",
        ConfigStatus::Failed => "failed",
    }
}

fn health_node(name: &str, h: &HealthNode) -> Markup {
    html! {
        li {
            code { (name) } " "
            (badge(if h.healthy { "healthy" } else { "unhealthy" }))
            @if !h.status.is_empty() { " " span.muted { (h.status) } }
            @if !h.last_error.is_empty() { " " span.error-text { (h.last_error) } }
            @if !h.components.is_empty() {
                ul { @for (n, child) in h.components.iter() { (health_node(n, child)) } }
            }
        }
    }
}

/// The group revision the agent should run, redacted: found by its hash among the kept ones.
async fn desired_config(c: &Console, a: &AgentRecord) -> Option<(i64, String)> {
    let (group, hash) = (a.group_id?, a.desired_config_hash.as_deref()?);
    let revisions = c.store.group_revisions(group).await.ok()?;
    let rev = revisions.into_iter().rev().find(|r| r.hash == hash)?;
    let known = crate::secrets::known(c.store.as_ref()).await.ok()?;
    Some((rev.revision, redact_known(&rev.yaml, &known).ok()?))
}
