//! The component check: before a write is stored, render the agent groups it would change and
//! refuse it (422 `missing_components`) when a rendered config uses a component type that a
//! connected agent of that group reported it lacks (OpAMP `AvailableComponents`). The agent
//! would only report FAILED later; this says so before anything is pushed, naming the type
//! and the agents. Also served as a dry run (`POST /api/v1/component-check`) so the provider
//! can fail at plan time.
//!
//! It also refuses (422 `unsupported_signal`) a rendered config that puts a component into a
//! `<signal>/...` pipeline when a connected agent of the group reports (per-signal stability in
//! `AvailableComponents`) that the type does not support that signal: the renderer only knows
//! the repo's table, which assumes every signal for types it does not list.
//!
//! Agents that do not report their components are not judged (they may have anything), and
//! neither are disconnected ones (they get the config when they return, and report on it).

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use otaas_api::{
    AgentGroupId, AgentGroupSpec, ComponentCheck, ComponentCheckResult, EndpointId, EndpointSpec,
    ErrorCode, ExporterBindingId, ExporterBindingSpec, MissingComponent, PipelineId, PipelineSpec,
    UnsupportedSignal,
};

use super::json::ApiJson;
use super::{ApiError, validate};
use crate::fleet::{AgentFilter, AgentRecord};
use crate::state::AppState;
use crate::store::{GroupRecord, Record};

/// A write about to be made.
pub(super) enum Change<'a> {
    Pipeline(Option<PipelineId>, &'a PipelineSpec),
    Endpoint(Option<EndpointId>, &'a EndpointSpec),
    Binding(Option<ExporterBindingId>, &'a ExporterBindingSpec),
    Group(Option<AgentGroupId>, &'a AgentGroupSpec),
}

impl Change<'_> {
    /// The request field to blame for a missing component of `kind`.
    fn field(&self, kind: &str) -> &'static str {
        match (self, kind) {
            (Change::Pipeline(..), "processors") => "processors",
            (Change::Pipeline(..), _) => "receivers",
            (Change::Endpoint(..), "extensions") => "auth",
            (Change::Endpoint(..), _) => "protocol",
            (Change::Binding(..), _) => "destinations",
            (Change::Group(..), _) => "pipeline_ids",
        }
    }

    /// The request field to blame for a component in a pipeline of a signal it lacks: what
    /// chose the signals (a pipeline's or binding's `signals`), else what added the component.
    fn signal_field(&self, kind: &str) -> &'static str {
        match self {
            Change::Pipeline(..) => "signals",
            Change::Binding(_, spec) if spec.signals.is_some() => "signals",
            Change::Binding(..) => "destinations",
            Change::Endpoint(..) | Change::Group(..) => self.field(kind),
        }
    }
}

pub(super) fn record<I, S>(id: I, spec: S) -> Record<I, S> {
    let now = Utc::now();
    Record {
        id,
        revision: 0,
        created_at: now,
        updated_at: now,
        spec,
    }
}

/// Replaces the record with `id` (or adds one) in `list`.
pub(super) fn put<I: PartialEq + Copy, S: Clone>(list: &mut Vec<Record<I, S>>, id: I, spec: &S) {
    match list.iter_mut().find(|r| r.id == id) {
        Some(r) => r.spec = spec.clone(),
        None => list.push(record(id, spec.clone())),
    }
}

/// Component types used by a rendered config: kind → types.
fn used_types(yaml: &str) -> BTreeMap<String, BTreeSet<String>> {
    let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(yaml) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for kind in [
        "receivers",
        "processors",
        "exporters",
        "extensions",
        "connectors",
    ] {
        let Some(map) = doc.get(kind).and_then(|v| v.as_mapping()) else {
            continue;
        };
        let types: BTreeSet<String> = map
            .keys()
            .filter_map(|k| k.as_str())
            .map(|id| id.split('/').next().unwrap_or(id).to_owned())
            .collect();
        if !types.is_empty() {
            out.insert(kind.to_owned(), types);
        }
    }
    out
}

