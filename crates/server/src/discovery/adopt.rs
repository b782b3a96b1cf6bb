//! Adoption: a discovered pipeline → otaas objects (a pipeline, an endpoint per plain OTLP
//! receiver, an exporter binding per exporter, optionally an agent group), checked before
//! anything is written by rendering them with the server's own renderer and comparing the
//! shape of the result with what the agents run. The plan says what would change on which
//! agent and why; the objects are written in one store transaction
//! ([`ConfigWriter::adopt`](crate::revisions::ConfigWriter::adopt)).
//!
//! Mapping (names are the adopted pipeline's name `P`):
//! - a receiver `otlp` whose whole config is one protocol listening on `0.0.0.0:<port>` →
//!   endpoint `P-<grpc|http>` without auth (what otaas renders for such an endpoint); any other
//!   receiver, OTLP ones included, → a pipeline receiver with its config as it is;
//! - processors → the pipeline's processors, in order;
//! - each exporter → binding `P-<exporter id>` with one destination `main`: its type, its
//!   `endpoint`, its `headers`, the rest of its config; `signals` = the pipelines using it;
//! - a value the server saw as `<redacted>` → a secret (`{"$secret": name}`; destination
//!   headers stay headers) whose value the request must give: `secrets_required` names them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use otaas_api::discovery::{AdoptRequest, Adoption, AgentChange, RequiredSecret};
use otaas_api::{
    AgentGroupId, AgentGroupSpec, DestinationSpec, EndpointAuth, EndpointSpec, ExporterBindingSpec,
    PipelineId, PipelineSpec, ProcessorSpec, Protocol, RolloutSpec, SECRET_REF_KEY, Signal,
};
use otaas_collector::components::type_of;
use otaas_collector::shape::{self, Unit};
use serde_json::{Map, Value, json};

use super::{Discovery, Found};
use crate::render::REDACTED;
use crate::secrets::{KnownSecrets, PENDING};
use crate::store::{BindingRecord, EndpointRecord, GroupRecord, Record, StoreError};

/// Why an adoption cannot be planned or made.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("no connected agent runs discovered pipeline {0:?}")]
    NotFound(String),
    /// The request cannot be honoured as written; `field` names what to change.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Write(#[from] crate::revisions::WriteError),
}

fn invalid(field: &str, message: impl Into<String>) -> AdoptError {
    AdoptError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The otaas objects a discovered pipeline becomes (secret values included: not for display).
#[derive(Clone, Debug)]
pub struct Objects {
    pub pipeline: PipelineSpec,
    pub endpoints: Vec<EndpointSpec>,
    pub bindings: Vec<ExporterBindingSpec>,
    pub required: Vec<RequiredSecret>,
}

/// `s` as a name `[a-z0-9_-]`, at most `max` characters (`x` when nothing is left).
fn slug(s: &str, max: usize) -> String {
    let out = super::sanitized(s, max);
    if out.is_empty() { "x".into() } else { out }
}

/// Secret slots handed out while mapping one adoption.
struct Secrets<'a> {
    given: &'a BTreeMap<String, String>,
    /// The value of a secret not given: `None` for the redacted text itself (renders and
    /// compares like what agents reported: for plans), or [`PENDING`] (for writing).
    placeholder: Option<&'static str>,
    used: BTreeSet<String>,
    required: Vec<RequiredSecret>,
}

