//! One test per tfplugin6 RPC, driving the real tonic service over a unix socket in-process with
//! a small test-only resource (`otaas_widget`, an in-memory object store) plus its list resource.
//! Given a request as Terraform would send it, then the response must be exactly ...

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use terraform_provider_otaas::codec::msgpack;
use terraform_provider_otaas::framework::*;
use terraform_provider_otaas::proto::tfplugin6 as tf;
use terraform_provider_otaas::server::{ProviderService, convert, run_grpc};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use support::{bounded, server_streaming, try_unary, unary};

// ------------------------------------------------------------------ the test resource

type Store = Arc<Mutex<BTreeMap<String, Value>>>;

#[derive(Clone, Default)]
struct Widget {
    store: Store,
}

fn widget_schema() -> Schema {
    let mut s = Schema::new(
        "A widget, for protocol tests.",
        vec![
            Attribute::computed("id", Type::String)
                .use_state_for_unknown()
                .description("Server-assigned id."),
            Attribute::required("name", Type::String)
                .requires_replace()
                .description("Unique name."),
            Attribute::optional("size", Type::Number).description("Size, at least 0."),
            Attribute::optional("tags", Type::map(Type::String)),
            Attribute::optional("secret", Type::String).sensitive(),
            Attribute::optional("password", Type::String)
                .sensitive()
                .write_only(),
            Attribute::computed("revision", Type::Number).description("Bumped by every update."),
            Attribute::nested(
                "settings",
                Nesting::Single,
                Mode::Optional,
                vec![
                    Attribute::optional("mode", Type::String),
                    Attribute::computed("hash", Type::String).description("Derived from `mode`."),
                ],
            ),
        ],
    );
    s.version = 1;
    s
}

fn widget_type() -> Type {
    widget_schema().implied_type()
}

fn identity_type() -> Type {
    Type::object([("id", Type::String), ("name", Type::String)])
}

fn settings_with_hash(settings: &Value) -> Value {
    match settings {
        Value::Object(m) => {
            let mode = settings
                .attr::<String>("mode")
                .unwrap()
                .into_known()
                .unwrap_or_default();
            let mut m = m.clone();
            m.insert("hash".into(), Value::string(format!("h-{mode}")));
            Value::Object(m)
        }
        other => other.clone(),
    }
}

#[async_trait]
impl Resource for Widget {
    fn type_name(&self) -> &'static str {
        "otaas_widget"
    }
    fn schema(&self) -> Schema {
        widget_schema()
    }
    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute {
                    name: "id".into(),
                    ty: Type::String,
                    required_for_import: false,
                    description: "Id.".into(),
                },
                IdentityAttribute {
                    name: "name".into(),
                    ty: Type::String,
                    required_for_import: false,
                    description: "Name.".into(),
                },
            ],
        })
    }
    fn identity(&self, state: &Value) -> Option<Value> {
        Some(Value::object([
            ("id", state.get("id").cloned().unwrap_or(Value::Null)),
            ("name", state.get("name").cloned().unwrap_or(Value::Null)),
        ]))
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Ok(Val::Known(name)) = config.attr::<String>("name")
            && (name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        {
            diags.error_at(
                AttributePath::attr("name"),
                "Invalid name",
                format!("{name:?} must match [a-z-]+"),
            );
        }
        if let Ok(Val::Known(size)) = config.attr::<i64>("size")
            && size < 0
        {
            diags.error_at(
                AttributePath::attr("size"),
                "Invalid size",
                "size must be at least 0",
            );
        }
    }
    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        if let Err(d) = ctx.provider_config() {
            diags.push(d);
            return None;
        }
        if planned
            .attr::<String>("name")
            .unwrap()
            .known()
            .map(String::as_str)
            == Some("slow")
        {
            // Waits until StopProvider cancels the context.
            ctx.cancel_token().cancelled().await;
            diags.error(
                "Operation cancelled",
                "Terraform asked the provider to stop.",
            );
            return None;
        }
        let mut state = planned.clone();
        // Careless on purpose: echoes the write-only password; the framework must drop it.
        state.set(
            "password",
            config.get("password").cloned().unwrap_or(Value::Null),
        );
        let mut store = self.store.lock().unwrap();
        let id = format!("w-{}", store.len() + 1);
        state.set("id", Value::string(&id));
        state.set("revision", Value::int(1));
        let settings = settings_with_hash(planned.get("settings").unwrap());
        state.set("settings", settings);
        if planned.get("name") == Some(&Value::string("liar")) {
            // A buggy resource: returns a size other than the planned one.
            state.set("size", Value::int(99));
        }
        store.insert(id, state.clone());
        Some(state)
    }
    async fn read(&self, _ctx: &Context, state: &Value, _diags: &mut Diagnostics) -> Value {
        let id = state
            .attr::<String>("id")
            .unwrap()
            .into_known()
            .unwrap_or_default();
        self.store
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .unwrap_or(Value::Null)
    }
    async fn update(
        &self,
        _ctx: &Context,
        prior: &Value,
        planned: &Value,
        _config: &Value,
        _diags: &mut Diagnostics,
    ) -> Option<Value> {
        let mut state = planned.clone();
        let rev = prior
            .attr::<i64>("revision")
            .unwrap()
            .into_known()
            .unwrap_or(0);
        state.set("revision", Value::int(rev + 1));
        state.set(
            "settings",
            settings_with_hash(planned.get("settings").unwrap()),
        );
        let id = prior.attr::<String>("id").unwrap().into_known().unwrap();
        self.store.lock().unwrap().insert(id, state.clone());
        Some(state)
    }
    async fn delete(&self, _ctx: &Context, prior: &Value, _diags: &mut Diagnostics) {
        let id = prior.attr::<String>("id").unwrap().into_known().unwrap();
        self.store.lock().unwrap().remove(&id);
    }
    async fn import(
        &self,
        _ctx: &Context,
        request: ImportRequest,
        _diags: &mut Diagnostics,
    ) -> Option<Value> {
        let key = match request {
            ImportRequest::Id(s) => s,
            ImportRequest::Identity(v) => v
                .attr::<String>("id")
                .unwrap()
                .into_known()
                .or_else(|| v.attr::<String>("name").unwrap().into_known())
                .unwrap_or_default(),
        };
        let store = self.store.lock().unwrap();
        store
            .get(&key)
            .or_else(|| {
                store
                    .values()
                    .find(|v| v.get("name") == Some(&Value::string(&key)))
            })
            .map(|v| Value::object([("id", v.get("id").unwrap().clone())]))
    }
    async fn upgrade_state(
        &self,
        version: i64,
        raw: &serde_json::Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        // Version 0 stored `size` as a string.
        assert_eq!(version, 0);
        let mut raw = raw.clone();
        if let Some(s) = raw.get("size").and_then(|s| s.as_str()).map(str::to_string) {
            raw["size"] = serde_json::json!(s.parse::<i64>().unwrap());
        }
        match terraform_provider_otaas::codec::json::from_json(&raw, &widget_type(), "") {
            Ok(v) => Some(v),
            Err(e) => {
                diags.error("Bad state", e.to_string());
                None
            }
        }
    }
}

