//! The renderer: one agent group + its pipelines, endpoints and exporter bindings → one
//! OpenTelemetry Collector YAML document. Pure and deterministic: the same inputs give
//! byte-identical YAML (maps are sorted, user JSON is canonicalised, lists keep their order).
//!
//! The document is what agents receive as OpAMP remote config: an `AgentConfigMap` with one
//! entry named [`CONFIG_FILE_NAME`] (`collector.yaml`) of content type [`CONFIG_CONTENT_TYPE`]
//! (`text/yaml`). [`RenderedConfig::hash`] is the SHA-256 of that YAML body.
//!
//! Component naming (ids are unique by construction; a clash is a [`RenderError`]):
//! - endpoint → receiver `otlp/<endpoint>` (+ extension `bearertokenauth/<endpoint>` for bearer
//!   auth: `token` = the current token, or `tokens` = [current, previous] while a rotation's
//!   grace period runs; the extension accepts any token of the list)
//! - pipeline receiver/processor `type` → `type/<pipeline>`, `type/name` → `type/<pipeline>.name`
//! - binding destination → exporter `<type>/<binding>.<destination>`
//! - `service.pipelines`: `<signal>/<pipeline>`, holding only the components that support that
//!   signal ([`components::ComponentTable::builtin`]; endpoints' `otlp` receivers support all),
//!   and only for signals left with at least one receiver and one exporter (a collector refuses
//!   a component in a pipeline of a signal it does not support, and a pipeline without
//!   receivers or exporters).
//!
//! User values: secret references (`{"$secret": name}`) in pipeline and destination configs
//! are replaced by the object's secret values, and every `$` of a string value is escaped as
//! `$$` (the collector's literal dollar) unless the [`ConfigPolicy`] lets the collector expand
//! that `${provider:...}` reference. Keys are written as given (the collector expands values
//! only).

use std::collections::{BTreeMap, BTreeSet};

use otaas_api::{ClientTls, EndpointAuth, EndpointId, Protocol, Signal};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub use otaas_collector::{check, components};

use components::{ComponentTable, Kind, type_of};

use crate::auth::TokenKey;
use crate::policy::ConfigPolicy;
use crate::secrets::{KnownSecrets, substitute};
use crate::store::{BindingRecord, EndpointRecord, GroupRecord, PipelineRecord};

pub use otaas_opamp::names::{CONFIG_CONTENT_TYPE, CONFIG_FILE_NAME};

/// A rendered collector config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedConfig {
    pub yaml: String,
    /// SHA-256 of `yaml`.
    pub hash: [u8; 32],
    /// What the group asked for but the YAML leaves out: empty when the group is complete.
    pub gaps: Vec<Gap>,
    /// How many `service.pipelines` the YAML holds (0: a collector refuses it).
    pub service_pipelines: usize,
}

impl RenderedConfig {
    /// The hash as lowercase hex (how the API and the store show it).
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// Every pipeline of the group produced at least one service pipeline.
    pub fn is_complete(&self) -> bool {
        self.gaps.is_empty()
    }
}

/// Why a pipeline of a group produced no `<signal>/<pipeline>` service pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// No endpoint, and no receiver of the pipeline supports any of its signals.
    Receiver,
    /// No exporter binding, or none of its destinations supports any of the pipeline's
    /// signals (or any of the binding's own `signals`).
    Exporter,
    /// Receivers and exporters exist, but no signal has both.
    SharedSignal,
}

/// A part of a group's config that rendering had to leave out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gap {
    /// The group lists no pipeline at all.
    NoPipelines,
    /// This pipeline of the group produced no service pipeline.
    Pipeline {
        id: otaas_api::PipelineId,
        name: String,
        signals: Vec<Signal>,
        missing: Missing,
    },
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gap::NoPipelines => f.write_str("it lists no pipeline (pipeline_ids is empty)"),
            Gap::Pipeline {
                name,
                signals,
                missing,
                ..
            } => {
                let signals: Vec<&str> = signals.iter().map(|s| s.as_str()).collect();
                let signals = signals.join(", ");
                match missing {
                    Missing::Receiver => write!(
                        f,
                        "pipeline {name:?} has no receiver for any of its signals ({signals}): \
                         add an endpoint or a receiver to it"
                    ),
                    Missing::Exporter => write!(
                        f,
                        "pipeline {name:?} has no exporter for any of its signals ({signals}): \
                         add an exporter binding with a destination to it"
                    ),
                    Missing::SharedSignal => write!(
                        f,
                        "pipeline {name:?} has no signal ({signals}) with both a receiver and \
                         an exporter: add a receiver or a destination supporting one signal \
                         the other side has"
                    ),
                }
            }
        }
    }
}

