//! Which telemetry signals each OpenTelemetry Collector component type supports, for the core
//! and contrib components: one table shared by the server (renderer, write-time checks, the
//! collector-like checker of `otaas fleet-sim`) and the provider (plan-time checks).
//!
//! Source: the `status.stability` map of each component's `metadata.yaml` in
//! opentelemetry-collector (core, `go.opentelemetry.io/collector`) and
//! opentelemetry-collector-contrib at **v0.135.0**, unless an entry names another version. The
//! third column is the component's directory in that repository. A signal is listed when the
//! component has any stability level for it (development, alpha, beta, stable, deprecated);
//! types missing from the table are assumed to support every signal.

use crate::Signal;

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
pub const RECEIVERS: &[(&str, &[Signal], &str)] = &[
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
pub const PROCESSORS: &[(&str, &[Signal], &str)] = &[
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
pub const EXPORTERS: &[(&str, &[Signal], &str)] = &[
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
/// One connector row: type, (exporter-side, receiver-side) signal pairs, source directory.
pub type ConnectorRow = (&'static str, &'static [(Signal, Signal)], &'static str);

pub const CONNECTORS: &[ConnectorRow] = &[
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

/// The prefix of the OpAMP `AvailableComponents` metadata keys by which `otaas agent` reports a
/// component's stability per signal (`stability.logs` = `Beta`), as the collector's
/// `components` command prints it. A component reporting any such key supports exactly the
/// signals whose level is not [`UNDEFINED_STABILITY`]; one reporting none falls back to the table.
pub const STABILITY_KEY_PREFIX: &str = "stability.";
/// The level the collector prints for a signal a component does not support.
pub const UNDEFINED_STABILITY: &str = "Undefined";

/// The table's rows for one kind: (type, signals, source directory).
pub fn rows(kind: Kind) -> &'static [(&'static str, &'static [Signal], &'static str)] {
    match kind {
        Kind::Receiver => RECEIVERS,
        Kind::Processor => PROCESSORS,
        Kind::Exporter => EXPORTERS,
        Kind::Connector => &[],
    }
}

/// The signals the table lists for `ty` of `kind`; `None` when it does not list the type
/// (then it is assumed to support every signal).
pub fn listed(kind: Kind, ty: &str) -> Option<Signals> {
    rows(kind)
        .iter()
        .find(|(t, _, _)| *t == ty)
        .map(|(_, s, _)| Signals::of(s))
}

/// The signals `ty` of `kind` supports by the table (every signal when it is not listed).
pub fn supported(kind: Kind, ty: &str) -> Signals {
    listed(kind, ty).unwrap_or(Signals::ALL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_each_type_once_per_kind() {
        for kind in [Kind::Receiver, Kind::Processor, Kind::Exporter] {
            let mut seen = std::collections::BTreeSet::new();
            for (ty, signals, _) in rows(kind) {
                assert!(seen.insert(*ty), "{} {ty} twice", kind.as_str());
                assert!(!signals.is_empty(), "{ty}");
            }
        }
        assert_eq!(
            supported(Kind::Receiver, "journald"),
            Signals::of(&[Signal::Logs])
        );
        assert_eq!(supported(Kind::Receiver, "not_listed"), Signals::ALL);
    }
}
