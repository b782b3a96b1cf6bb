//! The pipelines page: each pipeline drawn as its flow (receivers and endpoints → processors →
//! exporter bindings and their destinations), the groups that run it with their agents, and its
//! throughput across the fleet (from the agents' own metrics).

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use maud::{Markup, html};
use otaas_api::{AgentGroupId, EndpointAuth, PipelineId};

use super::context::{Console, Viewer};
use super::layout::{self, Nav};
use crate::fleet::AgentFilter;

/// `GET /pipelines`.
pub(crate) async fn page(State(c): State<Console>, viewer: Viewer) -> Response {
    let err = |e| layout::store_error(e, &viewer);
    let (pipelines, endpoints, bindings, groups) = match tokio::try_join!(
        c.store.list_pipelines(),
        c.store.list_endpoints(),
        c.store.list_bindings(),
        c.store.list_groups(),
    ) {
        Ok(all) => all,
        Err(e) => return err(e),
    };
    let report = match c.insights.report().await {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    let mut agents_per_group: HashMap<AgentGroupId, u64> = HashMap::new();
    if let Err(e) = c
        .fleet
        .visit_agents(&AgentFilter::default(), |r| {
            if let Some(g) = r.group_id {
                *agents_per_group.entry(g).or_default() += 1;
            }
        })
        .await
    {
        return err(e);
    }
    let body = html! {
        h1 { "Pipelines" }
        @if pipelines.is_empty() {
            p.muted { "No pipelines yet. Declare one with the Terraform resource otaas_pipeline." }
        }
        @for p in &pipelines {
            @let spec = &p.spec;
            @let eps: Vec<_> = endpoints.iter().filter(|e| e.spec.pipeline_id == p.id).collect();
            @let outs: Vec<_> = bindings.iter().filter(|b| b.spec.pipeline_id == p.id).collect();
            @let runs: Vec<_> = groups.iter().filter(|g| g.record.spec.pipeline_ids.contains(&p.id)).collect();
            @let ids: Vec<String> = spec.signals.iter().map(|s| format!("{}/{}", s.as_str(), spec.name)).collect();
            @let tp: Vec<_> = report.pipelines.iter().filter(|t| ids.contains(&t.pipeline)).collect();
            article.card.pipeline id={"p-" (p.id)} aria-labelledby={"pt-" (p.id)} {
                h2 id={"pt-" (p.id)} { (spec.name) }
                p {
                    @for s in &spec.signals { span.badge { (s.as_str()) } " " }
                    @if !spec.description.is_empty() { span.muted { (spec.description) } }
                }
                div.flow role="group" aria-label={"Flow of " (spec.name)} {
                    div.stage {
                        h3 { "Receive" }
                        ul {
                            @for e in &eps {
                                li {
                                    "endpoint " code { (e.spec.name) } " :" (e.spec.port)
                                    " " span.muted { (format!("{:?}", e.spec.protocol).to_lowercase()) }
                                    @if e.spec.tls.is_none() { " " span.badge.warn { "no TLS" } }
                                    @if e.spec.auth == EndpointAuth::None { " " span.badge.warn { "no auth" } }
                                }
                            }
                            @for r in spec.receivers.keys() { li { "receiver " code { (r) } } }
                            @if eps.is_empty() && spec.receivers.is_empty() { li.muted { "nothing yet" } }
                        }
                    }
                    div.arrow aria-hidden="true" { "→" }
                    div.stage {
                        h3 { "Process" }
                        @if spec.processors.is_empty() {
                            p.muted { "no processors" }
                        } @else {
                            ol { @for pr in &spec.processors { li { code { (pr.id) } } } }
                        }
                    }
                    div.arrow aria-hidden="true" { "→" }
                    div.stage {
                        h3 { "Export" }
                        ul {
                            @for b in &outs {
                                li {
                                    "binding " code { (b.spec.name) }
                                    ul {
                                        @for d in &b.spec.destinations {
                                            li { code { (d.name) } " (" (d.kind) ")"
                                                @if let Some(e) = &d.endpoint { " → " span.muted { (e) } } }
                                        }
                                    }
                                }
                            }
                            @if outs.is_empty() { li.muted { "no exporter binding" } }
                        }
                    }
                }
                (run_by(&runs, &agents_per_group))
                (throughput(&tp))
            }
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Pipelines", Nav::Pipelines, Some(&viewer), body),
    )
}

fn run_by(runs: &[&crate::store::GroupRecord], agents: &HashMap<AgentGroupId, u64>) -> Markup {
    html! {
        p {
            "Run by: "
            @if runs.is_empty() { span.muted { "no group" } }
            @for (i, g) in runs.iter().enumerate() {
                @if i > 0 { ", " }
                a href={"/groups/" (g.record.id)} { (g.record.spec.name) }
                " (" (agents.get(&g.record.id).copied().unwrap_or(0)) " agents)"
            }
        }
    }
}

fn throughput(tp: &[&otaas_api::insights::PipelineThroughput]) -> Markup {
    let accepted: f64 = tp.iter().map(|t| t.accepted_per_second).sum();
    let sent: f64 = tp.iter().map(|t| t.sent_per_second).sum();
    let refused: f64 = tp.iter().map(|t| t.refused_per_second).sum();
    let reporting = tp.iter().map(|t| t.agents).max().unwrap_or(0);
    html! {
        p.throughput {
            @if tp.is_empty() {
                span.muted { "No throughput reported (agents send it with their own metrics)." }
            } @else {
                "Throughput: " strong { (format!("{accepted:.1}")) } " items/s accepted, "
                (format!("{sent:.1}")) " sent, " (format!("{refused:.1}")) " refused, from "
                (reporting) " agents. " a href="/insights" { "Over time" }
            }
        }
    }
}

/// A pipeline's anchor on this page.
pub(crate) fn anchor(id: PipelineId) -> String {
    format!("/pipelines#p-{id}")
}
