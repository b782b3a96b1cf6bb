//! `otaas_exporter_binding`: where a pipeline's processed data goes (one or more destinations,
//! header values secret), and its list resource.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::stream::BoxStream;
use otaas_api::{
    Client, ClientTls, DestinationSpec, ExporterBinding, ExporterBindingId, ExporterBindingSpec,
    Signal, header_digest,
};

use super::common::*;
use super::endpoint::id_identity;
use super::pipeline::{
    Managing, discovered_filter, import_key, list_config_schema, list_error, list_events,
    validate_list_config,
};
use super::rollout;
use crate::framework::*;

pub struct ExporterBindingResource;

/// State value of a header changed outside Terraform: we cannot know the new value (the server
/// returns digests only), so we store a marker that differs from any configured value.
const CHANGED_OUTSIDE: &str = "(changed outside Terraform)";

fn schema() -> Schema {
    Schema::new(
        "Sends a pipeline's processed data to one or more destinations (collector exporters). \
         Header values are secrets: the server renders them into collector configs but never \
         returns them.",
        vec![
            Attribute::computed("id", Type::String)
                .use_state_for_unknown()
                .description("Server-assigned id (a UUID)."),
            Attribute::required("name", Type::String)
                .description("Unique binding name, `[a-z0-9_-]{1,63}`."),
            Attribute::required("pipeline_id", Type::String)
                .description("Id of the `otaas_pipeline` whose data this binding exports."),
            Attribute::optional("signals", Type::set(Type::String)).description(
                "The subset of the pipeline's signals (`traces`, `metrics`, `logs`) this binding \
                 receives. Omit for all of the pipeline's signals.",
            ),
            Attribute::nested(
                "destinations",
                Nesting::List,
                Mode::Required,
                vec![
                    Attribute::required("name", Type::String).description(
                        "Destination name, unique within the binding, `[a-z0-9_-]{1,63}`. The \
                         exporter is named `<type>/<binding>-<name>`.",
                    ),
                    Attribute::required("type", Type::String).description(
                        "Exporter type: `otlp`, `otlphttp`, `prometheusremotewrite`, `kafka`, \
                         `debug`, `file`, ...",
                    ),
                    Attribute::optional("endpoint", Type::String)
                        .description("Where the exporter sends data, e.g. `tempo:4317`."),
                    Attribute::optional("headers", Type::map(Type::String))
                        .sensitive()
                        .description(
                            "Request headers (sensitive), e.g. tenant ids or API keys, for \
                             Terraform before 1.11; with Terraform 1.11 or later prefer \
                             `headers_wo`, which keeps the values out of state and plan. The \
                             server never returns the values, only a SHA-256 digest of each \
                             (`header_digests`), so state keeps the configured values and a \
                             refresh detects drift by digest: a header changed, added or removed \
                             outside Terraform shows as a change. `headers = {}` removes all \
                             headers; leaving both `headers` and `headers_wo` unset keeps \
                             whatever headers the server has for this destination (so imported \
                             and generated configurations remove no secret). After `terraform \
                             import` the values are unknown to Terraform: state holds none, and \
                             an apply writes them only if configuration sets them. Conflicts \
                             with `headers_wo`.",
                        ),
                    Attribute::optional("headers_wo", Type::map(Type::String))
                        .sensitive()
                        .write_only()
                        .description(
                            "Request headers as a write-only argument (Terraform 1.11 or later): \
                             never stored in state or plan. Sent when the destination is created \
                             and whenever `headers_wo_version` changes; otherwise the server \
                             keeps the values it has, so a change to `headers_wo` alone is not \
                             applied until you change `headers_wo_version`. `header_digests` \
                             shows what the server holds. Conflicts with `headers`.",
                        ),
                    Attribute::optional("headers_wo_version", Type::Number).description(
                        "Any number; change it to send `headers_wo` again (replacing the \
                         destination's headers on the server).",
                    ),
                    Attribute::computed("header_digests", Type::map(Type::String)).description(
                        "The headers the server holds for this destination: header name → \
                         `sha256:<lowercase hex of the value>`. Lets you see and compare secrets \
                         without their values.",
                    ),
                    Attribute::nested(
                        "tls",
                        Nesting::Single,
                        Mode::Optional,
                        vec![
                            Attribute::optional_computed("insecure", Type::Bool).description(
                                "Plain text to the destination (no TLS). Default `false`.",
                            ),
                            Attribute::optional_computed("insecure_skip_verify", Type::Bool)
                                .description(
                                    "Do not verify the destination's certificate. Default `false`.",
                                ),
                            Attribute::optional("ca_file", Type::String)
                                .description("CA bundle path on the agent's host."),
                            Attribute::optional("cert_file", Type::String).description(
                                "Client certificate path on the agent's host (mutual TLS).",
                            ),
                            Attribute::optional("key_file", Type::String)
                                .description("Client key path on the agent's host."),
                        ],
                    )
                    .description("Client-side TLS towards the destination."),
                    Attribute::optional_computed("config", Type::String)
                        .json_semantic()
                        .description(
                            "Further exporter settings as a JSON object string \
                             (`jsonencode({...})`), merged under the generated ones; compared as \
                             JSON. Defaults to `\"{}\"`.",
                        ),
                ],
            )
            .description("The destinations, at least one."),
            Attribute::computed("revision", Type::Number).description(
                "The binding object's revision on the server: 1 at creation, +1 per update.",
            ),
        ]
        .into_iter()
        .chain(super::secrets::attributes("binding"))
        .chain([collector_config_attribute("exporters, one per destination")])
        .collect(),
    )
}

