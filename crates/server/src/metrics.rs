//! Prometheus metrics: a small registry of counters and gauges rendered in the text exposition
//! format at `/metrics`. Any module may register and update its own families.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

struct Family {
    kind: MetricKind,
    help: String,
    /// Rendered label set (`{a="b"}` or empty) → value.
    series: BTreeMap<String, f64>,
}

/// The registry. Families must be described before use; updates to undescribed names are
/// registered as untyped-looking gauges rather than dropped, so a typo is visible.
#[derive(Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<String, Family>>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_key(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut sorted: Vec<_> = labels.to_vec();
    sorted.sort();
    let inner: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    /// A registry with the server's own families described.
    pub fn new() -> Self {
        let m = Self::default();
        m.describe(
            "otaas_http_requests_total",
            MetricKind::Counter,
            "REST API requests by method, route and status.",
        );
        m.describe(
            "otaas_api_auth_failures_total",
            MetricKind::Counter,
            "REST API requests refused for a missing or wrong bearer token.",
        );
        m.describe(
            "otaas_group_revisions_total",
            MetricKind::Counter,
            "Group config revisions created by this process.",
        );
        m
    }

    pub fn describe(&self, name: &str, kind: MetricKind, help: &str) {
        let mut f = self.families.lock().unwrap();
        f.entry(name.to_string()).or_insert_with(|| Family {
            kind,
            help: help.to_string(),
            series: BTreeMap::new(),
        });
    }

    fn update(&self, name: &str, labels: &[(&str, &str)], op: impl FnOnce(&mut f64)) {
        let mut f = self.families.lock().unwrap();
        let fam = f.entry(name.to_string()).or_insert_with(|| Family {
            kind: MetricKind::Gauge,
            help: String::new(),
            series: BTreeMap::new(),
        });
        op(fam.series.entry(label_key(labels)).or_insert(0.0));
    }

    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1.0);
    }

    pub fn add(&self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.update(name, labels, |x| *x += v);
    }

    pub fn set(&self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.update(name, labels, |x| *x = v);
    }

    /// Replaces every series of the gauge family `name` at once: series not in `series` go
    /// away (a gauge per agent or pipeline must not outlive it), and a scrape never sees half
    /// an update.
    pub fn set_all(&self, name: &str, series: &[(Vec<(&str, &str)>, f64)]) {
        let mut f = self.families.lock().unwrap();
        let fam = f.entry(name.to_string()).or_insert_with(|| Family {
            kind: MetricKind::Gauge,
            help: String::new(),
            series: BTreeMap::new(),
        });
        fam.series = series
            .iter()
            .map(|(labels, v)| (label_key(labels), *v))
            .collect();
    }

    /// The text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let f = self.families.lock().unwrap();
        let mut out = String::new();
        for (name, fam) in f.iter() {
            if !fam.help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {}", fam.help);
            }
            let kind = match fam.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in &fam.series {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sorted_escaped_series() {
        let m = Metrics::new();
        m.inc(
            "otaas_http_requests_total",
            &[("status", "200"), ("method", "GET")],
        );
        m.inc(
            "otaas_http_requests_total",
            &[("method", "GET"), ("status", "200")],
        );
        m.set("x_gauge", &[("v", "a\"b")], 2.5);
        let text = m.render();
        assert!(text.contains("otaas_http_requests_total{method=\"GET\",status=\"200\"} 2\n"));
        assert!(text.contains("# TYPE otaas_http_requests_total counter\n"));
        assert!(text.contains("x_gauge{v=\"a\\\"b\"} 2.5\n"));
    }

    #[test]
    fn set_all_drops_series_it_does_not_name() {
        let m = Metrics::new();
        m.set_all("g", &[(vec![("a", "1")], 1.0), (vec![("a", "2")], 2.0)]);
        m.set_all("g", &[(vec![("a", "2")], 3.0)]);
        let text = m.render();
        assert!(!text.contains("g{a=\"1\"}"), "{text}");
        assert!(text.contains("g{a=\"2\"} 3\n"), "{text}");
    }
}
