//! Redaction of agent-reported effective configs before they are stored or served: a
//! collector's effective config can carry exporter headers, tokens and passwords in clear.
//!
//! The policy is the renderer's ([`crate::render::redact_known`]: credentials by key name and
//! in URLs, and every value the server knows to be secret, wherever it stands), so an agent
//! running its group's config shows exactly the redacted document
//! `GET /agent-groups/{id}/config` serves.
//! A body that is not YAML is not kept at all (only its hash), because we cannot tell where
//! its secrets are.

use crate::secrets::KnownSecrets;

/// Returns the body to store: the redacted document, or `None` when it is not UTF-8 YAML.
pub fn redact_yaml(body: &[u8], known: &KnownSecrets) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    crate::render::redact_known(text, known).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_keys_and_headers() {
        let body = "exporters:\n  otlp:\n    endpoint: tempo:4317\n    headers:\n      x-scope-orgid: acme\n  kafka:\n    auth:\n      sasl:\n        password: hunter2\n        username: bob\nextensions:\n  bearertokenauth:\n    token: s3cr3t\n";
        let out = redact_yaml(body.as_bytes(), &KnownSecrets::default()).unwrap();
        assert_eq!(
            out,
            "exporters:\n  otlp:\n    endpoint: tempo:4317\n    headers:\n      x-scope-orgid: <redacted>\n  kafka:\n    auth:\n      sasl:\n        password: <redacted>\n        username: bob\nextensions:\n  bearertokenauth:\n    token: <redacted>\n"
        );
    }

    #[test]
    fn non_yaml_is_not_kept() {
        let none = KnownSecrets::default();
        assert_eq!(redact_yaml(b"\xff\xfe", &none), None);
        assert_eq!(redact_yaml(b"a: [unclosed", &none), None);
    }

    #[test]
    fn known_values_are_redacted_wherever_they_stand() {
        let known = KnownSecrets::new(["otaas_ingest_abc123".to_string(), "s3cr3t-v".into()]);
        let body = "exporters:\n  otlphttp:\n    endpoint: https://collector/v1?key=s3cr3t-v\n    compression: otaas_ingest_abc123\n";
        let out = redact_yaml(body.as_bytes(), &known).unwrap();
        assert_eq!(
            out,
            "exporters:\n  otlphttp:\n    endpoint: https://collector/v1?key=<redacted>\n    compression: <redacted>\n"
        );
    }
}