/// The preview of a binding as the server holds it (its stored secrets and headers kept).
fn preview_of(b: &ExporterBinding) -> otaas_api::ConfigPreview {
    otaas_api::ConfigPreview {
        exporter_binding: Some(otaas_api::ExporterBindingCheck {
            id: Some(b.id),
            spec: ExporterBindingSpec {
                name: b.name.clone(),
                pipeline_id: b.pipeline_id,
                signals: b.signals.clone(),
                destinations: b
                    .destinations
                    .iter()
                    .map(|d| DestinationSpec {
                        name: d.name.clone(),
                        kind: d.kind.clone(),
                        endpoint: d.endpoint.clone(),
                        headers: BTreeMap::new(),
                        keep_headers: true,
                        tls: d.tls.clone(),
                        config: d.config.clone(),
                    })
                    .collect(),
                secrets: BTreeMap::new(),
                keep_secrets: true,
            },
        }),
        ..Default::default()
    }
}

/// Header values for state: the prior (configured) value where the server's digest matches it,
/// a marker where it does not, and nothing for headers the server no longer has. Headers that
/// configuration does not manage (prior null: imported, generated, or set with `headers_wo`)
/// stay null whatever the server holds: `header_digests` shows those.
fn headers_state(digests: &BTreeMap<String, String>, prior: Option<&Value>) -> Value {
    let prior_map = match prior {
        Some(Value::Map(m)) => Some(m),
        _ => return Value::Null,
    };
    if digests.is_empty() {
        // `headers = {}` and no headers mean the same to the server: keep what the user wrote.
        return match prior_map {
            Some(m) if m.is_empty() => Value::Map(BTreeMap::new()),
            _ => Value::Null,
        };
    }
    Value::Map(
        digests
            .iter()
            .map(|(k, digest)| {
                let v = match prior_map.and_then(|m| m.get(k)) {
                    Some(Value::String(p)) if &header_digest(p) == digest => Value::string(p),
                    _ => Value::string(CHANGED_OUTSIDE),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

fn state(b: &ExporterBinding, prior: &Value) -> Value {
    let mut v = state_without_secrets(b, prior);
    for (k, x) in super::secrets::state(&b.secret_digests, prior) {
        v.set(k, x);
    }
    v
}

fn state_without_secrets(b: &ExporterBinding, prior: &Value) -> Value {
    let prior_dests = match prior.get("destinations") {
        Some(Value::List(items)) => items.as_slice(),
        _ => &[],
    };
    Value::object([
        ("id", Value::string(b.id.to_string())),
        ("name", Value::string(&b.name)),
        ("pipeline_id", Value::string(b.pipeline_id.to_string())),
        (
            "signals",
            b.signals.as_ref().map_or(Value::Null, |s| {
                string_set(s.iter().map(|x| x.as_str().to_string()))
            }),
        ),
        (
            "destinations",
            Value::List(
                b.destinations
                    .iter()
                    .map(|d| {
                        // Destinations are matched by name, so reordering keeps header values.
                        let prior = prior_dests
                            .iter()
                            .find(|p| p.get("name") == Some(&Value::string(&d.name)));
                        Value::object([
                            ("name", Value::string(&d.name)),
                            ("type", Value::string(&d.kind)),
                            (
                                "endpoint",
                                endpoint_state(
                                    d.endpoint.as_deref(),
                                    prior.and_then(|p| p.get("endpoint")),
                                ),
                            ),
                            (
                                "headers",
                                headers_state(
                                    &d.header_digests,
                                    prior.and_then(|p| p.get("headers")),
                                ),
                            ),
                            (
                                "headers_wo_version",
                                prior
                                    .and_then(|p| p.get("headers_wo_version"))
                                    .cloned()
                                    .unwrap_or(Value::Null),
                            ),
                            ("header_digests", map_value(&d.header_digests)),
                            (
                                "tls",
                                d.tls.as_ref().map_or(Value::Null, |t| {
                                    Value::object([
                                        ("insecure", Value::Bool(t.insecure)),
                                        (
                                            "insecure_skip_verify",
                                            Value::Bool(t.insecure_skip_verify),
                                        ),
                                        ("ca_file", opt_string(t.ca_file.as_deref())),
                                        ("cert_file", opt_string(t.cert_file.as_deref())),
                                        ("key_file", opt_string(t.key_file.as_deref())),
                                    ])
                                }),
                            ),
                            (
                                "config",
                                json_state(prior.and_then(|p| p.get("config")), &d.config),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("revision", Value::int(b.revision)),
    ])
}

/// The server shows a URL's password as `<redacted>`: keep the configured URL when that is
/// all that differs.
fn endpoint_state(server: Option<&str>, prior: Option<&Value>) -> Value {
    match (server, prior) {
        (Some(s), Some(Value::String(p)))
            if otaas_api::redact::redact_url_password(p).as_deref() == Some(s) =>
        {
            Value::string(p)
        }
        _ => opt_string(server),
    }
}

fn signal(s: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|x| x.as_str() == s)
}

/// The destination of `name` in a binding value (state or plan), if any.
fn destination_named<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v.get("destinations") {
        Some(Value::List(items)) => items
            .iter()
            .find(|d| d.get("name") == Some(&Value::string(name))),
        _ => None,
    }
}

/// Which header values a write sends for one destination, and whether the server keeps its
/// own instead: configured `headers` are the whole set; `headers_wo` is sent on create and
/// when `headers_wo_version` moved; anything else keeps the server's values, so nothing the
/// configuration does not mention is removed.
fn headers_to_send(
    planned: &Value,
    config: Option<&Value>,
    prior: Option<&Value>,
) -> Option<BTreeMap<String, String>> {
    if let Some(Value::Map(_)) = planned.get("headers") {
        return Some(string_map(planned, "headers"));
    }
    let config = config?;
    if let Some(Value::Map(_)) = config.get("headers_wo")
        && wo_version_moved(planned, prior)
    {
        return Some(string_map(config, "headers_wo"));
    }
    None
}

/// Did `headers_wo_version` move since the prior destination (or is there none: a create or a
/// new destination)?
fn wo_version_moved(planned: &Value, prior: Option<&Value>) -> bool {
    prior.is_none_or(|p| {
        p.get("headers_wo_version").unwrap_or(&Value::Null)
            != planned.get("headers_wo_version").unwrap_or(&Value::Null)
    })
}

/// What the server will hold for a destination after the write (see [`headers_to_send`]):
/// digests of the values sent, or the prior digests when the server keeps its own. Unknown
/// while a value sent is unknown.
fn planned_digests(planned: &Value, config: &Value, prior: Option<&Value>) -> Value {
    let sent = match (planned.get("headers"), config.get("headers_wo")) {
        (Some(h), _) if !h.is_null() => Some(h),
        (_, Some(h)) if !h.is_null() && wo_version_moved(planned, prior) => Some(h),
        _ => None,
    };
    if let Some(digests) = super::secrets::digests_of_sent(sent) {
        return digests;
    }
    match prior.map(|p| p.get("header_digests").unwrap_or(&Value::Null)) {
        None => Value::Map(BTreeMap::new()),
        Some(Value::Null) => Value::unknown(),
        Some(d) => d.clone(),
    }
}

/// The spec to write: `planned` for everything but write-only values, which only `config`
/// holds; `prior` (null on create) says whether `headers_wo_version` moved.
fn spec_for_write(
    v: &Value,
    config: &Value,
    prior: &Value,
    diags: &mut Diagnostics,
) -> Option<ExporterBindingSpec> {
    let config_dests = match config.get("destinations") {
        Some(Value::List(items)) => items.as_slice(),
        _ => &[],
    };
    let pipeline_id = match string(v, "pipeline_id").map(|s| s.parse()) {
        Some(Ok(id)) => id,
        _ => {
            diags.error_at(
                AttributePath::attr("pipeline_id"),
                "Invalid pipeline id",
                "pipeline_id must be the id of an otaas_pipeline (a UUID), e.g. otaas_pipeline.x.id.",
            );
            return None;
        }
    };
    let destinations = match v.get("destinations") {
        Some(Value::List(items)) => items
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let name = string(d, "name").unwrap_or_default();
                let sent = headers_to_send(d, config_dests.get(i), destination_named(prior, &name));
                DestinationSpec {
                    name,
                    kind: string(d, "type").unwrap_or_default(),
                    endpoint: string(d, "endpoint"),
                    keep_headers: sent.is_none(),
                    headers: sent.unwrap_or_default(),
                    tls: match d.get("tls") {
                        Some(t @ Value::Object(_)) => Some(ClientTls {
                            insecure: boolean(t, "insecure").unwrap_or(false),
                            insecure_skip_verify: boolean(t, "insecure_skip_verify")
                                .unwrap_or(false),
                            ca_file: string(t, "ca_file"),
                            cert_file: string(t, "cert_file"),
                            key_file: string(t, "key_file"),
                        }),
                        _ => None,
                    },
                    config: parse_json(
                        d.get("config"),
                        AttributePath::attr("destinations")
                            .push_index(i as i64)
                            .push_attr("config"),
                        diags,
                    ),
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    let signals = match v.get("signals") {
        Some(Value::Set(_) | Value::List(_)) => Some(
            strings(v, "signals")
                .iter()
                .filter_map(|s| signal(s))
                .collect(),
        ),
        _ => None,
    };
    let sent = super::secrets::to_send(v, config, prior);
    Some(ExporterBindingSpec {
        keep_secrets: sent.is_none() && !prior.is_null(),
        secrets: sent.unwrap_or_default(),
        name: string(v, "name").unwrap_or_default(),
        pipeline_id,
        signals,
        destinations,
    })
}

async fn lookup(client: &Client, key: &str) -> Result<Option<ExporterBinding>, String> {
    if let Ok(id) = key.parse::<ExporterBindingId>() {
        match client.get_exporter_binding(id).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    } else {
        client
            .find_exporter_binding(key)
            .await
            .map_err(|e| e.to_string())
    }
}

fn id_of(state: &Value, diags: &mut Diagnostics) -> Option<ExporterBindingId> {
    let parsed = string(state, "id").and_then(|s| s.parse().ok());
    if parsed.is_none() {
        diags.error_at(
            AttributePath::attr("id"),
            "Invalid exporter binding id",
            "The state holds no valid id; remove the resource from state and import it again.",
        );
    }
    parsed
}

#[async_trait]
impl Resource for ExporterBindingResource {
    fn type_name(&self) -> &'static str {
        "otaas_exporter_binding"
    }
    fn schema(&self) -> Schema {
        rollout::with_wait_attributes(schema(), "exporter binding")
    }
    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(id_identity("exporter binding"))
    }
    fn identity(&self, state: &Value) -> Option<Value> {
        Some(Value::object([("id", state.get("id")?.clone())]))
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        rollout::validate_settings(config, diags);
        super::secrets::validate(config, diags);
        check_name(config.get("name"), AttributePath::attr("name"), diags);
        check_signals(config.get("signals"), AttributePath::attr("signals"), diags);
        if let Some(Value::String(p)) = config.get("pipeline_id")
            && p.parse::<otaas_api::PipelineId>().is_err()
        {
            diags.error_at(
                AttributePath::attr("pipeline_id"),
                "Invalid pipeline id",
                format!("pipeline_id must be a pipeline's id (a UUID), such as otaas_pipeline.x.id; got {p:?}."),
            );
        }
        if let Some(Value::List(items)) = config.get("destinations") {
            if items.is_empty() {
                diags.error_at(
                    AttributePath::attr("destinations"),
                    "No destinations",
                    "A binding needs at least one destination.",
                );
            }
            let mut seen = Vec::new();
            for (i, d) in items.iter().enumerate() {
                let base = AttributePath::attr("destinations").push_index(i as i64);
                check_name(d.get("name"), base.push_attr("name"), diags);
                if let Some(name) = string(d, "name") {
                    if seen.contains(&name) {
                        diags.error_at(
                            base.push_attr("name"),
                            "Duplicate destination",
                            format!("Destination name {name:?} appears more than once."),
                        );
                    }
                    seen.push(name);
                }
                if let Some(ty) = string(d, "type") {
                    check_component_type(&ty, base.push_attr("type"), diags);
                    // The pipeline's signals are the server's to judge (422 at this attribute).
                    if let Some(signals) = super::pipeline::known_signals(config.get("signals")) {
                        super::pipeline::check_supports_signals(
                            otaas_api::components::Kind::Exporter,
                            &ty,
                            &signals,
                            base.push_attr("type"),
                            diags,
                        );
                    }
                }
                if !d.get("headers").unwrap_or(&Value::Null).is_null()
                    && !d.get("headers_wo").unwrap_or(&Value::Null).is_null()
                {
                    diags.error_at(
                        base.push_attr("headers_wo"),
                        "Conflicting headers",
                        "Set either headers (stored in state, sensitive) or headers_wo \
                         (write-only, Terraform 1.11+), not both.",
                    );
                }
                for attr in ["headers", "headers_wo"] {
                    let Some(Value::Map(headers)) = d.get(attr) else {
                        continue;
                    };
                    for h in headers.keys() {
                        let ok = !h.is_empty()
                            && h.bytes()
                                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c));
                        if !ok {
                            diags.error_at(
                                base.push_attr(attr).push_key(h),
                                "Invalid header name",
                                format!("{h:?} is not a valid HTTP header name (letters, digits, '-', '_', '.')."),
                            );
                        }
                    }
                }
                check_json_object(d.get("config"), base.push_attr("config"), diags);
            }
        }
    }
    async fn modify_plan(&self, ctx: &Context, change: &mut PlanChange, diags: &mut Diagnostics) {
        let config = change.config.clone();
        if let (Some(Value::List(items)), Some(Value::List(cfg_items))) = (
            change.planned.get_mut("destinations"),
            config.get("destinations"),
        ) {
            for (item, cfg) in items.iter_mut().zip(cfg_items) {
                let prior_dest = string(item, "name")
                    .and_then(|n| destination_named(&change.prior, &n).cloned());
                let digests = planned_digests(item, cfg, prior_dest.as_ref());
                item.set("header_digests", digests);
                default_if_unset(item, cfg, "config", Value::string("{}"));
                if let (Some(tls @ Value::Object(_)), Some(cfg_tls)) =
                    (item.get_mut("tls"), cfg.get("tls"))
                {
                    default_if_unset(tls, cfg_tls, "insecure", Value::Bool(false));
                    default_if_unset(tls, cfg_tls, "insecure_skip_verify", Value::Bool(false));
                }
            }
        }
        let digests = super::secrets::planned_digests(&change.planned, &config, &change.prior);
        change.planned.set("secret_digests", digests);
        computed_follow_change(change, &["revision"]);
        // The binding's pipeline names the groups (and so the agents) its exporters reach:
        // check the planned exporter types against them now rather than at apply.
        if !change
            .planned
            .is_wholly_known_at(&["name", "pipeline_id", "destinations"])
            || !super::secrets::known_at_plan(&change.planned, &config)
        {
            plan_collector_config(ctx, change, None, diags).await;
            return;
        }
        let mut quiet = Diagnostics::new();
        let Some(binding) = spec_for_write(&change.planned, &config, &change.prior, &mut quiet)
        else {
            plan_collector_config(ctx, change, None, diags).await;
            return;
        };
        let check = otaas_api::ComponentCheck {
            pipeline: None,
            agent_group: None,
            exporter_binding: Some(otaas_api::ExporterBindingCheck {
                id: string(&change.prior, "id").and_then(|s| s.parse().ok()),
                spec: binding,
            }),
        };
        let preview = otaas_api::ConfigPreview {
            exporter_binding: check.exporter_binding.clone(),
            ..Default::default()
        };
        plan_collector_config(ctx, change, Some(preview), diags).await;
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
        let spec = spec_for_write(planned, config, &Value::Null, diags)?;
        if diags.has_errors() {
            return None;
        }
        match client.create_exporter_binding(&spec).await {
            Ok(b) => {
                let cause = format!("change to exporter binding {:?}", b.name);
                let mut st = rollout::settle_write(
                    ctx,
                    &client,
                    state(&b, planned),
                    b.rollouts.as_deref(),
                    planned,
                    cause,
                    diags,
                )
                .await?;
                settle_collector_config(&client, &mut st, planned, Some(preview_of(&b))).await;
                Some(st)
            }
            Err(e) => {
                diags.push(create_error(
                    "otaas_exporter_binding",
                    &format!("creating exporter binding {:?}", spec.name),
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
        match client.read_exporter_binding(id).await {
            Ok(b) => {
                let mut st = state(&b, prior);
                rollout::keep_local(prior, &mut st);
                settle_collector_config(&client, &mut st, prior, Some(preview_of(&b))).await;
                st
            }
            Err(e) if e.is_not_found() => Value::Null,
            Err(e) => {
                diags.push(api_error(
                    &format!("reading exporter binding {id}"),
                    &e,
                    prior,
                ));
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
        let spec = spec_for_write(planned, config, prior, diags)?;
        if diags.has_errors() {
            return None;
        }
        match client
            .update_exporter_binding(id, &spec, int(prior, "revision"))
            .await
        {
            Ok(b) => {
                let cause = format!("change to exporter binding {:?}", b.name);
                let mut st = rollout::settle_write(
                    ctx,
                    &client,
                    state(&b, planned),
                    b.rollouts.as_deref(),
                    planned,
                    cause,
                    diags,
                )
                .await?;
                settle_collector_config(&client, &mut st, planned, Some(preview_of(&b))).await;
                Some(st)
            }
            Err(e) => {
                diags.push(api_error(
                    &format!("updating exporter binding {:?}", spec.name),
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
        match client.delete_exporter_binding(id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => diags.push(api_error(
                &format!("deleting exporter binding {id}"),
                &e,
                prior,
            )),
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
            Ok(Some(b)) => Some(state(&b, &Value::Null)),
            Ok(None) => {
                diags.error(
                    "Cannot import exporter binding",
                    format!("No exporter binding has the id or name {key:?}."),
                );
                None
            }
            Err(e) => {
                diags.error("Cannot import exporter binding", e);
                None
            }
        }
    }
}

/// `list "otaas_exporter_binding" "..." {}`.
pub struct ExporterBindingList;

#[async_trait]
impl ListResource for ExporterBindingList {
    fn type_name(&self) -> &'static str {
        "otaas_exporter_binding"
    }
    fn config_schema(&self) -> Schema {
        list_config_schema("exporter bindings")
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_list_config(config, diags);
    }
    async fn list(&self, ctx: &Context, request: ListRequest) -> BoxStream<'static, ListEvent> {
        let client = match client(ctx) {
            Ok(c) => c,
            Err(d) => return list_error(d),
        };
        let only =
            match discovered_filter(&client, &request.config, Managing::ExporterBindings).await {
                Ok(only) => only,
                Err(d) => return list_error(d),
            };
        let result = client.list_exporter_bindings().await;
        list_events(
            result,
            "exporter bindings",
            &request,
            only.as_ref(),
            |b: &ExporterBinding| (b.name.clone(), state(b, &Value::Null)),
        )
    }
}