/// Why a group cannot be rendered. `field()` names the input to fix, for API errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("port {port} is used by both endpoint {first:?} and endpoint {second:?}")]
    PortConflict {
        port: u16,
        first: String,
        second: String,
    },
    #[error("component id {id:?} is produced twice ({first} and {second})")]
    DuplicateComponent {
        id: String,
        first: String,
        second: String,
    },
    #[error("serialising YAML: {0}")]
    Yaml(String),
    #[error("{origin} refers to secret {name:?}, which is not declared")]
    UnknownSecret { origin: String, name: String },
    #[error(
        "{origin} uses secret {name:?}, whose value is not set yet (the pipeline was adopted from \
         a config the server saw redacted): set it with secrets, or secrets_wo and a new \
         secrets_wo_version"
    )]
    PendingSecret { origin: String, name: String },
    #[error(
        "{origin} sends header {header:?}, whose value is not set yet (the binding was adopted \
         from a config the server saw redacted): set it in the destination's headers"
    )]
    PendingHeader { origin: String, header: String },
}

impl RenderError {
    pub fn field(&self) -> Option<&'static str> {
        match self {
            RenderError::PortConflict { .. } => Some("port"),
            RenderError::DuplicateComponent { .. } => Some("name"),
            RenderError::Yaml(_) => None,
            RenderError::UnknownSecret { .. } | RenderError::PendingSecret { .. } => {
                Some("secrets")
            }
            RenderError::PendingHeader { .. } => Some("destinations"),
        }
    }
}

/// Sorts object keys recursively so semantically equal JSON renders identically.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// `type` → `type/<scope>`, `type/name` → `type/<scope>.name`.
fn scoped_id(id: &str, scope: &str) -> String {
    match id.split_once('/') {
        Some((ty, name)) => format!("{ty}/{scope}.{name}"),
        None => format!("{id}/{scope}"),
    }
}

fn client_tls(tls: &ClientTls) -> Value {
    let mut m = BTreeMap::new();
    if tls.insecure {
        m.insert("insecure", json!(true));
    }
    if tls.insecure_skip_verify {
        m.insert("insecure_skip_verify", json!(true));
    }
    for (k, v) in [
        ("ca_file", &tls.ca_file),
        ("cert_file", &tls.cert_file),
        ("key_file", &tls.key_file),
    ] {
        if let Some(v) = v {
            m.insert(k, json!(v));
        }
    }
    json!(m)
}

/// Tracks which input produced each component id, to report clashes.
#[derive(Default)]
struct Section {
    items: BTreeMap<String, (Value, String)>,
}

impl Section {
    fn add(&mut self, id: String, config: Value, origin: String) -> Result<(), RenderError> {
        if let Some((_, first)) = self.items.get(&id) {
            return Err(RenderError::DuplicateComponent {
                id,
                first: first.clone(),
                second: origin,
            });
        }
        self.items.insert(id, (config, origin));
        Ok(())
    }

    fn into_value(self, used: &BTreeSet<String>) -> Value {
        let m: Map<String, Value> = self
            .items
            .into_iter()
            .filter(|(id, _)| used.contains(id))
            .map(|(id, (v, _))| (id, v))
            .collect();
        Value::Object(m)
    }
}

/// Endpoints in a token rotation's grace period → the previous token version, still accepted.
pub type TokenGrace = BTreeMap<EndpointId, u32>;

/// What an endpoint renders: its receiver `otlp/<endpoint>` and, for bearer auth, its
/// `bearertokenauth/<endpoint>` extension.
struct EndpointParts {
    receiver: (String, Value),
    extension: Option<(String, Value)>,
    origin: String,
}