/// Data source: one widget by name.
struct WidgetByName {
    store: Store,
}

fn widget_ds_type() -> Type {
    Type::object([
        ("name", Type::String),
        ("id", Type::String),
        ("size", Type::Number),
    ])
}

#[async_trait]
impl DataSource for WidgetByName {
    fn type_name(&self) -> &'static str {
        "otaas_widget"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            "Looks a widget up by name.",
            vec![
                Attribute::required("name", Type::String),
                Attribute::computed("id", Type::String),
                Attribute::computed("size", Type::Number),
            ],
        )
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if config.attr::<String>("name").unwrap() == Val::Known(String::new()) {
            diags.error_at(
                AttributePath::attr("name"),
                "Invalid name",
                "name must not be empty",
            );
        }
    }
    async fn read(&self, _ctx: &Context, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let name = config.get("name").cloned().unwrap_or(Value::Null);
        let store = self.store.lock().unwrap();
        match store.values().find(|w| w.get("name") == Some(&name)) {
            Some(w) => Some(Value::object([
                ("name", name),
                ("id", w.get("id").unwrap().clone()),
                ("size", w.get("size").unwrap().clone()),
            ])),
            None => {
                diags.error_at(
                    AttributePath::attr("name"),
                    "Widget not found",
                    "No widget has this name.",
                );
                None
            }
        }
    }
}

struct WidgetList {
    store: Store,
}

#[async_trait]
impl ListResource for WidgetList {
    fn type_name(&self) -> &'static str {
        "otaas_widget"
    }
    fn config_schema(&self) -> Schema {
        Schema::new(
            "Lists widgets.",
            vec![Attribute::optional("prefix", Type::String)],
        )
    }
    async fn list(&self, _ctx: &Context, request: ListRequest) -> BoxStream<'static, ListEvent> {
        let prefix = request
            .config
            .attr::<String>("prefix")
            .unwrap()
            .into_known()
            .unwrap_or_default();
        let items: Vec<ListEvent> = self
            .store
            .lock()
            .unwrap()
            .values()
            .filter(|v| {
                v.attr::<String>("name")
                    .unwrap()
                    .into_known()
                    .unwrap()
                    .starts_with(&prefix)
            })
            .map(|v| {
                ListEvent::Item(ListItem {
                    identity: Widget::default().identity(v).unwrap(),
                    display_name: v.attr::<String>("name").unwrap().into_known().unwrap(),
                    resource: Some(v.clone()),
                })
            })
            .collect();
        Box::pin(futures::stream::iter(items))
    }
}

/// A test-only action: reports `step 1..=steps` as progress, then fails when `name` is
/// "fail"; plan refuses the name "missing", validation an empty name.
struct WidgetPoke;

#[async_trait]
impl Action for WidgetPoke {
    fn type_name(&self) -> &'static str {
        "otaas_widget_poke"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            "Pokes a widget.",
            vec![
                Attribute::required("name", Type::String).description("Widget name."),
                Attribute::optional("steps", Type::Number),
            ],
        )
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Ok(Val::Known(name)) = config.attr::<String>("name")
            && name.is_empty()
        {
            diags.error_at(AttributePath::attr("name"), "Invalid name", "empty");
        }
    }
    async fn plan(&self, _ctx: &Context, config: &Value, diags: &mut Diagnostics) {
        if let Ok(Val::Known(name)) = config.attr::<String>("name")
            && name == "missing"
        {
            diags.error("No such widget", "missing");
        }
    }
    async fn invoke(
        &self,
        _ctx: &Context,
        config: &Value,
        progress: &Progress,
        diags: &mut Diagnostics,
    ) {
        let steps = config
            .attr::<i64>("steps")
            .ok()
            .and_then(Val::into_known)
            .unwrap_or(0);
        for i in 1..=steps {
            progress.report(format!("step {i}"));
        }
        if config.attr::<String>("name").ok().and_then(Val::into_known) == Some("fail".into()) {
            diags.error("Poke failed", "the widget said no");
        }
    }
}

fn poke_type() -> Type {
    WidgetPoke.schema().implied_type()
}

fn poke_config(name: &str, steps: Option<i64>) -> Value {
    Value::object([
        ("name", Value::string(name)),
        ("steps", steps.map_or(Value::Null, Value::int)),
    ])
}

// ------------------------------------------------------------------ harness

