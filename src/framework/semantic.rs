//! Semantic equality for JSON strings (collector config bodies): reformatting or reordering keys
//! in a `jsonencode(...)` or heredoc must never show as a diff.
//!
//! Two places need it: planning (keep the prior string when the configured one means the same,
//! which Terraform allows for non-null config) and reading (keep the prior string when the server
//! returns a canonical form of the same document). `PlanModifier::JsonSemantic` does the first;
//! resources call `keep_prior_json` in `read` for the second.

use super::value::Value;

/// True when both strings parse as JSON and are the same document (object key order and
/// whitespace ignored).
pub fn json_equal(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// `new` unless `prior` holds a JSON string equal to it, then `prior`. Recurses into maps, lists
/// and objects with the same shape, so `receivers = { id = jsonencode(...) }` works per entry.
pub fn keep_prior_json(prior: &Value, new: &Value) -> Value {
    match (prior, new) {
        (Value::String(p), Value::String(n)) if p != n && json_equal(p, n) => prior.clone(),
        (Value::Map(p), Value::Map(n)) => Value::Map(
            n.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        p.get(k)
                            .map_or_else(|| v.clone(), |pv| keep_prior_json(pv, v)),
                    )
                })
                .collect(),
        ),
        (Value::Object(p), Value::Object(n)) => Value::Object(
            n.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        p.get(k)
                            .map_or_else(|| v.clone(), |pv| keep_prior_json(pv, v)),
                    )
                })
                .collect(),
        ),
        (Value::List(p), Value::List(n)) if p.len() == n.len() => Value::List(
            p.iter()
                .zip(n)
                .map(|(pv, nv)| keep_prior_json(pv, nv))
                .collect(),
        ),
        _ => new.clone(),
    }
}