/// The components of each `<signal>/...` pipeline of a rendered config: (signal, kind, type).
/// Connectors are left out (their support is per pair of signals).
fn signal_uses(yaml: &str) -> BTreeSet<(String, String, String)> {
    let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(yaml) else {
        return BTreeSet::new();
    };
    let Some(pipelines) = doc
        .get("service")
        .and_then(|s| s.get("pipelines"))
        .and_then(|p| p.as_mapping())
    else {
        return BTreeSet::new();
    };
    let connectors: BTreeSet<&str> = doc
        .get("connectors")
        .and_then(|c| c.as_mapping())
        .map(|m| m.keys().filter_map(|k| k.as_str()).collect())
        .unwrap_or_default();
    let mut out = BTreeSet::new();
    for (name, pipeline) in pipelines {
        let Some(name) = name.as_str() else { continue };
        let signal = name.split('/').next().unwrap_or(name);
        for kind in ["receivers", "processors", "exporters"] {
            let Some(ids) = pipeline.get(kind).and_then(|v| v.as_sequence()) else {
                continue;
            };
            for id in ids.iter().filter_map(|v| v.as_str()) {
                if connectors.contains(id) {
                    continue;
                }
                let ty = id.split('/').next().unwrap_or(id);
                out.insert((signal.to_owned(), kind.to_owned(), ty.to_owned()));
            }
        }
    }
    out
}

