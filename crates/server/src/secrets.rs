//! Declared secrets of pipelines and exporter bindings: their names and values, the secret
//! references (`{"$secret": "<name>"}`) of JSON configs that use them, and the set of secret
//! values the server knows, by which rendered views, agents' effective configs and agents'
//! error messages are redacted.

use std::collections::{BTreeMap, BTreeSet};

use otaas_api::redact::REDACTED;
use otaas_api::secret_ref;
use serde_json::Value;

/// Largest secret value accepted (bytes).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Secret values shorter than this are redacted only where they are a whole value, never
/// inside a longer string (a one-letter "secret" would otherwise blank out every word).
const MIN_SUBSTRING_BYTES: usize = 4;

/// A problem with a secret or a reference to one; `field` is the request field to blame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SecretError {
    pub field: String,
    pub message: String,
}

/// Secret names are object-name-like: `[a-z0-9_-]{1,63}`; values are 1 to
/// [`MAX_SECRET_BYTES`] bytes without NUL. Messages never contain a value.
pub fn check_declared(secrets: &BTreeMap<String, String>) -> Result<(), SecretError> {
    for (name, value) in secrets {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(SecretError {
                field: "secrets".into(),
                message: format!("secret names must match [a-z0-9_-]{{1,63}}, got {name:?}"),
            });
        }
        if value.is_empty() || value.len() > MAX_SECRET_BYTES || value.contains('\0') {
            return Err(SecretError {
                field: format!("secrets.{name}"),
                message: format!(
                    "the value of secret {name:?} must be 1 to {MAX_SECRET_BYTES} bytes without NUL"
                ),
            });
        }
    }
    Ok(())
}

/// Every secret reference in `v` (at `field`) is well formed and names a key of `secrets`.
pub fn check_refs(
    field: &str,
    v: &Value,
    secrets: &BTreeMap<String, String>,
) -> Result<(), SecretError> {
    if let Some(r) = secret_ref(v) {
        let name = r.map_err(|why| SecretError {
            field: field.to_string(),
            message: format!("{field}: {why}"),
        })?;
        if !secrets.contains_key(name) {
            return Err(SecretError {
                field: field.to_string(),
                message: format!(
                    "{field} refers to secret {name:?}, which this object's secrets do not \
                     declare (declared: {})",
                    describe(secrets.keys())
                ),
            });
        }
        return Ok(());
    }
    match v {
        Value::Object(m) => m
            .iter()
            .try_for_each(|(k, x)| check_refs(&format!("{field}.{k}"), x, secrets)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_refs(&format!("{field}[{i}]"), x, secrets)),
        _ => Ok(()),
    }
}

fn describe<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The value of a secret that is declared but not set: an adopted pipeline's secret whose value
/// the server only saw redacted. Rendering refuses a config that would use it
/// (`RenderError::PendingSecret`), so it never reaches a collector. Control characters keep it
/// apart from any value a user would write.
pub const PENDING: &str = "\u{1}otaas: value pending (adopted from a redacted config)\u{1}";

/// The first secret `v` refers to whose value is [`PENDING`].
pub fn pending_ref(v: &Value, secrets: &BTreeMap<String, String>) -> Option<String> {
    if let Some(Ok(name)) = secret_ref(v) {
        return (secrets.get(name).map(String::as_str) == Some(PENDING)).then(|| name.to_owned());
    }
    match v {
        Value::Object(m) => m.values().find_map(|x| pending_ref(x, secrets)),
        Value::Array(a) => a.iter().find_map(|x| pending_ref(x, secrets)),
        _ => None,
    }
}

/// `v` with every secret reference replaced by the secret's value; a reference to an
/// undeclared secret is returned as its name in `Err` (validation refuses those first).
pub fn substitute(v: &Value, secrets: &BTreeMap<String, String>) -> Result<Value, String> {
    if let Some(r) = secret_ref(v) {
        let name = r.map_err(|_| String::new())?;
        return secrets
            .get(name)
            .map(|s| Value::String(s.clone()))
            .ok_or_else(|| name.to_string());
    }
    Ok(match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), substitute(x, secrets)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, secrets))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The secret values the server knows (declared secrets, destination header values,
/// endpoint ingest tokens), as they appear in configs: raw and with `$` escaped as `$$`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownSecrets {
    /// Longest first, so a value containing a shorter one is replaced whole.
    long: Vec<String>,
    short: BTreeSet<String>,
}

