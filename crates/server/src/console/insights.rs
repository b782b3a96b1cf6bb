//! The insights page: throughput per pipeline and per agent over time (charts), anomalies
//! (drops, spikes, flapping, heartbeat loss, ...) and security events (refused agent
//! authentications by source, endpoints without TLS or auth), each linked to its agent, group
//! or pipeline.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use maud::html;
use otaas_api::AgentGroupId;

use super::charts::{MAX_SERIES, Series, line_chart};
use super::context::{Console, Viewer};
use super::layout::{self, Nav};

/// Agents drawn in the per-agent chart (the busiest).
const TOP_AGENTS: usize = MAX_SERIES;

/// `GET /insights`.
pub(crate) async fn page(State(c): State<Console>, viewer: Viewer) -> Response {
    let (report, groups) = match tokio::try_join!(c.insights.report(), c.store.list_groups()) {
        Ok(r) => r,
        Err(e) => return layout::store_error(e, &viewer),
    };
    let names: HashMap<AgentGroupId, String> = groups
        .into_iter()
        .map(|g| (g.record.id, g.record.spec.name))
        .collect();
    // Per pipeline: the busiest pipelines of the latest refresh, over every kept refresh.
    let trend = c.insights.pipeline_trend();
    let mut per_pipeline: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for point in &trend {
        for (p, v) in &point.accepted {
            per_pipeline
                .entry(p.clone())
                .or_default()
                .push((point.at.timestamp(), *v));
        }
    }
    let mut pipelines: Vec<Series> = per_pipeline
        .into_iter()
        .map(|(name, points)| Series { name, points })
        .collect();
    pipelines.sort_by(|a, b| last(b).total_cmp(&last(a)));
    let mut busiest: Vec<&otaas_api::insights::AgentInsight> = report.agents.iter().collect();
    busiest.sort_by(|a, b| b.accepted_per_second.total_cmp(&a.accepted_per_second));
    let agents: Vec<Series> = busiest
        .iter()
        .take(TOP_AGENTS)
        .map(|a| Series {
            name: layout::agent_id_text(&a.agent_id),
            points: c
                .insights
                .agent_trend(&a.agent_id)
                .into_iter()
                .map(|p| (p.at, f64::from(p.accepted)))
                .collect(),
        })
        .collect();
    let group_link = |g: Option<AgentGroupId>| {
        html! {
            @match g {
                Some(g) => a href={"/groups/" (g)} { (names.get(&g).map_or("(deleted)", String::as_str)) },
                None => span.muted { "unmanaged" },
            }
        }
    };
    let body = html! {
        h1 { "Insights" }
        p.muted { "From this replica's agents and their own metrics, as of " (layout::when(report.generated_at)) "." }
        section aria-labelledby="tp-title" {
            h2 #tp-title { "Throughput" }
            div.grid2 {
                div.card { (line_chart("chart-pipelines", "Accepted items/s per pipeline (fleet)", "items/s", &pipelines)) }
                div.card { (line_chart("chart-agents", "Accepted items/s, busiest agents", "items/s", &agents)) }
            }
            @if !report.pipelines.is_empty() {
                div.table-wrap {
                    table #pipeline-throughput {
                        thead { tr {
                            th scope="col" { "Collector pipeline" }
                            th.num scope="col" { "Agents" }
                            th.num scope="col" { "Accepted/s" }
                            th.num scope="col" { "Refused/s" }
                            th.num scope="col" { "Sent/s" }
                        } }
                        tbody {
                            @for p in &report.pipelines {
                                tr {
                                    td { code { (p.pipeline) } }
                                    td.num { (p.agents) }
                                    td.num { (format!("{:.1}", p.accepted_per_second)) }
                                    td.num { (format!("{:.1}", p.refused_per_second)) }
                                    td.num { (format!("{:.1}", p.sent_per_second)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="anomalies-title" {
            h2 #anomalies-title { "Anomalies (" (report.anomalies.len()) ")" }
            @if report.anomalies.is_empty() {
                p.muted { "None right now." }
            } @else {
                div.table-wrap {
                    table #anomalies {
                        thead { tr {
                            th scope="col" { "Kind" }
                            th scope="col" { "Agent" }
                            th scope="col" { "Group" }
                            th scope="col" { "What" }
                        } }
                        tbody {
                            @for a in &report.anomalies {
                                tr {
                                    td { (kind(a.kind)) }
                                    td { a href={"/agents/" (a.agent_id)} { (layout::agent_id(&a.agent_id)) } }
                                    td { (group_link(a.group_id)) }
                                    td { (a.message) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="security-title" {
            h2 #security-title { "Security" }
            div.grid2 {
                div.card {
                    h3 { "Refused agent authentications" }
                    @if report.security.auth_failures.is_empty() {
                        p.muted { "None." }
                    } @else {
                        table #auth-failures {
                            thead { tr { th scope="col" { "Source" } th.num scope="col" { "Count" } th scope="col" { "Last" } } }
                            tbody {
                                @for f in &report.security.auth_failures {
                                    tr { td { code { (f.source) } } td.num { (f.count) } td { (layout::when(f.last_at)) } }
                                }
                            }
                        }
                    }
                }
                div.card {
                    h3 { "Endpoints without TLS or auth" }
                    @if report.security.exposed_endpoints.is_empty() {
                        p.muted { "None." }
                    } @else {
                        ul #exposed-endpoints {
                            @for e in &report.security.exposed_endpoints {
                                li {
                                    a href="/pipelines" { (e.name) } ": "
                                    @if !e.tls { span.badge.warn { "no TLS" } " " }
                                    @if !e.auth { span.badge.warn { "no auth" } }
                                }
                            }
                        }
                    }
                    h3 { "Unmanaged agents" }
                    p {
                        (report.security.unmanaged_agents.len()) " agents run outside any group. "
                        a href="/fleet?group=unmanaged" { "See them" }
                    }
                }
            }
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Insights", Nav::Insights, Some(&viewer), body),
    )
}

fn last(s: &Series) -> f64 {
    s.points.last().map_or(0.0, |p| p.1)
}

fn kind(k: otaas_api::insights::AnomalyKind) -> &'static str {
    use otaas_api::insights::AnomalyKind::*;
    match k {
        ThroughputDrop => "throughput drop",
        ThroughputSpike => "throughput spike",
        RefusedSpike => "refused spike",
        HeartbeatLoss => "heartbeat loss",
        UnhealthyComponent => "unhealthy component",
        Drift => "drift",
        FlappingConnection => "flapping connection",
    }
}