/// Checks `change` against the agents it would reach; `Ok` with the groups checked and how
/// many agents were judged.
pub(super) async fn check(
    s: &AppState,
    change: &Change<'_>,
) -> Result<(Vec<String>, usize), ApiError> {
    // A binding's destinations must support some signal the binding carries in its pipeline
    // (a missing pipeline is the store's error to report).
    if let Change::Binding(_, spec) = change
        && let Ok(p) = s.store.get_pipeline(spec.pipeline_id).await
    {
        validate::binding_signals(spec, &p.spec.signals)?;
    }
    // Most fleets (simulated agents, the Python peer) report no components: then there is
    // nothing to judge and no reason to read the whole store on every write.
    // With replicas, the agents held by the others count too (read from the database).
    let fleet: Vec<AgentRecord> = if s.cluster.is_shared() {
        s.fleet.agents(&AgentFilter::default()).await?
    } else if s.agents.any_reports_components() {
        s.agents.list(&AgentFilter::default())
    } else {
        Vec::new()
    };
    if !fleet
        .iter()
        .any(|a| a.connected && a.available_components.is_some())
    {
        return Ok((Vec::new(), 0));
    }
    let mut pipelines = s.store.list_pipelines().await?;
    let mut endpoints = s.store.list_endpoints().await?;
    let mut bindings = s.store.list_bindings().await?;
    let mut groups = s.store.list_groups().await?;
    // Which groups the change touches, with the change applied to the inputs.
    let affected: BTreeSet<AgentGroupId> = match change {
        Change::Pipeline(id, spec) => {
            let id = id.unwrap_or_default();
            put(&mut pipelines, id, *spec);
            groups
                .iter()
                .filter(|g| g.record.spec.pipeline_ids.contains(&id))
                .map(|g| g.record.id)
                .collect()
        }
        Change::Endpoint(id, spec) => {
            put(&mut endpoints, id.unwrap_or_default(), *spec);
            groups
                .iter()
                .filter(|g| g.record.spec.pipeline_ids.contains(&spec.pipeline_id))
                .map(|g| g.record.id)
                .collect()
        }
        Change::Binding(id, spec) => {
            put(&mut bindings, id.unwrap_or_default(), *spec);
            groups
                .iter()
                .filter(|g| g.record.spec.pipeline_ids.contains(&spec.pipeline_id))
                .map(|g| g.record.id)
                .collect()
        }
        Change::Group(id, spec) => {
            let id = id.unwrap_or_default();
            match groups.iter_mut().find(|g| g.record.id == id) {
                Some(g) => g.record.spec = (*spec).clone(),
                None => groups.push(GroupRecord {
                    record: record(id, (*spec).clone()),
                    config_revision: 0,
                    config_hash: String::new(),
                }),
            }
            [id].into()
        }
    };

    let mut missing: Vec<MissingComponent> = Vec::new();
    let mut unsupported: Vec<UnsupportedSignal> = Vec::new();
    let mut checked = Vec::new();
    let mut judged = 0;
    for group in groups.iter().filter(|g| affected.contains(&g.record.id)) {
        // A config that does not render is refused by the config writer with its own error.
        let Ok(rendered) = crate::render::render(
            group,
            &pipelines,
            &endpoints,
            &bindings,
            s.writer.token_key(),
        ) else {
            continue;
        };
        checked.push(group.record.spec.name.clone());
        let used = used_types(&rendered.yaml);
        let by_signal = signal_uses(&rendered.yaml);
        let members = s.agents.members_if_among(
            &fleet,
            group.record.id,
            &group.record.spec.selector,
            group.record.created_at,
        );
        // (kind, type) → agents lacking it.
        let mut lacking: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        // (kind, type, signal) → agents saying the type does not support the signal.
        let mut refusing: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        for agent in &members {
            if let Some(support) = &agent.component_signals {
                for (signal, kind, ty) in &by_signal {
                    let Some(signals) = support.get(kind).and_then(|t| t.get(ty)) else {
                        continue;
                    };
                    if !signals.contains(signal) {
                        refusing
                            .entry((kind.clone(), ty.clone(), signal.clone()))
                            .or_default()
                            .push(agent.id.to_string());
                    }
                }
            }
            let Some(have) = &agent.available_components else {
                continue;
            };
            judged += 1;
            for (kind, types) in &used {
                let has = have.get(kind);
                for ty in types {
                    if !has.is_some_and(|h| h.contains(ty)) {
                        lacking
                            .entry((kind.clone(), ty.clone()))
                            .or_default()
                            .push(agent.id.to_string());
                    }
                }
            }
        }
        missing.extend(
            lacking
                .into_iter()
                .map(|((kind, ty), agents)| MissingComponent {
                    kind,
                    component_type: ty,
                    group: group.record.spec.name.clone(),
                    agents,
                }),
        );
        unsupported.extend(refusing.into_iter().map(|((kind, ty, signal), agents)| {
            UnsupportedSignal {
                kind,
                component_type: ty,
                signal,
                group: group.record.spec.name.clone(),
                agents,
            }
        }));
    }
    if missing.is_empty() {
        if unsupported.is_empty() {
            return Ok((checked, judged));
        }
        return Err(unsupported_error(change, unsupported));
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|m| {
            let kind = m.kind.trim_end_matches('s');
            format!(
                "{kind} {:?} (agent group {:?}; lacking: {})",
                m.component_type,
                m.group,
                m.agents.join(", ")
            )
        })
        .collect();
    let message = format!(
        "the change needs component types that agents of the target group do not have: {}",
        parts.join("; ")
    );
    let mut err = ApiError::new(
        http::StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::MissingComponents,
        message,
        Some(change.field(&missing[0].kind)),
    );
    err.body.error.missing_components = missing;
    Err(err)
}

/// The 422 `unsupported_signal` for `unsupported` (not empty).
fn unsupported_error(change: &Change<'_>, unsupported: Vec<UnsupportedSignal>) -> ApiError {
    let parts: Vec<String> = unsupported
        .iter()
        .map(|u| {
            let kind = u.kind.trim_end_matches('s');
            format!(
                "{kind} {:?} in a {} pipeline (agent group {:?}; not supported by: {})",
                u.component_type,
                u.signal,
                u.group,
                u.agents.join(", ")
            )
        })
        .collect();
    let message = format!(
        "the change puts components into pipelines of signals that agents of the target group \
         report those component types do not support: {}",
        parts.join("; ")
    );
    let mut err = ApiError::new(
        http::StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UnsupportedSignal,
        message,
        Some(change.signal_field(&unsupported[0].kind)),
    );
    err.body.error.unsupported_signals = unsupported;
    err
}

