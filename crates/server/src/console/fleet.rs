//! The fleet page: counts of the whole fleet (live), agents per group, and one page of agents
//! under the chosen filters, paged on the server by agent id.
//!
//! One walk of the fleet serves the counts and the page: the counts are sums, and the page keeps
//! only the `PAGE_SIZE + 1` smallest ids after the cursor, so a 10,000-agent fleet costs one
//! pass and no more memory than a 10-agent one.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use http::StatusCode;
use maud::{Markup, html};
use otaas_api::{AgentGroupId, AgentStatus};
use serde::Deserialize;

use super::context::{Console, PAGE_SIZE, Viewer};
use super::layout::{self, Nav, agent_id, ago, badge};
use crate::api::agents::status_of;
use crate::fleet::{AgentFilter, AgentId, AgentRecord, Transport};

/// The filters of the fleet page, as the query string carries them.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct FleetQuery {
    /// A group id, or `unmanaged`.
    pub group: Option<String>,
    /// `healthy` or `unhealthy`.
    pub health: Option<String>,
    /// `yes` or `no`.
    pub connected: Option<String>,
    /// Label selector, `k=v, k2=v2`.
    pub labels: Option<String>,
    /// The last agent id of the previous page.
    pub after: Option<String>,
}

/// What the filters select, checked.
#[derive(Default)]
struct Filters {
    filter: AgentFilter,
    unmanaged: bool,
    after: Option<AgentId>,
}

fn parse(q: &FleetQuery) -> Result<Filters, (&'static str, String)> {
    let mut f = Filters::default();
    fn set(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    match set(&q.group) {
        None => {}
        Some("unmanaged") => f.unmanaged = true,
        Some(g) => {
            f.filter.group_id = Some(g.parse::<AgentGroupId>().map_err(|_| {
                (
                    "group",
                    format!("group {g:?} is not a group id or \"unmanaged\""),
                )
            })?)
        }
    }
    f.filter.healthy = match set(&q.health) {
        None => None,
        Some("healthy") => Some(true),
        Some("unhealthy") => Some(false),
        Some(o) => {
            return Err((
                "health",
                format!("health must be healthy or unhealthy, not {o:?}"),
            ));
        }
    };
    f.filter.connected = match set(&q.connected) {
        None => None,
        Some("yes") => Some(true),
        Some("no") => Some(false),
        Some(o) => {
            return Err((
                "connected",
                format!("connected must be yes or no, not {o:?}"),
            ));
        }
    };
    if let Some(sel) = set(&q.labels) {
        for item in sel.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| ("labels", format!("label filter {item:?} is not key=value")))?;
            f.filter
                .selector
                .insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    if let Some(a) = set(&q.after) {
        f.after = Some(
            AgentId::parse(a).map_err(|_| ("after", format!("after {a:?} is not an agent id")))?,
        );
    }
    Ok(f)
}

/// Counts over a set of agents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) total: u64,
    pub(crate) connected: u64,
    pub(crate) healthy: u64,
    pub(crate) unhealthy: u64,
    pub(crate) applied: u64,
    pub(crate) pending: u64,
    pub(crate) failed: u64,
    pub(crate) drifted: u64,
    pub(crate) unmanaged: u64,
}

impl Counts {
    fn add(&mut self, r: &AgentRecord) {
        self.total += 1;
        self.connected += u64::from(r.connected);
        match r.health.as_ref().map(|h| h.healthy) {
            Some(true) => self.healthy += 1,
            Some(false) => self.unhealthy += 1,
            None => {}
        }
        match status_of(r) {
            AgentStatus::Applied => self.applied += 1,
            AgentStatus::Pending | AgentStatus::Applying => self.pending += 1,
            AgentStatus::Failed => self.failed += 1,
            AgentStatus::Drifted => self.drifted += 1,
            AgentStatus::Unmanaged => self.unmanaged += 1,
        }
    }
}

/// The fleet's counts, overall and per group (what the live region shows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) all: Counts,
    pub(crate) groups: HashMap<AgentGroupId, Counts>,
}

impl Summary {
    fn add(&mut self, r: &AgentRecord) {
        self.all.add(r);
        if let Some(g) = r.group_id {
            self.groups.entry(g).or_default().add(r);
        }
    }
}

/// One walk: the summary, the matching count, and the page after the cursor.
async fn walk(
    c: &Console,
    f: &Filters,
) -> Result<(Summary, u64, Vec<AgentRecord>, bool), crate::store::StoreError> {
    let mut summary = Summary::default();
    let mut matching = 0u64;
    let mut page: BTreeMap<AgentId, AgentRecord> = BTreeMap::new();
    let limit = PAGE_SIZE;
    c.fleet
        .visit_agents(&AgentFilter::default(), |r| {
            summary.add(r);
            if !f.filter.matches(r) || (f.unmanaged && r.group_id.is_some()) {
                return;
            }
            matching += 1;
            if f.after.is_some_and(|a| r.id <= a) {
                return;
            }
            if page.len() > limit {
                match page.last_key_value() {
                    Some((last, _)) if *last > r.id => {
                        page.pop_last();
                    }
                    _ => return,
                }
            }
            page.insert(r.id, r.clone());
        })
        .await?;
    let more = page.len() > limit;
    let mut page: Vec<AgentRecord> = page.into_values().collect();
    page.truncate(limit);
    Ok((summary, matching, page, more))
}

