//! Which telemetry signals each collector component type supports: the built-in table for the
//! core and contrib components, and the same shape loaded from a collector's `components`
//! output. Shared by the renderer (a component only goes into pipelines of signals it
//! supports), the API (refusing components that support none of a pipeline's signals) and the
//! collector-like checker of `otaas fleet-sim`.
//!
//! Source of the built-in table: the `status.stability` map of each component's
//! `metadata.yaml` in opentelemetry-collector (core, `go.opentelemetry.io/collector`) and
//! opentelemetry-collector-contrib at **v0.135.0**, unless an entry names another version. The
//! third column is the component's directory in that repository. A signal is listed when the
//! component has any stability level for it (development, alpha, beta, stable, deprecated);
//! types missing from the table are assumed to support every signal.

use std::collections::{BTreeMap, BTreeSet};

use otaas_api::Signal;

/// The four kinds of pipeline components (extensions have no signals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Receiver,
    Processor,
    Exporter,
    Connector,
}

impl Kind {
    /// Singular, as the collector says it in errors (`failed to create "x" receiver`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
            Kind::Connector => "connector",
        }
    }

    /// The top-level config section of this kind.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Connector => "connectors",
        }
    }
}

const T: &[Signal] = &[Signal::Traces];
const M: &[Signal] = &[Signal::Metrics];
const L: &[Signal] = &[Signal::Logs];
const TM: &[Signal] = &[Signal::Traces, Signal::Metrics];
const TL: &[Signal] = &[Signal::Traces, Signal::Logs];
const ML: &[Signal] = &[Signal::Metrics, Signal::Logs];
const TML: &[Signal] = &[Signal::Traces, Signal::Metrics, Signal::Logs];

/// Receivers: (type, signals, directory).
const RECEIVERS: &[(&str, &[Signal], &str)] = &[
    ("otlp", TML, "core receiver/otlpreceiver"),
    ("nop", TML, "core receiver/nopreceiver"),
    ("filelog", L, "contrib receiver/filelogreceiver"),
    ("hostmetrics", M, "contrib receiver/hostmetricsreceiver"),
    ("prometheus", M, "contrib receiver/prometheusreceiver"),
    ("kafka", TML, "contrib receiver/kafkareceiver"),
    ("jaeger", T, "contrib receiver/jaegerreceiver"),
    ("zipkin", T, "contrib receiver/zipkinreceiver"),
    ("journald", L, "contrib receiver/journaldreceiver"),
    ("k8s_cluster", ML, "contrib receiver/k8sclusterreceiver"),
    ("k8s_events", L, "contrib receiver/k8seventsreceiver"),
    ("k8sobjects", L, "contrib receiver/k8sobjectsreceiver"),
    ("kubeletstats", M, "contrib receiver/kubeletstatsreceiver"),
    ("syslog", L, "contrib receiver/syslogreceiver"),
    ("tcplog", L, "contrib receiver/tcplogreceiver"),
    ("udplog", L, "contrib receiver/udplogreceiver"),
    ("fluentforward", L, "contrib receiver/fluentforwardreceiver"),
    (
        "windowseventlog",
        L,
        "contrib receiver/windowseventlogreceiver",
    ),
    ("otlpjsonfile", TML, "contrib receiver/otlpjsonfilereceiver"),
    ("statsd", M, "contrib receiver/statsdreceiver"),
    ("carbon", M, "contrib receiver/carbonreceiver"),
    ("influxdb", M, "contrib receiver/influxdbreceiver"),
    ("docker_stats", M, "contrib receiver/dockerstatsreceiver"),
    ("httpcheck", M, "contrib receiver/httpcheckreceiver"),
    ("sqlquery", ML, "contrib receiver/sqlqueryreceiver"),
    ("postgresql", ML, "contrib receiver/postgresqlreceiver"),
    ("mysql", ML, "contrib receiver/mysqlreceiver"),
    ("redis", M, "contrib receiver/redisreceiver"),
    ("nginx", M, "contrib receiver/nginxreceiver"),
    ("awsxray", T, "contrib receiver/awsxrayreceiver"),
    ("skywalking", TM, "contrib receiver/skywalkingreceiver"),
    ("receiver_creator", TML, "contrib receiver/receivercreator"),
    (
        "prometheus_simple",
        M,
        "contrib receiver/simpleprometheusreceiver",
    ),
    ("splunk_hec", ML, "contrib receiver/splunkhecreceiver"),
    ("datadog", TML, "contrib receiver/datadogreceiver"),
    (
        "azureeventhub",
        ML,
        "contrib receiver/azureeventhubreceiver",
    ),
    ("awscloudwatch", L, "contrib receiver/awscloudwatchreceiver"),
    ("snmp", M, "contrib receiver/snmpreceiver"),
    ("jmx", M, "contrib receiver/jmxreceiver"),
];