fn endpoint_parts(e: &EndpointRecord, tokens: &TokenKey, grace: &TokenGrace) -> EndpointParts {
    let ename = &e.spec.name;
    let mut proto = Map::new();
    proto.insert("endpoint".into(), json!(format!("0.0.0.0:{}", e.spec.port)));
    if let Some(tls) = &e.spec.tls {
        let mut t = Map::new();
        t.insert("cert_file".into(), json!(tls.cert_file));
        if let Some(ca) = &tls.client_ca_file {
            t.insert("client_ca_file".into(), json!(ca));
        }
        t.insert("key_file".into(), json!(tls.key_file));
        proto.insert("tls".into(), Value::Object(t));
    }
    let mut extension = None;
    if e.spec.auth == EndpointAuth::Bearer {
        let ext = format!("bearertokenauth/{ename}");
        let token = tokens.endpoint_token(e.id, e.spec.token_version);
        // The extension refuses `token` and `tokens` together: one or the other.
        let auth_cfg = match grace.get(&e.id) {
            Some(&prev) if prev != e.spec.token_version => {
                json!({ "tokens": [token, tokens.endpoint_token(e.id, prev)] })
            }
            _ => json!({ "token": token }),
        };
        proto.insert("auth".into(), json!({ "authenticator": ext }));
        extension = Some((ext, auth_cfg));
    }
    let proto_name = match e.spec.protocol {
        Protocol::OtlpGrpc => "grpc",
        Protocol::OtlpHttp => "http",
    };
    // Keys of `proto` were inserted in sorted order except `auth`; canonicalise.
    let cfg = canonical(&json!({ "protocols": { proto_name: Value::Object(proto) } }));
    EndpointParts {
        receiver: (format!("otlp/{ename}"), cfg),
        extension,
        origin: format!("endpoint {ename:?}"),
    }
}

/// A pipeline's own receivers: (id, config with secrets resolved, origin).
fn pipeline_receivers(p: &PipelineRecord) -> Result<Vec<(String, Value, String)>, RenderError> {
    let pname = &p.spec.name;
    p.spec
        .receivers
        .iter()
        .map(|(rid, cfg)| {
            let origin = format!("receiver {rid:?} of pipeline {pname:?}");
            let cfg = resolve(cfg, &p.spec.secrets, || origin.clone())?;
            Ok((scoped_id(rid, pname), canonical(&cfg), origin))
        })
        .collect()
}

/// A pipeline's processors in order: (id, config with secrets resolved, origin).
fn pipeline_processors(p: &PipelineRecord) -> Result<Vec<(String, Value, String)>, RenderError> {
    let pname = &p.spec.name;
    p.spec
        .processors
        .iter()
        .map(|proc_| {
            let origin = format!("processor {:?} of pipeline {pname:?}", proc_.id);
            let cfg = resolve(&proc_.config, &p.spec.secrets, || origin.clone())?;
            Ok((scoped_id(&proc_.id, pname), canonical(&cfg), origin))
        })
        .collect()
}

/// A binding's exporters, one per destination: (id, config, origin).
fn binding_exporters(b: &BindingRecord) -> Result<Vec<(String, Value, String)>, RenderError> {
    let bname = &b.spec.name;
    let mut out = Vec::new();
    for d in &b.spec.destinations {
        let id = format!("{}/{}.{}", d.kind, bname, d.name);
        let origin = format!("destination {:?} of binding {bname:?}", d.name);
        // Explicit fields win over the same keys in `config`.
        let resolved = resolve(&d.config, &b.spec.secrets, || origin.clone())?;
        let mut cfg = match canonical(&resolved) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if let Some(ep) = &d.endpoint {
            cfg.insert("endpoint".into(), json!(ep));
        }
        if let Some(header) = d
            .headers
            .iter()
            .find(|(_, v)| *v == crate::secrets::PENDING)
            .map(|(h, _)| h.clone())
        {
            return Err(RenderError::PendingHeader { origin, header });
        }
        if !d.headers.is_empty() {
            cfg.insert("headers".into(), json!(d.headers));
        }
        if let Some(tls) = &d.tls {
            cfg.insert("tls".into(), client_tls(tls));
        }
        out.push((id, canonical(&Value::Object(cfg)), origin));
    }
    Ok(out)
}

