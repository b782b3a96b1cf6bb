//! The `secrets` attributes of `otaas_pipeline` and `otaas_exporter_binding`: values the
//! server keeps apart and never returns (only `secret_digests`), referenced from the JSON
//! configs as `{"$secret" = "<name>"}`. The same pattern as destination headers: `secrets`
//! (sensitive, kept in state), or `secrets_wo` (write-only, sent on create and when
//! `secrets_wo_version` moves), or neither (the server keeps what it has: imports).

use std::collections::BTreeMap;

use otaas_api::header_digest;

use super::common::*;
use crate::framework::*;

/// State value of a secret changed outside Terraform (the server returns digests only).
const CHANGED_OUTSIDE: &str = "(changed outside Terraform)";

/// The four attributes; `noun` is "pipeline" or "binding".
pub(crate) fn attributes(noun: &str) -> Vec<Attribute> {
    vec![
        Attribute::optional("secrets", Type::map(Type::String))
            .sensitive()
            .description(&format!(
                "Secret values (sensitive) by name (`[a-z0-9_-]{{1,63}}`), used in this {noun}'s \
                 JSON configs as a whole string value `{{\"$secret\" = \"<name>\"}}` (for example \
                 `password = {{ \"$secret\" = \"kafka\" }}` inside `jsonencode`). The server stores \
                 them apart, puts them only into the config agents receive, and redacts them by \
                 value everywhere else; it never returns them, only `secret_digests`, so state \
                 keeps the configured values and a refresh detects drift by digest. Prefer \
                 `secrets_wo`, which keeps the values out of state and plan. Leaving both unset \
                 keeps whatever secrets the server has (so imported {noun}s keep theirs)."
            )),
        Attribute::optional("secrets_wo", Type::map(Type::String))
            .sensitive()
            .write_only()
            .description(
                "Secret values as a write-only argument (Terraform 1.11 or later): sent on create \
                 and whenever `secrets_wo_version` changes; otherwise the server keeps the values \
                 it has. `secret_digests` shows what the server holds. Conflicts with `secrets`.",
            ),
        Attribute::optional("secrets_wo_version", Type::Number).description(
            "Any number; change it to send `secrets_wo` again (replacing the secrets on the \
             server).",
        ),
        Attribute::computed("secret_digests", Type::map(Type::String)).description(
            "The secrets the server holds: name → `sha256:<hex of the value>`.",
        ),
    ]
}

/// `secrets` and `secrets_wo` together are an error.
pub(crate) fn validate(config: &Value, diags: &mut Diagnostics) {
    if !config.get("secrets").unwrap_or(&Value::Null).is_null()
        && !config.get("secrets_wo").unwrap_or(&Value::Null).is_null()
    {
        diags.error_at(
            AttributePath::attr("secrets_wo"),
            "Conflicting secrets",
            "Set either secrets (stored in state, sensitive) or secrets_wo (write-only, \
             Terraform 1.11+), not both.",
        );
    }
    for attr in ["secrets", "secrets_wo"] {
        let Some(Value::Map(m)) = config.get(attr) else {
            continue;
        };
        for name in m.keys() {
            let ok = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                diags.error_at(
                    AttributePath::attr(attr).push_key(name),
                    "Invalid secret name",
                    format!("Secret names must match [a-z0-9_-]{{1,63}}; got {name:?}."),
                );
            }
        }
    }
}

/// The state attributes from the server's digests and the prior (or planned) value: the
/// configured value where its digest matches, a marker where it does not; null when
/// configuration does not manage `secrets`.
pub(crate) fn state(
    digests: &BTreeMap<String, String>,
    prior: &Value,
) -> [(&'static str, Value); 3] {
    let secrets = match prior.get("secrets") {
        Some(Value::Map(m)) if digests.is_empty() && m.is_empty() => Value::Map(BTreeMap::new()),
        Some(Value::Map(m)) => Value::Map(
            digests
                .iter()
                .map(|(k, digest)| {
                    let v = match m.get(k) {
                        Some(Value::String(p)) if &header_digest(p) == digest => Value::string(p),
                        _ => Value::string(CHANGED_OUTSIDE),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        _ => Value::Null,
    };
    [
        ("secrets", secrets),
        (
            "secrets_wo_version",
            prior
                .get("secrets_wo_version")
                .cloned()
                .unwrap_or(Value::Null),
        ),
        ("secret_digests", map_value(digests)),
    ]
}

fn wo_version_moved(planned: &Value, prior: &Value) -> bool {
    prior.is_null()
        || prior.get("secrets_wo_version").unwrap_or(&Value::Null)
            != planned.get("secrets_wo_version").unwrap_or(&Value::Null)
}

/// The secrets a write sends (`None`: the server keeps its own, `keep_secrets`).
pub(crate) fn to_send(
    planned: &Value,
    config: &Value,
    prior: &Value,
) -> Option<BTreeMap<String, String>> {
    if let Some(Value::Map(_)) = planned.get("secrets") {
        return Some(string_map(planned, "secrets"));
    }
    if let Some(Value::Map(_)) = config.get("secrets_wo")
        && wo_version_moved(planned, prior)
    {
        return Some(string_map(config, "secrets_wo"));
    }
    None
}

/// Are the values a write would send all known (a plan-time check needs them)?
pub(crate) fn known_at_plan(planned: &Value, config: &Value) -> bool {
    ["secrets", "secrets_wo"].iter().all(|a| {
        let v = if *a == "secrets" { planned } else { config };
        match v.get(a) {
            Some(Value::Map(m)) => m.values().all(|x| matches!(x, Value::String(_))),
            Some(Value::Null) | None => true,
            Some(_) => false,
        }
    })
}

/// The digests of a map of sensitive values about to be sent (`Some`), the same digests the
/// server answers with; unknown while a value is. `None` when nothing is sent.
pub(crate) fn digests_of_sent(sent: Option<&Value>) -> Option<Value> {
    Some(match sent? {
        Value::Map(m) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let Value::String(v) = v else {
                    return Some(Value::unknown());
                };
                out.insert(k.clone(), Value::string(header_digest(v)));
            }
            Value::Map(out)
        }
        _ => Value::unknown(),
    })
}

/// `secret_digests` after the write: digests of what is sent, else the prior ones.
pub(crate) fn planned_digests(planned: &Value, config: &Value, prior: &Value) -> Value {
    let sent = match (planned.get("secrets"), config.get("secrets_wo")) {
        (Some(h), _) if !h.is_null() => Some(h),
        (_, Some(h)) if !h.is_null() && wo_version_moved(planned, prior) => Some(h),
        _ => None,
    };
    if let Some(digests) = digests_of_sent(sent) {
        return digests;
    }
    if prior.is_null() {
        return Value::Map(BTreeMap::new());
    }
    match prior.get("secret_digests") {
        None | Some(Value::Null) => Value::unknown(),
        Some(d) => d.clone(),
    }
}
