//! The agent's machine-readable output: one JSON object per line on stdout, with an `event`
//! key (`started`, `connected`, `disconnected`, `config`, `collector_started`,
//! `collector_exited`, `collector_restarting`, `collector_start_failed`, `rolled_back`, ...).
//! Tests and scripts follow the agent through these; humans read the log on stderr.

use std::io::Write;

use serde_json::Value;

/// Prints one event line: `{"event": name, ...fields}`. A closed stdout is ignored.
pub fn emit(name: &str, fields: Value) {
    let mut obj = serde_json::Map::new();
    obj.insert("event".to_owned(), Value::String(name.to_owned()));
    if let Value::Object(more) = fields {
        obj.extend(more);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", Value::Object(obj));
    let _ = out.flush();
}
