//! A component table (kind → type → supported signals) the renderer, the API and the
//! collector-like checker consult: the built-in one (`otaas_api::components`, core and contrib
//! components with their sources) or one loaded from a collector's `components` output.

use std::collections::{BTreeMap, BTreeSet};

use otaas_api::Signal;
use otaas_api::components::{CONNECTORS, EXPORTERS, PROCESSORS, RECEIVERS};
pub use otaas_api::components::{Kind, Signals};

/// Why a `components` document could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("components output is not YAML: {0}")]
    Yaml(String),
    #[error("components output: {0}")]
    Shape(String),
}

/// Kind → type → supported signals (for connectors: the signal pairs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComponentTable {
    types: BTreeMap<Kind, BTreeMap<String, Signals>>,
    connectors: BTreeMap<String, BTreeSet<(Signal, Signal)>>,
    extensions: BTreeSet<String>,
    /// Whether a type missing from the table is unknown (a collector build's list) or assumed
    /// to support everything (the built-in table cannot list every contrib component).
    closed: bool,
}

/// What the table says about one type of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Listed, with its signals (possibly none of a given pipeline's).
    Known(Signals),
    /// Not listed in an open table: assumed to support every signal.
    Assumed,
    /// Not listed in a closed table: the build does not have it.
    Unknown,
}

impl Support {
    pub fn signals(self) -> Signals {
        match self {
            Support::Known(s) => s,
            Support::Assumed => Signals::ALL,
            Support::Unknown => Signals::NONE,
        }
    }
}

impl ComponentTable {
    /// The built-in table of core and contrib components (open: other types support all).
    pub fn builtin() -> &'static ComponentTable {
        static TABLE: std::sync::OnceLock<ComponentTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| {
            let mut t = ComponentTable::default();
            for (kind, rows) in [
                (Kind::Receiver, RECEIVERS),
                (Kind::Processor, PROCESSORS),
                (Kind::Exporter, EXPORTERS),
            ] {
                let m = t.types.entry(kind).or_default();
                for (ty, sigs, _source) in rows {
                    m.insert((*ty).to_string(), Signals::of(sigs));
                }
            }
            for (ty, pairs, _source) in CONNECTORS {
                t.connectors
                    .insert((*ty).to_string(), pairs.iter().copied().collect());
            }
            t
        })
    }

    /// Loads what a collector's `components` command prints (YAML with `receivers`,
    /// `processors`, `exporters`, `connectors`, `extensions` lists of `name` + `stability`).
    /// A signal counts as supported unless its stability is `Undefined`. The result is closed:
    /// types it does not list are unknown, as they are to that collector.
    pub fn from_components_yaml(yaml: &str) -> Result<ComponentTable, TableError> {
        let doc: serde_norway::Value =
            serde_norway::from_str(yaml).map_err(|e| TableError::Yaml(e.to_string()))?;
        if !doc.is_mapping() {
            return Err(TableError::Shape("the document is not a map".into()));
        }
        let mut t = ComponentTable {
            closed: true,
            ..ComponentTable::default()
        };
        let list = |section: &str| -> Result<Vec<(String, serde_norway::Mapping)>, TableError> {
            let Some(v) = doc.get(section) else {
                return Ok(Vec::new());
            };
            if v.is_null() {
                return Ok(Vec::new());
            }
            let seq = v
                .as_sequence()
                .ok_or_else(|| TableError::Shape(format!("{section} is not a list")))?;
            let mut out = Vec::new();
            for item in seq {
                let name = item
                    .get("name")
                    .and_then(serde_norway::Value::as_str)
                    .ok_or_else(|| {
                        TableError::Shape(format!("an entry of {section} has no name"))
                    })?;
                let stability = item
                    .get("stability")
                    .and_then(serde_norway::Value::as_mapping)
                    .cloned()
                    .unwrap_or_default();
                out.push((name.to_string(), stability));
            }
            Ok(out)
        };
        let supported = |level: &serde_norway::Value| {
            level
                .as_str()
                .is_some_and(|l| !l.eq_ignore_ascii_case("undefined"))
        };
        for kind in [Kind::Receiver, Kind::Processor, Kind::Exporter] {
            let m = t.types.entry(kind).or_default();
            for (name, stability) in list(kind.section())? {
                let mut sigs = Signals::NONE;
                for (k, level) in &stability {
                    if let Some(s) = k.as_str().and_then(parse_signal)
                        && supported(level)
                    {
                        sigs.insert(s);
                    }
                }
                m.insert(name, sigs);
            }
        }
        for (name, stability) in list("connectors")? {
            let mut pairs = BTreeSet::new();
            for (k, level) in &stability {
                let pair = k
                    .as_str()
                    .and_then(|k| k.split_once("-to-"))
                    .and_then(|(from, to)| Some((parse_signal(from)?, parse_signal(to)?)));
                if let Some(pair) = pair
                    && supported(level)
                {
                    pairs.insert(pair);
                }
            }
            t.connectors.insert(name, pairs);
        }
        for (name, _) in list("extensions")? {
            t.extensions.insert(name);
        }
        Ok(t)
    }

    /// Whether types missing from the table are unknown rather than assumed to support all.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// What the table says about `ty` as a component of `kind` (not connectors).
    pub fn support(&self, kind: Kind, ty: &str) -> Support {
        match self.types.get(&kind).and_then(|m| m.get(ty)) {
            Some(s) => Support::Known(*s),
            None if self.closed => Support::Unknown,
            None => Support::Assumed,
        }
    }

    /// The signals `ty` of `kind` supports (every signal when the table does not know it).
    pub fn signals(&self, kind: Kind, ty: &str) -> Signals {
        match self.support(kind, ty) {
            Support::Unknown => Signals::ALL,
            s => s.signals(),
        }
    }

    /// The connector's signal pairs; `None` when the type is unknown to a closed table.
    /// An open table assumes every pair for connectors it does not list.
    pub fn connector_pairs(&self, ty: &str) -> Option<BTreeSet<(Signal, Signal)>> {
        match self.connectors.get(ty) {
            Some(p) => Some(p.clone()),
            None if self.closed => None,
            None => Some(
                Signal::ALL
                    .iter()
                    .flat_map(|a| Signal::ALL.iter().map(move |b| (*a, *b)))
                    .collect(),
            ),
        }
    }

    /// Whether the extension type exists (always, for an open table).
    pub fn has_extension(&self, ty: &str) -> bool {
        !self.closed || self.extensions.contains(ty)
    }

    /// The listed types of one kind, for "valid values" in messages.
    pub fn types(&self, kind: Kind) -> Vec<&str> {
        if kind == Kind::Connector {
            return self.connectors.keys().map(String::as_str).collect();
        }
        self.types
            .get(&kind)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The listed extension types.
    pub fn extension_types(&self) -> Vec<&str> {
        self.extensions.iter().map(String::as_str).collect()
    }
}

