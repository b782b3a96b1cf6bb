//! The shape of a collector config: what its service pipelines do, without the names the file
//! gives them. Two configs with the same shape run the same components with the same settings
//! in the same pipelines, whatever their formatting, key order and component names.
//!
//! The control plane uses it to discover the pipelines agents run (grouping equal ones across
//! agents by [`Unit::hash`]) and to check that an adoption renders what agents already run;
//! `otaas agent` uses [`equivalent`] to keep a collector running when a new config only renames
//! what it runs.
//!
//! A [`Unit`] is a set of service pipelines tied together by components they share (a receiver
//! or exporter listed in several pipelines, or a connector joining two): the smallest part of a
//! config that can be moved on its own. Its hash covers, per pipeline, the signal, the receivers
//! and exporters (type and settings, as sets), and the processors (type and settings, in
//! order). Parts otaas cannot represent as its own objects are named in [`Unit::problems`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use otaas_api::Signal;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::components::type_of;

/// Why a document has no shape: it is not a collector config at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("not YAML: {0}")]
    Yaml(String),
    #[error("{0}")]
    Structure(String),
}

/// One component as a pipeline uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// The id the file gives it (`type` or `type/name`).
    pub id: String,
    pub ty: String,
    /// Its settings; an empty or null section is `{}` (the collector reads both alike).
    pub config: Value,
}

impl Component {
    /// Type and settings, keys sorted: what the shape compares.
    fn canonical(&self) -> String {
        let mut out = String::new();
        write_canonical(
            &serde_json::json!({"type": self.ty, "config": self.config}),
            &mut out,
        );
        out
    }
}

/// One service pipeline (`<signal>[/name]`) with its components resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ServicePipeline {
    /// The name in `service.pipelines`.
    pub name: String,
    /// `None` for a signal otaas does not carry (for example `profiles`).
    pub signal: Option<Signal>,
    pub receivers: Vec<Component>,
    pub processors: Vec<Component>,
    pub exporters: Vec<Component>,
}

impl ServicePipeline {
    fn canonical(&self) -> String {
        let set = |cs: &[Component]| -> Vec<String> {
            let s: BTreeSet<String> = cs.iter().map(Component::canonical).collect();
            s.into_iter().collect()
        };
        let signal = match self.signal {
            Some(s) => s.as_str().to_owned(),
            None => self.name.split('/').next().unwrap_or_default().to_owned(),
        };
        let v = serde_json::json!({
            "signal": signal,
            "receivers": set(&self.receivers),
            "processors": self.processors.iter().map(Component::canonical).collect::<Vec<_>>(),
            "exporters": set(&self.exporters),
        });
        let mut out = String::new();
        write_canonical(&v, &mut out);
        out
    }
}

/// A part of a config otaas cannot express with its own objects, named so a user knows what
/// an adoption would have to leave out.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A connector joins pipelines (otaas renders no connectors).
    Connector { id: String, pipelines: Vec<String> },
    /// A component's settings name an extension (an authenticator, a storage): otaas renders
    /// only the extensions of its own endpoints.
    Extension {
        id: String,
        component: String,
        key: String,
    },
    /// Pipelines sharing a receiver or exporter run different processors: an otaas pipeline
    /// runs one list of processors for all its signals.
    DifferentProcessors { first: String, second: String },
    /// A pipeline of a signal otaas does not carry.
    Signal { pipeline: String },
    /// A pipeline lists a component the file does not define.
    Undefined { id: String, pipeline: String },
}

