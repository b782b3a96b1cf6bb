//! Redaction of agent-reported effective configs before they are stored or served: a
//! collector's effective config can carry exporter headers, tokens and passwords in clear.
//!
//! Values of secret-looking keys (`token`, `password`, `api_key`, `authorization`, ...) and every
//! value under a `headers` map are replaced by `<redacted>`. A body that is not YAML is not kept
//! at all (only its hash), because we cannot tell where its secrets are.

use serde_yaml::Value;

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";

/// Key fragments that mark a value as secret (compared lowercase, `-` read as `_`).
const SECRET_KEYS: [&str; 12] = [
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "authorization",
    "bearer",
    "credential",
    "private_key",
    "key_pem",
    "client_key",
];

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// Returns the body to store: unchanged when nothing looked secret, the redacted document
/// otherwise, `None` when the body is not parseable YAML.
pub fn redact_yaml(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let mut doc: Value = serde_yaml::from_str(text).ok()?;
    if !redact_value(&mut doc, false) {
        return Some(text.to_owned());
    }
    serde_yaml::to_string(&doc).ok()
}

/// Redacts in place; `secret` marks a subtree whose scalars are all secret. True if anything
/// was replaced.
fn redact_value(value: &mut Value, secret: bool) -> bool {
    match value {
        Value::Mapping(map) => {
            let mut changed = false;
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or_default();
                let child_secret =
                    secret || is_secret_key(key) || key.eq_ignore_ascii_case("headers");
                changed |= redact_value(v, child_secret);
            }
            changed
        }
        Value::Sequence(items) => items
            .iter_mut()
            .fold(false, |c, v| redact_value(v, secret) | c),
        Value::Tagged(tagged) => redact_value(&mut tagged.value, secret),
        Value::Null => false,
        scalar if secret => {
            *scalar = Value::String(REDACTED.to_owned());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_clean_body_byte_for_byte() {
        let body = "receivers:\n  otlp:   {}   # spacing kept\n";
        assert_eq!(redact_yaml(body.as_bytes()).unwrap(), body);
    }

    #[test]
    fn redacts_secret_keys_and_headers() {
        let body = "exporters:\n  otlp:\n    endpoint: tempo:4317\n    headers:\n      x-scope-orgid: acme\n      Authorization: Bearer abc\n  kafka:\n    auth:\n      sasl:\n        password: hunter2\n        username: bob\nextensions:\n  bearertokenauth:\n    token: s3cr3t\n";
        let out = redact_yaml(body.as_bytes()).unwrap();
        for secret in ["acme", "Bearer abc", "hunter2", "s3cr3t"] {
            assert!(!out.contains(secret), "{secret} leaked in {out}");
        }
        let doc: Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(
            doc["exporters"]["otlp"]["endpoint"],
            Value::from("tempo:4317")
        );
        assert_eq!(
            doc["exporters"]["kafka"]["auth"]["sasl"]["username"],
            Value::from("bob")
        );
        assert_eq!(
            doc["extensions"]["bearertokenauth"]["token"],
            Value::from(REDACTED)
        );
        assert_eq!(
            doc["exporters"]["otlp"]["headers"]["x-scope-orgid"],
            Value::from(REDACTED)
        );
    }

    #[test]
    fn non_yaml_is_not_kept() {
        assert_eq!(redact_yaml(b"\xff\xfe"), None);
        assert_eq!(redact_yaml(b"a: [unclosed"), None);
    }
}