fn parse_signal(s: &str) -> Option<Signal> {
    match s {
        "traces" => Some(Signal::Traces),
        "metrics" => Some(Signal::Metrics),
        "logs" => Some(Signal::Logs),
        _ => None,
    }
}

/// The type of a component id (`filelog/app` → `filelog`).
pub fn type_of(id: &str) -> &str {
    id.split_once('/').map_or(id, |(ty, _)| ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &[Signal] = &[Signal::Traces];
    const M: &[Signal] = &[Signal::Metrics];
    const L: &[Signal] = &[Signal::Logs];

    #[test]
    fn builtin_table_knows_the_common_components() {
        let t = ComponentTable::builtin();
        assert_eq!(
            t.support(Kind::Receiver, "filelog"),
            Support::Known(Signals::of(L))
        );
        assert_eq!(
            t.support(Kind::Receiver, "hostmetrics"),
            Support::Known(Signals::of(M))
        );
        assert_eq!(
            t.support(Kind::Processor, "tail_sampling"),
            Support::Known(Signals::of(T))
        );
        assert_eq!(
            t.support(Kind::Exporter, "prometheus"),
            Support::Known(Signals::of(M))
        );
        assert_eq!(
            t.support(Kind::Exporter, "otlphttp"),
            Support::Known(Signals::ALL)
        );
        // Not listed: assumed to support everything, not refused.
        assert_eq!(t.support(Kind::Receiver, "mything"), Support::Assumed);
        assert_eq!(t.signals(Kind::Receiver, "mything"), Signals::ALL);
        let rows = RECEIVERS.len() + PROCESSORS.len() + EXPORTERS.len() + CONNECTORS.len();
        assert!(rows >= 60, "{rows} rows");
    }

    const COMPONENTS: &str = "buildinfo:\n  command: otelcontribcol\nreceivers:\n  - name: filelog\n    stability:\n      logs: Beta\n      metrics: Undefined\n      traces: Undefined\nprocessors:\n  - name: batch\n    stability:\n      logs: Beta\n      metrics: Beta\n      traces: Beta\nexporters:\n  - name: otlphttp\n    stability:\n      logs: Stable\n      metrics: Stable\n      traces: Stable\nconnectors:\n  - name: spanmetrics\n    stability:\n      traces-to-metrics: Alpha\n      traces-to-logs: Undefined\nextensions:\n  - name: health_check\n    stability:\n      extension: Beta\n";

    #[test]
    fn components_output_loads_as_a_closed_table() {
        let t = ComponentTable::from_components_yaml(COMPONENTS).unwrap();
        assert!(t.is_closed());
        assert_eq!(
            t.support(Kind::Receiver, "filelog"),
            Support::Known(Signals::of(L))
        );
        assert_eq!(
            t.support(Kind::Processor, "batch"),
            Support::Known(Signals::ALL)
        );
        assert_eq!(t.support(Kind::Receiver, "otlp"), Support::Unknown);
        assert_eq!(
            t.connector_pairs("spanmetrics"),
            Some(BTreeSet::from([(Signal::Traces, Signal::Metrics)]))
        );
        assert_eq!(t.connector_pairs("forward"), None);
        assert!(t.has_extension("health_check"));
        assert!(!t.has_extension("zpages"));
        assert_eq!(t.types(Kind::Receiver), vec!["filelog"]);
    }

    #[test]
    fn components_output_must_be_a_map_of_lists() {
        assert!(ComponentTable::from_components_yaml("- a\n").is_err());
        assert!(ComponentTable::from_components_yaml("receivers: 3\n").is_err());
        assert!(ComponentTable::from_components_yaml("receivers: [{stability: {}}]\n").is_err());
    }
}
