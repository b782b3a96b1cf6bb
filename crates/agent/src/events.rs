//! The agent's machine-readable output: one JSON object per line on stdout, with an `event`
//! key (`started`, `connected`, `disconnected`, `config`, `collector_started`,
//! `collector_exited`, `collector_restarting`, `collector_start_failed`, `rolled_back`,
//! `local_config`, `config_equivalent`, ...)
//! and a `time` (RFC 3339, UTC, milliseconds). Tests and scripts follow the agent through
//! these; humans read the log on stderr.

use std::io::Write;

use serde_json::Value;

/// Prints one event line: `{"event": name, "time": now, ...fields}`. A closed stdout is ignored.
pub fn emit(name: &str, fields: Value) {
    let text = line(name, fields, chrono::Utc::now());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// One event as its JSON line, stamped with `at`.
fn line(name: &str, fields: Value, at: chrono::DateTime<chrono::Utc>) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("event".to_owned(), Value::String(name.to_owned()));
    obj.insert(
        "time".to_owned(),
        Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    if let Value::Object(more) = fields {
        obj.extend(more);
    }
    Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_carry_their_time() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-06T17:45:01.250Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            line("config", serde_json::json!({"status": "APPLIED"}), at),
            r#"{"event":"config","time":"2026-12-06T17:45:01.250Z","status":"APPLIED"}"#
        );
    }
}