/// A dry run for an object that is gone judges the spec as sent (the write itself will answer
/// 404); other refusals stand.
pub(super) fn or_as_sent<S: Clone>(resolved: Result<S, ApiError>, sent: &S) -> Result<S, ApiError> {
    match resolved {
        Err(e) if e.status == http::StatusCode::NOT_FOUND => Ok(sent.clone()),
        other => other,
    }
}

/// `POST /api/v1/component-check`: the check alone, for a pipeline, an agent group or an
/// exporter binding as it would be written (the provider calls this while planning).
pub(super) async fn dry_run(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ComponentCheck>,
) -> Result<Json<ComponentCheckResult>, ApiError> {
    let (groups, agents) = match (&req.pipeline, &req.agent_group, &req.exporter_binding) {
        (Some(p), None, None) => {
            validate::pipeline(&p.spec)?;
            let spec = match p.id {
                Some(id) => or_as_sent(
                    super::validate::resolve_pipeline(s.store.as_ref(), id, p.spec.clone()).await,
                    &p.spec,
                )?,
                None => p.spec.clone(),
            };
            s.policy.pipeline(&spec).map_err(validate::policy_error)?;
            check(&s, &Change::Pipeline(p.id, &spec)).await?
        }
        (None, Some(g), None) => {
            match g.id {
                Some(id) => {
                    validate::group(&g.spec)?;
                    validate::pin(s.store.as_ref(), id, &g.spec).await?;
                }
                None => validate::new_group(&g.spec)?,
            }
            check(&s, &Change::Group(g.id, &g.spec)).await?
        }
        (None, None, Some(b)) => {
            validate::binding(&b.spec)?;
            let spec = match b.id {
                Some(id) => or_as_sent(
                    super::validate::resolve_binding(s.store.as_ref(), id, b.spec.clone()).await,
                    &b.spec,
                )?,
                None => b.spec.clone(),
            };
            s.policy.binding(&spec).map_err(validate::policy_error)?;
            check(&s, &Change::Binding(b.id, &spec)).await?
        }
        _ => {
            return Err(ApiError::invalid(
                "pipeline",
                "give exactly one of pipeline, agent_group or exporter_binding",
            ));
        }
    };
    Ok(Json(ComponentCheckResult { groups, agents }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_types_strip_names() {
        let yaml = "receivers:\n  filelog/app: {}\n  otlp/ep: {}\nexporters:\n  otlphttp/out.sink: {}\nservice: {}\n";
        let used = used_types(yaml);
        assert_eq!(
            used["receivers"],
            BTreeSet::from(["filelog".to_owned(), "otlp".to_owned()])
        );
        assert_eq!(used["exporters"], BTreeSet::from(["otlphttp".to_owned()]));
        assert!(!used.contains_key("processors"));
    }

    #[test]
    fn signal_uses_read_the_signal_from_the_pipeline_name() {
        let yaml = "receivers:\n  filelog/app: {}\nconnectors:\n  forward/x: {}\nexporters:\n  otlphttp/out: {}\nservice:\n  pipelines:\n    logs/app:\n      receivers: [filelog/app]\n      exporters: [otlphttp/out, forward/x]\n    metrics/app:\n      receivers: [forward/x]\n      exporters: [otlphttp/out]\n";
        let got: Vec<(String, String, String)> = signal_uses(yaml).into_iter().collect();
        let want: Vec<(String, String, String)> = [
            ("logs", "exporters", "otlphttp"),
            ("logs", "receivers", "filelog"),
            ("metrics", "exporters", "otlphttp"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