struct Harness {
    ch: Channel,
    store: Store,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start_with_env(env: &[(&str, &str)]) -> Harness {
    let store = Store::default();
    let registry = Registry::new(terraform_provider_otaas::provider::schema())
        .resource(Widget {
            store: store.clone(),
        })
        .data_source(WidgetByName {
            store: store.clone(),
        })
        .list_resource(WidgetList {
            store: store.clone(),
        })
        .action(WidgetPoke);
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let service = ProviderService::with_env(registry, Arc::new(move |k: &str| env.get(k).cloned()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("provider.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { run_grpc(listener, None, service, shutdown).await.unwrap() }
    });
    let ch = support::unix_channel(path).await;
    Harness {
        ch,
        store,
        shutdown,
        server,
        _dir: dir,
    }
}

async fn start() -> Harness {
    let h = start_with_env(&[]).await;
    let resp: tf::configure_provider::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/ConfigureProvider",
        tf::configure_provider::Request {
            terraform_version: "1.15.5".into(),
            config: Some(dv(
                &provider_config("http://127.0.0.1:8080"),
                &provider_type(),
            )),
            client_capabilities: None,
        },
    )
    .await;
    assert_eq!(resp.diagnostics, vec![]);
    h
}

fn provider_type() -> Type {
    terraform_provider_otaas::provider::schema().implied_type()
}

fn provider_config(endpoint: &str) -> Value {
    Value::object([
        ("endpoint", Value::string(endpoint)),
        ("token", Value::string("t0ken")),
        ("ca_cert_pem", Value::Null),
    ])
}

fn dv(v: &Value, ty: &Type) -> tf::DynamicValue {
    tf::DynamicValue {
        msgpack: msgpack::encode(v, ty).unwrap(),
        json: vec![],
    }
}

fn undv(d: &Option<tf::DynamicValue>, ty: &Type) -> Value {
    msgpack::decode(&d.as_ref().expect("a DynamicValue").msgpack, ty).unwrap()
}

fn identity_of(d: &Option<tf::ResourceIdentityData>) -> Value {
    undv(
        &d.as_ref().expect("an identity").identity_data,
        &identity_type(),
    )
}

fn diags(d: &[tf::Diagnostic]) -> Vec<(String, String)> {
    d.iter()
        .map(|d| {
            let d = convert::diag_from_proto(d);
            (d.summary, d.path.map(|p| p.to_string()).unwrap_or_default())
        })
        .collect()
}

/// A widget config as Terraform sends it (all attributes present).
fn widget_config(name: Value, size: Value) -> Value {
    Value::object([
        ("id", Value::Null),
        ("name", name),
        ("size", size),
        ("tags", Value::Null),
        ("secret", Value::Null),
        ("password", Value::string("pw")),
        ("revision", Value::Null),
        (
            "settings",
            Value::object([("mode", Value::string("fast")), ("hash", Value::Null)]),
        ),
    ])
}

async fn plan(
    h: &Harness,
    prior: &Value,
    proposed: &Value,
    config: &Value,
    prior_identity: Option<Value>,
) -> tf::plan_resource_change::Response {
    unary(
        &h.ch,
        "/tfplugin6.Provider/PlanResourceChange",
        tf::plan_resource_change::Request {
            type_name: "otaas_widget".into(),
            prior_state: Some(dv(prior, &widget_type())),
            proposed_new_state: Some(dv(proposed, &widget_type())),
            config: Some(dv(config, &widget_type())),
            prior_identity: prior_identity.map(|i| tf::ResourceIdentityData {
                identity_data: Some(dv(&i, &identity_type())),
            }),
            ..Default::default()
        },
    )
    .await
}

async fn apply(
    h: &Harness,
    prior: &Value,
    planned: &Value,
    config: &Value,
) -> tf::apply_resource_change::Response {
    unary(
        &h.ch,
        "/tfplugin6.Provider/ApplyResourceChange",
        tf::apply_resource_change::Request {
            type_name: "otaas_widget".into(),
            prior_state: Some(dv(prior, &widget_type())),
            planned_state: Some(dv(planned, &widget_type())),
            config: Some(dv(config, &widget_type())),
            ..Default::default()
        },
    )
    .await
}

/// Plans and applies a create of widget `name` with size 3; returns the new state.
async fn create(h: &Harness, name: &str) -> Value {
    let config = widget_config(Value::string(name), Value::int(3));
    let p = plan(h, &Value::Null, &config, &config, None).await;
    assert_eq!(diags(&p.diagnostics), vec![]);
    let planned = undv(&p.planned_state, &widget_type());
    let a = apply(h, &Value::Null, &planned, &config).await;
    assert_eq!(diags(&a.diagnostics), vec![]);
    undv(&a.new_state, &widget_type())
}

fn expected_created(id: &str, name: &str) -> Value {
    Value::object([
        ("id", Value::string(id)),
        ("name", Value::string(name)),
        ("size", Value::int(3)),
        ("tags", Value::Null),
        ("secret", Value::Null),
        ("password", Value::Null),
        ("revision", Value::int(1)),
        (
            "settings",
            Value::object([
                ("mode", Value::string("fast")),
                ("hash", Value::string("h-fast")),
            ]),
        ),
    ])
}

// ------------------------------------------------------------------ schema and metadata

#[tokio::test]
async fn get_provider_schema_describes_provider_resources_list_resources_and_capabilities() {
    let h = start_with_env(&[]).await;
    let resp: tf::get_provider_schema::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/GetProviderSchema",
        tf::get_provider_schema::Request {},
    )
    .await;
    let caps = resp.server_capabilities.unwrap();
    assert!(caps.plan_destroy && caps.get_provider_schema_optional && !caps.move_resource_state);

    let provider = resp.provider.unwrap().block.unwrap();
    let names: Vec<_> = provider
        .attributes
        .iter()
        .map(|a| (a.name.as_str(), a.optional, a.sensitive))
        .collect();
    assert_eq!(
        names,
        vec![
            ("endpoint", true, false),
            ("token", true, true),
            ("ca_cert_pem", true, false),
            ("wait_for_rollout", true, false),
            ("rollout_timeout", true, false)
        ]
    );

    let widget = &resp.resource_schemas["otaas_widget"];
    assert_eq!(widget.version, 1);
    let attr = |n: &str| {
        widget
            .block
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .find(|a| a.name == n)
            .unwrap()
            .clone()
    };
    let id = attr("id");
    assert_eq!(
        (id.required, id.optional, id.computed, id.r#type.as_slice()),
        (false, false, true, &b"\"string\""[..])
    );
    let name = attr("name");
    assert_eq!(
        (name.required, name.optional, name.computed),
        (true, false, false)
    );
    assert_eq!(attr("tags").r#type, br#"["map","string"]"#.to_vec());
    assert!(attr("secret").sensitive);
    let settings = attr("settings");
    assert!(
        settings.r#type.is_empty(),
        "nested attributes carry nested_type, not type"
    );
    let nested = settings.nested_type.unwrap();
    assert_eq!(
        nested.nesting,
        tf::schema::object::NestingMode::Single as i32
    );
    assert_eq!(
        nested
            .attributes
            .iter()
            .map(|a| (a.name.as_str(), a.computed))
            .collect::<Vec<_>>(),
        vec![("mode", false), ("hash", true)]
    );
    assert_eq!(attr("id").description_kind, tf::StringKind::Markdown as i32);

    let list = &resp.list_resource_schemas["otaas_widget"];
    assert_eq!(list.block.as_ref().unwrap().attributes[0].name, "prefix");
    let ds = resp.data_source_schemas["otaas_widget"]
        .block
        .as_ref()
        .unwrap();
    assert_eq!(
        ds.attributes
            .iter()
            .map(|a| (a.name.as_str(), a.required, a.computed))
            .collect::<Vec<_>>(),
        vec![
            ("name", true, false),
            ("id", false, true),
            ("size", false, true)
        ]
    );
    assert_eq!(resp.diagnostics, vec![]);
}

#[tokio::test]
async fn get_resource_identity_schemas_marks_each_attribute_optional_or_required_for_import() {
    let h = start_with_env(&[]).await;
    let resp: tf::get_resource_identity_schemas::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/GetResourceIdentitySchemas",
        tf::get_resource_identity_schemas::Request {},
    )
    .await;
    let s = &resp.identity_schemas["otaas_widget"];
    let attrs: Vec<_> = s
        .identity_attributes
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                String::from_utf8(a.r#type.clone()).unwrap(),
                a.required_for_import,
                a.optional_for_import,
            )
        })
        .collect();
    assert_eq!(
        attrs,
        vec![
            ("id", "\"string\"".into(), false, true),
            ("name", "\"string\"".into(), false, true)
        ]
    );
}