/// Processors: (type, signals, directory).
const PROCESSORS: &[(&str, &[Signal], &str)] = &[
    ("batch", TML, "core processor/batchprocessor"),
    (
        "memory_limiter",
        TML,
        "core processor/memorylimiterprocessor",
    ),
    ("attributes", TML, "contrib processor/attributesprocessor"),
    ("resource", TML, "contrib processor/resourceprocessor"),
    ("filter", TML, "contrib processor/filterprocessor"),
    ("transform", TML, "contrib processor/transformprocessor"),
    (
        "k8sattributes",
        TML,
        "contrib processor/k8sattributesprocessor",
    ),
    (
        "resourcedetection",
        TML,
        "contrib processor/resourcedetectionprocessor",
    ),
    (
        "tail_sampling",
        T,
        "contrib processor/tailsamplingprocessor",
    ),
    (
        "probabilistic_sampler",
        TL,
        "contrib processor/probabilisticsamplerprocessor",
    ),
    ("span", T, "contrib processor/spanprocessor"),
    ("groupbytrace", T, "contrib processor/groupbytraceprocessor"),
    (
        "groupbyattrs",
        TML,
        "contrib processor/groupbyattrsprocessor",
    ),
    (
        "metricstransform",
        M,
        "contrib processor/metricstransformprocessor",
    ),
    (
        "cumulativetodelta",
        M,
        "contrib processor/cumulativetodeltaprocessor",
    ),
    (
        "deltatocumulative",
        M,
        "contrib processor/deltatocumulativeprocessor",
    ),
    ("deltatorate", M, "contrib processor/deltatorateprocessor"),
    (
        "metricsgeneration",
        M,
        "contrib processor/metricsgenerationprocessor",
    ),
    ("interval", M, "contrib processor/intervalprocessor"),
    ("redaction", TML, "contrib processor/redactionprocessor"),
    ("logdedup", L, "contrib processor/logdedupprocessor"),
    ("schema", TML, "contrib processor/schemaprocessor"),
    // k8spath is a processor of the collector build the tests run (its `components` output
    // says: logs Beta, metrics and traces Undefined); it is not in contrib v0.135.0.
    ("k8spath", L, "otaas test build (components output)"),
];

/// Exporters: (type, signals, directory).
const EXPORTERS: &[(&str, &[Signal], &str)] = &[
    ("otlp", TML, "core exporter/otlpexporter"),
    ("otlphttp", TML, "core exporter/otlphttpexporter"),
    ("debug", TML, "core exporter/debugexporter"),
    ("nop", TML, "core exporter/nopexporter"),
    ("file", TML, "contrib exporter/fileexporter"),
    ("kafka", TML, "contrib exporter/kafkaexporter"),
    ("prometheus", M, "contrib exporter/prometheusexporter"),
    (
        "prometheusremotewrite",
        M,
        "contrib exporter/prometheusremotewriteexporter",
    ),
    // Removed from contrib after v0.116.0; the entry is from that version's metadata.yaml.
    ("loki", L, "contrib v0.116.0 exporter/lokiexporter"),
    ("zipkin", T, "contrib exporter/zipkinexporter"),
    (
        "elasticsearch",
        TML,
        "contrib exporter/elasticsearchexporter",
    ),
    ("opensearch", TL, "contrib exporter/opensearchexporter"),
    ("clickhouse", TML, "contrib exporter/clickhouseexporter"),
    (
        "loadbalancing",
        TML,
        "contrib exporter/loadbalancingexporter",
    ),
    ("awsxray", T, "contrib exporter/awsxrayexporter"),
    ("awsemf", M, "contrib exporter/awsemfexporter"),
    (
        "awscloudwatchlogs",
        L,
        "contrib exporter/awscloudwatchlogsexporter",
    ),
    ("awss3", TML, "contrib exporter/awss3exporter"),
    ("datadog", TML, "contrib exporter/datadogexporter"),
    ("splunk_hec", TML, "contrib exporter/splunkhecexporter"),
    ("signalfx", TML, "contrib exporter/signalfxexporter"),
    ("googlecloud", TML, "contrib exporter/googlecloudexporter"),
    ("azuremonitor", TML, "contrib exporter/azuremonitorexporter"),
    ("influxdb", TML, "contrib exporter/influxdbexporter"),
    ("carbon", M, "contrib exporter/carbonexporter"),
    ("sumologic", TML, "contrib exporter/sumologicexporter"),
    ("syslog", L, "contrib exporter/syslogexporter"),
    ("pulsar", TML, "contrib exporter/pulsarexporter"),
    ("rabbitmq", TML, "contrib exporter/rabbitmqexporter"),
    ("coralogix", TML, "contrib exporter/coralogixexporter"),
    ("otelarrow", TML, "contrib exporter/otelarrowexporter"),
];

