//! `otaas_pipeline`: a named collector pipeline (signals, receivers, ordered processors), and
//! its list resource for `terraform query`.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use futures::stream::BoxStream;
use otaas_api::{Client, Pipeline, PipelineId, PipelineSpec, ProcessorSpec, Signal, components};

use super::common::*;
use super::rollout;
use crate::framework::*;

pub struct PipelineResource;

pub fn schema() -> Schema {
    Schema::new(
        "A named OpenTelemetry Collector pipeline: the signals it carries, extra receivers and an \
         ordered list of processors. Exporters are attached with `otaas_exporter_binding`, ingest \
         endpoints with `otaas_endpoint`; the pipeline reaches collectors through an \
         `otaas_agent_group`. Every change that alters a group's rendered config creates a new \
         group revision that is rolled out to the group's agents.",
        vec![
            Attribute::computed("id", Type::String)
                .use_state_for_unknown()
                .description("Server-assigned id (a UUID)."),
            Attribute::required("name", Type::String).description(
                "Unique pipeline name, `[a-z0-9_-]{1,63}`. The rendered collector pipelines are \
                 named `<signal>/<name>`.",
            ),
            Attribute::optional_computed("description", Type::String)
                .description("Free text for humans. Defaults to `\"\"`."),
            Attribute::required("signals", Type::set(Type::String)).description(
                "The signals this pipeline carries: a non-empty subset of `traces`, `metrics`, \
                 `logs`.",
            ),
            Attribute::optional_computed("receivers", Type::map(Type::String))
                .json_semantic()
                .description(
                    "Extra receivers (besides the pipeline's `otaas_endpoint`s): component id \
                     (`type` or `type/name`) → configuration as a JSON object string, usually \
                     `jsonencode({...})`. Compared as JSON, so reformatting is not a change. \
                     Defaults to `{}`.",
                ),
            Attribute::nested(
                "processors",
                Nesting::List,
                Mode::OptionalComputed,
                vec![
                    Attribute::required("id", Type::String).description(
                        "Processor component id, `type` or `type/name` (e.g. `batch`, \
                         `attributes/redact`). Unique within the pipeline.",
                    ),
                    Attribute::optional_computed("config", Type::String)
                        .json_semantic()
                        .description(
                            "The processor's configuration as a JSON object string, usually \
                             `jsonencode({...})`; compared as JSON. Defaults to `\"{}\"`.",
                        ),
                ],
            )
            .description("Processors in the order data flows through them. Defaults to `[]`."),
            Attribute::computed("revision", Type::Number).description(
                "The pipeline object's revision on the server: 1 at creation, +1 per update.",
            ),
        ]
        .into_iter()
        .chain(super::secrets::attributes("pipeline"))
        .chain([collector_config_attribute("receivers and processors")])
        .collect(),
    )
}

pub(crate) fn identity_schema() -> IdentitySchema {
    IdentitySchema {
        version: 0,
        attributes: vec![IdentityAttribute {
            name: "id".into(),
            ty: Type::String,
            required_for_import: true,
            description: "The pipeline's server id (a UUID).".into(),
        }],
    }
}

/// The state of a pipeline as the server holds it; `prior` keeps the user's JSON formatting,
/// its configured credentials where the server shows them redacted, and its secret values.
pub fn state(p: &Pipeline, prior: &Value) -> Value {
    let mut v = state_without_secrets(p, prior);
    for (k, x) in super::secrets::state(&p.secret_digests, prior) {
        v.set(k, x);
    }
    v
}