impl Problem {
    /// The part concerned, as `kind id` (what the API lists as the part's name).
    pub fn part(&self) -> String {
        match self {
            Problem::Connector { id, .. } => format!("connector {id}"),
            Problem::Extension { id, .. } => format!("extension {id}"),
            Problem::DifferentProcessors { first, second } => {
                format!("processors of pipelines {first} and {second}")
            }
            Problem::Signal { pipeline } => format!("pipeline {pipeline}"),
            Problem::Undefined { id, .. } => format!("component {id}"),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Connector { id, pipelines } => write!(
                f,
                "connector {id:?} joins pipelines {}: otaas pipelines cannot be joined by \
                 connectors",
                pipelines.join(", ")
            ),
            Problem::Extension { id, component, key } => write!(
                f,
                "extension {id:?}, used by {component:?} as {key:?}: otaas renders no extensions \
                 besides its endpoints' authenticators"
            ),
            Problem::DifferentProcessors { first, second } => write!(
                f,
                "pipelines {first:?} and {second:?} share a receiver or exporter but run \
                 different processors: an otaas pipeline runs one list of processors for all its \
                 signals"
            ),
            Problem::Signal { pipeline } => write!(
                f,
                "pipeline {pipeline:?} carries a signal otaas does not (traces, metrics and logs \
                 only)"
            ),
            Problem::Undefined { id, pipeline } => write!(
                f,
                "pipeline {pipeline:?} lists {id:?}, which the config does not define"
            ),
        }
    }
}

/// Service pipelines tied together by what they share.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// Sorted by name.
    pub pipelines: Vec<ServicePipeline>,
    /// SHA-256 (lowercase hex) of the unit's canonical form: equal for equal content, whatever
    /// the formatting, key order and names.
    pub hash: String,
    /// Empty when otaas can represent the whole unit.
    pub problems: Vec<Problem>,
    /// Connectors of the unit, by id (they are part of its hash).
    pub connectors: BTreeMap<String, Value>,
}

impl Unit {
    pub fn signals(&self) -> Vec<Signal> {
        let s: BTreeSet<Signal> = self.pipelines.iter().filter_map(|p| p.signal).collect();
        s.into_iter().collect()
    }
}

/// A whole config's shape: its units, and everything outside the pipelines.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub units: Vec<Unit>,
    /// Canonical text of the rest: extensions the service runs (type and settings), the other
    /// `service` keys (`telemetry`, ...) and any other top-level key.
    pub rest: String,
}

impl Shape {
    /// The canonical form of the whole config: units by hash, and the rest.
    fn canonical(&self) -> (Vec<&str>, &str) {
        let mut hashes: Vec<&str> = self.units.iter().map(|u| u.hash.as_str()).collect();
        hashes.sort_unstable();
        (hashes, &self.rest)
    }
}

/// Writes `v` as JSON with object keys sorted at every level (serde_json here keeps insertion
/// order, which would make key order matter).
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A component section (`receivers:` ...) as id → settings (`{}` for an empty one).
fn section(doc: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, Value>, ShapeError> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .map(|(id, v)| {
                let v = match v {
                    Value::Null => Value::Object(Map::new()),
                    other => other.clone(),
                };
                (id.clone(), v)
            })
            .collect()),
        Some(_) => Err(ShapeError::Structure(format!("{key} must be a map"))),
    }
}

/// The ids listed under `key` of a service pipeline.
fn ids(pipeline: &Value, key: &str) -> Vec<String> {
    match pipeline.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn signal_of(name: &str) -> Option<Signal> {
    match name.split('/').next().unwrap_or_default() {
        "traces" => Some(Signal::Traces),
        "metrics" => Some(Signal::Metrics),
        "logs" => Some(Signal::Logs),
        _ => None,
    }
}

/// Every string value in `v` that names one of `extensions`, with the key it stands under.
fn extension_refs(
    v: &Value,
    key: &str,
    extensions: &BTreeSet<&str>,
    out: &mut Vec<(String, String)>,
) {
    match v {
        Value::String(s) if extensions.contains(s.as_str()) => {
            out.push((s.clone(), key.to_owned()))
        }
        Value::Array(items) => items
            .iter()
            .for_each(|x| extension_refs(x, key, extensions, out)),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| extension_refs(x, k, extensions, out)),
        _ => {}
    }
}

/// A small union-find over pipeline indexes.
struct Sets(Vec<usize>);

