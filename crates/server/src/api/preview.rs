//! `POST /api/v1/config-preview`: what one pipeline, endpoint or exporter binding, as it would
//! be written, renders in collector configs — made by the renderer itself
//! ([`render::fragment`]) — and which agent groups the write reaches,
//! with their agent counts and whether their config changes. The provider calls it while
//! planning, so the plan shows the collector config change.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use otaas_api::{
    AgentGroupId, ConfigPreview, ConfigPreviewResult, EndpointId, ExporterBindingId, PipelineId,
    PreviewGroup,
};

use super::components::{or_as_sent, put, record};
use super::json::ApiJson;
use super::{ApiError, validate};
use crate::fleet::AgentFilter;
use crate::render::{self, Object};
use crate::secrets::KnownSecrets;
use crate::state::AppState;

pub(super) async fn preview(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ConfigPreview>,
) -> Result<Json<ConfigPreviewResult>, ApiError> {
    let mut pipelines = s.store.list_pipelines().await?;
    let mut endpoints = s.store.list_endpoints().await?;
    let mut bindings = s.store.list_bindings().await?;
    // The object's own secret values are redacted like every stored one.
    let mut own_secrets: Vec<String> = Vec::new();
    let (yaml, pipeline_id) = match (&req.pipeline, &req.endpoint, &req.exporter_binding) {
        (Some(p), None, None) => {
            validate::pipeline(&p.spec)?;
            let id = p.id.unwrap_or(PipelineId(uuid::Uuid::nil()));
            let spec = match p.id {
                Some(id) => or_as_sent(
                    validate::resolve_pipeline(s.store.as_ref(), id, p.spec.clone()).await,
                    &p.spec,
                )?,
                None => p.spec.clone(),
            };
            s.policy.pipeline(&spec).map_err(validate::policy_error)?;
            own_secrets.extend(spec.secrets.values().cloned());
            let rec = record(id, spec.clone());
            let yaml = render::fragment(Object::Pipeline(&rec), s.writer.token_key(), &s.policy);
            put(&mut pipelines, id, &spec);
            (yaml, p.id)
        }
        (None, Some(e), None) => {
            validate::endpoint(&e.spec)?;
            s.policy.endpoint(&e.spec).map_err(validate::policy_error)?;
            let id = e.id.unwrap_or(EndpointId(uuid::Uuid::nil()));
            let rec = record(id, e.spec.clone());
            let yaml = render::fragment(Object::Endpoint(&rec), s.writer.token_key(), &s.policy);
            put(&mut endpoints, id, &e.spec);
            (yaml, Some(e.spec.pipeline_id))
        }
        (None, None, Some(b)) => {
            validate::binding(&b.spec)?;
            let spec = match b.id {
                Some(id) => or_as_sent(
                    validate::resolve_binding(s.store.as_ref(), id, b.spec.clone()).await,
                    &b.spec,
                )?,
                None => b.spec.clone(),
            };
            s.policy.binding(&spec).map_err(validate::policy_error)?;
            own_secrets.extend(spec.secrets.values().cloned());
            for d in &spec.destinations {
                own_secrets.extend(d.headers.values().cloned());
            }
            let id = b.id.unwrap_or(ExporterBindingId(uuid::Uuid::nil()));
            let rec = record(id, spec.clone());
            let yaml = render::fragment(Object::Binding(&rec), s.writer.token_key(), &s.policy);
            put(&mut bindings, id, &spec);
            (yaml, Some(spec.pipeline_id))
        }
        _ => {
            return Err(ApiError::invalid(
                "pipeline",
                "give exactly one of pipeline, endpoint or exporter_binding",
            ));
        }
    };
    let yaml = yaml.map_err(|e| ApiError::invalid(e.field().unwrap_or("spec"), e.to_string()))?;
    let known = crate::secrets::known(s.store.as_ref()).await?;
    let known = KnownSecrets::new(known.values().chain(own_secrets));
    let yaml = render::redact_known(&yaml, &known)
        .map_err(|e| ApiError::invalid("spec", e.to_string()))?;

    // The groups running the pipeline, rendered with the change.
    let mut groups = Vec::new();
    if let Some(pid) = pipeline_id {
        let reached: Vec<_> = s
            .store
            .list_groups()
            .await?
            .into_iter()
            .filter(|g| g.record.spec.pipeline_ids.contains(&pid))
            .collect();
        let ids: BTreeSet<AgentGroupId> = reached.iter().map(|g| g.record.id).collect();
        let mut counts = std::collections::BTreeMap::<AgentGroupId, u64>::new();
        s.fleet
            .visit_agents(&AgentFilter::default(), |a| {
                if let Some(g) = a.group_id.filter(|g| ids.contains(g)) {
                    *counts.entry(g).or_default() += 1;
                }
            })
            .await?;
        // A transaction only to read each group's token grace periods; never committed.
        let mut tx = s.store.begin_config().await?;
        for g in reached {
            let grace = tx
                .group_inputs(g.record.id)
                .await?
                .map(|i| i.grace)
                .unwrap_or_default();
            let changes = match render::render_with_policy(
                &g,
                &pipelines,
                &endpoints,
                &bindings,
                s.writer.token_key(),
                &grace,
                &s.policy,
            ) {
                Ok(r) => r.hash_hex() != g.config_hash,
                // The write itself would be refused with this error; it changes nothing.
                Err(_) => false,
            };
            groups.push(PreviewGroup {
                group_id: g.record.id,
                group_name: g.record.spec.name.clone(),
                agents: counts.get(&g.record.id).copied().unwrap_or(0),
                changes,
                pinned_revision: g.record.spec.pinned_revision,
            });
        }
    }
    Ok(Json(ConfigPreviewResult { yaml, groups }))
}
