//! A collector-like config checker: refuses what an OpenTelemetry Collector refuses when it
//! loads a config at start-up (or in `validate`), with messages worded like the collector's.
//! `otaas fleet-sim` runs it on every config it receives so a simulated fleet is as strict as a
//! real one; tests run it next to a real collector's `validate`.
//!
//! Checked, in the order a collector does (decoding, then validation, then building the
//! pipelines): the document is a map with known top-level keys; every component id is
//! `type[/name]` by the collector's id rules and its type is known to the [`ComponentTable`];
//! `service.extensions` and every pipeline's components refer to defined ones; there is at
//! least one pipeline, each named `<signal>[/name]` with a known signal and with at least one
//! receiver and one exporter; no processor is listed twice in a pipeline; every component
//! supports the signal of each pipeline it is in (connectors: the signal pair). Component
//! configs themselves are not checked (each component has its own rules).

use std::collections::{BTreeMap, BTreeSet};

use otaas_api::Signal;
use serde_norway::{Mapping, Value};

use crate::components::{ComponentTable, Kind, Support, type_of};

/// A config the collector would refuse, with a collector-like message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CheckError {
    pub message: String,
}

fn fail<T>(message: impl Into<String>) -> Result<T, CheckError> {
    Err(CheckError {
        message: message.into(),
    })
}

const TOP_LEVEL: [&str; 6] = [
    "receivers",
    "processors",
    "exporters",
    "connectors",
    "extensions",
    "service",
];

/// The collector's type rule: a letter, then up to 62 letters, digits or `_`.
fn valid_type(ty: &str) -> bool {
    let mut b = ty.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic())
        && ty.len() <= 63
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The collector's name rule: non-empty, at most 1024 characters, no separators (spaces),
/// control characters or symbols.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 1024
        && !name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || "$+<=>^`|~".contains(c) || is_unicode_symbol(c)
        })
}

/// Non-ASCII symbols (currency, maths, arrows, emoji), roughly the Unicode `S` categories the
/// collector's name rule excludes.
fn is_unicode_symbol(c: char) -> bool {
    matches!(u32::from(c), 0xA2..=0xA9 | 0xAC | 0xAE..=0xB1 | 0xB4 | 0xD7 | 0xF7 | 0x2190..=0x2BFF | 0x1F000..=0x1FAFF)
}

/// Checks one component id, as the collector does when decoding a section.
fn check_id(section: &str, id: &str) -> Result<(), CheckError> {
    let (ty, name) = match id.split_once('/') {
        Some((ty, name)) => (ty, Some(name)),
        None => (id, None),
    };
    if !valid_type(ty) {
        return fail(format!(
            "'{section}' in {id:?} id: invalid character(s) in type {ty:?}"
        ));
    }
    if let Some(name) = name
        && !valid_name(name)
    {
        return fail(format!(
            "'{section}' in {id:?} id: invalid character(s) in name {name:?}"
        ));
    }
    Ok(())
}

fn unknown_type(section: &str, id: &str, valid: &[&str]) -> CheckError {
    CheckError {
        message: format!(
            "'{section}' unknown type: {:?} for id: {id:?} (valid values: [{}])",
            type_of(id),
            valid.join(" ")
        ),
    }
}

/// A section's component ids (a missing or empty section has none).
fn section_ids(doc: &Mapping, section: &str) -> Result<BTreeSet<String>, CheckError> {
    let Some(v) = doc.get(section) else {
        return Ok(BTreeSet::new());
    };
    let m = match v {
        Value::Null => return Ok(BTreeSet::new()),
        Value::Mapping(m) => m,
        _ => return fail(format!("'{section}' expected a map, got {}", kind_of(v))),
    };
    let mut ids = BTreeSet::new();
    for k in m.keys() {
        let Some(id) = k.as_str() else {
            return fail(format!("'{section}' has a key that is not a string"));
        };
        check_id(section, id)?;
        ids.insert(id.to_string());
    }
    Ok(ids)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Sequence(_) => "list",
        Value::Mapping(_) => "map",
        Value::Tagged(_) => "tagged value",
    }
}

/// A list of ids under `key` of a pipeline or of `service` (missing or null: empty).
fn id_list(parent: &Value, key: &str, at: &str) -> Result<Vec<String>, CheckError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|v| match v.as_str() {
                Some(id) => Ok(id.to_string()),
                None => fail(format!("'{at}.{key}' expected a list of component ids")),
            })
            .collect(),
        Some(other) => fail(format!(
            "'{at}.{key}' expected a list, got {}",
            kind_of(other)
        )),
    }
}

