//! Exporter health read from the collector's own logs: which exporter fails to send, with the
//! error it gives, and the rule that makes it healthy again.
//!
//! The signal: the collector's exporter helper logs every failed send with the message
//! `Exporting failed. ...` and the fields `otelcol.component.kind = exporter`,
//! `otelcol.component.id`, `otelcol.signal` and `error` — `Will retry the request after
//! interval.` while it retries, `Dropping data.` when it gives up (or retries are off). The
//! supervisor asks for JSON logs (unless the config sets an encoding) so these fields are
//! machine-readable; the console encoding, which puts the same fields as a JSON object at the
//! end of the line, is understood too.
//!
//! The rule: an exporter is unhealthy from its first failed send until [`QUIET`] (`otaas agent
//! --exporter-quiet-seconds`) passes without
//! another one. The collector logs no successful send, so silence is the only evidence of
//! recovery; the exporter helper retries a failing request at most every 30 s (its default
//! `max_interval`, ±50 % jitter), so an exporter still failing logs again well within the
//! window. A new collector process starts with every exporter healthy.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// How long an exporter must stay without a failed send to count as healthy again.
pub const QUIET: Duration = Duration::from_secs(60);

/// One failed send, as the collector logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFailure {
    /// The exporter's component id (`otlphttp/out-sink`).
    pub component: String,
    /// The pipeline signal (`logs`, `metrics`, `traces`), when the line names it.
    pub signal: Option<String>,
    pub error: String,
}

/// Reads a failed send from one stderr line of the collector; `None` for every other line.
pub fn parse_failure(line: &str) -> Option<ExportFailure> {
    let (msg, fields) = if line.trim_start().starts_with('{') {
        let doc: Value = serde_json::from_str(line).ok()?;
        (doc.get("msg")?.as_str()?.to_owned(), doc)
    } else {
        // Console encoding: time, level, caller, message, then the fields as one JSON object,
        // separated by tabs.
        let mut parts = line.splitn(5, '\t');
        let (_ts, _level, _caller) = (parts.next()?, parts.next()?, parts.next()?);
        let msg = parts.next()?.to_owned();
        let fields: Value = serde_json::from_str(parts.next()?).ok()?;
        (msg, fields)
    };
    if !msg.starts_with("Exporting failed") {
        return None;
    }
    let field = |name: &str| fields.get(name).and_then(Value::as_str);
    if field("otelcol.component.kind") != Some("exporter") {
        return None;
    }
    Some(ExportFailure {
        component: field("otelcol.component.id")?.to_owned(),
        signal: field("otelcol.signal").map(str::to_owned),
        error: field("error").unwrap_or(&msg).to_owned(),
    })
}

/// An exporter currently counted as failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    /// The error of its latest failed send.
    pub error: String,
    /// The signals it failed for; empty when the lines named none.
    pub signals: BTreeSet<String>,
    last: Instant,
}

/// The failing exporters of one collector process.
#[derive(Clone, Debug)]
pub struct ExporterWatch {
    quiet: Duration,
    failing: BTreeMap<String, Failing>,
}

impl Default for ExporterWatch {
    fn default() -> Self {
        Self::new(QUIET)
    }
}

impl ExporterWatch {
    pub fn new(quiet: Duration) -> Self {
        Self {
            quiet,
            failing: BTreeMap::new(),
        }
    }

    /// Records a failed send seen at `at`; true when the set of failing exporters or an error
    /// text changed (what the server would see).
    pub fn record(&mut self, failure: ExportFailure, at: Instant) -> bool {
        let entry = self
            .failing
            .entry(failure.component)
            .or_insert_with(|| Failing {
                error: String::new(),
                signals: BTreeSet::new(),
                last: at,
            });
        let mut changed = entry.error != failure.error;
        entry.error = failure.error;
        entry.last = at;
        if let Some(signal) = failure.signal {
            changed |= entry.signals.insert(signal);
        }
        changed
    }

