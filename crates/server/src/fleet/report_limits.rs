//! Bounds on what one agent may report and the server keeps: its description (attributes),
//! health tree, available-components list, effective config and config error text.
//!
//! Without them one unauthenticated agent could make the server hold (in memory, in the
//! database, and again after every restart) whatever fits in a message: three agents with
//! 300,000 attributes each took a server from 18 to 262 MiB. The defaults leave a large real
//! collector far below them (otelcol-contrib reports a dozen attributes, a few hundred component
//! types and an effective config of tens of KiB) and are flags of `otaas serve`.
//!
//! A message over any limit is refused as a whole before anything of it is applied: the
//! registry answers a `ServerErrorResponse` (type BadRequest) naming the field and the limit,
//! and the agent's record stays as it was (see `Registry::handle`). [`trim_record`] applies the
//! same bounds to records loaded from the database, so data stored before the limits existed
//! (or under larger ones) does not come back after a restart.

use otaas_opamp::proto::{
    AgentConfigMap, AgentDescription, AgentToServer, AnyValue, AvailableComponents,
    ComponentDetails, ComponentHealth, any_value,
};
use prost::Message;

use super::{AgentRecord, HealthNode};

/// The limits in effect (flags of `otaas serve`, see [`crate::opamp::OpampConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportLimits {
    /// Identifying plus non-identifying attributes of an agent description.
    pub attributes: usize,
    /// One attribute: key plus value as text (the label the server keeps).
    pub attribute_bytes: usize,
    /// A whole agent description: the sum of its attributes' sizes.
    pub description_bytes: usize,
    /// Levels of a health tree (the agent itself is level 1).
    pub health_depth: usize,
    /// Nodes of a health tree (the agent itself included).
    pub health_components: usize,
    /// A whole health tree, encoded.
    pub health_bytes: usize,
    /// Entries of an available-components list (kinds, types and their sub-components).
    pub components: usize,
    /// A whole available-components list, encoded.
    pub components_bytes: usize,
    /// Files of a reported effective config.
    pub effective_config_files: usize,
    /// A reported effective config: file names plus bodies.
    pub effective_config_bytes: usize,
}

/// Longest remote-config error text kept (longer ones are cut at a character boundary): the
/// text is for people, and its start says what failed.
pub const CONFIG_ERROR_BYTES: usize = 4096;

impl Default for ReportLimits {
    fn default() -> Self {
        Self {
            attributes: 256,
            attribute_bytes: 4096,
            description_bytes: 64 << 10,
            health_depth: 8,
            health_components: 2048,
            health_bytes: 512 << 10,
            components: 4096,
            components_bytes: 1 << 20,
            effective_config_files: 16,
            effective_config_bytes: 1 << 20,
        }
    }
}

/// A report over a limit: which field, which limit, and what was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field}{key} exceeds the limit of {limit} {unit} (got {got}{more}); the message was not \
     applied (the server's --{flag} sets the limit)"
)]
pub struct OverLimit {
    /// The message field, as named in the OpAMP protocol.
    pub field: &'static str,
    pub limit: usize,
    pub unit: &'static str,
    /// What was counted; a walk stops at the first count past the limit.
    pub got: usize,
    /// `" or more"` when counting stopped early.
    more: &'static str,
    /// The `otaas serve` flag that sets the limit.
    pub flag: &'static str,
    /// For one attribute: ` (key "...")` with the start of its key.
    key: String,
}

fn over(
    field: &'static str,
    got: usize,
    limit: usize,
    unit: &'static str,
    flag: &'static str,
) -> Result<(), OverLimit> {
    if got <= limit {
        return Ok(());
    }
    Err(over_err(field, got, limit, unit, flag))
}

fn over_err(
    field: &'static str,
    got: usize,
    limit: usize,
    unit: &'static str,
    flag: &'static str,
) -> OverLimit {
    OverLimit {
        field,
        limit,
        unit,
        got,
        more: "",
        flag,
        key: String::new(),
    }
}

/// The length of an attribute value as a label (its text form, see `labels_of` in
/// `registry.rs`); values that never become labels (arrays, maps) count their encoded size.
fn value_len(v: Option<&AnyValue>) -> usize {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.len(),
        Some(any_value::Value::BoolValue(b)) => b.to_string().len(),
        Some(any_value::Value::IntValue(i)) => i.to_string().len(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string().len(),
        Some(any_value::Value::BytesValue(b)) => 2 * b.len(),
        Some(_) => v.map_or(0, |v| v.encoded_len()),
        None => 0,
    }
}

