//! `otaas_endpoint`: a secure OTLP ingest endpoint feeding one pipeline (TLS, bearer auth with a
//! server-generated token shown once), and its list resource.

use async_trait::async_trait;
use futures::stream::BoxStream;
use otaas_api::{Client, Endpoint, EndpointAuth, EndpointId, EndpointSpec, Protocol, ServerTls};

use super::common::*;
use super::pipeline::{
    Managing, discovered_filter, import_key, list_config_schema, list_error, list_events,
    validate_list_config,
};
use super::rollout;
use crate::framework::*;

pub struct EndpointResource;

fn schema() -> Schema {
    Schema::new(
        "A secure ingest endpoint: an OTLP receiver (gRPC or HTTP) with optional TLS and bearer \
         authentication that feeds one pipeline on every agent of the groups running it. With \
         `auth = \"bearer\"` the server generates an ingest token, returns it **once** (kept in \
         the sensitive `token` attribute) and stores only its hash; bump `token_version` to \
         rotate it.",
        vec![
            Attribute::computed("id", Type::String)
                .use_state_for_unknown()
                .description("Server-assigned id (a UUID)."),
            Attribute::required("name", Type::String)
                .description("Unique endpoint name, `[a-z0-9_-]{1,63}`."),
            Attribute::required("pipeline_id", Type::String)
                .description("Id of the `otaas_pipeline` this endpoint feeds."),
            Attribute::required("protocol", Type::String)
                .description("Wire protocol: `otlp_grpc` or `otlp_http`."),
            Attribute::required("port", Type::Number)
                .description("Port the agents listen on, 1-65535."),
            Attribute::nested(
                "tls",
                Nesting::Single,
                Mode::Optional,
                vec![
                    Attribute::required("cert_file", Type::String)
                        .description("Path of the server certificate (PEM) on the agent's host."),
                    Attribute::required("key_file", Type::String)
                        .description("Path of the private key (PEM) on the agent's host."),
                    Attribute::optional("client_ca_file", Type::String).description(
                        "When set, senders must present a client certificate signed by this CA \
                         (mutual TLS).",
                    ),
                ],
            )
            .description("Server-side TLS of the receiver. Omit for plain text."),
            Attribute::optional_computed("auth", Type::String).description(
                "Authentication senders need: `bearer` (the default; `Authorization: Bearer \
                 <token>`) or `none`.",
            ),
            Attribute::optional_computed("token_version", Type::Number).description(
                "Version of the ingest token, at least 1 (default 1). Increase it to rotate the \
                 token: the server mints a new one; the previous one stays accepted for \
                 `token_grace_period`, then the server rolls out a config without it.",
            ),
            Attribute::optional_computed("token_grace_period", Type::String).description(
                "How long the previous ingest token stays accepted after a `token_version` \
                 bump, as a duration such as `10m`, `90s` or `1h` (default `10m`, at most \
                 `168h`; `0s` cuts it off at once). During the grace the agents accept both \
                 tokens, so senders can switch without losing data; when it ends the server \
                 re-renders the groups running the pipeline by itself (a new config revision \
                 without the old token), also after a restart.",
            ),
            Attribute::computed("token", Type::String)
                .sensitive()
                .description(
                    "The ingest token senders use with `auth = \"bearer\"` (sensitive). The server \
                     shows it only when it is created or rotated, so it is kept from that \
                     response in state; it is unknown in a plan only when it will change \
                     (creation, `token_version` bump, switching `auth` to `bearer`). Not \
                     available after `terraform import` (null): bump `token_version` to get a \
                     new one. Null with `auth = \"none\"`.",
                ),
            Attribute::computed("revision", Type::Number).description(
                "The endpoint object's revision on the server: 1 at creation, +1 per update.",
            ),
            collector_config_attribute("receiver (and its bearer token authenticator)"),
        ],
    )
}