/// One config object whose own part of a collector config is wanted ([`fragment`]).
#[derive(Clone, Copy, Debug)]
pub enum Object<'a> {
    Pipeline(&'a PipelineRecord),
    Endpoint(&'a EndpointRecord),
    Binding(&'a BindingRecord),
}

/// The components one object contributes to every collector config that uses it, as a YAML
/// document of collector sections — a pipeline its `receivers` and `processors`, an endpoint its
/// receiver (and auth extension), a binding its `exporters` — made by the same code as
/// [`render_with_policy`] and escaped under `policy`. Not redacted: callers redact.
pub fn fragment(
    object: Object<'_>,
    tokens: &TokenKey,
    policy: &ConfigPolicy,
) -> Result<String, RenderError> {
    let section = |items: Vec<(String, Value, String)>| -> Value {
        Value::Object(items.into_iter().map(|(id, cfg, _)| (id, cfg)).collect())
    };
    let mut doc = Map::new();
    match object {
        Object::Pipeline(p) => {
            doc.insert("receivers".into(), section(pipeline_receivers(p)?));
            doc.insert("processors".into(), section(pipeline_processors(p)?));
        }
        Object::Endpoint(e) => {
            let parts = endpoint_parts(e, tokens, &TokenGrace::new());
            if let Some((id, cfg)) = parts.extension {
                doc.insert("extensions".into(), json!({ id: cfg }));
            }
            let (id, cfg) = parts.receiver;
            doc.insert("receivers".into(), json!({ id: cfg }));
        }
        Object::Binding(b) => {
            doc.insert("exporters".into(), section(binding_exporters(b)?));
        }
    }
    let mut doc = Value::Object(doc);
    escape_values(&mut doc, policy);
    to_yaml(doc)
}

/// Renders a group. `pipelines` are the group's pipelines (any order; the group's
/// `pipeline_ids` decide which are used), `endpoints` and `bindings` may include objects of
/// other pipelines (they are filtered). `tokens` derives endpoint bearer tokens.
pub fn render(
    group: &GroupRecord,
    pipelines: &[PipelineRecord],
    endpoints: &[EndpointRecord],
    bindings: &[BindingRecord],
    tokens: &TokenKey,
) -> Result<RenderedConfig, RenderError> {
    render_with_grace(
        group,
        pipelines,
        endpoints,
        bindings,
        tokens,
        &TokenGrace::new(),
    )
}

/// [`render`] with the endpoints whose previous token is still in its grace period.
pub fn render_with_grace(
    group: &GroupRecord,
    pipelines: &[PipelineRecord],
    endpoints: &[EndpointRecord],
    bindings: &[BindingRecord],
    tokens: &TokenKey,
    grace: &TokenGrace,
) -> Result<RenderedConfig, RenderError> {
    render_with_policy(
        group,
        pipelines,
        endpoints,
        bindings,
        tokens,
        grace,
        &ConfigPolicy::default(),
    )
}

/// Resolves an object's secret references for the rendered document.
fn resolve(
    v: &Value,
    secrets: &BTreeMap<String, String>,
    origin: impl FnOnce() -> String,
) -> Result<Value, RenderError> {
    if let Some(name) = crate::secrets::pending_ref(v, secrets) {
        return Err(RenderError::PendingSecret {
            origin: origin(),
            name,
        });
    }
    substitute(v, secrets).map_err(|name| RenderError::UnknownSecret {
        origin: origin(),
        name,
    })
}

/// Every string value of `v` as [`ConfigPolicy::escape`] writes it (keys stay as they are).
fn escape_values(v: &mut Value, policy: &ConfigPolicy) {
    match v {
        Value::String(s) if s.contains('$') => *s = policy.escape(s),
        Value::Array(items) => items.iter_mut().for_each(|x| escape_values(x, policy)),
        Value::Object(m) => m.values_mut().for_each(|x| escape_values(x, policy)),
        _ => {}
    }
}

/// [`render_with_grace`] under the operator's config policy (what `${...}` may reach the
/// collector unescaped).
pub fn render_with_policy(
    group: &GroupRecord,
    pipelines: &[PipelineRecord],
    endpoints: &[EndpointRecord],
    bindings: &[BindingRecord],
    tokens: &TokenKey,
    grace: &TokenGrace,
    policy: &ConfigPolicy,
) -> Result<RenderedConfig, RenderError> {
    let mut extensions = Section::default();
    let mut receivers = Section::default();
    let mut processors = Section::default();
    let mut exporters = Section::default();
    let mut service_pipelines: BTreeMap<String, Value> = BTreeMap::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut ports: BTreeMap<u16, String> = BTreeMap::new();
    let mut gaps: Vec<Gap> = Vec::new();
    if group.record.spec.pipeline_ids.is_empty() {
        gaps.push(Gap::NoPipelines);
    }
    // Endpoint receiver id → its auth extension: the extension is used when the receiver is.
    let mut receiver_ext: BTreeMap<String, String> = BTreeMap::new();

    // Dedupe pipeline ids while keeping the group's order irrelevant: output is keyed by name.
    let wanted: BTreeSet<_> = group.record.spec.pipeline_ids.iter().copied().collect();
    let mut chosen: Vec<&PipelineRecord> = pipelines
        .iter()
        .filter(|p| wanted.contains(&p.id))
        .collect();
    chosen.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));

    for p in chosen {
        let pname = &p.spec.name;

        // Receivers: endpoints first, then the pipeline's own.
        let mut p_receivers: BTreeSet<String> = BTreeSet::new();
        let mut p_endpoints: Vec<&EndpointRecord> = endpoints
            .iter()
            .filter(|e| e.spec.pipeline_id == p.id)
            .collect();
        p_endpoints.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        for e in p_endpoints {
            let ename = &e.spec.name;
            if let Some(first) = ports.insert(e.spec.port, ename.clone()) {
                return Err(RenderError::PortConflict {
                    port: e.spec.port,
                    first,
                    second: ename.clone(),
                });
            }
            let parts = endpoint_parts(e, tokens, grace);
            if let Some((ext, auth_cfg)) = parts.extension {
                extensions.add(ext.clone(), auth_cfg, parts.origin.clone())?;
                receiver_ext.insert(parts.receiver.0.clone(), ext);
            }
            let (id, cfg) = parts.receiver;
            receivers.add(id.clone(), cfg, parts.origin)?;
            p_receivers.insert(id);
        }
        for (id, cfg, origin) in pipeline_receivers(p)? {
            receivers.add(id.clone(), cfg, origin)?;
            p_receivers.insert(id);
        }

        // Processors, in the pipeline's order.
        let mut p_processors = Vec::new();
        for (id, cfg, origin) in pipeline_processors(p)? {
            processors.add(id.clone(), cfg, origin)?;
            p_processors.push(id);
        }

        // Exporters: one per destination of each binding, remembered per signal.
        let mut p_bindings: Vec<&BindingRecord> = bindings
            .iter()
            .filter(|b| b.spec.pipeline_id == p.id)
            .collect();
        p_bindings.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        let mut by_signal: BTreeMap<Signal, BTreeSet<String>> = BTreeMap::new();
        for b in p_bindings {
            let signals: Vec<Signal> = match &b.spec.signals {
                Some(s) => s.clone(),
                None => Signal::ALL.to_vec(),
            };
            for (id, cfg, origin) in binding_exporters(b)? {
                exporters.add(id.clone(), cfg, origin)?;
                for s in &signals {
                    by_signal.entry(*s).or_default().insert(id.clone());
                }
            }
        }

        let table = ComponentTable::builtin();
        let supports =
            |kind: Kind, id: &str, s: Signal| table.signals(kind, type_of(id)).contains(s);
        let p_signals: BTreeSet<Signal> = p.spec.signals.iter().copied().collect();
        let (mut any_receiver, mut any_exporter, mut produced) = (false, false, false);
        for s in p_signals {
            let has_receiver = p_receivers.iter().any(|id| supports(Kind::Receiver, id, s));
            any_receiver |= has_receiver;
            let Some(exps) = by_signal.get(&s) else {
                continue;
            };
            let recvs: Vec<&String> = p_receivers
                .iter()
                .filter(|id| supports(Kind::Receiver, id, s))
                .collect();
            let procs: Vec<&String> = p_processors
                .iter()
                .filter(|id| supports(Kind::Processor, id, s))
                .collect();
            let exps: Vec<&String> = exps
                .iter()
                .filter(|id| supports(Kind::Exporter, id, s))
                .collect();
            any_exporter |= !exps.is_empty();
            if !has_receiver || exps.is_empty() {
                continue;
            }
            produced = true;
            used.extend(recvs.iter().map(|id| (*id).clone()));
            used.extend(procs.iter().map(|id| (*id).clone()));
            used.extend(exps.iter().map(|id| (*id).clone()));
            service_pipelines.insert(
                format!("{}/{}", s.as_str(), pname),
                json!({
                    "receivers": recvs,
                    "processors": procs,
                    "exporters": exps,
                }),
            );
        }
        if !produced {
            let missing = if !any_receiver {
                Missing::Receiver
            } else if !any_exporter {
                Missing::Exporter
            } else {
                Missing::SharedSignal
            };
            gaps.push(Gap::Pipeline {
                id: p.id,
                name: pname.clone(),
                signals: p.spec.signals.clone(),
                missing,
            });
        }
    }
    let service_count = service_pipelines.len();
    for (receiver, ext) in receiver_ext {
        if used.contains(&receiver) {
            used.insert(ext);
        }
    }

    // Fixed top-level order; every nested map is sorted.
    let ext_ids: Vec<String> = extensions
        .items
        .keys()
        .filter(|id| used.contains(*id))
        .cloned()
        .collect();
    // Optional sections are left out when empty; receivers, exporters and service always exist.
    let mut doc = Map::new();
    let is_empty = |v: &Value| v.as_object().is_some_and(Map::is_empty);
    let extensions = extensions.into_value(&used);
    if !is_empty(&extensions) {
        doc.insert("extensions".into(), extensions);
    }
    doc.insert("receivers".into(), receivers.into_value(&used));
    let processors = processors.into_value(&used);
    if !is_empty(&processors) {
        doc.insert("processors".into(), processors);
    }
    doc.insert("exporters".into(), exporters.into_value(&used));
    let mut service = Map::new();
    if !ext_ids.is_empty() {
        service.insert("extensions".into(), json!(ext_ids));
    }
    service.insert(
        "pipelines".into(),
        Value::Object(service_pipelines.into_iter().collect()),
    );
    doc.insert("service".into(), Value::Object(service));

    let mut doc = Value::Object(doc);
    escape_values(&mut doc, policy);
    let body = to_yaml(doc)?;
    // No header comment naming the group: renaming a group must not change its config.
    let yaml = body;
    let hash: [u8; 32] = Sha256::digest(yaml.as_bytes()).into();
    Ok(RenderedConfig {
        yaml,
        hash,
        gaps,
        service_pipelines: service_count,
    })
}