impl Sets {
    fn find(&mut self, i: usize) -> usize {
        let mut root = i;
        while self.0[root] != root {
            root = self.0[root];
        }
        self.0[i] = root;
        root
    }
    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// The shape of a collector config document (YAML).
pub fn shape(yaml: &str) -> Result<Shape, ShapeError> {
    let doc: Value = serde_norway::from_str(yaml).map_err(|e| ShapeError::Yaml(e.to_string()))?;
    let doc = match doc {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => return Err(ShapeError::Structure("the config must be a map".into())),
    };
    let receivers = section(&doc, "receivers")?;
    let processors = section(&doc, "processors")?;
    let exporters = section(&doc, "exporters")?;
    let connectors = section(&doc, "connectors")?;
    let extensions = section(&doc, "extensions")?;
    let service = match doc.get("service") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ShapeError::Structure("service must be a map".into())),
    };
    let declared = match service.get("pipelines") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ShapeError::Structure(
                "service.pipelines must be a map".into(),
            ));
        }
    };
    let extension_ids: BTreeSet<&str> = extensions.keys().map(String::as_str).collect();

    // Resolve each pipeline's components, noting what cannot be represented.
    let mut pipelines: Vec<ServicePipeline> = Vec::new();
    let mut problems: Vec<Vec<Problem>> = Vec::new();
    // Component (kind-qualified id) → the pipelines using it, to tie units together.
    let mut users: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut names: Vec<(&String, &Value)> = declared.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (name, p)) in names.into_iter().enumerate() {
        let mut found = Vec::new();
        let signal = signal_of(name);
        if signal.is_none() {
            found.push(Problem::Signal {
                pipeline: name.clone(),
            });
        }
        let mut resolve = |kind: &str, list: &[String], defined: &BTreeMap<String, Value>| {
            let mut out = Vec::new();
            for id in list {
                let config = if let Some(c) = defined.get(id) {
                    c.clone()
                } else if let Some(c) = connectors.get(id).filter(|_| kind != "processors") {
                    found.push(Problem::Connector {
                        id: id.clone(),
                        pipelines: vec![name.clone()],
                    });
                    users.entry(format!("connectors:{id}")).or_default().push(i);
                    c.clone()
                } else {
                    found.push(Problem::Undefined {
                        id: id.clone(),
                        pipeline: name.clone(),
                    });
                    continue;
                };
                if kind != "processors" {
                    users.entry(format!("{kind}:{id}")).or_default().push(i);
                }
                let mut refs = Vec::new();
                extension_refs(&config, id, &extension_ids, &mut refs);
                for (ext, key) in refs {
                    found.push(Problem::Extension {
                        id: ext,
                        component: id.clone(),
                        key,
                    });
                }
                out.push(Component {
                    id: id.clone(),
                    ty: type_of(id).to_owned(),
                    config,
                });
            }
            out
        };
        let r = resolve("receivers", &ids(p, "receivers"), &receivers);
        let pr = resolve("processors", &ids(p, "processors"), &processors);
        let e = resolve("exporters", &ids(p, "exporters"), &exporters);
        pipelines.push(ServicePipeline {
            name: name.clone(),
            signal,
            receivers: r,
            processors: pr,
            exporters: e,
        });
        problems.push(found);
    }

    let mut sets = Sets((0..pipelines.len()).collect());
    for list in users.values() {
        for w in list.windows(2) {
            sets.join(w[0], w[1]);
        }
    }
    let mut grouped: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..pipelines.len() {
        let root = sets.find(i);
        grouped.entry(root).or_default().push(i);
    }
    let mut units = Vec::new();
    for members in grouped.into_values() {
        let mut unit_problems: BTreeSet<Problem> = BTreeSet::new();
        let mut unit_connectors = BTreeMap::new();
        // A connector is one part, whichever pipelines it joins.
        let mut joined: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for &i in &members {
            for pr in &problems[i] {
                match pr {
                    Problem::Connector { id, pipelines } => {
                        joined
                            .entry(id.clone())
                            .or_default()
                            .extend(pipelines.iter().cloned());
                        if let Some(c) = connectors.get(id) {
                            unit_connectors.insert(id.clone(), c.clone());
                        }
                    }
                    other => {
                        unit_problems.insert(other.clone());
                    }
                }
            }
        }
        for (id, mut pipelines) in joined {
            pipelines.dedup();
            unit_problems.insert(Problem::Connector { id, pipelines });
        }
        let ps: Vec<ServicePipeline> = members.iter().map(|&i| pipelines[i].clone()).collect();
        for w in ps.windows(2) {
            let procs = |p: &ServicePipeline| -> Vec<String> {
                p.processors.iter().map(Component::canonical).collect()
            };
            if procs(&w[0]) != procs(&w[1]) {
                unit_problems.insert(Problem::DifferentProcessors {
                    first: w[0].name.clone(),
                    second: w[1].name.clone(),
                });
            }
        }
        let mut forms: Vec<String> = ps.iter().map(ServicePipeline::canonical).collect();
        forms.sort();
        let mut conns: Vec<String> = unit_connectors
            .iter()
            .map(|(id, c)| {
                let mut s = String::new();
                write_canonical(
                    &serde_json::json!({"type": type_of(id), "config": c}),
                    &mut s,
                );
                s
            })
            .collect();
        conns.sort();
        let mut text = String::new();
        write_canonical(
            &serde_json::json!({"pipelines": forms, "connectors": conns}),
            &mut text,
        );
        units.push(Unit {
            pipelines: ps,
            hash: sha256_hex(&text),
            problems: unit_problems.into_iter().collect(),
            connectors: unit_connectors,
        });
    }
    units.sort_by(|a, b| a.hash.cmp(&b.hash));

    // The rest: the extensions the service runs, other service keys, other top-level keys.
    let mut rest = Map::new();
    let mut running: Vec<String> = ids(&Value::Object(service.clone()), "extensions")
        .iter()
        .filter_map(|id| {
            let c = extensions.get(id)?;
            let mut s = String::new();
            write_canonical(
                &serde_json::json!({"type": type_of(id), "config": c}),
                &mut s,
            );
            Some(s)
        })
        .collect();
    running.sort();
    rest.insert("extensions".into(), serde_json::json!(running));
    for (k, v) in &service {
        if k != "pipelines" && k != "extensions" {
            rest.insert(format!("service.{k}"), v.clone());
        }
    }
    for (k, v) in &doc {
        let known = [
            "receivers",
            "processors",
            "exporters",
            "connectors",
            "extensions",
            "service",
        ];
        if !known.contains(&k.as_str()) {
            rest.insert(k.clone(), v.clone());
        }
    }
    let mut rest_text = String::new();
    write_canonical(&Value::Object(rest), &mut rest_text);
    Ok(Shape {
        units,
        rest: rest_text,
    })
}