fn parse_signal(s: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|sig| sig.as_str() == s)
}

struct Pipeline {
    id: String,
    signal: Signal,
    receivers: Vec<String>,
    processors: Vec<String>,
    exporters: Vec<String>,
}

/// Checks `yaml` as a collector with the components of `table` would at start-up.
pub fn check(yaml: &str, table: &ComponentTable) -> Result<(), CheckError> {
    let doc: Value = match serde_norway::from_str(yaml) {
        Ok(v) => v,
        Err(e) => return fail(format!("cannot retrieve the configuration: {e}")),
    };
    let doc = match doc {
        Value::Mapping(m) => m,
        other => {
            return fail(format!(
                "cannot resolve the configuration: retrieved value ({}) cannot be used as a Conf",
                kind_of(&other)
            ));
        }
    };
    for k in doc.keys() {
        let key = k.as_str().unwrap_or_default();
        if !TOP_LEVEL.contains(&key) {
            return fail(format!(
                "cannot unmarshal the configuration: '' has invalid keys: {key}"
            ));
        }
    }

    // Decoding: ids and types of every section.
    let mut defined: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
    for kind in [
        Kind::Receiver,
        Kind::Processor,
        Kind::Exporter,
        Kind::Connector,
    ] {
        let ids = section_ids(&doc, kind.section())?;
        for id in &ids {
            let ty = type_of(id);
            let known = match kind {
                Kind::Connector => table.connector_pairs(ty).is_some(),
                _ => table.support(kind, ty) != Support::Unknown,
            };
            if !known {
                return Err(unknown_type(kind.section(), id, &table.types(kind)));
            }
        }
        defined.insert(kind, ids);
    }
    let extensions = section_ids(&doc, "extensions")?;
    for id in &extensions {
        if !table.has_extension(type_of(id)) {
            return Err(unknown_type("extensions", id, &table.extension_types()));
        }
    }

    let service = match doc.get("service") {
        None | Some(Value::Null) => Value::Mapping(Mapping::new()),
        Some(v @ Value::Mapping(_)) => v.clone(),
        Some(other) => return fail(format!("'service' expected a map, got {}", kind_of(other))),
    };
    let mut pipelines = Vec::new();
    match service.get("pipelines") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let Some(id) = k.as_str() else {
                    return fail("'service.pipelines' has a key that is not a string");
                };
                let (sig, name) = match id.split_once('/') {
                    Some((s, n)) => (s, Some(n)),
                    None => (id, None),
                };
                let Some(signal) = parse_signal(sig) else {
                    return fail(format!(
                        "'service.pipelines' in {id:?} id: unknown pipeline signal: {sig:?}"
                    ));
                };
                if let Some(name) = name
                    && !valid_name(name)
                {
                    return fail(format!(
                        "'service.pipelines' in {id:?} id: invalid character(s) in name {name:?}"
                    ));
                }
                let at = format!("service.pipelines.{id}");
                pipelines.push(Pipeline {
                    id: id.to_string(),
                    signal,
                    receivers: id_list(v, "receivers", &at)?,
                    processors: id_list(v, "processors", &at)?,
                    exporters: id_list(v, "exporters", &at)?,
                });
            }
        }
        Some(other) => {
            return fail(format!(
                "'service.pipelines' expected a map, got {}",
                kind_of(other)
            ));
        }
    }

    // Validation.
    for ext in id_list(&service, "extensions", "service")? {
        if !extensions.contains(&ext) {
            return fail(format!(
                "service::extensions: references extension {ext:?} which is not configured"
            ));
        }
    }
    if pipelines.is_empty() {
        return fail("service::pipelines: service must have at least one pipeline");
    }
    let connectors = &defined[&Kind::Connector];
    for p in &pipelines {
        let at = format!("service::pipelines::{}", p.id);
        if p.receivers.is_empty() {
            return fail(format!("{at}: must have at least one receiver"));
        }
        if p.exporters.is_empty() {
            return fail(format!("{at}: must have at least one exporter"));
        }
        for r in &p.receivers {
            if !defined[&Kind::Receiver].contains(r) && !connectors.contains(r) {
                return fail(format!(
                    "{at}: references receiver {r:?} which is not configured"
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for proc_ in &p.processors {
            if !defined[&Kind::Processor].contains(proc_) {
                return fail(format!(
                    "{at}: references processor {proc_:?} which is not configured"
                ));
            }
            if !seen.insert(proc_) {
                return fail(format!(
                    "{at}: references processor {proc_:?} multiple times"
                ));
            }
        }
        for e in &p.exporters {
            if !defined[&Kind::Exporter].contains(e) && !connectors.contains(e) {
                return fail(format!(
                    "{at}: references exporter {e:?} which is not configured"
                ));
            }
        }
    }

    // Building: every component must support its pipeline's signal. The collector builds its
    // graph from the exporters back to the receivers, so that is the order it reports in.
    let unsupported = |p: &Pipeline, id: &str, kind: Kind| {
        let message = match kind {
            Kind::Processor => format!(
                "failed to build pipelines: failed to create {id:?} processor, in pipeline {:?}: telemetry type is not supported",
                p.id
            ),
            _ => format!(
                "failed to build pipelines: failed to create {id:?} {} for data type {:?}: telemetry type is not supported",
                kind.as_str(),
                p.signal.as_str()
            ),
        };
        CheckError { message }
    };
    for kind in [Kind::Exporter, Kind::Processor, Kind::Receiver] {
        for p in &pipelines {
            let ids: Box<dyn Iterator<Item = &String>> = match kind {
                Kind::Exporter => Box::new(p.exporters.iter()),
                Kind::Processor => Box::new(p.processors.iter().rev()),
                _ => Box::new(p.receivers.iter()),
            };
            for id in ids {
                if connectors.contains(id) {
                    continue;
                }
                if !table.signals(kind, type_of(id)).contains(p.signal) {
                    return Err(unsupported(p, id, kind));
                }
            }
        }
    }
    for c in connectors {
        let pairs = table.connector_pairs(type_of(c)).unwrap_or_default();
        let as_exporter: BTreeSet<Signal> = pipelines
            .iter()
            .filter(|p| p.exporters.contains(c))
            .map(|p| p.signal)
            .collect();
        let as_receiver: BTreeSet<Signal> = pipelines
            .iter()
            .filter(|p| p.receivers.contains(c))
            .map(|p| p.signal)
            .collect();
        for from in &as_exporter {
            if !as_receiver.iter().any(|to| pairs.contains(&(*from, *to))) {
                return fail(format!(
                    "failed to build pipelines: connector {c:?} used as exporter in {} pipeline but not used in any supported receiver pipeline",
                    from.as_str()
                ));
            }
        }
        for to in &as_receiver {
            if !as_exporter.iter().any(|from| pairs.contains(&(*from, *to))) {
                return fail(format!(
                    "failed to build pipelines: connector {c:?} used as receiver in {} pipeline but not used in any supported exporter pipeline",
                    to.as_str()
                ));
            }
        }
    }
    Ok(())
}

/// `otaas check-config` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckConfigArgs {
    /// The collector config (YAML) to check.
    #[arg(long)]
    pub config: std::path::PathBuf,
    /// A collector's `components` output (YAML) to check against, as that build would;
    /// default: the built-in table of core and contrib components.
    #[arg(long)]
    pub components: Option<std::path::PathBuf>,
}

/// Why `otaas check-config` could not give a verdict, or its refusal.
#[derive(Debug, thiserror::Error)]
pub enum CheckConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("--components {path}: {source}")]
    Components {
        path: std::path::PathBuf,
        source: super::components::TableError,
    },
    #[error("{0}")]
    Refused(#[from] CheckError),
}

/// `otaas check-config`: checks one config file the way `otaas fleet-sim` checks what it
/// receives.
pub fn check_config(args: &CheckConfigArgs) -> Result<(), CheckConfigError> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|source| CheckConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let table = match &args.components {
        Some(path) => ComponentTable::from_components_yaml(&read(path)?).map_err(|source| {
            CheckConfigError::Components {
                path: path.clone(),
                source,
            }
        })?,
        None => ComponentTable::builtin().clone(),
    };
    check(&read(&args.config)?, &table)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILD: &str = "receivers:\n  - name: filelog\n    stability: {logs: Beta, metrics: Undefined, traces: Undefined}\nprocessors:\n  - name: batch\n    stability: {logs: Beta, metrics: Beta, traces: Beta}\nexporters:\n  - name: otlphttp\n    stability: {logs: Stable, metrics: Stable, traces: Stable}\nconnectors:\n  - name: forward\n    stability: {logs-to-logs: Beta, traces-to-traces: Beta, metrics-to-metrics: Beta}\nextensions: []\n";

    fn table() -> ComponentTable {
        ComponentTable::from_components_yaml(BUILD).unwrap()
    }

    fn config(pipeline: &str, body: &str) -> String {
        format!(
            "receivers:\n  filelog/a: {{include: [/x]}}\nprocessors:\n  batch: {{}}\nexporters:\n  otlphttp/a: {{endpoint: 'http://x:1'}}\nservice:\n  pipelines:\n    {pipeline}:\n{body}"
        )
    }

    fn err(yaml: &str) -> String {
        check(yaml, &table()).unwrap_err().message
    }

    #[test]
    fn a_complete_logs_pipeline_passes() {
        let yaml = config(
            "logs/a",
            "      receivers: [filelog/a]\n      processors: [batch]\n      exporters: [otlphttp/a]\n",
        );
        assert_eq!(check(&yaml, &table()), Ok(()));
    }

    #[test]
    fn a_receiver_in_a_pipeline_of_a_signal_it_lacks_is_refused() {
        let yaml = config(
            "metrics/a",
            "      receivers: [filelog/a]\n      exporters: [otlphttp/a]\n",
        );
        assert_eq!(
            err(&yaml),
            "failed to build pipelines: failed to create \"filelog/a\" receiver for data type \"metrics\": telemetry type is not supported"
        );
    }

    #[test]
    fn open_tables_assume_unlisted_types_support_everything() {
        let yaml = "receivers:\n  mything: {}\nexporters:\n  otlphttp: {}\nservice:\n  pipelines:\n    traces: {receivers: [mything], exporters: [otlphttp]}\n";
        assert_eq!(check(yaml, ComponentTable::builtin()), Ok(()));
        assert_eq!(
            err(yaml),
            "'receivers' unknown type: \"mything\" for id: \"mything\" (valid values: [filelog])"
        );
    }

    #[test]
    fn structural_refusals_name_the_problem() {
        let cases = [
            ("- a\n", "cannot resolve the configuration: retrieved value (list) cannot be used as a Conf".to_string()),
            ("receivers: {}\nservice: {pipelines: {}}\n", "service::pipelines: service must have at least one pipeline".into()),
            (&config("logs", "      receivers: [filelog/a]\n")[..], "service::pipelines::logs: must have at least one exporter".into()),
            (&config("logs", "      exporters: [otlphttp/a]\n")[..], "service::pipelines::logs: must have at least one receiver".into()),
            (&config("bogus/a", "      receivers: [filelog/a]\n      exporters: [otlphttp/a]\n")[..], "'service.pipelines' in \"bogus/a\" id: unknown pipeline signal: \"bogus\"".into()),
            (&config("logs", "      receivers: [filelog/b]\n      exporters: [otlphttp/a]\n")[..], "service::pipelines::logs: references receiver \"filelog/b\" which is not configured".into()),
            (&config("logs", "      receivers: [filelog/a]\n      processors: [batch, batch]\n      exporters: [otlphttp/a]\n")[..], "service::pipelines::logs: references processor \"batch\" multiple times".into()),
            ("receivers:\n  filelog/a b: {}\n", "'receivers' in \"filelog/a b\" id: invalid character(s) in name \"a b\"".into()),
            ("receivers:\n  file-log: {}\n", "'receivers' in \"file-log\" id: invalid character(s) in type \"file-log\"".into()),
            ("extensions:\n  health_check: {}\n", "'extensions' unknown type: \"health_check\" for id: \"health_check\" (valid values: [])".into()),
            ("service:\n  extensions: [zpages]\n  pipelines: {}\n", "service::extensions: references extension \"zpages\" which is not configured".into()),
            ("recievers: {}\n", "cannot unmarshal the configuration: '' has invalid keys: recievers".into()),
        ];
        for (yaml, want) in cases {
            assert_eq!(err(yaml), want, "{yaml}");
        }
    }

    #[test]
    fn connectors_must_join_pipelines_of_supported_signals() {
        let ok = "receivers:\n  filelog: {}\nexporters:\n  otlphttp: {}\nconnectors:\n  forward: {}\nservice:\n  pipelines:\n    logs/in: {receivers: [filelog], exporters: [forward]}\n    logs/out: {receivers: [forward], exporters: [otlphttp]}\n";
        assert_eq!(check(ok, &table()), Ok(()));
        let bad = ok.replace("logs/out", "traces/out");
        assert_eq!(
            err(&bad),
            "failed to build pipelines: connector \"forward\" used as exporter in logs pipeline but not used in any supported receiver pipeline"
        );
    }
}