/// The YAML of `doc`, with every string `<<` (key or value) quoted. serde_norway writes `<<`
/// plain, and a plain `<<` key is a YAML merge key to the collector's parser: a user config
/// key `<<` would merge a mapping into its parent instead of being a key. A quoted `'<<'` is
/// a plain string to every YAML reader. serde_norway has no per-scalar style, so such strings
/// go through as a random placeholder that is then replaced by the quoted form.
fn to_yaml(mut doc: Value) -> Result<String, RenderError> {
    fn mark(v: &mut Value, placeholder: &str) -> bool {
        match v {
            Value::String(s) if s == MERGE_KEY => {
                *s = placeholder.to_string();
                true
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |found, i| mark(i, placeholder) | found),
            Value::Object(map) => {
                let mut found = false;
                if map.contains_key(MERGE_KEY) {
                    // Rebuilt rather than remove + insert, which would move the key.
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(k, v)| match k.as_str() {
                            MERGE_KEY => (placeholder.to_string(), v),
                            _ => (k, v),
                        })
                        .collect();
                    found = true;
                }
                map.values_mut()
                    .fold(found, |found, i| mark(i, placeholder) | found)
            }
            _ => false,
        }
    }
    // Letters and digits only: serde_norway writes it plain, so the replacement is exact.
    let placeholder = format!("otaas{}", uuid::Uuid::new_v4().simple());
    let found = mark(&mut doc, &placeholder);
    let yaml = serde_norway::to_string(&doc).map_err(|e| RenderError::Yaml(e.to_string()))?;
    Ok(if found {
        yaml.replace(&placeholder, "'<<'")
    } else {
        yaml
    })
}