fn state_without_secrets(p: &Pipeline, prior: &Value) -> Value {
    let prior_receivers = prior.get("receivers");
    let prior_procs = match prior.get("processors") {
        Some(Value::List(items)) => items.as_slice(),
        _ => &[],
    };
    Value::object([
        ("id", Value::string(p.id.to_string())),
        ("name", Value::string(&p.name)),
        ("description", Value::string(&p.description)),
        (
            "signals",
            string_set(p.signals.iter().map(|s| s.as_str().to_string())),
        ),
        (
            "receivers",
            Value::Map(
                p.receivers
                    .iter()
                    .map(|(k, v)| {
                        let prior = prior_receivers.and_then(|m| match m {
                            Value::Map(m) => m.get(k),
                            _ => None,
                        });
                        (k.clone(), json_state(prior, v))
                    })
                    .collect(),
            ),
        ),
        (
            "processors",
            Value::List(
                p.processors
                    .iter()
                    .enumerate()
                    .map(|(i, proc_)| {
                        // Same position and id: the user's text for the same document.
                        let prior = prior_procs
                            .get(i)
                            .filter(|pp| pp.get("id") == Some(&Value::string(&proc_.id)))
                            .and_then(|pp| pp.get("config"));
                        Value::object([
                            ("id", Value::string(&proc_.id)),
                            ("config", json_state(prior, &proc_.config)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("revision", Value::int(p.revision)),
    ])
}

fn signal(s: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|x| x.as_str() == s)
}

/// The preview of a pipeline as the server holds it (its stored secrets kept).
fn preview_of(p: &Pipeline) -> otaas_api::ConfigPreview {
    otaas_api::ConfigPreview {
        pipeline: Some(otaas_api::PipelineCheck {
            id: Some(p.id),
            spec: PipelineSpec {
                name: p.name.clone(),
                description: p.description.clone(),
                signals: p.signals.clone(),
                receivers: p.receivers.clone(),
                processors: p.processors.clone(),
                secrets: BTreeMap::new(),
                keep_secrets: true,
            },
        }),
        ..Default::default()
    }
}

/// The spec to write: `planned` for everything but write-only values, which only `config`
/// holds; `prior` (null on create) says whether `secrets_wo_version` moved.
fn spec_for_write(
    v: &Value,
    config: &Value,
    prior: &Value,
    diags: &mut Diagnostics,
) -> PipelineSpec {
    let mut s = spec(v, diags);
    match super::secrets::to_send(v, config, prior) {
        Some(secrets) => s.secrets = secrets,
        None => s.keep_secrets = !prior.is_null(),
    }
    s
}

fn spec(v: &Value, diags: &mut Diagnostics) -> PipelineSpec {
    let receivers = match v.get("receivers") {
        Some(Value::Map(m)) => m
            .iter()
            .map(|(k, cfg)| {
                let path = AttributePath::attr("receivers").push_key(k);
                (k.clone(), parse_json(Some(cfg), path, diags))
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    let processors = match v.get("processors") {
        Some(Value::List(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let path = AttributePath::attr("processors")
                    .push_index(i as i64)
                    .push_attr("config");
                ProcessorSpec {
                    id: string(item, "id").unwrap_or_default(),
                    config: parse_json(item.get("config"), path, diags),
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: string(v, "name").unwrap_or_default(),
        description: string(v, "description").unwrap_or_default(),
        signals: strings(v, "signals")
            .iter()
            .filter_map(|s| signal(s))
            .collect(),
        receivers,
        processors,
    }
}

/// The signals in `v` when every one is known (a plan-time check needs them all).
pub(crate) fn known_signals(v: Option<&Value>) -> Option<Vec<Signal>> {
    let (Value::List(items) | Value::Set(items)) = v? else {
        return None;
    };
    items
        .iter()
        .map(|i| match i {
            Value::String(s) => signal(s),
            _ => None,
        })
        .collect()
}

/// A component that supports none of the signals it would run for (by the shared component
/// table) could never run: the server refuses it (422 at the same attribute), so say it while
/// planning.
pub(crate) fn check_supports_signals(
    kind: components::Kind,
    id: &str,
    wanted: &[Signal],
    path: AttributePath,
    diags: &mut Diagnostics,
) {
    let want = components::Signals::of(wanted);
    let has = components::supported(kind, id.split('/').next().unwrap_or(id));
    if !want.is_empty() && !has.intersects(want) {
        diags.error_at(
            path,
            "Component supports none of its signals",
            format!(
                "The {} {id:?} supports {} but would run for {}: a collector refuses it in \
                 those pipelines. Use another {} that supports them, or change `signals`.",
                kind.as_str(),
                has.describe(),
                want.describe(),
                kind.as_str()
            ),
        );
    }
}

pub(crate) fn validate_pipeline(config: &Value, diags: &mut Diagnostics) {
    check_name(config.get("name"), AttributePath::attr("name"), diags);
    check_signals(config.get("signals"), AttributePath::attr("signals"), diags);
    let signals = known_signals(config.get("signals"));
    if let Some(Value::Map(m)) = config.get("receivers") {
        for (k, v) in m {
            let path = AttributePath::attr("receivers").push_key(k);
            check_component_id(k, path.clone(), diags);
            check_json_object(Some(v), path.clone(), diags);
            if let Some(signals) = &signals {
                check_supports_signals(components::Kind::Receiver, k, signals, path, diags);
            }
        }
    }
    if let Some(Value::List(items)) = config.get("processors") {
        let mut seen = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let base = AttributePath::attr("processors").push_index(i as i64);
            if let Some(id) = string(item, "id") {
                check_component_id(&id, base.push_attr("id"), diags);
                if seen.contains(&id) {
                    diags.error_at(
                        base.push_attr("id"),
                        "Duplicate processor",
                        format!("Processor {id:?} appears more than once; give each a distinct `type/name` id."),
                    );
                }
                if let Some(signals) = &signals {
                    check_supports_signals(
                        components::Kind::Processor,
                        &id,
                        signals,
                        base.push_attr("id"),
                        diags,
                    );
                }
                seen.push(id);
            }
            check_json_object(item.get("config"), base.push_attr("config"), diags);
        }
    }
}

/// Finds a pipeline by id or name (imports and the data source).
pub async fn lookup(client: &Client, id_or_name: &str) -> Result<Option<Pipeline>, String> {
    if let Ok(id) = id_or_name.parse::<PipelineId>() {
        match client.get_pipeline(id).await {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    } else {
        client
            .find_pipeline(id_or_name)
            .await
            .map_err(|e| e.to_string())
    }
}

fn id_of(state: &Value, diags: &mut Diagnostics) -> Option<PipelineId> {
    let parsed = string(state, "id").and_then(|s| s.parse().ok());
    if parsed.is_none() {
        diags.error_at(
            AttributePath::attr("id"),
            "Invalid pipeline id",
            "The state holds no valid pipeline id; remove the resource from state and import it again.",
        );
    }
    parsed
}

#[async_trait]
impl Resource for PipelineResource {
    fn type_name(&self) -> &'static str {
        "otaas_pipeline"
    }
    fn schema(&self) -> Schema {
        rollout::with_wait_attributes(schema(), "pipeline")
    }
    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }
    fn identity(&self, state: &Value) -> Option<Value> {
        Some(Value::object([("id", state.get("id")?.clone())]))
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_pipeline(config, diags);
        super::secrets::validate(config, diags);
        rollout::validate_settings(config, diags);
    }
    async fn modify_plan(&self, ctx: &Context, change: &mut PlanChange, diags: &mut Diagnostics) {
        let config = change.config.clone();
        let planned = &mut change.planned;
        default_if_unset(planned, &config, "description", Value::string(""));
        default_if_unset(planned, &config, "receivers", Value::Map(BTreeMap::new()));
        default_if_unset(planned, &config, "processors", Value::List(Vec::new()));
        if let (Some(Value::List(items)), Some(Value::List(cfg_items))) =
            (planned.get_mut("processors"), config.get("processors"))
        {
            for (item, cfg) in items.iter_mut().zip(cfg_items) {
                default_if_unset(item, cfg, "config", Value::string("{}"));
            }
        }
        let digests = super::secrets::planned_digests(&change.planned, &config, &change.prior);
        change.planned.set("secret_digests", digests);
        computed_follow_change(change, &["revision"]);
        let preview = if change.planned.is_wholly_known_at(&[
            "name",
            "description",
            "signals",
            "receivers",
            "processors",
        ]) && super::secrets::known_at_plan(&change.planned, &config)
        {
            let mut quiet = Diagnostics::new();
            let spec = spec_for_write(&change.planned, &config, &change.prior, &mut quiet);
            (!quiet.has_errors()).then(|| otaas_api::ConfigPreview {
                pipeline: Some(otaas_api::PipelineCheck {
                    id: string(&change.prior, "id").and_then(|s| s.parse().ok()),
                    spec,
                }),
                ..Default::default()
            })
        } else {
            None
        };
        plan_collector_config(ctx, change, preview, diags).await;
        // Where the pipeline already serves groups (an update), check the planned components
        // against their agents now rather than at apply.
        if change.is_create()
            || !change
                .planned
                .is_wholly_known_at(&["receivers", "processors"])
            || !super::secrets::known_at_plan(&change.planned, &config)
        {
            return;
        }
        let mut quiet = Diagnostics::new();
        let (Some(id), planned_spec) = (
            string(&change.prior, "id").and_then(|s| s.parse().ok()),
            spec_for_write(&change.planned, &config, &change.prior, &mut quiet),
        ) else {
            return;
        };
        if quiet.has_errors() {
            return;
        }
        let check = otaas_api::ComponentCheck {
            pipeline: Some(otaas_api::PipelineCheck {
                id: Some(id),
                spec: planned_spec,
            }),
            agent_group: None,
            exporter_binding: None,
        };
        plan_component_check(ctx, &check, change, diags).await;
    }
    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        let spec = spec_for_write(planned, config, &Value::Null, diags);
        if diags.has_errors() {
            return None;
        }
        match client.create_pipeline(&spec).await {
            Ok(p) => {
                let cause = format!("change to pipeline {:?}", p.name);
                let mut st = rollout::settle_write(
                    ctx,
                    &client,
                    state(&p, planned),
                    p.rollouts.as_deref(),
                    planned,
                    cause,
                    diags,
                )
                .await?;
                settle_collector_config(&client, &mut st, planned, Some(preview_of(&p))).await;
                Some(st)
            }
            Err(e) => {
                diags.push(create_error(
                    "otaas_pipeline",
                    &format!("creating pipeline {:?}", spec.name),
                    &spec.name,
                    &e,
                    planned,
                ));
                None
            }
        }
    }
    async fn read(&self, ctx: &Context, prior: &Value, diags: &mut Diagnostics) -> Value {
        let Some(client) = client_or_diag(ctx, diags) else {
            return prior.clone();
        };
        let Some(id) = id_of(prior, diags) else {
            return prior.clone();
        };
        match client.read_pipeline(id).await {
            Ok(p) => {
                let mut st = state(&p, prior);
                rollout::keep_local(prior, &mut st);
                settle_collector_config(&client, &mut st, prior, Some(preview_of(&p))).await;
                st
            }
            Err(e) if e.is_not_found() => Value::Null,
            Err(e) => {
                diags.push(api_error(&format!("reading pipeline {id}"), &e, prior));
                prior.clone()
            }
        }
    }
    async fn update(
        &self,
        ctx: &Context,
        prior: &Value,
        planned: &Value,
        config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        if rollout::only_local_changed(prior, planned) {
            let mut st = prior.clone();
            rollout::keep_local(planned, &mut st);
            return Some(st);
        }
        let client = client_or_diag(ctx, diags)?;
        let id = id_of(prior, diags)?;
        let spec = spec_for_write(planned, config, prior, diags);
        if diags.has_errors() {
            return None;
        }
        match client
            .update_pipeline(id, &spec, int(prior, "revision"))
            .await
        {
            Ok(p) => {
                let cause = format!("change to pipeline {:?}", p.name);
                let mut st = rollout::settle_write(
                    ctx,
                    &client,
                    state(&p, planned),
                    p.rollouts.as_deref(),
                    planned,
                    cause,
                    diags,
                )
                .await?;
                settle_collector_config(&client, &mut st, planned, Some(preview_of(&p))).await;
                Some(st)
            }
            Err(e) => {
                diags.push(api_error(
                    &format!("updating pipeline {:?}", spec.name),
                    &e,
                    planned,
                ));
                None
            }
        }
    }
    async fn delete(&self, ctx: &Context, prior: &Value, diags: &mut Diagnostics) {
        let Some(client) = client_or_diag(ctx, diags) else {
            return;
        };
        let Some(id) = id_of(prior, diags) else {
            return;
        };
        match client.delete_pipeline(id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => diags.push(api_error(&format!("deleting pipeline {id}"), &e, prior)),
        }
    }
    async fn import(
        &self,
        ctx: &Context,
        request: ImportRequest,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        let key = import_key(request, diags)?;
        match lookup(&client, &key).await {
            Ok(Some(p)) => Some(state(&p, &Value::Null)),
            Ok(None) => {
                diags.error(
                    "Cannot import pipeline",
                    format!("No pipeline has the id or name {key:?}."),
                );
                None
            }
            Err(e) => {
                diags.error("Cannot import pipeline", e);
                None
            }
        }
    }
}

/// The import key: the CLI/`import { id }` string, or the identity's `id`.
pub(crate) fn import_key(request: ImportRequest, diags: &mut Diagnostics) -> Option<String> {
    match request {
        ImportRequest::Id(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        ImportRequest::Id(_) => {
            diags.error(
                "Invalid import id",
                "Give the object's id (a UUID) or its name.",
            );
            None
        }
        ImportRequest::Identity(identity) => match string(&identity, "id") {
            Some(id) => Some(id),
            None => {
                diags.error_at(
                    AttributePath::attr("id"),
                    "Invalid import identity",
                    "The identity needs the object's id.",
                );
                None
            }
        },
    }
}

/// `list "otaas_pipeline" "..." {}`: every pipeline, optionally filtered by name prefix.
pub struct PipelineList;

/// The `config {}` schema shared by the list resources: an optional name prefix and an optional
/// discovered pipeline whose managing objects alone are listed.
pub(crate) fn list_config_schema(kind: &str) -> Schema {
    Schema::new(
        &format!("Lists {kind} for `terraform query`."),
        vec![
            Attribute::optional("name_prefix", Type::String).description(
                "Only objects whose name starts with this prefix. Default: all of them.",
            ),
            Attribute::optional("discovered_pipeline_id", Type::String).description(
                "Only the objects that manage this discovered pipeline (an `id` of \
                 `otaas_discovered_pipelines`), e.g. the ones an adoption created: with \
                 `-generate-config-out` this writes the configuration and import blocks of \
                 an adopted pipeline. Combines with `name_prefix`.",
            ),
        ],
    )
}

/// Which objects of a discovered pipeline's `managed` entries a list resource lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Managing {
    Pipelines,
    Endpoints,
    ExporterBindings,
    AgentGroups,
}

/// The ids of the `kind` objects among `managed` (one entry per group rendering the pipeline,
/// so the same pipeline, endpoint or binding may appear more than once).
pub(crate) fn managing_ids(
    managed: &[otaas_api::discovery::ManagedEquivalent],
    kind: Managing,
) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for m in managed {
        match kind {
            Managing::Pipelines => ids.extend(m.pipeline_id.map(|p| p.to_string())),
            Managing::Endpoints => ids.extend(m.endpoint_ids.iter().map(ToString::to_string)),
            Managing::ExporterBindings => {
                ids.extend(m.exporter_binding_ids.iter().map(ToString::to_string))
            }
            Managing::AgentGroups => {
                ids.insert(m.group_id.to_string());
            }
        }
    }
    ids
}

/// Plan-time check of `discovered_pipeline_id`: discovered pipeline ids are hex content
/// hashes, and the value goes into a request path, so anything else is refused here.
pub(crate) fn validate_list_config(config: &Value, diags: &mut Diagnostics) {
    let Some(id) = string(config, "discovered_pipeline_id") else {
        return;
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        diags.error_at(
            AttributePath::attr("discovered_pipeline_id"),
            "Invalid discovered pipeline id",
            format!(
                "discovered_pipeline_id must be the id of a discovered pipeline (hex digits, \
                 as otaas_discovered_pipelines or `otaas discovered` show it); got {id:?}."
            ),
        );
    }
}

/// The ids a list is narrowed to by its config's `discovered_pipeline_id`: `Ok(None)` when
/// unset, the error diagnostic (at that attribute when the server knows no such pipeline)
/// otherwise.
pub(crate) async fn discovered_filter(
    client: &Client,
    config: &Value,
    kind: Managing,
) -> Result<Option<BTreeSet<String>>, Diagnostic> {
    let Some(id) = string(config, "discovered_pipeline_id") else {
        return Ok(None);
    };
    let mut diags = Diagnostics::new();
    validate_list_config(config, &mut diags);
    if let Some(d) = diags.into_iter().next() {
        return Err(d);
    }
    match client.get_discovered_pipeline(&id).await {
        Ok(p) => Ok(Some(managing_ids(&p.managed, kind))),
        Err(e) if e.is_not_found() => Err(Diagnostic::error(
            "Discovered pipeline not found",
            format!(
                "discovered_pipeline_id: no connected collector runs a pipeline with the id \
                 {id:?} (see otaas_discovered_pipelines or `otaas discovered`)."
            ),
        )
        .at(AttributePath::attr("discovered_pipeline_id"))),
        Err(e) => Err(api_error(
            &format!("reading discovered pipeline {id}"),
            &e,
            config,
        )),
    }
}

/// Turns a fallible listing into list events (one per object, or one error).
/// `only`, when given, keeps just the objects with those ids (see [`discovered_filter`]).
pub(crate) fn list_events<T, F>(
    result: Result<Vec<T>, otaas_api::ClientError>,
    what: &str,
    request: &ListRequest,
    only: Option<&BTreeSet<String>>,
    to_item: F,
) -> BoxStream<'static, ListEvent>
where
    F: Fn(&T) -> (String, Value),
{
    let prefix = string(&request.config, "name_prefix").unwrap_or_default();
    let wanted = |state: &Value| match (only, state.get("id")) {
        (None, _) => true,
        (Some(ids), Some(Value::String(id))) => ids.contains(id),
        (Some(_), _) => false,
    };
    let events: Vec<ListEvent> = match result {
        Err(e) => vec![ListEvent::Diagnostic(api_error(
            &format!("listing {what}"),
            &e,
            &Value::Null,
        ))],
        Ok(items) => items
            .iter()
            .map(&to_item)
            .filter(|(name, state)| name.starts_with(&prefix) && wanted(state))
            .map(|(name, state)| ListItem {
                identity: Value::object([("id", state.get("id").cloned().unwrap_or(Value::Null))]),
                display_name: name,
                resource: request.include_resource.then_some(state),
            })
            .map(ListEvent::Item)
            .collect(),
    };
    Box::pin(futures::stream::iter(events))
}

/// A list resource's failure to get a client, as a one-event stream.
pub(crate) fn list_error(d: Diagnostic) -> BoxStream<'static, ListEvent> {
    Box::pin(futures::stream::iter([ListEvent::Diagnostic(d)]))
}

#[async_trait]
impl ListResource for PipelineList {
    fn type_name(&self) -> &'static str {
        "otaas_pipeline"
    }
    fn config_schema(&self) -> Schema {
        list_config_schema("pipelines")
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_list_config(config, diags);
    }
    async fn list(&self, ctx: &Context, request: ListRequest) -> BoxStream<'static, ListEvent> {
        let client = match client(ctx) {
            Ok(c) => c,
            Err(d) => return list_error(d),
        };
        let only = match discovered_filter(&client, &request.config, Managing::Pipelines).await {
            Ok(only) => only,
            Err(d) => return list_error(d),
        };
        let result = client.list_pipelines().await;
        list_events(
            result,
            "pipelines",
            &request,
            only.as_ref(),
            |p: &Pipeline| (p.name.clone(), state(p, &Value::Null)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managed_by(
        group: otaas_api::AgentGroupId,
        pipeline: Option<PipelineId>,
    ) -> otaas_api::discovery::ManagedEquivalent {
        otaas_api::discovery::ManagedEquivalent {
            group_id: group,
            group_name: "g".into(),
            pipeline_id: pipeline,
            pipeline_name: "p".into(),
            endpoint_ids: vec![otaas_api::EndpointId::new()],
            exporter_binding_ids: vec![otaas_api::ExporterBindingId::new()],
        }
    }

    /// Given a discovered pipeline rendered by one otaas pipeline in two groups, and by a
    /// group whose content comes from several pipelines (no pipeline id), when each list kind
    /// picks its ids, then pipelines are listed once, groups all three times, and each endpoint
    /// and binding of each entry is kept.
    #[test]
    fn managing_ids_pick_each_kind() {
        let p = PipelineId::new();
        let groups = [
            otaas_api::AgentGroupId::new(),
            otaas_api::AgentGroupId::new(),
            otaas_api::AgentGroupId::new(),
        ];
        let managed = vec![
            managed_by(groups[0], Some(p)),
            managed_by(groups[1], Some(p)),
            managed_by(groups[2], None),
        ];
        assert_eq!(
            managing_ids(&managed, Managing::Pipelines),
            BTreeSet::from([p.to_string()])
        );
        assert_eq!(
            managing_ids(&managed, Managing::AgentGroups),
            groups.iter().map(ToString::to_string).collect()
        );
        assert_eq!(
            managing_ids(&managed, Managing::Endpoints),
            managed
                .iter()
                .map(|m| m.endpoint_ids[0].to_string())
                .collect()
        );
        assert_eq!(
            managing_ids(&managed, Managing::ExporterBindings),
            managed
                .iter()
                .map(|m| m.exporter_binding_ids[0].to_string())
                .collect()
        );
    }

    /// Given list configs with a hex id, an empty one and a path-like one, when validated,
    /// then only the non-hex ones are refused, at `discovered_pipeline_id`.
    #[test]
    fn discovered_pipeline_id_must_be_hex() {
        let check = |id: Value| {
            let mut diags = Diagnostics::new();
            validate_list_config(
                &Value::object([("name_prefix", Value::Null), ("discovered_pipeline_id", id)]),
                &mut diags,
            );
            diags.into_vec()
        };
        assert!(check(Value::string("ab".repeat(32))).is_empty());
        assert!(check(Value::Null).is_empty());
        for bad in ["", "../agents", "not-hex"] {
            let diags = check(Value::string(bad));
            assert_eq!(diags.len(), 1, "{bad:?}");
            assert_eq!(
                diags[0].path,
                Some(AttributePath::attr("discovered_pipeline_id"))
            );
        }
    }

    /// Given three listed objects and a filter naming two ids, when turned into list events,
    /// then only those two come out (the name prefix still applies on top).
    #[test]
    fn list_events_keep_only_the_given_ids() {
        use futures::StreamExt;
        let items: Vec<(String, String)> = ["a1", "a2", "b3"]
            .iter()
            .map(|n| (n.to_string(), format!("id-{n}")))
            .collect();
        let request = |prefix: Option<&str>| ListRequest {
            config: Value::object([
                (
                    "name_prefix",
                    prefix.map(Value::string).unwrap_or(Value::Null),
                ),
                ("discovered_pipeline_id", Value::Null),
            ]),
            include_resource: false,
            limit: 100,
        };
        let only = BTreeSet::from(["id-a2".to_string(), "id-b3".to_string()]);
        let names = |prefix, only: Option<&BTreeSet<String>>| {
            let events = list_events(
                Ok(items.clone()),
                "things",
                &request(prefix),
                only,
                |(name, id): &(String, String)| {
                    (name.clone(), Value::object([("id", Value::string(id))]))
                },
            );
            futures::executor::block_on(events.collect::<Vec<_>>())
                .into_iter()
                .map(|e| match e {
                    ListEvent::Item(i) => i.display_name,
                    ListEvent::Diagnostic(d) => panic!("{d:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None, None), ["a1", "a2", "b3"]);
        assert_eq!(names(None, Some(&only)), ["a2", "b3"]);
        assert_eq!(names(Some("a"), Some(&only)), ["a2"]);
    }

    fn config(signals: &[&str], receiver: &str, processor: &str) -> Value {
        Value::object([
            ("name", Value::string("p")),
            (
                "signals",
                Value::List(signals.iter().map(|s| Value::string(*s)).collect()),
            ),
            (
                "receivers",
                Value::Map([(receiver.to_string(), Value::string("{}"))].into()),
            ),
            (
                "processors",
                Value::List(vec![Value::object([
                    ("id", Value::string(processor)),
                    ("config", Value::string("{}")),
                ])]),
            ),
        ])
    }

    fn error_paths(config: &Value) -> Vec<Option<AttributePath>> {
        let mut diags = Diagnostics::new();
        validate_pipeline(config, &mut diags);
        diags.iter().map(|d| d.path.clone()).collect()
    }

    /// Given components that support none of the pipeline's signals, when the configuration
    /// is validated, then each is an error at its attribute; one signal in common is enough.
    #[test]
    fn components_supporting_none_of_the_signals_fail_at_their_attribute() {
        assert_eq!(
            error_paths(&config(&["metrics"], "filelog", "tail_sampling/slow")),
            vec![
                Some(AttributePath::attr("receivers").push_key("filelog")),
                Some(
                    AttributePath::attr("processors")
                        .push_index(0)
                        .push_attr("id")
                ),
            ]
        );
        assert_eq!(
            error_paths(&config(&["logs", "metrics"], "filelog", "batch")),
            vec![]
        );
        // Types the table does not list are not judged.
        assert_eq!(
            error_paths(&config(&["traces"], "mything", "batch")),
            vec![]
        );
        // Unknown signals: nothing to judge yet.
        let mut unknown = config(&["metrics"], "filelog", "batch");
        if let Value::Object(m) = &mut unknown {
            m.insert("signals".into(), Value::Unknown(Default::default()));
        }
        assert_eq!(error_paths(&unknown), vec![]);
    }

    /// Given a binding whose `signals` no destination type supports, when its configuration is
    /// validated, then the error is at that destination's `type`.
    #[test]
    fn a_binding_destination_supporting_none_of_its_signals_fails_at_type() {
        let dest = |name: &str, ty: &str| {
            Value::object([("name", Value::string(name)), ("type", Value::string(ty))])
        };
        let binding = |signals: &[&str]| {
            Value::object([
                ("name", Value::string("b")),
                (
                    "signals",
                    Value::List(signals.iter().map(|s| Value::string(*s)).collect()),
                ),
                (
                    "destinations",
                    Value::List(vec![dest("a", "otlphttp"), dest("b", "prometheus")]),
                ),
            ])
        };
        let paths = |config: &Value| {
            let mut diags = Diagnostics::new();
            futures::executor::block_on(
                super::super::exporter_binding::ExporterBindingResource
                    .validate(config, &mut diags),
            );
            diags.iter().map(|d| d.path.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            paths(&binding(&["logs"])),
            vec![Some(
                AttributePath::attr("destinations")
                    .push_index(1)
                    .push_attr("type")
            )]
        );
        assert_eq!(paths(&binding(&["logs", "metrics"])), vec![]);
    }
}