/// Whether two configs run the same thing: the same pipelines with the same components and
/// settings, and the same extensions and service settings, whatever the names. A document
/// that is not a collector config is equivalent to nothing.
pub fn equivalent(a: &str, b: &str) -> bool {
    match (shape(a), shape(b)) {
        (Ok(a), Ok(b)) => a.canonical() == b.canonical(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAND: &str = "\
receivers:
  filelog:
    include: [/var/log/app.log]
    start_at: beginning
processors:
  batch:
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:4318
service:
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlphttp]
";

    /// Given the same pipeline written with other names, key order and formatting, when both
    /// are shaped, then they are one unit of the same hash and the configs are equivalent.
    #[test]
    fn names_order_and_formatting_do_not_change_the_shape() {
        let other = r#"{"service": {"pipelines": {"logs/app": {"exporters": ["otlphttp/b.d"],
            "processors": ["batch/app"], "receivers": ["filelog/app"]}}},
            "exporters": {"otlphttp/b.d": {"endpoint": "http://127.0.0.1:4318"}},
            "processors": {"batch/app": {}},
            "receivers": {"filelog/app": {"start_at": "beginning", "include": ["/var/log/app.log"]}}}"#;
        let (a, b) = (shape(HAND).unwrap(), shape(other).unwrap());
        assert_eq!(a.units.len(), 1);
        assert_eq!(a.units[0].hash, b.units[0].hash);
        assert!(a.units[0].problems.is_empty());
        assert!(equivalent(HAND, other));
    }

    /// Given a setting that differs, or processors in another order, the shapes differ.
    #[test]
    fn settings_and_processor_order_change_the_shape() {
        let changed = HAND.replace("beginning", "end");
        assert!(!equivalent(HAND, &changed));
        let two = "\
receivers: {filelog: {include: [a]}}
processors: {batch: {}, memory_limiter: {check_interval: 1s}}
exporters: {debug: {}}
service: {pipelines: {logs: {receivers: [filelog], processors: [batch, memory_limiter], exporters: [debug]}}}
";
        let swapped = two.replace("[batch, memory_limiter]", "[memory_limiter, batch]");
        assert!(!equivalent(two, &swapped));
        // A service setting outside the pipelines counts too.
        let telemetry = format!("{HAND}  telemetry:\n    logs:\n      level: debug\n");
        assert!(!equivalent(HAND, &telemetry));
        assert!(!equivalent(HAND, "not: [yaml"));
    }

    /// Given pipelines sharing a receiver, they are one unit; pipelines sharing nothing are two.
    #[test]
    fn shared_components_tie_pipelines_into_one_unit() {
        let yaml = "\
receivers: {otlp: {protocols: {grpc: {}}}, hostmetrics: {scrapers: {cpu: {}}}}
processors: {batch: {}}
exporters: {debug: {}, otlp/far: {endpoint: far:4317}}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [otlp/far]}
    logs: {receivers: [otlp], processors: [batch], exporters: [debug]}
    metrics: {receivers: [hostmetrics], processors: [batch], exporters: [debug]}