/// The YAML merge key.
const MERGE_KEY: &str = "<<";

/// What replaces a secret value in [`redact_secrets`] output.
pub const REDACTED: &str = otaas_api::redact::REDACTED;

fn redacted() -> serde_norway::Value {
    serde_norway::Value::String(REDACTED.into())
}

fn redact_value(v: &mut serde_norway::Value, all: bool, known: &KnownSecrets) {
    use otaas_api::redact::{is_sensitive_key, redact_url_password};
    match v {
        serde_norway::Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let key = k.as_str().unwrap_or_default();
                // Every value under a `headers` map is a secret (auth headers, tenant ids).
                let under = all || is_sensitive_key(key) || key.eq_ignore_ascii_case("headers");
                redact_value(val, under, known);
            }
        }
        serde_norway::Value::Sequence(s) => s.iter_mut().for_each(|x| redact_value(x, all, known)),
        serde_norway::Value::Tagged(t) => redact_value(&mut t.value, all, known),
        serde_norway::Value::Null => {}
        _ if all => *v = redacted(),
        serde_norway::Value::String(s) => {
            let by_value = known.redact(s);
            let s2 = by_value.as_deref().unwrap_or(s);
            if let Some(r) = redact_url_password(s2).or(by_value) {
                *s = r;
            }
        }
        serde_norway::Value::Number(n) if known.redact(&n.to_string()).is_some() => {
            *v = redacted();
        }
        _ => {}
    }
}