impl Secrets<'_> {
    /// A new slot for the redacted value at `path`; its value: the one given, or the
    /// placeholder.
    fn slot(&mut self, object: &str, path: &str, redacted: &str) -> (String, String) {
        let last: Vec<&str> = path.rsplit('.').take(2).collect();
        let base = slug(&last.into_iter().rev().collect::<Vec<_>>().join("-"), 56);
        let mut name = base.clone();
        let mut n = 2;
        while !self.used.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let value = self.given.get(&name).cloned();
        self.required.push(RequiredSecret {
            name: name.clone(),
            object: object.to_owned(),
            path: path.to_owned(),
            given: value.is_some(),
        });
        let placeholder = self.placeholder.unwrap_or(redacted);
        (name, value.unwrap_or_else(|| placeholder.to_owned()))
    }

    /// `v` with every redacted string replaced by a secret reference, declared in `declared`.
    fn lift(
        &mut self,
        v: &Value,
        object: &str,
        path: &str,
        declared: &mut BTreeMap<String, String>,
    ) -> Value {
        match v {
            Value::String(s) if s.contains(REDACTED) => {
                let (name, value) = self.slot(object, path, s);
                declared.insert(name.clone(), value);
                json!({ SECRET_REF_KEY: name })
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.lift(x, object, &format!("{path}.{i}"), declared))
                    .collect(),
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| {
                        (
                            k.clone(),
                            self.lift(x, object, &format!("{path}.{k}"), declared),
                        )
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The endpoint an `otlp` receiver is, when otaas renders exactly its config for one.
fn as_endpoint(id: &str, config: &Value, pipeline: &str) -> Option<EndpointSpec> {
    if type_of(id) != "otlp" {
        return None;
    }
    let protocols = config
        .as_object()
        .filter(|m| m.len() == 1)?
        .get("protocols")?;
    let protocols = protocols.as_object().filter(|m| m.len() == 1)?;
    let (proto, settings) = protocols.iter().next()?;
    let settings = settings.as_object().filter(|m| m.len() == 1)?;
    let port: u16 = settings
        .get("endpoint")?
        .as_str()?
        .strip_prefix("0.0.0.0:")?
        .parse()
        .ok()?;
    let protocol = match proto.as_str() {
        "grpc" => Protocol::OtlpGrpc,
        "http" => Protocol::OtlpHttp,
        _ => return None,
    };
    Some(EndpointSpec {
        name: format!("{pipeline}-{proto}"),
        pipeline_id: PipelineId(uuid::Uuid::nil()),
        protocol,
        port: port.max(1),
        tls: None,
        auth: EndpointAuth::None,
        token_version: 1,
        token_grace_seconds: otaas_api::DEFAULT_TOKEN_GRACE_SECONDS,
    })
}

/// Maps a discovered unit to otaas objects named after `name`. Secrets not `given` hold the
/// redacted text (`pending: false`, for a plan) or [`PENDING`] (for writing).
pub fn objects(
    unit: &Unit,
    id: &str,
    name: &str,
    agents: usize,
    given: &BTreeMap<String, String>,
    pending: bool,
) -> Objects {
    let mut secrets = Secrets {
        given,
        placeholder: pending.then_some(PENDING),
        used: BTreeSet::new(),
        required: Vec::new(),
    };
    let signals: Vec<Signal> = unit.signals();
    let mut pipeline_secrets = BTreeMap::new();
    let mut receivers = BTreeMap::new();
    let mut endpoints = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &unit.pipelines {
        for r in &p.receivers {
            if !seen.insert(r.id.clone()) {
                continue;
            }
            match as_endpoint(&r.id, &r.config, name) {
                Some(e) => endpoints.push(e),
                None => {
                    let path = format!("receivers.{}", r.id);
                    let cfg = secrets.lift(&r.config, "pipeline", &path, &mut pipeline_secrets);
                    receivers.insert(r.id.clone(), cfg);
                }
            }
        }
    }
    let processors = unit
        .pipelines
        .first()
        .map(|p| {
            p.processors
                .iter()
                .map(|c| ProcessorSpec {
                    id: c.id.clone(),
                    config: secrets.lift(
                        &c.config,
                        "pipeline",
                        &format!("processors.{}", c.id),
                        &mut pipeline_secrets,
                    ),
                })
                .collect()
        })
        .unwrap_or_default();

    // Exporter id → the signals of the pipelines using it.
    let mut exporters: BTreeMap<&str, (&Value, BTreeSet<Signal>)> = BTreeMap::new();
    for p in &unit.pipelines {
        for e in &p.exporters {
            let entry = exporters
                .entry(e.id.as_str())
                .or_insert((&e.config, BTreeSet::new()));
            entry.1.extend(p.signal);
        }
    }
    let all: BTreeSet<Signal> = signals.iter().copied().collect();
    let mut bindings = Vec::new();
    for (eid, (config, used_by)) in exporters {
        let bname = format!("{}-{}", name, slug(eid, 62 - name.len().min(60)))
            .chars()
            .take(63)
            .collect::<String>();
        let object = format!("exporter_binding {bname}");
        let mut binding_secrets = BTreeMap::new();
        let mut rest = config.as_object().cloned().unwrap_or_else(Map::new);
        let endpoint = match rest.get("endpoint") {
            Some(Value::String(s)) if !s.contains(REDACTED) => {
                let s = s.clone();
                rest.remove("endpoint");
                Some(s)
            }
            _ => None,
        };
        let mut headers = BTreeMap::new();
        if let Some(Value::Object(h)) = rest.get("headers")
            && h.values().all(Value::is_string)
        {
            for (k, v) in h {
                let text = v.as_str().unwrap_or_default();
                let value = if text.contains(REDACTED) {
                    secrets
                        .slot(&object, &format!("exporters.{eid}.headers.{k}"), text)
                        .1
                } else {
                    text.to_owned()
                };
                headers.insert(k.clone(), value);
            }
            rest.remove("headers");
        }
        let config = secrets.lift(
            &Value::Object(rest),
            &object,
            &format!("exporters.{eid}"),
            &mut binding_secrets,
        );
        bindings.push(ExporterBindingSpec {
            name: bname,
            pipeline_id: PipelineId(uuid::Uuid::nil()),
            signals: (used_by != all).then(|| used_by.into_iter().collect()),
            destinations: vec![DestinationSpec {
                name: "main".into(),
                kind: type_of(eid).to_owned(),
                endpoint,
                headers,
                keep_headers: false,
                tls: None,
                config,
            }],
            secrets: binding_secrets,
            keep_secrets: false,
        });
    }
    let names: Vec<&str> = unit.pipelines.iter().map(|p| p.name.as_str()).collect();
    let mut description = format!(
        "Adopted from the collector pipelines {} that {agents} agent(s) ran (discovered \
         pipeline {}).",
        names.join(", "),
        &id[..id.len().min(12)]
    );
    let (given_list, missing): (Vec<&RequiredSecret>, Vec<&RequiredSecret>) =
        secrets.required.iter().partition(|r| r.given);
    let names = |l: &[&RequiredSecret]| -> String {
        l.iter()
            .map(|r| format!("{} ({})", r.name, r.path))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !given_list.is_empty() {
        description.push_str(&format!(
            " Secret values given at adoption: {}.",
            names(&given_list)
        ));
    }
    if !missing.is_empty() {
        description.push_str(&format!(
            " The server saw these secret values redacted and has no value for them yet: {}. \
             Set them (secrets_wo with secrets_wo_version, or a destination's headers) before a \
             group runs this pipeline.",
            names(&missing)
        ));
    }
    Objects {
        pipeline: PipelineSpec {
            name: name.to_owned(),
            description,
            signals,
            receivers,
            processors,
            secrets: pipeline_secrets,
            keep_secrets: false,
        },
        endpoints,
        bindings,
        required: secrets.required,
    }
}

/// Every secret value of the objects (to redact them from what is shown).
fn values_of(o: &Objects) -> Vec<String> {
    let mut v: Vec<String> = o.pipeline.secrets.values().cloned().collect();
    for b in &o.bindings {
        v.extend(b.secrets.values().cloned());
        for d in &b.destinations {
            v.extend(d.headers.values().cloned());
        }
    }
    v
}

/// The objects as shown: secret values replaced by [`REDACTED`].
fn shown(mut o: Objects, pipeline_id: PipelineId) -> Objects {
    o.pipeline
        .secrets
        .values_mut()
        .for_each(|v| *v = REDACTED.into());
    for e in &mut o.endpoints {
        e.pipeline_id = pipeline_id;
    }
    for b in &mut o.bindings {
        b.pipeline_id = pipeline_id;
        b.secrets.values_mut().for_each(|v| *v = REDACTED.into());
        for d in &mut b.destinations {
            d.headers.values_mut().for_each(|v| *v = REDACTED.into());
        }
    }
    o
}

fn record<I, S>(id: I, spec: S) -> Record<I, S> {
    let now = Utc::now();
    Record {
        id,
        revision: 1,
        created_at: now,
        updated_at: now,
        spec,
    }
}

/// A unified diff of two documents, labelled.
fn unified(from: &str, to: &str, from_label: &str, to_label: &str) -> String {
    similar::TextDiff::from_lines(from, to)
        .unified_diff()
        .context_radius(3)
        .header(from_label, to_label)
        .to_string()
}

/// Why an agent's config and the rendered one are not equivalent, in words.
fn why_changes(agent_yaml: &str, rendered: &shape::Shape, name: &str) -> String {
    let Ok(agent) = shape::shape(agent_yaml) else {
        return "its effective config is not a collector config otaas can read".into();
    };
    let rendered_hashes: BTreeSet<&str> = rendered.units.iter().map(|u| u.hash.as_str()).collect();
    let agent_hashes: BTreeSet<&str> = agent.units.iter().map(|u| u.hash.as_str()).collect();
    let mut reasons = Vec::new();
    let dropped: Vec<String> = agent
        .units
        .iter()
        .filter(|u| !rendered_hashes.contains(u.hash.as_str()))
        .flat_map(|u| u.pipelines.iter().map(|p| p.name.clone()))
        .collect();
    if !dropped.is_empty() {
        reasons.push(format!(
            "it also runs {} which the group does not render: adopt those too and list them in \
             group.pipeline_ids, or they stop",
            dropped.join(", ")
        ));
    }
    let added: Vec<String> = rendered
        .units
        .iter()
        .filter(|u| !agent_hashes.contains(u.hash.as_str()))
        .flat_map(|u| u.pipelines.iter().map(|p| p.name.clone()))
        .collect();
    if !added.is_empty() {
        reasons.push(format!(
            "it does not run {} as rendered, which it would start",
            added.join(", ")
        ));
    }
    if agent.rest != rendered.rest {
        reasons.push(
            "its extensions or service settings (telemetry, ...) differ from what otaas renders, \
             which it would lose"
                .into(),
        );
    }
    if reasons.is_empty() {
        reasons.push(format!(
            "its config differs from the one rendered for {name}"
        ));
    }
    reasons.join("; ")
}

/// A planned adoption: the answer a dry run gives, and what [`Discovery::write`] needs.
pub struct Planned {
    pub answer: Adoption,
    /// Why the adoption may not be written, if it may not (a dry run still shows the plan).
    refusal: Option<AdoptError>,
    /// The objects to write: secrets not given are pending.
    to_write: Objects,
}

impl Discovery {
    /// Plans the adoption of discovered pipeline `id`: nothing is written.
    pub async fn plan(&self, id: &str, req: &AdoptRequest) -> Result<Planned, AdoptError> {
        let found = self.found();
        let f: &Found = found
            .get(id)
            .ok_or_else(|| AdoptError::NotFound(id.to_owned()))?;
        let existing = self.store().list_pipelines().await?;
        let taken: Vec<String> = existing.iter().map(|p| p.spec.name.clone()).collect();
        let name = match &req.name {
            Some(n) => n.clone(),
            None => super::suggested_name(&f.unit, id, &taken, &[]),
        };
        if taken.contains(&name) {
            return Err(invalid(
                "name",
                format!("a pipeline named {name:?} exists already; give the adoption another name"),
            ));
        }
        let objs = objects(&f.unit, id, &name, f.agents.len(), &req.secrets, false);
        let unknown: Vec<&String> = req
            .secrets
            .keys()
            .filter(|k| !objs.required.iter().any(|r| &r.name == *k))
            .collect();
        if let Some(k) = unknown.first() {
            return Err(invalid(
                &format!("secrets.{k}"),
                format!(
                    "this adoption needs no secret {k:?}; it needs: {}",
                    objs.required
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }

        // The group, if asked for, and the pipelines it also runs.
        let group_spec = match &req.group {
            None => None,
            Some(g) => {
                let selector = g
                    .selector
                    .clone()
                    .unwrap_or_else(|| f.common_labels.clone().unwrap_or_default());
                if selector.is_empty() {
                    return Err(invalid(
                        "group.selector",
                        "the agents running this pipeline share no label, and a group without a \
                         selector would claim every agent: give group.selector",
                    ));
                }
                for pid in &g.pipeline_ids {
                    if !existing.iter().any(|p| p.id == *pid) {
                        return Err(invalid(
                            "group.pipeline_ids",
                            format!("pipeline {pid} does not exist"),
                        ));
                    }
                }
                Some(AgentGroupSpec {
                    pinned_revision: None,
                    name: g.name.clone(),
                    selector,
                    pipeline_ids: g.pipeline_ids.clone(),
                    rollout: g.rollout.clone(),
                })
            }
        };

        // Render what the objects would give, with the server's renderer and policy.
        let pid = PipelineId::new();
        let mut pipelines = vec![record(pid, objs.pipeline.clone())];
        let mut endpoints: Vec<EndpointRecord> = objs
            .endpoints
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.pipeline_id = pid;
                record(otaas_api::EndpointId::new(), e)
            })
            .collect();
        let mut bindings: Vec<BindingRecord> = objs
            .bindings
            .iter()
            .map(|b| {
                let mut b = b.clone();
                b.pipeline_id = pid;
                record(otaas_api::ExporterBindingId::new(), b)
            })
            .collect();
        let extra: BTreeSet<PipelineId> = group_spec
            .as_ref()
            .map(|g| g.pipeline_ids.iter().copied().collect())
            .unwrap_or_default();
        if !extra.is_empty() {
            pipelines.extend(existing.iter().filter(|p| extra.contains(&p.id)).cloned());
            endpoints.extend(
                self.store()
                    .list_endpoints()
                    .await?
                    .into_iter()
                    .filter(|e| extra.contains(&e.spec.pipeline_id)),
            );
            bindings.extend(
                self.store()
                    .list_bindings()
                    .await?
                    .into_iter()
                    .filter(|b| extra.contains(&b.spec.pipeline_id)),
            );
        }
        let gid = AgentGroupId::new();
        let preview_group = GroupRecord {
            record: record(
                gid,
                AgentGroupSpec {
                    pinned_revision: None,
                    name: group_spec
                        .as_ref()
                        .map_or_else(|| format!("{name}-preview"), |g| g.name.clone()),
                    selector: group_spec
                        .as_ref()
                        .map(|g| g.selector.clone())
                        .unwrap_or_default(),
                    pipeline_ids: std::iter::once(pid).chain(extra.iter().copied()).collect(),
                    rollout: RolloutSpec::default(),
                },
            ),
            config_revision: 0,
            config_hash: String::new(),
        };
        let rendered = self
            .writer()
            .preview(&preview_group, &pipelines, &endpoints, &bindings)
            .map_err(|e| invalid(e.field().unwrap_or("name"), e.to_string()))?;
        let mut known_values = values_of(&objs);
        known_values.retain(|v| !v.contains(REDACTED));
        let known = crate::secrets::known(self.store()).await?;
        let known = KnownSecrets::new(known.values().chain(known_values));
        let shown_yaml = crate::render::redact_known(&rendered.yaml, &known)
            .map_err(|e| invalid("name", e.to_string()))?;
        let rendered_shape =
            shape::shape(&shown_yaml).map_err(|e| invalid("name", e.to_string()))?;

        // Is the adopted part what the agents run?
        let suffix = format!("/{name}");
        let mine: Vec<&Unit> = rendered_shape
            .units
            .iter()
            .filter(|u| u.pipelines.iter().all(|p| p.name.ends_with(&suffix)))
            .collect();
        let equivalent = f.unit.problems.is_empty()
            && rendered.gaps.is_empty()
            && mine.len() == 1
            && mine[0].hash == id;
        let mut differences: Vec<String> =
            f.unit.problems.iter().map(ToString::to_string).collect();
        // Every agent running it is selected by a group that renders it: otaas manages it
        // already, and adopting it again would make a second copy of objects that exist.
        let rendering: BTreeSet<AgentGroupId> = self
            .managed()
            .await?
            .remove(id)
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.group_id)
            .collect();
        let selectors: Vec<BTreeMap<String, String>> = self
            .store()
            .list_groups()
            .await?
            .into_iter()
            .filter(|g| rendering.contains(&g.record.id))
            .map(|g| g.record.spec.selector)
            .collect();
        let managed_already = !selectors.is_empty()
            && f.labels.values().all(|labels| {
                selectors
                    .iter()
                    .any(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
            });
        if managed_already {
            differences.push(
                "every agent running it is in an agent group already: otaas manages it (see \
                 managed on the discovered pipeline); import those objects instead of adopting \
                 it again"
                    .into(),
            );
        }
        differences.extend(
            rendered
                .gaps
                .iter()
                .map(|g| format!("otaas would leave out part of it: {g}")),
        );
        if !equivalent && differences.is_empty() {
            let expands = f.unit.pipelines.iter().any(|p| {
                p.receivers
                    .iter()
                    .chain(&p.processors)
                    .chain(&p.exporters)
                    .any(|c| c.config.to_string().contains("${"))
            });
            if expands {
                differences.push(
                    "its settings use the collector's ${...} expansion, which otaas writes as \
                     literal text unless the server's config policy lets that provider through \
                     (see `otaas serve --help`, config policy flags)"
                        .into(),
                );
            } else {
                differences.push(
                    "what otaas renders for these objects differs from what the agents run; see \
                     the diff"
                        .into(),
                );
            }
        }

        // What a group would do to each agent it claims.
        let mut agents = Vec::new();
        let mut example = (f.example.clone(), f.agents.first().map(|a| a.to_string()));
        if let Some(g) = &group_spec {
            // Disconnected agents are claimed when they come back: count them too.
            let mut all = self.registry().list(&crate::fleet::AgentFilter::default());
            all.iter_mut().for_each(|a| a.connected = true);
            let members = self
                .registry()
                .members_if_among(&all, gid, &g.selector, Utc::now());
            if let Some(first) = members.iter().find(|m| m.effective_config.is_some()) {
                example = (
                    first.effective_config.clone().unwrap_or_default(),
                    Some(first.id.to_string()),
                );
            }
            for m in members {
                let (changes, reason) = match m.effective_config.as_deref() {
                    None => (true, "it reports no effective config".to_owned()),
                    Some(cfg) if shape::equivalent(cfg, &shown_yaml) => (
                        false,
                        "it runs the same pipelines, components and settings under other names: \
                         its collector keeps running"
                            .to_owned(),
                    ),
                    Some(cfg) => (true, why_changes(cfg, &rendered_shape, &name)),
                };
                let reason = match m.group_id {
                    Some(other) if changes => format!("{reason}; it leaves agent group {other}"),
                    _ => reason,
                };
                agents.push(AgentChange {
                    agent_id: m.id.to_string(),
                    changes,
                    reason,
                });
            }
        }
        let label = example
            .1
            .map_or_else(|| "agent".to_owned(), |a| format!("agent {a} (effective)"));
        // Written out the way the rendered side is, so the diff shows changes, not layout.
        let from = serde_norway::from_str::<serde_norway::Value>(&example.0)
            .ok()
            .and_then(|v| serde_norway::to_string(&v).ok())
            .unwrap_or_else(|| example.0.to_string());
        let diff = unified(&from, &shown_yaml, &label, "otaas (rendered)");

        let on_view = shown(objs.clone(), PipelineId(uuid::Uuid::nil()));
        let changing = agents.iter().filter(|a| a.changes).count();
        let answer = Adoption {
            dry_run: req.dry_run,
            discovered_pipeline_id: id.to_owned(),
            pipeline: on_view.pipeline,
            endpoints: on_view.endpoints,
            exporter_bindings: on_view.bindings,
            group: group_spec,
            secrets_required: objs.required.clone(),
            equivalent,
            differences,
            agents,
            rendered_yaml: shown_yaml,
            diff,
            created: None,
        };

        // Refusals: nothing is written unless the adoption is faithful and complete.
        let differences = answer.differences.join("; ");
        let refusal = if managed_already {
            Some(invalid("id", differences))
        } else if !f.unit.problems.is_empty() {
            Some(invalid(
                "id",
                format!(
                    "this pipeline has parts otaas cannot represent, which an adoption would \
                     drop: {differences}"
                ),
            ))
        } else {
            let missing: Vec<&str> = objs
                .required
                .iter()
                .filter(|r| !r.given)
                .map(|r| r.name.as_str())
                .collect();
            // Without a group nothing renders the objects yet: missing values are left
            // pending, for the user to set (Terraform: secrets_wo). A group would render them
            // at once.
            if !missing.is_empty() && answer.group.is_some() {
                Some(invalid(
                    "secrets",
                    format!(
                        "the agents' config holds secret values the server only saw redacted, \
                         and the group would render them now; give them in secrets (or adopt \
                         without a group and set them later): {}",
                        missing.join(", ")
                    ),
                ))
            } else if !req.accept_changes && (!equivalent || changing > 0) {
                let why = if equivalent {
                    format!(
                        "{changing} agent(s) the group claims would change config (see the dry \
                         run's agents)"
                    )
                } else {
                    differences
                };
                Some(invalid(
                    "accept_changes",
                    format!(
                        "adopting would change what collectors run: {why}; set accept_changes \
                         to adopt anyway"
                    ),
                ))
            } else {
                None
            }
        };
        let to_write = objects(&f.unit, id, &name, f.agents.len(), &req.secrets, true);
        Ok(Planned {
            answer,
            refusal,
            to_write,
        })
    }

    /// Writes a planned adoption in one transaction, unless the plan refused it; the answer
    /// then names the objects created.
    pub async fn write(
        &self,
        planned: Planned,
        actor: &crate::revisions::Actor,
    ) -> Result<
        (
            Adoption,
            crate::revisions::Written<crate::revisions::Adopted>,
        ),
        AdoptError,
    > {
        let Planned {
            mut answer,
            refusal,
            to_write,
        } = planned;
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        let written = self
            .writer()
            .adopt(
                actor,
                to_write.pipeline,
                to_write.endpoints,
                to_write.bindings,
                answer.group.clone(),
            )
            .await?;
        let a = &written.value;
        answer.created = Some(otaas_api::discovery::AdoptedObjects {
            pipeline_id: a.pipeline.id,
            endpoint_ids: a.endpoints.iter().map(|e| e.id).collect(),
            exporter_binding_ids: a.bindings.iter().map(|b| b.id).collect(),
            group_id: a.group.as_ref().map(|g| g.record.id),
        });
        answer
            .endpoints
            .iter_mut()
            .for_each(|e| e.pipeline_id = a.pipeline.id);
        answer
            .exporter_bindings
            .iter_mut()
            .for_each(|b| b.pipeline_id = a.pipeline.id);
        if let Some(g) = &mut answer.group {
            g.pipeline_ids.insert(0, a.pipeline.id);
        }
        Ok((answer, written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(yaml: &str) -> Unit {
        let s = shape::shape(yaml).unwrap();
        assert_eq!(s.units.len(), 1);
        s.units.into_iter().next().unwrap()
    }

    /// Given an exact OTLP receiver, a filelog receiver, processors and two exporters used by
    /// different signals, when mapped, then the receiver is an endpoint, the rest a pipeline
    /// receiver, processors keep their order, and each exporter is a binding carrying the
    /// signals of the pipelines using it.
    #[test]
    fn a_unit_maps_to_endpoints_receivers_processors_and_bindings() {
        let u = unit(
            "\
receivers:
  otlp: {protocols: {grpc: {endpoint: '0.0.0.0:4317'}}}
  filelog: {include: [/var/log/a.log]}
processors: {batch: {timeout: 2s}, memory_limiter: {limit_mib: 100, check_interval: 1s}}
exporters:
  otlphttp: {endpoint: 'http://sink:4318', compression: gzip}
  debug: {verbosity: basic}
service:
  pipelines:
    logs: {receivers: [otlp, filelog], processors: [memory_limiter, batch], exporters: [otlphttp, debug]}
    traces: {receivers: [otlp], processors: [memory_limiter, batch], exporters: [otlphttp]}
",
        );
        let o = objects(&u, &u.hash, "app", 3, &BTreeMap::new(), false);
        assert_eq!(o.pipeline.signals, vec![Signal::Traces, Signal::Logs]);
        assert_eq!(o.endpoints.len(), 1);
        assert_eq!(o.endpoints[0].name, "app-grpc");
        assert_eq!(o.endpoints[0].port, 4317);
        assert_eq!(o.endpoints[0].auth, EndpointAuth::None);
        assert_eq!(o.pipeline.receivers.keys().collect::<Vec<_>>(), ["filelog"]);
        let procs: Vec<&str> = o
            .pipeline
            .processors
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        assert_eq!(procs, ["memory_limiter", "batch"]);
        let b: BTreeMap<&str, &ExporterBindingSpec> =
            o.bindings.iter().map(|b| (b.name.as_str(), b)).collect();
        assert_eq!(b["app-debug"].signals, Some(vec![Signal::Logs]));
        assert_eq!(b["app-otlphttp"].signals, None);
        let d = &b["app-otlphttp"].destinations[0];
        assert_eq!(d.endpoint.as_deref(), Some("http://sink:4318"));
        assert_eq!(d.config, json!({"compression": "gzip"}));
        assert!(o.required.is_empty());
    }

    /// Given an OTLP receiver otaas would not render exactly (localhost, extra settings), when
    /// mapped, then it stays a pipeline receiver with its config.
    #[test]
    fn other_otlp_receivers_stay_pipeline_receivers() {
        let u = unit(
            "\
receivers: {otlp: {protocols: {http: {endpoint: 'localhost:4318'}}}}
exporters: {debug: {}}
service: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}
",
        );
        let o = objects(&u, &u.hash, "p", 1, &BTreeMap::new(), false);
        assert!(o.endpoints.is_empty());
        assert!(o.pipeline.receivers.contains_key("otlp"));
    }

    /// Given redacted values (a password, a header), when mapped, then each becomes a required
    /// secret named after where it stands, a `$secret` reference in the config, and a header
    /// value on the destination; given values are used and marked given.
    #[test]
    fn redacted_values_become_required_secrets() {
        let u = unit(
            "\
receivers: {kafka: {auth: {sasl: {username: bob, password: '<redacted>'}}}}
exporters: {otlphttp: {endpoint: 'https://x', headers: {authorization: '<redacted>'}}}
service: {pipelines: {logs: {receivers: [kafka], exporters: [otlphttp]}}}
",
        );
        let given: BTreeMap<String, String> =
            [("sasl-password".to_string(), "pw".to_string())].into();
        let o = objects(&u, &u.hash, "k", 1, &given, false);
        let req: Vec<(&str, &str, bool)> = o
            .required
            .iter()
            .map(|r| (r.name.as_str(), r.path.as_str(), r.given))
            .collect();
        assert_eq!(
            req,
            [
                ("sasl-password", "receivers.kafka.auth.sasl.password", true),
                (
                    "headers-authorization",
                    "exporters.otlphttp.headers.authorization",
                    false
                ),
            ]
        );
        assert_eq!(
            o.pipeline.receivers["kafka"]["auth"]["sasl"]["password"],
            json!({"$secret": "sasl-password"})
        );
        assert_eq!(o.pipeline.secrets["sasl-password"], "pw");
        assert_eq!(
            o.bindings[0].destinations[0].headers["authorization"],
            "<redacted>"
        );
        let shown = shown(o, PipelineId::new());
        assert_eq!(shown.pipeline.secrets["sasl-password"], REDACTED);
        // Written, a value not given is pending (the renderer refuses to use it).
        let o = objects(&u, &u.hash, "k", 1, &given, true);
        assert_eq!(
            o.bindings[0].destinations[0].headers["authorization"],
            PENDING
        );
        assert_eq!(o.pipeline.secrets["sasl-password"], "pw");
        assert!(
            o.pipeline
                .description
                .contains("no value for them yet: headers-authorization")
        );
    }
}