";
        let s = shape(yaml).unwrap();
        // otlp ties traces and logs; debug ties logs and metrics: one unit.
        assert_eq!(s.units.len(), 1);
        assert_eq!(s.units[0].pipelines.len(), 3);
        let apart = yaml.replace("exporters: [debug]}\n", "exporters: [otlp/far]}\n");
        let s = shape(&apart).unwrap();
        assert_eq!(s.units.len(), 1, "otlp/far ties them again");
        let split = "\
receivers: {filelog: {include: [a]}, hostmetrics: {scrapers: {cpu: {}}}}
exporters: {debug: {}, debug/2: {verbosity: basic}}
service:
  pipelines:
    logs: {receivers: [filelog], exporters: [debug]}
    metrics: {receivers: [hostmetrics], exporters: [debug/2]}
";
        let s = shape(split).unwrap();
        assert_eq!(s.units.len(), 2);
        assert_eq!(
            s.units.iter().map(|u| u.signals()).collect::<BTreeSet<_>>(),
            [vec![Signal::Logs], vec![Signal::Metrics]].into()
        );
    }

    /// Given connectors, extensions used by components, different processors on shared
    /// receivers and an unknown signal, each is named as a problem of its unit.
    #[test]
    fn parts_otaas_cannot_represent_are_named() {
        let yaml = "\
extensions:
  file_storage: {directory: /var/lib/otelcol}
  basicauth/in: {htpasswd: {inline: 'u:p'}}
receivers:
  filelog: {include: [a], storage: file_storage}
  otlp: {protocols: {http: {auth: {authenticator: basicauth/in}}}}
processors: {batch: {}, filter: {}}
exporters: {debug: {}}
connectors: {count: {}}
service:
  extensions: [file_storage, basicauth/in]
  pipelines:
    logs: {receivers: [filelog], exporters: [count]}
    metrics: {receivers: [count], exporters: [debug]}
    traces: {receivers: [otlp], processors: [batch], exporters: [debug]}
    profiles: {receivers: [otlp], processors: [filter], exporters: [debug]}
";
        let s = shape(yaml).unwrap();
        let parts: BTreeSet<String> = s
            .units
            .iter()
            .flat_map(|u| u.problems.iter().map(Problem::part))
            .collect();
        assert_eq!(
            parts,
            [
                "connector count".to_string(),
                "extension file_storage".to_string(),
                "extension basicauth/in".to_string(),
                // metrics (none) and traces (batch) each differ from profiles (filter).
                "processors of pipelines metrics and profiles".to_string(),
                "processors of pipelines profiles and traces".to_string(),
                "pipeline profiles".to_string(),
            ]
            .into()
        );
        let storage = s
            .units
            .iter()
            .flat_map(|u| &u.problems)
            .find(|p| matches!(p, Problem::Extension { id, .. } if id == "file_storage"))
            .unwrap();
        assert_eq!(
            storage,
            &Problem::Extension {
                id: "file_storage".into(),
                component: "filelog".into(),
                key: "storage".into()
            }
        );
    }
}