fn state(e: &Endpoint, prior: &Value) -> Value {
    // The token comes only with the response that minted it; otherwise it is what we kept.
    let token = match (&e.token, e.auth) {
        (_, EndpointAuth::None) => Value::Null,
        (Some(t), _) => Value::string(t),
        (None, _) => prior
            .get("token")
            .filter(|t| !t.is_unknown())
            .cloned()
            .unwrap_or(Value::Null),
    };
    Value::object([
        ("id", Value::string(e.id.to_string())),
        ("name", Value::string(&e.name)),
        ("pipeline_id", Value::string(e.pipeline_id.to_string())),
        (
            "protocol",
            Value::string(match e.protocol {
                Protocol::OtlpGrpc => "otlp_grpc",
                Protocol::OtlpHttp => "otlp_http",
            }),
        ),
        ("port", Value::int(i64::from(e.port))),
        (
            "tls",
            e.tls.as_ref().map_or(Value::Null, |t| {
                Value::object([
                    ("cert_file", Value::string(&t.cert_file)),
                    ("key_file", Value::string(&t.key_file)),
                    ("client_ca_file", opt_string(t.client_ca_file.as_deref())),
                ])
            }),
        ),
        ("auth", Value::string(auth_str(e.auth))),
        ("token_version", Value::int(i64::from(e.token_version))),
        (
            "token_grace_period",
            grace_state(e.token_grace_seconds, prior.get("token_grace_period")),
        ),
        ("token", token),
        ("revision", Value::int(e.revision)),
    ])
}

/// The grace period as state: the configured text when it means the server's value (so `600s`
/// and `10m` are not a diff), else the server's value in the largest whole unit.
fn grace_state(seconds: u32, prior: Option<&Value>) -> Value {
    if let Some(Value::String(p)) = prior
        && parse_duration(p).is_some_and(|d| d.as_secs_f64() == f64::from(seconds))
    {
        return Value::string(p);
    }
    Value::string(match seconds {
        0 => "0s".to_string(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    })
}

fn grace_seconds(v: &Value) -> u32 {
    string(v, "token_grace_period")
        .and_then(|t| parse_duration(&t))
        .and_then(|d| u32::try_from(d.as_secs()).ok())
        .unwrap_or(otaas_api::DEFAULT_TOKEN_GRACE_SECONDS)
}

fn auth_str(a: EndpointAuth) -> &'static str {
    match a {
        EndpointAuth::Bearer => "bearer",
        EndpointAuth::None => "none",
    }
}

/// The preview of an endpoint as the server holds it.
fn preview_of(e: &Endpoint) -> otaas_api::ConfigPreview {
    otaas_api::ConfigPreview {
        endpoint: Some(otaas_api::EndpointCheck {
            id: Some(e.id),
            spec: EndpointSpec {
                name: e.name.clone(),
                pipeline_id: e.pipeline_id,
                protocol: e.protocol,
                port: e.port,
                tls: e.tls.clone(),
                auth: e.auth,
                token_version: e.token_version,
                token_grace_seconds: e.token_grace_seconds,
            },
        }),
        ..Default::default()
    }
}

fn spec(v: &Value, diags: &mut Diagnostics) -> Option<EndpointSpec> {
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
    let tls = match v.get("tls") {
        Some(t @ Value::Object(_)) => Some(ServerTls {
            cert_file: string(t, "cert_file").unwrap_or_default(),
            key_file: string(t, "key_file").unwrap_or_default(),
            client_ca_file: string(t, "client_ca_file"),
        }),
        _ => None,
    };
    Some(EndpointSpec {
        name: string(v, "name").unwrap_or_default(),
        pipeline_id,
        protocol: if string(v, "protocol").as_deref() == Some("otlp_grpc") {
            Protocol::OtlpGrpc
        } else {
            Protocol::OtlpHttp
        },
        port: u16::try_from(int(v, "port").unwrap_or(0)).unwrap_or(0),
        tls,
        auth: if string(v, "auth").as_deref() == Some("none") {
            EndpointAuth::None
        } else {
            EndpointAuth::Bearer
        },
        token_version: u32::try_from(int(v, "token_version").unwrap_or(1)).unwrap_or(1),
        token_grace_seconds: grace_seconds(v),
    })
}

