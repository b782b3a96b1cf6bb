//! Component ids across equivalent configs: after an offer is taken without a restart, the
//! collector still runs (and logs) the ids of the config it started with, while the agent
//! reports the offer. This maps each exporter id of the running config to its counterpart in
//! the offer, so failed sends the collector logs are reported under the offer's names.

use std::collections::{BTreeMap, BTreeSet};

use otaas_collector::shape::shape;
use serde_json::Value;

/// One exporter as the pipelines of a config use it.
struct Use {
    ty: String,
    config: Value,
    /// The signals of the pipelines listing it (the part of a pipeline name before `/`).
    signals: BTreeSet<String>,
}

impl Use {
    fn same(&self, other: &Use) -> bool {
        self.ty == other.ty && self.config == other.config && self.signals == other.signals
    }
}

fn exporters(yaml: &str) -> BTreeMap<String, Use> {
    let mut out: BTreeMap<String, Use> = BTreeMap::new();
    let Ok(s) = shape(yaml) else {
        return out;
    };
    for p in s.units.iter().flat_map(|u| &u.pipelines) {
        let signal = p.name.split('/').next().unwrap_or_default();
        for e in &p.exporters {
            out.entry(e.id.clone())
                .or_insert_with(|| Use {
                    ty: e.ty.clone(),
                    config: e.config.clone(),
                    signals: BTreeSet::new(),
                })
                .signals
                .insert(signal.to_owned());
        }
    }
    out
}

/// Running exporter id → the offered exporter with the same type, settings and signals, each
/// offered id taken once. Ids the same in both (with the same content) are left out, and so is
/// an exporter without a counterpart (the configs are then not equivalent).
pub fn exporter_renames(running: &str, offered: &str) -> BTreeMap<String, String> {
    let running = exporters(running);
    let offered = exporters(offered);
    // Ids kept as they are first, so that no other exporter of the same content takes them.
    let mut taken: BTreeSet<&str> = running
        .iter()
        .filter(|(id, r)| offered.get(*id).is_some_and(|o| o.same(r)))
        .map(|(id, _)| id.as_str())
        .collect();
    let mut out = BTreeMap::new();
    for (id, r) in &running {
        if taken.contains(id.as_str()) && offered.get(id).is_some_and(|o| o.same(r)) {
            continue;
        }
        if let Some((oid, _)) = offered
            .iter()
            .find(|(oid, o)| !taken.contains(oid.as_str()) && o.same(r))
        {
            taken.insert(oid.as_str());
            out.insert(id.clone(), oid.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given a hand-written config and its rendering by otaas (other names, one exporter
    /// shared by two pipelines), when the exporters are matched, then each running id maps to
    /// the offered id of the same type, settings and signals.
    #[test]
    fn exporters_map_to_their_counterparts_by_content() {
        let running = "\
receivers: {filelog: {include: [a]}, otlp: {protocols: {grpc: {}}}}
exporters: {otlphttp: {endpoint: 'http://sink'}, debug: {}}
service:
  pipelines:
    logs: {receivers: [filelog], exporters: [otlphttp, debug]}
    traces: {receivers: [otlp], exporters: [otlphttp]}
";
        let offered = "\
receivers: {filelog/app: {include: [a]}, otlp/app: {protocols: {grpc: {}}}}
exporters: {otlphttp/out.sink: {endpoint: 'http://sink'}, debug: {}}
service:
  pipelines:
    logs/app: {receivers: [filelog/app], exporters: [debug, otlphttp/out.sink]}
    traces/app: {receivers: [otlp/app], exporters: [otlphttp/out.sink]}
";
        assert_eq!(
            exporter_renames(running, offered),
            BTreeMap::from([("otlphttp".to_owned(), "otlphttp/out.sink".to_owned())])
        );
    }

    /// Given two running exporters of the same content, each maps to a different offered one.
    #[test]
    fn exporters_of_the_same_content_map_one_to_one() {
        let running = "\
receivers: {filelog: {include: [a]}, filelog/2: {include: [b]}}
exporters: {debug/a: {}, debug/b: {}}
service:
  pipelines:
    logs/a: {receivers: [filelog], exporters: [debug/a]}
    logs/b: {receivers: [filelog/2], exporters: [debug/b]}
";
        let offered = running
            .replace("debug/a", "debug/x.one")
            .replace("debug/b", "debug/y.two");
        let map = exporter_renames(running, &offered);
        assert_eq!(map.len(), 2, "{map:?}");
        let targets: BTreeSet<&String> = map.values().collect();
        assert_eq!(targets.len(), 2, "{map:?}");
    }
}