impl ReportLimits {
    /// The first limit `msg` exceeds, if any: one pass over the reported parts, stopping at
    /// the first limit passed, before anything of the message is kept.
    pub fn check(&self, msg: &AgentToServer) -> Result<(), OverLimit> {
        if let Some(desc) = &msg.agent_description {
            self.check_description(desc)?;
        }
        if let Some(health) = &msg.health {
            self.check_health(health)?;
        }
        if let Some(ac) = &msg.available_components {
            self.check_components(ac)?;
        }
        if let Some(map) = msg
            .effective_config
            .as_ref()
            .and_then(|e| e.config_map.as_ref())
        {
            self.check_effective_config(map)?;
        }
        Ok(())
    }

    fn check_description(&self, desc: &AgentDescription) -> Result<(), OverLimit> {
        over(
            "agent_description attributes",
            desc.identifying_attributes.len() + desc.non_identifying_attributes.len(),
            self.attributes,
            "attributes",
            "opamp-max-attributes",
        )?;
        let mut total = 0usize;
        for kv in desc
            .identifying_attributes
            .iter()
            .chain(&desc.non_identifying_attributes)
        {
            let size = kv.key.len() + value_len(kv.value.as_ref());
            total += size;
            over(
                "agent_description attribute",
                size,
                self.attribute_bytes,
                "bytes",
                "opamp-max-attribute-bytes",
            )
            .map_err(|mut e| {
                let start: String = kv.key.chars().take(64).collect();
                e.key = format!(" (key {start:?})");
                e
            })?;
        }
        over(
            "agent_description",
            total,
            self.description_bytes,
            "bytes",
            "opamp-max-description-bytes",
        )
    }

    fn check_health(&self, health: &ComponentHealth) -> Result<(), OverLimit> {
        over(
            "health",
            health.encoded_len(),
            self.health_bytes,
            "bytes",
            "opamp-max-health-bytes",
        )?;
        walk_health(health, 1, &mut 0, self)
    }

    fn check_components(&self, ac: &AvailableComponents) -> Result<(), OverLimit> {
        over(
            "available_components",
            ac.encoded_len(),
            self.components_bytes,
            "bytes",
            "opamp-max-components-bytes",
        )?;
        let mut count = 0usize;
        for details in ac.components.values() {
            count_components(details, &mut count, self.components)?;
        }
        Ok(())
    }

    fn check_effective_config(&self, map: &AgentConfigMap) -> Result<(), OverLimit> {
        over(
            "effective_config files",
            map.config_map.len(),
            self.effective_config_files,
            "files",
            "opamp-max-effective-config-files",
        )?;
        let bytes = map
            .config_map
            .iter()
            .map(|(name, file)| name.len() + file.body.len())
            .sum();
        over(
            "effective_config",
            bytes,
            self.effective_config_bytes,
            "bytes",
            "opamp-max-effective-config-bytes",
        )
    }
}

/// Counts the nodes and levels of a health tree, stopping at the first limit passed (a tree
/// deeper than the protobuf decoder's recursion limit never gets here).
fn walk_health(
    node: &ComponentHealth,
    depth: usize,
    nodes: &mut usize,
    limits: &ReportLimits,
) -> Result<(), OverLimit> {
    *nodes += 1;
    if *nodes > limits.health_components {
        return Err(OverLimit {
            more: " or more",
            ..over_err(
                "health components",
                *nodes,
                limits.health_components,
                "components",
                "opamp-max-health-components",
            )
        });
    }
    over(
        "health depth",
        depth,
        limits.health_depth,
        "levels",
        "opamp-max-health-depth",
    )?;
    for child in node.component_health_map.values() {
        walk_health(child, depth + 1, nodes, limits)?;
    }
    Ok(())
}

/// Counts a component and its sub-components into `count`, stopping past `limit`.
fn count_components(
    details: &ComponentDetails,
    count: &mut usize,
    limit: usize,
) -> Result<(), OverLimit> {
    *count += 1;
    if *count > limit {
        return Err(OverLimit {
            more: " or more",
            ..over_err(
                "available_components",
                *count,
                limit,
                "components",
                "opamp-max-components",
            )
        });
    }
    for sub in details.sub_component_map.values() {
        count_components(sub, count, limit)?;
    }
    Ok(())
}