async fn lookup(client: &Client, key: &str) -> Result<Option<Endpoint>, String> {
    if let Ok(id) = key.parse::<EndpointId>() {
        match client.get_endpoint(id).await {
            Ok(e) => Ok(Some(e)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    } else {
        client.find_endpoint(key).await.map_err(|e| e.to_string())
    }
}

fn id_of(state: &Value, diags: &mut Diagnostics) -> Option<EndpointId> {
    let parsed = string(state, "id").and_then(|s| s.parse().ok());
    if parsed.is_none() {
        diags.error_at(
            AttributePath::attr("id"),
            "Invalid endpoint id",
            "The state holds no valid endpoint id; remove the resource from state and import it again.",
        );
    }
    parsed
}

#[async_trait]
impl Resource for EndpointResource {
    fn type_name(&self) -> &'static str {
        "otaas_endpoint"
    }
    fn schema(&self) -> Schema {
        rollout::with_wait_attributes(schema(), "endpoint")
    }
    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(id_identity("endpoint"))
    }
    fn identity(&self, state: &Value) -> Option<Value> {
        Some(Value::object([("id", state.get("id")?.clone())]))
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        rollout::validate_settings(config, diags);
        check_name(config.get("name"), AttributePath::attr("name"), diags);
        check_enum(
            config.get("protocol"),
            &["otlp_grpc", "otlp_http"],
            AttributePath::attr("protocol"),
            diags,
        );
        check_enum(
            config.get("auth"),
            &["bearer", "none"],
            AttributePath::attr("auth"),
            diags,
        );
        check_range(
            config.get("port"),
            1,
            65535,
            AttributePath::attr("port"),
            diags,
        );
        check_range(
            config.get("token_version"),
            1,
            i64::from(u32::MAX),
            AttributePath::attr("token_version"),
            diags,
        );
        if let Some(Value::String(t)) = config.get("token_grace_period") {
            let ok = parse_duration(t).is_some_and(|d| {
                d.subsec_nanos() == 0
                    && d.as_secs() <= u64::from(otaas_api::MAX_TOKEN_GRACE_SECONDS)
            });
            if !ok {
                diags.error_at(
                    AttributePath::attr("token_grace_period"),
                    "Invalid grace period",
                    format!(
                        "token_grace_period must be a whole number of seconds as a duration \
                         such as \"10m\", \"90s\" or \"0s\", at most 168h; got {t:?}."
                    ),
                );
            }
        }
        if let Some(Value::String(p)) = config.get("pipeline_id")
            && p.parse::<otaas_api::PipelineId>().is_err()
        {
            diags.error_at(
                AttributePath::attr("pipeline_id"),
                "Invalid pipeline id",
                format!("pipeline_id must be a pipeline's id (a UUID), such as otaas_pipeline.x.id; got {p:?}."),
            );
        }
        if let Some(tls) = config.get("tls") {
            for f in ["cert_file", "key_file", "client_ca_file"] {
                if let Some(Value::String(s)) = tls.get(f)
                    && s.trim().is_empty()
                {
                    diags.error_at(
                        AttributePath::attr("tls").push_attr(f),
                        "Empty path",
                        format!("tls.{f} must be a file path on the agent's host."),
                    );
                }
            }
        }
    }
    async fn modify_plan(&self, ctx: &Context, change: &mut PlanChange, diags: &mut Diagnostics) {
        let config = change.config.clone();
        default_if_unset(
            &mut change.planned,
            &config,
            "auth",
            Value::string("bearer"),
        );
        default_if_unset(&mut change.planned, &config, "token_version", Value::int(1));
        default_if_unset(
            &mut change.planned,
            &config,
            "token_grace_period",
            grace_state(
                otaas_api::DEFAULT_TOKEN_GRACE_SECONDS,
                change.prior.get("token_grace_period"),
            ),
        );
        computed_follow_change(change, &["revision"]);
        // The token changes only when the server mints a new one.
        let auth = change.planned.get("auth").cloned().unwrap_or(Value::Null);
        let token = if auth == Value::string("none") {
            Value::Null
        } else if change.is_create()
            || auth.is_unknown()
            || change.prior.get("auth") != Some(&auth)
            || change.prior.get("token_version") != change.planned.get("token_version")
        {
            Value::unknown()
        } else {
            change.prior.get("token").cloned().unwrap_or(Value::Null)
        };
        change.planned.set("token", token);
        let mut quiet = Diagnostics::new();
        let preview = if change.planned.is_wholly_known_at(&[
            "name",
            "pipeline_id",
            "protocol",
            "port",
            "tls",
            "auth",
            "token_version",
            "token_grace_period",
        ]) {
            spec(&change.planned, &mut quiet).map(|spec| otaas_api::ConfigPreview {
                endpoint: Some(otaas_api::EndpointCheck {
                    id: string(&change.prior, "id").and_then(|s| s.parse().ok()),
                    spec,
                }),
                ..Default::default()
            })
        } else {
            None
        };
        plan_collector_config(ctx, change, preview.filter(|_| !quiet.has_errors()), diags).await;
    }
    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        _config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        let spec = spec(planned, diags)?;
        match client.create_endpoint(&spec).await {
            Ok(e) => {
                let cause = format!("change to endpoint {:?}", e.name);
                let mut st = rollout::settle_write(
                    ctx,
                    &client,
                    state(&e, planned),
                    e.rollouts.as_deref(),
                    planned,
                    cause,
                    diags,
                )
                .await?;
                settle_collector_config(&client, &mut st, planned, Some(preview_of(&e))).await;
                Some(st)
            }
            Err(e) => {
                diags.push(create_error(
                    "otaas_endpoint",
                    &format!("creating endpoint {:?}", spec.name),
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
        match client.read_endpoint(id).await {
            Ok(e) => {
                let mut st = state(&e, prior);
                rollout::keep_local(prior, &mut st);
                settle_collector_config(&client, &mut st, prior, Some(preview_of(&e))).await;
                st
            }
            Err(e) if e.is_not_found() => Value::Null,
            Err(e) => {
                diags.push(api_error(&format!("reading endpoint {id}"), &e, prior));
                prior.clone()
            }
        }
    }
    async fn update(
        &self,
        ctx: &Context,
        prior: &Value,
        planned: &Value,
        _config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        if rollout::only_local_changed(prior, planned) {
            let mut st = prior.clone();
            rollout::keep_local(planned, &mut st);
            return Some(st);
        }
        let client = client_or_diag(ctx, diags)?;
        let id = id_of(prior, diags)?;
        let spec = spec(planned, diags)?;
        match client
            .update_endpoint(id, &spec, int(prior, "revision"))
            .await
        {
            Ok(e) => {
                let cause = format!("change to endpoint {:?}", e.name);
                let mut st = rollout::settle_write(
                    ctx,
                    &client,
                    state(&e, prior),
                    e.rollouts.as_deref(),
                    planned,
                    cause,
                    diags,
                )
                .await?;
                settle_collector_config(&client, &mut st, planned, Some(preview_of(&e))).await;
                Some(st)
            }
            Err(e) => {
                diags.push(api_error(
                    &format!("updating endpoint {:?}", spec.name),
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
        match client.delete_endpoint(id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => diags.push(api_error(&format!("deleting endpoint {id}"), &e, prior)),
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
            Ok(Some(e)) => Some(state(&e, &Value::Null)),
            Ok(None) => {
                diags.error(
                    "Cannot import endpoint",
                    format!("No endpoint has the id or name {key:?}."),
                );
                None
            }
            Err(e) => {
                diags.error("Cannot import endpoint", e);
                None
            }
        }
    }
}

/// The identity of every otaas resource: its server id.
pub(crate) fn id_identity(kind: &str) -> IdentitySchema {
    IdentitySchema {
        version: 0,
        attributes: vec![IdentityAttribute {
            name: "id".into(),
            ty: Type::String,
            required_for_import: true,
            description: format!("The {kind}'s server id (a UUID)."),
        }],
    }
}

/// `list "otaas_endpoint" "..." {}`.
pub struct EndpointList;

#[async_trait]
impl ListResource for EndpointList {
    fn type_name(&self) -> &'static str {
        "otaas_endpoint"
    }
    fn config_schema(&self) -> Schema {
        list_config_schema("endpoints")
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_list_config(config, diags);
    }
    async fn list(&self, ctx: &Context, request: ListRequest) -> BoxStream<'static, ListEvent> {
        let client = match client(ctx) {
            Ok(c) => c,
            Err(d) => return list_error(d),
        };
        let only = match discovered_filter(&client, &request.config, Managing::Endpoints).await {
            Ok(only) => only,
            Err(d) => return list_error(d),
        };
        let result = client.list_endpoints().await;
        list_events(
            result,
            "endpoints",
            &request,
            only.as_ref(),
            |e: &Endpoint| (e.name.clone(), state(e, &Value::Null)),
        )
    }
}