    /// Forgets exporters quiet for the whole window at `now`; true when any recovered.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.failing.len();
        let quiet = self.quiet;
        self.failing
            .retain(|_, f| now.saturating_duration_since(f.last) < quiet);
        self.failing.len() != before
    }

    /// When the next exporter recovers if it stays quiet.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.failing.values().map(|f| f.last + self.quiet).min()
    }

    /// A new collector process: nothing has failed in it yet.
    pub fn clear(&mut self) -> bool {
        let had = !self.failing.is_empty();
        self.failing.clear();
        had
    }

    /// Exporter id → its failure, for the health report.
    pub fn failing(&self) -> &BTreeMap<String, Failing> {
        &self.failing
    }

    /// Re-keys the failures by `names` (old id → new id): the running collector's exporters
    /// are reported under other ids from now on (see `renames.rs`).
    pub fn rename(&mut self, names: &BTreeMap<String, String>) {
        self.failing = std::mem::take(&mut self.failing)
            .into_iter()
            .map(|(id, f)| (names.get(&id).cloned().unwrap_or(id), f))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines captured from the collector the tests install (otelcontribcol 0.135.0-dev): start,
    /// failed sends to a closed port with retries on (JSON), with retries off (JSON), at
    /// shutdown, and with retries off in the console encoding (with its stack trace lines).
    const CAPTURED: &str = include_str!("testdata/otelcontribcol-0.135.0-stderr.log");

    const REFUSED: &str = "failed to make an HTTP request: Post \"http://127.0.0.1:1/v1/logs\": \
                           dial tcp 127.0.0.1:1: connect: connection refused";

    #[test]
    fn failed_sends_are_found_in_captured_collector_output() {
        // Given the collector's real stderr
        // When every line is parsed
        let found: Vec<(usize, ExportFailure)> = CAPTURED
            .lines()
            .enumerate()
            .filter_map(|(i, l)| parse_failure(l).map(|f| (i, f)))
            .collect();
        // Then exactly the failed-send lines are found, naming the exporter and its error
        let failure = ExportFailure {
            component: "otlphttp/dest".into(),
            signal: Some("logs".into()),
            error: REFUSED.into(),
        };
        let shutdown = ExportFailure {
            error: format!("interrupted due to shutdown: {REFUSED}"),
            ..failure.clone()
        };
        assert_eq!(
            found,
            [
                (6, failure.clone()),
                (7, failure.clone()),
                (8, failure.clone()),
                (10, shutdown),
                (11, failure),
            ]
        );
    }

    #[test]
    fn other_lines_are_not_failures() {
        assert_eq!(parse_failure(""), None);
        assert_eq!(parse_failure("Error: cannot start pipelines"), None);
        assert_eq!(parse_failure("{not json"), None);
        // A receiver saying "Exporting failed" is not an exporter failure.
        assert_eq!(
            parse_failure(
                r#"{"msg":"Exporting failed. x","otelcol.component.kind":"receiver","otelcol.component.id":"r","error":"e"}"#
            ),
            None
        );
    }

    fn failure(component: &str, error: &str) -> ExportFailure {
        ExportFailure {
            component: component.into(),
            signal: Some("logs".into()),
            error: error.into(),
        }
    }

    #[test]
    fn an_exporter_recovers_after_a_quiet_window() {
        let t0 = Instant::now();
        let mut watch = ExporterWatch::new(Duration::from_secs(60));
        // Given an exporter that failed at t0 and again at t0+30 s
        assert!(watch.record(failure("otlphttp/a", "refused"), t0));
        assert!(!watch.record(
            failure("otlphttp/a", "refused"),
            t0 + Duration::from_secs(30)
        ));
        assert_eq!(watch.next_expiry(), Some(t0 + Duration::from_secs(90)));
        // When 60 s pass after the first failure only, it is still failing
        assert!(!watch.expire(t0 + Duration::from_secs(60)));
        assert_eq!(watch.failing().keys().collect::<Vec<_>>(), ["otlphttp/a"]);
        assert_eq!(watch.failing()["otlphttp/a"].error, "refused");
        // Then 60 s after its last failure it is healthy again
        assert!(watch.expire(t0 + Duration::from_secs(90)));
        assert!(watch.failing().is_empty());
        assert_eq!(watch.next_expiry(), None);
    }

    #[test]
    fn a_new_error_text_is_a_change_and_a_new_process_starts_clean() {
        let t0 = Instant::now();
        let mut watch = ExporterWatch::default();
        watch.record(failure("otlphttp/a", "refused"), t0);
        assert!(watch.record(failure("otlphttp/a", "HTTP 503"), t0));
        assert_eq!(watch.failing()["otlphttp/a"].error, "HTTP 503");
        assert!(watch.clear());
        assert!(!watch.clear());
    }
}
