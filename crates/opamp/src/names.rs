//! Names the otaas server and its agents (the supervisor and the simulator) must agree on,
//! defined once: the remote config's file entry and the own-metrics conventions.

/// File name of the collector config inside the OpAMP `AgentConfigMap`.
pub const CONFIG_FILE_NAME: &str = "collector.yaml";
/// Content type of that file.
pub const CONFIG_CONTENT_TYPE: &str = "text/yaml";
/// The path of the server's OTLP/HTTP metrics ingest, offered to agents as their own-metrics
/// destination.
pub const OWN_METRICS_PATH: &str = "/v1/metrics";
/// The data point attribute naming a pipeline in a collector's own telemetry.
pub const PIPELINE_ATTR: &str = "otelcol.pipeline.id";