/// Cuts a remote-config error text to [`CONFIG_ERROR_BYTES`] at a character boundary.
pub fn cut_config_error(mut text: String) -> String {
    if text.len() > CONFIG_ERROR_BYTES {
        let mut end = CONFIG_ERROR_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Whether a stored record is within `limits` as far as the server can measure it after the
/// fact (labels, health tree, component lists, effective config text, error text); `Err` names
/// the first part that is not. Used on records loaded from the database and by the fuzz check.
pub fn record_within(rec: &AgentRecord, limits: &ReportLimits) -> Result<(), &'static str> {
    if !labels_within(rec, limits) {
        return Err("labels");
    }
    if let Some(h) = &rec.health
        && !health_within(h, limits)
    {
        return Err("health");
    }
    if !components_within(rec, limits) {
        return Err("available_components");
    }
    if rec
        .effective_config
        .as_ref()
        .is_some_and(|t| t.len() > limits.effective_config_bytes)
    {
        return Err("effective_config");
    }
    if rec
        .remote_config_error
        .as_ref()
        .is_some_and(|e| e.len() > CONFIG_ERROR_BYTES)
    {
        return Err("remote_config_error");
    }
    Ok(())
}

fn labels_within(rec: &AgentRecord, limits: &ReportLimits) -> bool {
    let total: usize = rec.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
    rec.labels.len() <= limits.attributes
        && rec
            .labels
            .iter()
            .all(|(k, v)| k.len() + v.len() <= limits.attribute_bytes)
        && total <= limits.description_bytes
}

fn health_within(root: &HealthNode, limits: &ReportLimits) -> bool {
    fn walk(n: &HealthNode, depth: usize, nodes: &mut usize, bytes: &mut usize) -> usize {
        *nodes += 1;
        *bytes += n.status.len() + n.last_error.len();
        let mut deepest = depth;
        for (name, child) in &n.components {
            *bytes += name.len();
            deepest = deepest.max(walk(child, depth + 1, nodes, bytes));
        }
        deepest
    }
    let (mut nodes, mut bytes) = (0, 0);
    let depth = walk(root, 1, &mut nodes, &mut bytes);
    depth <= limits.health_depth
        && nodes <= limits.health_components
        && bytes <= limits.health_bytes
}

fn components_within(rec: &AgentRecord, limits: &ReportLimits) -> bool {
    let Some(set) = &rec.available_components else {
        return true;
    };
    let count: usize = set.values().map(|types| 1 + types.len()).sum();
    let bytes: usize = set
        .iter()
        .map(|(kind, types)| kind.len() + types.iter().map(String::len).sum::<usize>())
        .sum();
    count <= limits.components && bytes <= limits.components_bytes
}

/// Drops the parts of a loaded record that are over `limits` (the agent reports them again,
/// within the limits, on its next full report). Returns whether anything was dropped.
pub fn trim_record(rec: &mut AgentRecord, limits: &ReportLimits) -> bool {
    let mut trimmed = false;
    if !labels_within(rec, limits) {
        rec.labels.clear();
        rec.agent_version = None;
        trimmed = true;
    }
    if rec
        .health
        .as_ref()
        .is_some_and(|h| !health_within(h, limits))
    {
        rec.health = None;
        trimmed = true;
    }
    if !components_within(rec, limits) {
        rec.available_components = None;
        rec.available_components_hash = None;
        rec.component_signals = None;
        trimmed = true;
    }
    if rec
        .effective_config
        .as_ref()
        .is_some_and(|t| t.len() > limits.effective_config_bytes)
    {
        rec.effective_config = None;
        rec.effective_config_hash = None;
        trimmed = true;
    }
    if let Some(e) = rec.remote_config_error.take() {
        let cut = cut_config_error(e);
        rec.remote_config_error = Some(cut);
    }
    trimmed
}

#[cfg(test)]
mod tests {
    use super::*;
    use otaas_opamp::proto::{AgentConfigFile, EffectiveConfig, KeyValue};

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
        }
    }

    /// About what a large otelcol-contrib reports: 20 attributes, 300 component types with
    /// four metadata entries each, a 64 KiB effective config, a health tree of 40 pipelines
    /// with 10 components each.
    fn large_real_collector() -> AgentToServer {
        let types = (0..300).map(|i| {
            let meta = [
                "code.namespace",
                "code.version",
                "stability.logs",
                "stability.traces",
            ]
            .iter()
            .map(|k| {
                kv(
                    k,
                    "github.com/open-telemetry/opentelemetry-collector-contrib",
                )
            })
            .collect();
            (
                format!("type{i}"),
                ComponentDetails {
                    metadata: meta,
                    sub_component_map: Default::default(),
                },
            )
        });
        let pipelines = (0..40).map(|p| {
            let components = (0..10)
                .map(|c| {
                    (
                        format!("exporter:otlp/{c}"),
                        ComponentHealth {
                            healthy: true,
                            status: "StatusOK".into(),
                            ..Default::default()
                        },
                    )
                })
                .collect();
            (
                format!("pipeline:traces/{p}"),
                ComponentHealth {
                    healthy: true,
                    component_health_map: components,
                    ..Default::default()
                },
            )
        });
        AgentToServer {
            agent_description: Some(AgentDescription {
                identifying_attributes: (0..5).map(|i| kv(&format!("service.{i}"), "x")).collect(),
                non_identifying_attributes: (0..15)
                    .map(|i| kv(&format!("host.{i}"), &"y".repeat(100)))
                    .collect(),
            }),
            health: Some(ComponentHealth {
                healthy: true,
                component_health_map: pipelines.collect(),
                ..Default::default()
            }),
            available_components: Some(AvailableComponents {
                components: [(
                    "receivers".to_owned(),
                    ComponentDetails {
                        metadata: vec![],
                        sub_component_map: types.collect(),
                    },
                )]
                .into(),
                hash: vec![1; 32].into(),
            }),
            effective_config: Some(EffectiveConfig {
                config_map: Some(AgentConfigMap {
                    config_map: [(
                        "collector.yaml".to_owned(),
                        AgentConfigFile {
                            body: vec![b'#'; 64 << 10].into(),
                            content_type: "text/yaml".into(),
                        },
                    )]
                    .into(),
                }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_large_real_collector_is_well_within_the_defaults() {
        assert_eq!(
            ReportLimits::default().check(&large_real_collector()),
            Ok(())
        );
    }

    #[test]
    fn each_part_over_its_limit_is_named_with_the_limit_and_the_flag() {
        let limits = ReportLimits::default();
        let mut long_value = large_real_collector();
        long_value
            .agent_description
            .as_mut()
            .unwrap()
            .non_identifying_attributes
            .push(kv("big", &"v".repeat(5000)));
        let err = limits.check(&long_value).unwrap_err();
        assert_eq!(err.field, "agent_description attribute");
        assert_eq!(
            err.to_string(),
            "agent_description attribute (key \"big\") exceeds the limit of 4096 bytes (got \
             5003); the message was not applied (the server's --opamp-max-attribute-bytes sets \
             the limit)"
        );
        let mut many_files = large_real_collector();
        let files = &mut many_files
            .effective_config
            .as_mut()
            .unwrap()
            .config_map
            .as_mut()
            .unwrap()
            .config_map;
        for i in 0..16 {
            files.insert(format!("f{i}"), AgentConfigFile::default());
        }
        let err = limits.check(&many_files).unwrap_err();
        assert_eq!(
            (err.field, err.limit, err.got, err.flag),
            (
                "effective_config files",
                16,
                17,
                "opamp-max-effective-config-files"
            )
        );
    }

    #[test]
    fn a_stored_record_over_the_limits_loses_the_parts_over_them() {
        let mut rec: AgentRecord = serde_json::from_value(serde_json::json!({
            "id": "0193f0c1a2b37000800000000000002a",
            "labels": (0..300).map(|i| (format!("k{i}"), "v")).collect::<std::collections::BTreeMap<_, _>>(),
            "health": {"healthy": true},
            "remote_config_error": "e".repeat(5000),
        }))
        .unwrap();
        assert_eq!(record_within(&rec, &ReportLimits::default()), Err("labels"));
        assert!(trim_record(&mut rec, &ReportLimits::default()));
        assert!(rec.labels.is_empty());
        assert_eq!(rec.health.as_ref().map(|h| h.healthy), Some(true));
        assert_eq!(
            rec.remote_config_error.as_ref().map(String::len),
            Some(4096)
        );
        assert_eq!(record_within(&rec, &ReportLimits::default()), Ok(()));
        assert!(!trim_record(&mut rec, &ReportLimits::default()));
    }
}