/// A collector config with its secrets replaced by [`REDACTED`]: every value under a `headers`
/// map, every value whose key names a credential ([`otaas_api::redact::is_sensitive_key`]:
/// `token`, `password`, `passwd`, `secret`, `api_key`, `api.key`, `authorization`,
/// `credentials`, `private_key`, ...) and the password of URLs (`scheme://user:pw@host`).
/// Key order is kept.
pub fn redact_secrets(yaml: &str) -> Result<String, RenderError> {
    redact_known(yaml, &KnownSecrets::default())
}

/// [`redact_secrets`], and also every occurrence of a value the server knows to be secret
/// (declared secrets, header values, ingest tokens) wherever it stands. Used for the group
/// config view and for effective configs agents report, so secrets are neither served nor
/// stored twice.
pub fn redact_known(yaml: &str, known: &KnownSecrets) -> Result<String, RenderError> {
    let mut doc: serde_norway::Value =
        serde_norway::from_str(yaml).map_err(|e| RenderError::Yaml(e.to_string()))?;
    redact_value(&mut doc, false, known);
    serde_norway::to_string(&doc).map_err(|e| RenderError::Yaml(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_tokens_headers_and_credentials() {
        let yaml = "extensions:\n  bearertokenauth/a:\n    token: s1\nexporters:\n  otlp/x:\n    endpoint: tempo:4317\n    headers:\n      x-scope-orgid: s2\n  kafka/y:\n    auth:\n      sasl:\n        password: s3\n        username: bob\n";
        let out = redact_secrets(yaml).unwrap();
        for s in ["s1", "s2", "s3"] {
            assert!(!out.contains(s), "{s} leaked: {out}");
        }
        assert_eq!(
            out,
            "extensions:\n  bearertokenauth/a:\n    token: <redacted>\nexporters:\n  otlp/x:\n    endpoint: tempo:4317\n    headers:\n      x-scope-orgid: <redacted>\n  kafka/y:\n    auth:\n      sasl:\n        password: <redacted>\n        username: bob\n"
        );
    }

    /// Given a group of one pipeline with an endpoint and a binding, when each object's
    /// fragment is made, then it holds exactly the sections' entries the full render gives that
    /// object: the two come from the same code.
    #[test]
    fn fragments_are_the_objects_parts_of_the_full_render() {
        use otaas_api::{
            AgentGroupSpec, DestinationSpec, EndpointSpec, ExporterBindingSpec, PipelineSpec,
            ProcessorSpec,
        };
        let rec = |spec| crate::store::Record {
            id: otaas_api::PipelineId::new(),
            revision: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            spec,
        };
        let p: PipelineRecord = rec(PipelineSpec {
            name: "app".into(),
            description: String::new(),
            signals: vec![Signal::Logs, Signal::Traces],
            receivers: [("filelog".to_string(), json!({"include": ["/a"], "x": "$y"}))].into(),
            processors: vec![ProcessorSpec {
                id: "batch".into(),
                config: json!({"timeout": "1s"}),
            }],
            secrets: BTreeMap::new(),
            keep_secrets: false,
        });
        let e = crate::store::Record {
            id: EndpointId::new(),
            revision: 1,
            created_at: p.created_at,
            updated_at: p.created_at,
            spec: EndpointSpec {
                name: "in".into(),
                pipeline_id: p.id,
                protocol: Protocol::OtlpGrpc,
                port: 4317,
                tls: None,
                auth: EndpointAuth::Bearer,
                token_version: 1,
                token_grace_seconds: 0,
            },
        };
        let b = crate::store::Record {
            id: otaas_api::ExporterBindingId::new(),
            revision: 1,
            created_at: p.created_at,
            updated_at: p.created_at,
            spec: ExporterBindingSpec {
                name: "out".into(),
                pipeline_id: p.id,
                signals: None,
                destinations: vec![DestinationSpec {
                    name: "d".into(),
                    kind: "otlphttp".into(),
                    endpoint: Some("http://x".into()),
                    headers: [("k".to_string(), "v".to_string())].into(),
                    keep_headers: false,
                    tls: None,
                    config: json!({"compression": "none"}),
                }],
                secrets: BTreeMap::new(),
                keep_secrets: false,
            },
        };
        let g = GroupRecord {
            record: crate::store::Record {
                id: otaas_api::AgentGroupId::new(),
                revision: 1,
                created_at: p.created_at,
                updated_at: p.created_at,
                spec: AgentGroupSpec {
                    name: "g".into(),
                    selector: BTreeMap::new(),
                    pipeline_ids: vec![p.id],
                    rollout: Default::default(),
                },
            },
            config_revision: 0,
            config_hash: String::new(),
        };
        let key = TokenKey::from_bytes([3; 32]);
        let policy = ConfigPolicy::default();
        let full = render_with_policy(
            &g,
            std::slice::from_ref(&p),
            std::slice::from_ref(&e),
            std::slice::from_ref(&b),
            &key,
            &TokenGrace::new(),
            &policy,
        )
        .unwrap();
        let full: Value = serde_norway::from_str(&full.yaml).unwrap();
        for (object, sections) in [
            (Object::Pipeline(&p), vec!["receivers", "processors"]),
            (Object::Endpoint(&e), vec!["receivers", "extensions"]),
            (Object::Binding(&b), vec!["exporters"]),
        ] {
            let part: Value =
                serde_norway::from_str(&fragment(object, &key, &policy).unwrap()).unwrap();
            let part = part.as_object().unwrap();
            assert_eq!(
                part.keys().collect::<Vec<_>>().len(),
                sections.len(),
                "{part:?}"
            );
            for section in sections {
                for (id, cfg) in part[section].as_object().unwrap() {
                    assert_eq!(&full[section][id], cfg, "{section}.{id}");
                }
            }
        }
    }

    #[test]
    fn redaction_rejects_non_yaml() {
        assert!(matches!(
            redact_secrets("a: [\n"),
            Err(RenderError::Yaml(_))
        ));
    }
}