#[tokio::test]
async fn get_metadata_and_get_functions_answer_without_errors() {
    let h = start_with_env(&[]).await;
    let meta: tf::get_metadata::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/GetMetadata",
        tf::get_metadata::Request {},
    )
    .await;
    assert_eq!(
        meta.resources,
        vec![tf::get_metadata::ResourceMetadata {
            type_name: "otaas_widget".into()
        }]
    );
    assert_eq!(
        meta.list_resources,
        vec![tf::get_metadata::ListResourceMetadata {
            type_name: "otaas_widget".into()
        }]
    );
    let f: tf::get_functions::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/GetFunctions",
        tf::get_functions::Request {},
    )
    .await;
    assert!(f.functions.is_empty() && f.diagnostics.is_empty());
}

#[tokio::test]
async fn unimplemented_rpcs_answer_unimplemented() {
    let h = start_with_env(&[]).await;
    let err = try_unary::<_, tf::lock_state::Response>(
        &h.ch,
        "/tfplugin6.Provider/LockState",
        tf::lock_state::Request::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}

// ------------------------------------------------------------------ actions

/// Given a registry with one action, then GetMetadata lists it and GetProviderSchema carries
/// its config schema under `action_schemas` (an engine before 1.14 skips both fields).
#[tokio::test]
async fn actions_are_listed_in_metadata_and_schema() {
    let h = start_with_env(&[]).await;
    let meta: tf::get_metadata::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/GetMetadata",
        tf::get_metadata::Request {},
    )
    .await;
    assert_eq!(
        meta.actions,
        vec![tf::get_metadata::ActionMetadata {
            type_name: "otaas_widget_poke".into()
        }]
    );
    let resp: tf::get_provider_schema::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/GetProviderSchema",
        tf::get_provider_schema::Request {},
    )
    .await;
    let block = resp.action_schemas["otaas_widget_poke"]
        .schema
        .as_ref()
        .unwrap()
        .block
        .as_ref()
        .unwrap();
    assert_eq!(
        block
            .attributes
            .iter()
            .map(|a| (a.name.as_str(), a.required, a.optional))
            .collect::<Vec<_>>(),
        vec![("name", true, false), ("steps", false, true)]
    );
    assert_eq!(block.description, "Pokes a widget.");
}

/// Given an action config with an empty name, ValidateActionConfig answers the action's
/// diagnostic at `name`; given one the action's plan refuses, PlanAction answers that
/// diagnostic; an unknown action type is a diagnostic, not a gRPC error.
#[tokio::test]
async fn action_config_is_validated_and_planned_by_the_action() {
    let h = start().await;
    let v: tf::validate_action_config::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/ValidateActionConfig",
        tf::validate_action_config::Request {
            type_name: "otaas_widget_poke".into(),
            config: Some(dv(&poke_config("", None), &poke_type())),
        },
    )
    .await;
    assert_eq!(
        diags(&v.diagnostics),
        vec![("Invalid name".into(), "name".into())]
    );
    let p: tf::plan_action::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/PlanAction",
        tf::plan_action::Request {
            action_type: "otaas_widget_poke".into(),
            config: Some(dv(&poke_config("missing", None), &poke_type())),
            client_capabilities: None,
        },
    )
    .await;
    assert_eq!(
        diags(&p.diagnostics),
        vec![("No such widget".into(), String::new())]
    );
    let ok: tf::plan_action::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/PlanAction",
        tf::plan_action::Request {
            action_type: "otaas_widget_poke".into(),
            config: Some(dv(&poke_config("w", None), &poke_type())),
            client_capabilities: None,
        },
    )
    .await;
    assert_eq!(ok.diagnostics, vec![]);
    let unknown: tf::plan_action::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/PlanAction",
        tf::plan_action::Request {
            action_type: "otaas_nope".into(),
            config: None,
            client_capabilities: None,
        },
    )
    .await;
    assert_eq!(unknown.diagnostics[0].summary, "Unknown action type");
}

/// Given an action that reports three steps, InvokeAction streams three progress events in
/// order and then one completed event with no diagnostics; given one that fails, the completed
/// event carries its error.
#[tokio::test]
async fn invoke_action_streams_progress_then_completion() {
    use tf::invoke_action::event::Type as Ev;
    let h = start().await;
    let invoke = |name: &str, steps| tf::invoke_action::Request {
        action_type: "otaas_widget_poke".into(),
        config: Some(dv(&poke_config(name, Some(steps)), &poke_type())),
        client_capabilities: None,
    };
    let events: Vec<tf::invoke_action::Event> =
        server_streaming(&h.ch, "/tfplugin6.Provider/InvokeAction", invoke("w", 3)).await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e.r#type.as_ref().unwrap() {
            Ev::Progress(p) => p.message.clone(),
            Ev::Completed(c) => format!("completed {:?}", diags(&c.diagnostics)),
        })
        .collect();
    assert_eq!(kinds, vec!["step 1", "step 2", "step 3", "completed []"]);
    let events: Vec<tf::invoke_action::Event> =
        server_streaming(&h.ch, "/tfplugin6.Provider/InvokeAction", invoke("fail", 0)).await;
    assert_eq!(events.len(), 1);
    match events[0].r#type.as_ref().unwrap() {
        Ev::Completed(c) => assert_eq!(
            diags(&c.diagnostics),
            vec![("Poke failed".into(), String::new())]
        ),
        other => panic!("expected the completed event, got {other:?}"),
    }
}

// ------------------------------------------------------------------ validation and configuration