/// The fleet's counts alone (the live stream's source).
pub(crate) async fn summary(c: &Console) -> Result<Summary, crate::store::StoreError> {
    let mut summary = Summary::default();
    c.fleet
        .visit_agents(&AgentFilter::default(), |r| summary.add(r))
        .await?;
    Ok(summary)
}

/// `GET /fleet`.
pub(crate) async fn page(
    State(c): State<Console>,
    viewer: Viewer,
    Query(q): Query<FleetQuery>,
) -> Response {
    match render_fleet(&c, &viewer, &q).await {
        Ok(m) => layout::respond(StatusCode::OK, m),
        Err(r) => r,
    }
}

/// The fleet page for a viewer and filters.
pub(crate) async fn render_fleet(
    c: &Console,
    viewer: &Viewer,
    q: &FleetQuery,
) -> Result<Markup, Response> {
    let filters = match parse(q) {
        Ok(f) => f,
        Err((field, msg)) => {
            return Err(layout::error_page(
                StatusCode::BAD_REQUEST,
                &format!("Bad filter: {field}"),
                &msg,
                Some(viewer),
            ));
        }
    };
    let unavailable = |e: crate::store::StoreError| layout::store_error(e, viewer);
    let groups = c.store.list_groups().await.map_err(unavailable)?;
    let (summary, matching, agents, more) = walk(c, &filters).await.map_err(unavailable)?;
    let names: HashMap<AgentGroupId, String> = groups
        .iter()
        .map(|g| (g.record.id, g.record.spec.name.clone()))
        .collect();
    let now = Utc::now();
    let next = more
        .then(|| agents.last().map(|a| a.id.to_string()))
        .flatten();
    let body = html! {
        h1 { "Fleet" }
        section aria-labelledby="counts-title" {
            h2 #counts-title { "Now" }
            div #fleet-live data-live="/fleet/live" aria-live="polite" {
                (live_fragment(&summary, &names))
            }
            p.stale-note { "Live updates paused; reload to see the latest." }
        }
        section aria-labelledby="agents-title" {
            h2 #agents-title { "Agents" }
            (filters_form(q, &groups))
            p #agents-matching { (matching) " agents match." }
            @if agents.is_empty() {
                p.muted { "No agent matches these filters." }
            } @else {
                div.table-wrap {
                    table #agents {
                        caption.skip { "Agents, by id" }
                        thead { tr {
                            th scope="col" { "Agent" }
                            th scope="col" { "Group" }
                            th scope="col" { "Config" }
                            th scope="col" { "Health" }
                            th scope="col" { "Connection" }
                            th scope="col" { "Collector" }
                            th scope="col" { "Replica" }
                            th scope="col" { "Last seen" }
                            th scope="col" { "Labels" }
                        } }
                        tbody {
                            @for a in &agents {
                                tr {
                                    td { a href={"/agents/" (a.id)} { (agent_id(&a.id.to_string())) } }
                                    td {
                                        @match a.group_id {
                                            Some(g) => a href={"/groups/" (g)} { (names.get(&g).map_or("(deleted)", String::as_str)) },
                                            None => span.muted { "unmanaged" },
                                        }
                                    }
                                    td { (badge(status_word(status_of(a)))) }
                                    td { (health_badge(a)) }
                                    td { (connection(a)) }
                                    td { (a.agent_version.as_deref().unwrap_or("—")) }
                                    td { (a.replica_id.as_deref().unwrap_or("—")) }
                                    td { (ago(a.last_seen, now)) }
                                    td { (labels_text(a)) }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if filters.after.is_some() {
                    a href=(page_link(q, None)) { "First page" }
                }
                @if let Some(n) = &next {
                    a href=(page_link(q, Some(n))) rel="next" { "Next page" }
                }
            }
        }
    };
    Ok(layout::page("Fleet", Nav::Fleet, Some(viewer), body))
}

/// The live part of the fleet page: the counts and the groups.
pub(crate) fn live_fragment(s: &Summary, names: &HashMap<AgentGroupId, String>) -> Markup {
    let mut groups: Vec<(&AgentGroupId, &String)> = names.iter().collect();
    groups.sort_by(|a, b| a.1.cmp(b.1));
    html! {
        dl.cards #fleet-counts {
            div { dt { "Agents" } dd data-count="total" { (s.all.total) } }
            div { dt { "Connected" } dd data-count="connected" { (s.all.connected) } }
            div { dt { "Healthy" } dd data-count="healthy" { (s.all.healthy) } }
            div { dt { "Unhealthy" } dd data-count="unhealthy" { (s.all.unhealthy) } }
            div { dt { "Config applied" } dd data-count="applied" { (s.all.applied) } }
            div { dt { "Config pending" } dd data-count="pending" { (s.all.pending) } }
            div { dt { "Config failed" } dd data-count="failed" { (s.all.failed) } }
            div { dt { "Unmanaged" } dd data-count="unmanaged" { (s.all.unmanaged) } }
        }
        h3 { "Groups" }
        @if groups.is_empty() {
            p.muted { "No agent groups yet." }
        } @else {
            div.table-wrap {
                table #groups {
                    thead { tr {
                        th scope="col" { "Group" }
                        th.num scope="col" { "Agents" }
                        th.num scope="col" { "Connected" }
                        th.num scope="col" { "Applied" }
                        th.num scope="col" { "Pending" }
                        th.num scope="col" { "Failed" }
                        th.num scope="col" { "Unhealthy" }
                    } }
                    tbody {
                        @for (id, name) in groups {
                            @let n = s.groups.get(id).cloned().unwrap_or_default();
                            tr data-group=(name) {
                                td { a href={"/groups/" (id)} { (name) } }
                                td.num { (n.total) }
                                td.num { (n.connected) }
                                td.num { (n.applied) }
                                td.num { (n.pending) }
                                td.num data-count="group-failed" { (n.failed) }
                                td.num { (n.unhealthy) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn filters_form(q: &FleetQuery, groups: &[crate::store::GroupRecord]) -> Markup {
    let mut group_options = vec![
        (String::new(), "Any".to_owned()),
        ("unmanaged".to_owned(), "Unmanaged".to_owned()),
    ];
    group_options.extend(
        groups
            .iter()
            .map(|g| (g.record.id.to_string(), g.record.spec.name.clone())),
    );
    let fixed = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
            .collect()
    };
    html! {
        form.filters method="get" action="/fleet" role="search" aria-label="Filter agents" {
            (select("f-group", "group", "Group", &q.group, &group_options))
            (select("f-health", "health", "Health", &q.health,
                &fixed(&[("", "Any"), ("healthy", "Healthy"), ("unhealthy", "Unhealthy")])))
            (select("f-connected", "connected", "Connection", &q.connected,
                &fixed(&[("", "Any"), ("yes", "Connected"), ("no", "Disconnected")])))
            div.field {
                label for="f-labels" { "Labels (key=value, …)" }
                input #f-labels type="text" name="labels" value=[q.labels.as_deref()]
                    placeholder="env=prod, region=eu";
            }
            button type="submit" { "Filter" }
        }
    }
}

/// A labelled `<select>` with the current value chosen.
fn select(
    id: &str,
    name: &str,
    label: &str,
    current: &Option<String>,
    options: &[(String, String)],
) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (value, text) in options {
                    option value=(value) selected[!value.is_empty() && current.as_deref() == Some(value.as_str())] { (text) }
                }
            }
        }
    }
}

fn page_link(q: &FleetQuery, after: Option<&str>) -> String {
    let mut pairs = Vec::new();
    for (k, v) in [
        ("group", &q.group),
        ("health", &q.health),
        ("connected", &q.connected),
        ("labels", &q.labels),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            pairs.push(format!("{k}={}", encode(v)));
        }
    }
    if let Some(a) = after {
        pairs.push(format!("after={a}"));
    }
    if pairs.is_empty() {
        "/fleet".into()
    } else {
        format!("/fleet?{}", pairs.join("&"))
    }
}

/// Percent-encoding for a query value.
pub(crate) fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn status_word(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::Applied => "applied",
        AgentStatus::Pending => "pending",
        AgentStatus::Applying => "applying",
        AgentStatus::Failed => "failed",
        AgentStatus::Drifted => "drifted",
        AgentStatus::Unmanaged => "unmanaged",
    }
}

pub(crate) fn health_badge(a: &AgentRecord) -> Markup {
    match a.health.as_ref().map(|h| h.healthy) {
        Some(true) => badge("healthy"),
        Some(false) => badge("unhealthy"),
        None => html! { span.muted { "not reported" } },
    }
}

pub(crate) fn connection(a: &AgentRecord) -> Markup {
    let transport = match a.transport {
        Some(Transport::Ws) => "WebSocket",
        Some(Transport::Http) => "HTTP",
        None => "",
    };
    html! {
        @if a.connected { (badge("connected")) } @else { (badge("disconnected")) }
        @if !transport.is_empty() { " " span.muted { (transport) } }
    }
}

fn labels_text(a: &AgentRecord) -> Markup {
    html! {
        @for (i, (k, v)) in a.labels.iter().enumerate() {
            @if i > 0 { ", " }
            code { (k) "=" (v) }
        }
    }
}

/// Group pages link back here filtered to their agents.
pub(crate) fn group_link(id: AgentGroupId) -> String {
    format!("/fleet?group={id}")
}