/// Connectors: (type, (exporter-side signal, receiver-side signal) pairs, directory).
const CONNECTORS: &[(&str, &[(Signal, Signal)], &str)] = &[
    (
        "forward",
        &[
            (Signal::Traces, Signal::Traces),
            (Signal::Metrics, Signal::Metrics),
            (Signal::Logs, Signal::Logs),
        ],
        "core connector/forwardconnector",
    ),
    (
        "spanmetrics",
        &[(Signal::Traces, Signal::Metrics)],
        "contrib connector/spanmetricsconnector",
    ),
    (
        "servicegraph",
        &[(Signal::Traces, Signal::Metrics)],
        "contrib connector/servicegraphconnector",
    ),
    (
        "count",
        &[
            (Signal::Traces, Signal::Metrics),
            (Signal::Metrics, Signal::Metrics),
            (Signal::Logs, Signal::Metrics),
        ],
        "contrib connector/countconnector",
    ),
    (
        "routing",
        &[
            (Signal::Traces, Signal::Traces),
            (Signal::Metrics, Signal::Metrics),
            (Signal::Logs, Signal::Logs),
        ],
        "contrib connector/routingconnector",
    ),
];

/// A set of signals, as a small bit set (the table is consulted for every rendered component).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Signals(u8);

impl Signals {
    pub const ALL: Signals = Signals(0b111);
    pub const NONE: Signals = Signals(0);

    fn bit(s: Signal) -> u8 {
        match s {
            Signal::Traces => 1,
            Signal::Metrics => 2,
            Signal::Logs => 4,
        }
    }

    pub fn of(list: &[Signal]) -> Signals {
        Signals(list.iter().fold(0, |acc, s| acc | Self::bit(*s)))
    }

    pub fn contains(self, s: Signal) -> bool {
        self.0 & Self::bit(s) != 0
    }

    pub fn insert(&mut self, s: Signal) {
        self.0 |= Self::bit(s);
    }

    pub fn intersects(self, other: Signals) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The signals in the set, in the order traces, metrics, logs.
    pub fn iter(self) -> impl Iterator<Item = Signal> {
        Signal::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// `traces, logs` (for messages).
    pub fn describe(self) -> String {
        if self.is_empty() {
            return "no signal".into();
        }
        self.iter()
            .map(Signal::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

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
        let doc: serde_yaml::Value =
            serde_yaml::from_str(yaml).map_err(|e| TableError::Yaml(e.to_string()))?;
        if !doc.is_mapping() {
            return Err(TableError::Shape("the document is not a map".into()));
        }
        let mut t = ComponentTable {
            closed: true,
            ..ComponentTable::default()
        };
        let list = |section: &str| -> Result<Vec<(String, serde_yaml::Mapping)>, TableError> {
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
                    .and_then(serde_yaml::Value::as_str)
                    .ok_or_else(|| {
                        TableError::Shape(format!("an entry of {section} has no name"))
                    })?;
                let stability = item
                    .get("stability")
                    .and_then(serde_yaml::Value::as_mapping)
                    .cloned()
                    .unwrap_or_default();
                out.push((name.to_string(), stability));
            }
            Ok(out)
        };
        let supported = |level: &serde_yaml::Value| {
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
