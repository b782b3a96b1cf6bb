//! Which config values are credentials by where they stand (key names, URL userinfo), and the
//! redaction of such values in JSON configs. Shared by the server (API views, rendered views)
//! and the provider (which keeps its configured value where the server answers the redacted
//! form, so a plan stays empty).

use serde_json::Value;

use crate::types::secret_ref;

/// What replaces a secret value wherever one is shown.
pub const REDACTED: &str = "<redacted>";

/// Key names (lowercase, without `_`, `-` and `.`) whose values are credentials.
const SENSITIVE: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "privatekey",
    "accesskey",
    "sessionkey",
    "signingkey",
    "sharedkey",
    "connectionstring",
    "sas",
];

/// Does a config key name a credential (`password`, `api_key`, `api.key`, `x-api-key`,
/// `client_secret`, `Authorization`, `credentials`, `private_key`, `token`, ...)? Keys that name
/// where a credential is (`*_file`, `*_path`, `*_url`, `*_endpoint`, `filename`) do not: their
/// values are paths or addresses, not secrets.
pub fn is_sensitive_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    if ["file", "filename", "path", "url", "uri", "endpoint", "type"]
        .iter()
        .any(|s| k.ends_with(s))
    {
        return false;
    }
    SENSITIVE.iter().any(|s| {
        if *s == "sas" {
            k == "sas"
        } else {
            k.contains(s)
        }
    })
}

/// `scheme://user:password@host/...` → the same URL with the password replaced by
/// [`REDACTED`]; `None` when `s` holds no such password.
pub fn redact_url_password(s: &str) -> Option<String> {
    let scheme_end = s.find("://")?;
    let rest_start = scheme_end + 3;
    let authority_end = s[rest_start..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| rest_start + i);
    let authority = &s[rest_start..authority_end];
    let at = authority.rfind('@')?;
    let userinfo = &authority[..at];
    let colon = userinfo.find(':')?;
    if colon + 1 == userinfo.len() || &userinfo[colon + 1..] == REDACTED {
        return None;
    }
    Some(format!(
        "{}{}{}",
        &s[..rest_start + colon + 1],
        REDACTED,
        &s[rest_start + at..]
    ))
}

/// A JSON config as the API shows it: every scalar under a sensitive key (see
/// [`is_sensitive_key`]) and every value of a `headers` map replaced by [`REDACTED`], URL
/// passwords replaced inside strings. Secret references (`{"$secret": name}`) are names, not
/// values, and stay.
pub fn redact_json(v: &Value) -> Value {
    redact_at(v, false)
}

fn redact_at(v: &Value, all: bool) -> Value {
    if secret_ref(v).is_some() {
        return v.clone();
    }
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let under = all || is_sensitive_key(k) || k.eq_ignore_ascii_case("headers");
                    (k.clone(), redact_at(x, under))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| redact_at(x, all)).collect()),
        Value::Null | Value::Bool(_) => v.clone(),
        _ if all => Value::String(REDACTED.into()),
        Value::String(s) => Value::String(redact_url_password(s).unwrap_or_else(|| s.clone())),
        other => other.clone(),
    }
}

/// `shown` (a config as a client sent it back, or as the server answered it) with each value
/// that is exactly the redacted form of `known`'s value at the same place replaced by that
/// value. The server uses it so that a client writing back what it read (`<redacted>`) keeps
/// the stored credential; the provider, so that state keeps the configured credential where
/// the server answered the redacted form. Everything else of `shown` is kept as it is.
pub fn restore_json(shown: &Value, known: &Value) -> Value {
    let redacted = redact_json(known);
    restore_at(shown, known, &redacted)
}

fn restore_at(shown: &Value, known: &Value, redacted: &Value) -> Value {
    match (shown, known, redacted) {
        (Value::Object(s), Value::Object(k), Value::Object(r)) => Value::Object(
            s.iter()
                .map(|(key, x)| {
                    let v = match (k.get(key), r.get(key)) {
                        (Some(kx), Some(rx)) => restore_at(x, kx, rx),
                        _ => x.clone(),
                    };
                    (key.clone(), v)
                })
                .collect(),
        ),
        (Value::Array(s), Value::Array(k), Value::Array(r)) if s.len() == k.len() => Value::Array(
            s.iter()
                .zip(k.iter().zip(r))
                .map(|(x, (kx, rx))| restore_at(x, kx, rx))
                .collect(),
        ),
        _ if shown == redacted && shown != known => known.clone(),
        _ => shown.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sensitive_keys() {
        for k in [
            "password",
            "Passwd",
            "api_key",
            "api.key",
            "apikey",
            "X-Api-Key",
            "client_secret",
            "Authorization",
            "credentials",
            "private_key",
            "token",
            "tokens",
            "sas",
            "connection_string",
        ] {
            assert!(is_sensitive_key(k), "{k}");
        }
        for k in [
            "username",
            "key",
            "key_file",
            "password_file",
            "token_url",
            "endpoint",
            "auth",
            "authenticator",
            "sasl",
            "include",
            "grant_type",
        ] {
            assert!(!is_sensitive_key(k), "{k}");
        }
    }

    #[test]
    fn url_passwords() {
        assert_eq!(
            redact_url_password("https://bob:pw@host:8080/x?y=1").as_deref(),
            Some("https://bob:<redacted>@host:8080/x?y=1")
        );
        assert_eq!(redact_url_password("https://bob@host/x"), None);
        assert_eq!(redact_url_password("host:4317"), None);
        assert_eq!(redact_url_password("https://host/a:b@c"), None);
    }

    #[test]
    fn redacts_and_restores() {
        let cfg = json!({
            "auth": {"sasl": {"username": "bob", "password": "hunter2"}},
            "headers": {"x-scope-orgid": "acme"},
            "endpoint": "https://u:pw@tempo:4318",
            "api_key": {"$secret": "dd"},
            "port": 1,
        });
        let shown = redact_json(&cfg);
        assert_eq!(
            shown,
            json!({
                "auth": {"sasl": {"username": "bob", "password": "<redacted>"}},
                "headers": {"x-scope-orgid": "<redacted>"},
                "endpoint": "https://u:<redacted>@tempo:4318",
                "api_key": {"$secret": "dd"},
                "port": 1,
            })
        );
        assert_eq!(restore_json(&shown, &cfg), cfg);
        // A value the client changed is the client's.
        let mut changed = shown.clone();
        changed["auth"]["sasl"]["password"] = json!("new");
        assert_eq!(
            restore_json(&changed, &cfg)["auth"]["sasl"]["password"],
            "new"
        );
        // A literal "<redacted>" where nothing was redacted stays literal.
        let plain = json!({"username": "<redacted>"});
        assert_eq!(restore_json(&plain, &json!({"username": "x"})), plain);
    }
}