impl KnownSecrets {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut long = BTreeSet::new();
        let mut short = BTreeSet::new();
        for v in values {
            for form in [v.replace('$', "$$"), v] {
                if form.is_empty() {
                    continue;
                }
                if form.len() >= MIN_SUBSTRING_BYTES {
                    long.insert(form);
                } else {
                    short.insert(form);
                }
            }
        }
        let mut long: Vec<String> = long.into_iter().collect();
        long.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Self { long, short }
    }

    pub fn is_empty(&self) -> bool {
        self.long.is_empty() && self.short.is_empty()
    }

    /// The values known (each form), to build a larger set from.
    pub fn values(&self) -> impl Iterator<Item = String> + '_ {
        self.long.iter().chain(&self.short).cloned()
    }

    /// `s` with every known value replaced by [`REDACTED`]; `None` when it holds none. Every
    /// occurrence is marked first and each run of marked bytes becomes one marker, so no
    /// replacement can splice a value together from the text around it.
    pub fn redact(&self, s: &str) -> Option<String> {
        if self.short.contains(s) {
            return Some(REDACTED.to_string());
        }
        let mut covered = vec![false; s.len()];
        let mut any = false;
        for v in &self.long {
            for (i, _) in s.match_indices(v.as_str()) {
                covered[i..i + v.len()].iter_mut().for_each(|c| *c = true);
                any = true;
            }
        }
        if !any {
            return None;
        }
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            let start = i;
            let marked = covered[i];
            while i < s.len() && covered[i] == marked {
                i += 1;
            }
            if marked {
                out.push_str(REDACTED);
            } else {
                out.push_str(&s[start..i]);
            }
        }
        Some(out)
    }

    /// Plain text (an agent's error message, a log line) with known values replaced.
    pub fn redact_text(&self, s: &str) -> String {
        self.redact(s).unwrap_or_else(|| s.to_string())
    }
}

/// Every secret value the store holds: declared secrets of pipelines and bindings, destination
/// header values, and the ingest tokens of bearer endpoints (current version and the one
/// before, which may still be in its grace period or in older revisions).
pub async fn known(
    store: &dyn crate::store::Store,
) -> Result<KnownSecrets, crate::store::StoreError> {
    let mut values: Vec<String> = Vec::new();
    for p in store.list_pipelines().await? {
        values.extend(p.spec.secrets.into_values());
    }
    for b in store.list_bindings().await? {
        values.extend(b.spec.secrets.into_values());
        for d in b.spec.destinations {
            values.extend(d.headers.into_values());
        }
    }
    let key = crate::auth::TokenKey::from(store.server_key());
    for e in store.list_endpoints().await? {
        if e.spec.auth == otaas_api::EndpointAuth::Bearer {
            let v = e.spec.token_version;
            values.push(key.endpoint_token(e.id, v));
            if v > 1 {
                values.push(key.endpoint_token(e.id, v - 1));
            }
        }
    }
    Ok(KnownSecrets::new(values))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn secrets() -> BTreeMap<String, String> {
        [("kafka".to_string(), "hunter2-pw".to_string())].into()
    }

    #[test]
    fn references_resolve_and_unknown_ones_are_named() {
        let cfg = json!({"auth": {"sasl": {"password": {"$secret": "kafka"}}}});
        check_refs("receivers.kafka", &cfg, &secrets()).unwrap();
        assert_eq!(
            substitute(&cfg, &secrets()).unwrap(),
            json!({"auth": {"sasl": {"password": "hunter2-pw"}}})
        );
        let bad = json!({"list": [{"$secret": "nope"}]});
        let e = check_refs("receivers.kafka", &bad, &secrets()).unwrap_err();
        assert_eq!(e.field, "receivers.kafka.list[0]");
        assert!(e.message.contains("\"nope\""), "{}", e.message);
        let malformed = json!({"$secret": "kafka", "x": 1});
        assert!(check_refs("f", &malformed, &secrets()).is_err());
        assert!(check_refs("f", &json!({"$secret": 5}), &secrets()).is_err());
    }

    #[test]
    fn declared_names_and_values() {
        assert!(check_declared(&secrets()).is_ok());
        let e = check_declared(&[("Bad Name".into(), "v".into())].into()).unwrap_err();
        assert_eq!(e.field, "secrets");
        let e = check_declared(&[("x".into(), String::new())].into()).unwrap_err();
        assert_eq!(e.field, "secrets.x");
    }

    #[test]
    fn known_values_are_redacted_inside_strings() {
        let k = KnownSecrets::new(["hunter2-pw".to_string(), "ab".to_string(), "p$ss".into()]);
        assert_eq!(
            k.redact("user:hunter2-pw@host").as_deref(),
            Some("user:<redacted>@host")
        );
        assert_eq!(k.redact("ab").as_deref(), Some("<redacted>"));
        assert_eq!(k.redact("abc"), None);
        assert_eq!(k.redact("x p$$ss").as_deref(), Some("x <redacted>"));
        // Overlapping values become one marker.
        let k = KnownSecrets::new(["abcd".to_string(), "cdef".to_string()]);
        assert_eq!(k.redact("xabcdefx").as_deref(), Some("x<redacted>x"));
    }
}