#[tokio::test]
async fn validate_provider_config_names_the_bad_attribute_and_tolerates_unknowns() {
    let h = start_with_env(&[]).await;
    let call = |cfg: Value| {
        let ch = h.ch.clone();
        async move {
            let r: tf::validate_provider_config::Response = unary(
                &ch,
                "/tfplugin6.Provider/ValidateProviderConfig",
                tf::validate_provider_config::Request {
                    config: Some(dv(&cfg, &provider_type())),
                },
            )
            .await;
            diags(&r.diagnostics)
        }
    };
    assert_eq!(
        call(provider_config("ftp://x")).await,
        vec![("Invalid endpoint".to_string(), "endpoint".to_string())]
    );
    assert_eq!(
        call(provider_config("https://otaas.internal:8080")).await,
        vec![]
    );
    let unknown = Value::object([
        ("endpoint", Value::unknown()),
        ("token", Value::unknown()),
        ("ca_cert_pem", Value::Null),
    ]);
    assert_eq!(call(unknown).await, vec![]);
}

#[tokio::test]
async fn configure_provider_falls_back_to_environment_and_reports_a_missing_endpoint() {
    let h = start_with_env(&[("OTAAS_ENDPOINT", "https://from-env:8080/")]).await;
    let null_cfg = Value::object([
        ("endpoint", Value::Null),
        ("token", Value::Null),
        ("ca_cert_pem", Value::Null),
    ]);
    let r: tf::configure_provider::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/ConfigureProvider",
        tf::configure_provider::Request {
            config: Some(dv(&null_cfg, &provider_type())),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(diags(&r.diagnostics), vec![]);

    let h = start_with_env(&[]).await;
    let r: tf::configure_provider::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/ConfigureProvider",
        tf::configure_provider::Request {
            config: Some(dv(&null_cfg, &provider_type())),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        diags(&r.diagnostics),
        vec![("Missing endpoint".to_string(), "endpoint".to_string())]
    );
}

#[test]
fn configure_resolves_environment_fallbacks_into_provider_config() {
    let cfg = Value::object([
        ("endpoint", Value::Null),
        ("token", Value::Null),
        ("ca_cert_pem", Value::Null),
    ]);
    let env = |k: &str| match k {
        "OTAAS_ENDPOINT" => Some("https://otaas.internal:8080/".to_string()),
        "OTAAS_TOKEN" => Some("s3cret".to_string()),
        _ => None,
    };
    let mut d = Diagnostics::new();
    let got = terraform_provider_otaas::provider::configure(&cfg, env, &mut d).unwrap();
    assert_eq!(
        got,
        ProviderConfig {
            endpoint: "https://otaas.internal:8080".into(),
            token: Some(Secret::new("s3cret")),
            ca_cert_pem: None,
            wait_for_rollout: None,
            rollout_timeout: None,
        }
    );
    assert!(
        !format!("{got:?}").contains("s3cret"),
        "the token must never show in Debug output"
    );
}

#[test]
fn configure_reads_the_ca_from_the_file_the_environment_names() {
    let cfg = Value::object([
        ("endpoint", Value::string("https://otaas.internal:8080")),
        ("token", Value::Null),
        ("ca_cert_pem", Value::Null),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertificateParams::new(vec!["otaas-test-ca".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(&pem_path, ca.pem()).unwrap();
    let file = pem_path.to_str().unwrap().to_string();
    let env = |k: &str| (k == "OTAAS_CA_CERT_FILE").then(|| file.clone());
    let mut d = Diagnostics::new();
    let got = terraform_provider_otaas::provider::configure(&cfg, env, &mut d).unwrap();
    assert_eq!(got.ca_cert_pem.as_deref(), Some(ca.pem().as_str()));

    // A path that does not exist is an error at ca_cert_pem, naming the variable and the path
    let missing = dir.path().join("nope.pem").to_str().unwrap().to_string();
    let env = |k: &str| (k == "OTAAS_CA_CERT_FILE").then(|| missing.clone());
    let mut d = Diagnostics::new();
    assert!(terraform_provider_otaas::provider::configure(&cfg, env, &mut d).is_none());
    let got: Vec<_> = d
        .iter()
        .map(|x| {
            (
                x.summary.as_str(),
                x.path.clone(),
                x.detail.contains(&missing),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(
            "Unreadable CA certificate",
            Some(AttributePath::attr("ca_cert_pem")),
            true
        )]
    );
}

#[tokio::test]
async fn validate_resource_config_reports_paths_and_accepts_unknown_values() {
    let h = start_with_env(&[]).await;
    let call = |cfg: Value| {
        let ch = h.ch.clone();
        async move {
            let r: tf::validate_resource_config::Response = unary(
                &ch,
                "/tfplugin6.Provider/ValidateResourceConfig",
                tf::validate_resource_config::Request {
                    type_name: "otaas_widget".into(),
                    config: Some(dv(&cfg, &widget_type())),
                    // As Terraform 1.11+ sends it: the widget config sets a write-only value.
                    client_capabilities: Some(tf::ClientCapabilities {
                        deferral_allowed: false,
                        write_only_attributes_allowed: true,
                    }),
                },
            )
            .await;
            diags(&r.diagnostics)
        }
    };
    assert_eq!(
        call(widget_config(Value::string("Bad Name"), Value::int(-1))).await,
        vec![
            ("Invalid name".to_string(), "name".to_string()),
            ("Invalid size".to_string(), "size".to_string())
        ]
    );
    assert_eq!(
        call(widget_config(Value::unknown(), Value::unknown())).await,
        vec![]
    );
}

/// Given a configuration setting a write-only attribute,
/// when the engine does not announce write-only support (Terraform before 1.11),
/// then validation fails at that attribute (the engine would store the value);
/// and with the capability it passes.
#[tokio::test]
async fn write_only_values_need_an_engine_that_supports_them() {
    let h = start_with_env(&[]).await;
    let call = |cfg: Value, allowed: Option<bool>| {
        let ch = h.ch.clone();
        async move {
            let r: tf::validate_resource_config::Response = unary(
                &ch,
                "/tfplugin6.Provider/ValidateResourceConfig",
                tf::validate_resource_config::Request {
                    type_name: "otaas_widget".into(),
                    config: Some(dv(&cfg, &widget_type())),
                    client_capabilities: allowed.map(|a| tf::ClientCapabilities {
                        deferral_allowed: false,
                        write_only_attributes_allowed: a,
                    }),
                },
            )
            .await;
            diags(&r.diagnostics)
        }
    };
    let cfg = widget_config(Value::string("ok"), Value::int(1));
    let refused = vec![(
        "Write-only attribute not supported".to_string(),
        "password".to_string(),
    )];
    assert_eq!(call(cfg.clone(), None).await, refused);
    assert_eq!(call(cfg.clone(), Some(false)).await, refused);
    assert_eq!(call(cfg.clone(), Some(true)).await, vec![]);
    let mut without = cfg;
    without.set("password", Value::Null);
    assert_eq!(call(without, None).await, vec![]);
}

#[tokio::test]
async fn unknown_resource_type_is_a_diagnostic_not_a_grpc_error() {
    let h = start_with_env(&[]).await;
    let r: tf::read_resource::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/ReadResource",
        tf::read_resource::Request {
            type_name: "otaas_nope".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        diags(&r.diagnostics),
        vec![("Unknown resource type".to_string(), String::new())]
    );
}

// ------------------------------------------------------------------ plan / apply / read

#[tokio::test]
async fn plan_create_marks_computed_values_unknown_and_apply_fills_them() {
    let h = start().await;
    let config = widget_config(Value::string("alpha"), Value::int(3));
    let p = plan(&h, &Value::Null, &config, &config, None).await;
    assert_eq!(diags(&p.diagnostics), vec![]);
    let planned = undv(&p.planned_state, &widget_type());
    let want = Value::object([
        ("id", Value::unknown()),
        ("name", Value::string("alpha")),
        ("size", Value::int(3)),
        ("tags", Value::Null),
        ("secret", Value::Null),
        ("password", Value::Null),
        ("revision", Value::unknown()),
        (
            "settings",
            Value::object([("mode", Value::string("fast")), ("hash", Value::unknown())]),
        ),
    ]);
    assert_eq!(planned, want);
    assert!(
        p.requires_replace.is_empty(),
        "replacement is meaningless on create"
    );
    // No planned identity on create: its id is not known yet, and Terraform writes a planned
    // identity verbatim into `show -json`, which cannot hold an unknown value.
    assert!(p.planned_identity.is_none(), "{:?}", p.planned_identity);

    let a = apply(&h, &Value::Null, &planned, &config).await;
    assert_eq!(diags(&a.diagnostics), vec![]);
    assert_eq!(
        undv(&a.new_state, &widget_type()),
        expected_created("w-1", "alpha")
    );
    assert_eq!(
        identity_of(&a.new_identity),
        Value::object([
            ("id", Value::string("w-1")),
            ("name", Value::string("alpha"))
        ])
    );
    assert_eq!(h.store.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn plan_update_keeps_stable_ids_marks_changing_values_unknown_and_flags_replacement() {
    let h = start().await;
    let prior = create(&h, "alpha").await;
    let prior_identity = Some(Value::object([
        ("id", Value::string("w-1")),
        ("name", Value::string("alpha")),
    ]));

    // Given no change, the plan is the prior state exactly.
    let config = widget_config(Value::string("alpha"), Value::int(3));
    let mut proposed = prior.clone();
    proposed.set("size", Value::int(3));
    let p = plan(&h, &prior, &proposed, &config, prior_identity.clone()).await;
    assert_eq!(undv(&p.planned_state, &widget_type()), prior);

    // Given a changed size, the id survives (use_state_for_unknown), the revision goes unknown.
    let config = widget_config(Value::string("alpha"), Value::int(5));
    let mut proposed = prior.clone();
    proposed.set("size", Value::int(5));
    let p = plan(&h, &prior, &proposed, &config, prior_identity.clone()).await;
    let planned = undv(&p.planned_state, &widget_type());
    assert_eq!(planned.get("id"), Some(&Value::string("w-1")));
    assert_eq!(planned.get("revision"), Some(&Value::unknown()));
    assert_eq!(planned.get("size"), Some(&Value::int(5)));
    assert!(p.requires_replace.is_empty());
    assert_eq!(
        identity_of(&p.planned_identity),
        prior_identity.clone().unwrap(),
        "update identity must be known"
    );

    let a = apply(&h, &prior, &planned, &config).await;
    let new_state = undv(&a.new_state, &widget_type());
    assert_eq!(new_state.get("revision"), Some(&Value::int(2)));
    assert_eq!(new_state.get("size"), Some(&Value::int(5)));

    // Given a new name, the name path requires replacement.
    let config = widget_config(Value::string("beta"), Value::int(5));
    let mut proposed = new_state.clone();
    proposed.set("name", Value::string("beta"));
    let p = plan(&h, &new_state, &proposed, &config, prior_identity).await;
    let paths: Vec<String> = p
        .requires_replace
        .iter()
        .map(|p| convert::path_from_proto(p).to_string())
        .collect();
    assert_eq!(paths, vec!["name".to_string()]);
}

#[tokio::test]
async fn plan_and_apply_destroy_produce_null_and_remove_the_object() {
    let h = start().await;
    let prior = create(&h, "alpha").await;
    let ty = widget_type();
    let p: tf::plan_resource_change::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/PlanResourceChange",
        tf::plan_resource_change::Request {
            type_name: "otaas_widget".into(),
            prior_state: Some(dv(&prior, &ty)),
            proposed_new_state: Some(dv(&Value::Null, &ty)),
            config: Some(dv(&Value::Null, &ty)),
            prior_private: b"keep".to_vec(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(undv(&p.planned_state, &ty), Value::Null);
    assert_eq!(p.planned_private, b"keep".to_vec());
    let a = apply(&h, &prior, &Value::Null, &Value::Null).await;
    assert_eq!(diags(&a.diagnostics), vec![]);
    assert_eq!(undv(&a.new_state, &ty), Value::Null);
    assert!(h.store.lock().unwrap().is_empty());
}

#[tokio::test]
async fn read_resource_returns_current_state_echoes_private_and_null_when_gone() {
    let h = start().await;
    let state = create(&h, "alpha").await;
    let read = |private: Vec<u8>| {
        let ch = h.ch.clone();
        let state = state.clone();
        async move {
            let r: tf::read_resource::Response = unary(
                &ch,
                "/tfplugin6.Provider/ReadResource",
                tf::read_resource::Request {
                    type_name: "otaas_widget".into(),
                    current_state: Some(dv(&state, &widget_type())),
                    private,
                    ..Default::default()
                },
            )
            .await;
            r
        }
    };
    let r = read(b"p1".to_vec()).await;
    assert_eq!(undv(&r.new_state, &widget_type()), state);
    assert_eq!(r.private, b"p1".to_vec());
    assert_eq!(
        identity_of(&r.new_identity),
        Value::object([
            ("id", Value::string("w-1")),
            ("name", Value::string("alpha"))
        ])
    );

    h.store.lock().unwrap().clear();
    let r = read(Vec::new()).await;
    assert_eq!(undv(&r.new_state, &widget_type()), Value::Null);
    assert_eq!(r.diagnostics, vec![]);
}

#[tokio::test]
async fn apply_without_configure_is_an_error_diagnostic() {
    let h = start_with_env(&[]).await;
    let config = widget_config(Value::string("alpha"), Value::int(3));
    let (planned, _) = plan::plan(&widget_schema(), &Value::Null, &config, &config);
    let a = apply(&h, &Value::Null, &planned, &config).await;
    assert_eq!(
        diags(&a.diagnostics),
        vec![("Provider not configured".to_string(), String::new())]
    );
    assert_eq!(undv(&a.new_state, &widget_type()), Value::Null);
}

#[tokio::test]
async fn apply_reports_a_known_planned_value_the_resource_changed() {
    let h = start().await;
    let config = widget_config(Value::string("liar"), Value::int(3));
    let (planned, _) = plan::plan(&widget_schema(), &Value::Null, &config, &config);
    let a = apply(&h, &Value::Null, &planned, &config).await;
    assert_eq!(
        diags(&a.diagnostics),
        vec![(
            "Provider produced inconsistent result after apply".to_string(),
            "size".to_string()
        )]
    );
}

// ------------------------------------------------------------------ data sources

#[tokio::test]
async fn validate_and_read_data_source() {
    let h = start().await;
    create(&h, "alpha").await;
    let cfg = |name: &str| {
        dv(
            &Value::object([
                ("name", Value::string(name)),
                ("id", Value::Null),
                ("size", Value::Null),
            ]),
            &widget_ds_type(),
        )
    };
    let v: tf::validate_data_resource_config::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/ValidateDataResourceConfig",
        tf::validate_data_resource_config::Request {
            type_name: "otaas_widget".into(),
            config: Some(cfg("")),
        },
    )
    .await;
    assert_eq!(
        diags(&v.diagnostics),
        vec![("Invalid name".to_string(), "name".to_string())]
    );

    let read = |name: &str| {
        let ch = h.ch.clone();
        let config = cfg(name);
        async move {
            let r: tf::read_data_source::Response = unary(
                &ch,
                "/tfplugin6.Provider/ReadDataSource",
                tf::read_data_source::Request {
                    type_name: "otaas_widget".into(),
                    config: Some(config),
                    ..Default::default()
                },
            )
            .await;
            r
        }
    };
    let r = read("alpha").await;
    assert_eq!(r.diagnostics, vec![]);
    assert_eq!(
        undv(&r.state, &widget_ds_type()),
        Value::object([
            ("name", Value::string("alpha")),
            ("id", Value::string("w-1")),
            ("size", Value::int(3))
        ])
    );
    let r = read("nope").await;
    assert_eq!(
        diags(&r.diagnostics),
        vec![("Widget not found".to_string(), "name".to_string())]
    );
    assert!(r.state.is_none());
}

// ------------------------------------------------------------------ import

#[tokio::test]
async fn import_by_id_by_name_and_by_identity_returns_state_and_identity() {
    let h = start().await;
    create(&h, "alpha").await;
    let import = |id: &str, identity: Option<Value>| {
        let ch = h.ch.clone();
        let id = id.to_string();
        async move {
            let r: tf::import_resource_state::Response = unary(
                &ch,
                "/tfplugin6.Provider/ImportResourceState",
                tf::import_resource_state::Request {
                    type_name: "otaas_widget".into(),
                    id,
                    identity: identity.map(|i| tf::ResourceIdentityData {
                        identity_data: Some(dv(&i, &identity_type())),
                    }),
                    client_capabilities: None,
                },
            )
            .await;
            r
        }
    };
    let want_state = Value::object([
        ("id", Value::string("w-1")),
        ("name", Value::Null),
        ("size", Value::Null),
        ("tags", Value::Null),
        ("secret", Value::Null),
        ("password", Value::Null),
        ("revision", Value::Null),
        ("settings", Value::Null),
    ]);
    for r in [
        import("w-1", None).await,
        import("alpha", None).await,
        import(
            "",
            Some(Value::object([
                ("id", Value::Null),
                ("name", Value::string("alpha")),
            ])),
        )
        .await,
    ] {
        assert_eq!(r.diagnostics, vec![]);
        assert_eq!(r.imported_resources.len(), 1);
        let ir = &r.imported_resources[0];
        assert_eq!(ir.type_name, "otaas_widget");
        assert_eq!(undv(&ir.state, &widget_type()), want_state);
        assert_eq!(
            identity_of(&ir.identity),
            Value::object([("id", Value::string("w-1")), ("name", Value::Null)])
        );
    }
    let missing = import("nope", None).await;
    assert_eq!(
        diags(&missing.diagnostics),
        vec![(
            "Cannot import non-existent remote object".to_string(),
            String::new()
        )]
    );
    assert!(missing.imported_resources.is_empty());
}

// ------------------------------------------------------------------ upgrade

#[tokio::test]
async fn upgrade_resource_state_passes_current_json_through_and_upgrades_older_versions() {
    let h = start_with_env(&[]).await;
    let upgrade = |version: i64, json: &str| {
        let ch = h.ch.clone();
        let json = json.as_bytes().to_vec();
        async move {
            let r: tf::upgrade_resource_state::Response = unary(
                &ch,
                "/tfplugin6.Provider/UpgradeResourceState",
                tf::upgrade_resource_state::Request {
                    type_name: "otaas_widget".into(),
                    version,
                    raw_state: Some(tf::RawState {
                        json,
                        flatmap: Default::default(),
                    }),
                },
            )
            .await;
            r
        }
    };
    let mut want = expected_created("w-1", "alpha");
    want.set("settings", Value::Null);
    // Same version: JSON read with the current schema; a removed attribute is dropped.
    let r = upgrade(
        1,
        r#"{"id":"w-1","name":"alpha","size":3,"revision":1,"gone":true}"#,
    )
    .await;
    assert_eq!(r.diagnostics, vec![]);
    assert_eq!(undv(&r.upgraded_state, &widget_type()), want);
    // Version 0 stored size as a string: the resource's upgrader converts it.
    let r = upgrade(0, r#"{"id":"w-1","name":"alpha","size":"3","revision":1}"#).await;
    assert_eq!(r.diagnostics, vec![]);
    assert_eq!(undv(&r.upgraded_state, &widget_type()), want);
    // A newer version than ours is refused with a diagnostic.
    let r = upgrade(2, r#"{"id":"w-1"}"#).await;
    assert_eq!(
        diags(&r.diagnostics),
        vec![("State from a newer provider".to_string(), String::new())]
    );
}

#[tokio::test]
async fn upgrade_resource_identity_reads_json_identity_of_the_current_version() {
    let h = start_with_env(&[]).await;
    let r: tf::upgrade_resource_identity::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/UpgradeResourceIdentity",
        tf::upgrade_resource_identity::Request {
            type_name: "otaas_widget".into(),
            version: 0,
            raw_identity: Some(tf::RawState {
                json: br#"{"id":"w-9","name":"x"}"#.to_vec(),
                flatmap: Default::default(),
            }),
        },
    )
    .await;
    assert_eq!(
        identity_of(&r.upgraded_identity),
        Value::object([("id", Value::string("w-9")), ("name", Value::string("x"))])
    );
}

// ------------------------------------------------------------------ list resources

#[tokio::test]
async fn list_resource_streams_identities_honours_limit_and_includes_objects_on_request() {
    let h = start().await;
    for n in ["alpha", "beta", "bravo"] {
        create(&h, n).await;
    }
    let cfg_ty = Type::object([("prefix", Type::String)]);
    let v: tf::validate_list_resource_config::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/ValidateListResourceConfig",
        tf::validate_list_resource_config::Request {
            type_name: "otaas_widget".into(),
            config: Some(dv(
                &Value::object([("prefix", Value::string("b"))]),
                &cfg_ty,
            )),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(v.diagnostics, vec![]);

    let list = |prefix: Value, include: bool, limit: i64| {
        let ch = h.ch.clone();
        let cfg = dv(&Value::object([("prefix", prefix)]), &cfg_ty);
        async move {
            server_streaming::<_, tf::list_resource::Event>(
                &ch,
                "/tfplugin6.Provider/ListResource",
                tf::list_resource::Request {
                    type_name: "otaas_widget".into(),
                    config: Some(cfg),
                    include_resource_object: include,
                    limit,
                },
            )
            .await
        }
    };
    let events = list(Value::string("b"), false, 100).await;
    let names: Vec<_> = events.iter().map(|e| e.display_name.as_str()).collect();
    assert_eq!(names, vec!["beta", "bravo"]);
    assert_eq!(
        identity_of(&events[0].identity),
        Value::object([
            ("id", Value::string("w-2")),
            ("name", Value::string("beta"))
        ])
    );
    assert!(
        events
            .iter()
            .all(|e| e.resource_object.is_none() && e.diagnostic.is_empty())
    );

    let events = list(Value::Null, true, 2).await;
    assert_eq!(events.len(), 2, "limit caps the stream");
    let obj = msgpack::decode(
        &events[0].resource_object.as_ref().unwrap().msgpack,
        &widget_type(),
    )
    .unwrap();
    assert_eq!(obj, expected_created("w-1", "alpha"));
}

// ------------------------------------------------------------------ stop, shutdown, health

#[tokio::test]
async fn stop_provider_cancels_in_flight_applies() {
    let h = start().await;
    let config = widget_config(Value::string("slow"), Value::int(1));
    let (planned, _) = plan::plan(&widget_schema(), &Value::Null, &config, &config);
    let ch = h.ch.clone();
    let in_flight = tokio::spawn(async move {
        let r: tf::apply_resource_change::Response = unary(
            &ch,
            "/tfplugin6.Provider/ApplyResourceChange",
            tf::apply_resource_change::Request {
                type_name: "otaas_widget".into(),
                prior_state: Some(dv(&Value::Null, &widget_type())),
                planned_state: Some(dv(&planned, &widget_type())),
                config: Some(dv(&config, &widget_type())),
                ..Default::default()
            },
        )
        .await;
        r
    });
    // Give the apply a moment to reach the resource before stopping.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let s: tf::stop_provider::Response = unary(
        &h.ch,
        "/tfplugin6.Provider/StopProvider",
        tf::stop_provider::Request {},
    )
    .await;
    assert_eq!(s.error, "");
    let a = bounded("the cancelled apply", in_flight).await.unwrap();
    assert_eq!(
        diags(&a.diagnostics),
        vec![("Operation cancelled".to_string(), String::new())]
    );
}

#[tokio::test]
async fn health_reports_plugin_serving_and_shutdown_stops_the_server() {
    let h = start_with_env(&[]).await;
    let health: tonic_health::pb::HealthCheckResponse = unary(
        &h.ch,
        "/grpc.health.v1.Health/Check",
        tonic_health::pb::HealthCheckRequest {
            service: "plugin".into(),
        },
    )
    .await;
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let _: terraform_provider_otaas::proto::plugin::Empty = unary(
        &h.ch,
        "/plugin.GRPCController/Shutdown",
        terraform_provider_otaas::proto::plugin::Empty {},
    )
    .await;
    bounded("server to stop after Shutdown", h.server)
        .await
        .unwrap();
    assert!(h.shutdown.is_cancelled());
}

// ------------------------------------------------------------------ docs of a resource

#[test]
fn docs_render_nested_schemas_identity_and_import_for_a_resource() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("resources/otaas_widget");
    std::fs::create_dir_all(&ex).unwrap();
    std::fs::write(
        ex.join("resource.tf"),
        "resource \"otaas_widget\" \"w\" {\n  name = \"w\"\n}\n",
    )
    .unwrap();
    std::fs::write(ex.join("import.sh"), "terraform import otaas_widget.w w\n").unwrap();
    let registry =
        Registry::new(terraform_provider_otaas::provider::schema()).resource(Widget::default());
    let pages = terraform_provider_otaas::docs::render(&registry, dir.path()).unwrap();
    let page = &pages[std::path::Path::new("resources/widget.md")];
    for needle in [
        "# otaas_widget (Resource)",
        "```terraform\nresource \"otaas_widget\" \"w\" {\n  name = \"w\"\n}\n```",
        "### Required\n\n- `name` (String) Unique name.",
        "- `secret` (String, Sensitive)",
        "- `settings` (Attributes) (see [below for nested schema](#nestedatt--settings))",
        "### Read-Only\n\n- `id` (String) Server-assigned id.",
        "<a id=\"nestedatt--settings\"></a>\n### Nested Schema for `settings`",
        "- `hash` (String) Derived from `mode`.",
        "## Identity",
        "- `id` (String, Optional) Id.",
        "## Import\n\nImport is supported using the following syntax:\n\n```shell\nterraform import otaas_widget.w w\n```",
    ] {
        assert!(page.contains(needle), "missing {needle:?} in\n{page}");
    }
}
