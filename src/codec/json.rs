//! JSON values as they appear in `RawState` (stored state for UpgradeResourceState and identity
//! upgrades): objects keyed by attribute, dynamic values as `{"value": v, "type": T}`.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::json_type;
use crate::framework::value::{Number, Type, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JsonValueError {
    #[error("state JSON is not valid JSON: {0}")]
    Syntax(String),
    #[error("at {path}: expected {ty}")]
    Mismatch { path: String, ty: String },
}

/// Decodes stored-state JSON against `ty`. Attributes that are no longer in the type are dropped
/// and missing ones read as null: that is the upgrade to the current schema.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, JsonValueError> {
    let j: Json =
        serde_json::from_slice(bytes).map_err(|e| JsonValueError::Syntax(e.to_string()))?;
    from_json(&j, ty, "")
}

fn mismatch(path: &str, ty: &Type) -> JsonValueError {
    JsonValueError::Mismatch {
        path: if path.is_empty() {
            "(root)".into()
        } else {
            path.into()
        },
        ty: json_type::to_string(ty),
    }
}

pub fn from_json(j: &Json, ty: &Type, path: &str) -> Result<Value, JsonValueError> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    Ok(match (ty, j) {
        (Type::String, Json::String(s)) => Value::String(s.clone()),
        (Type::Bool, Json::Bool(b)) => Value::Bool(*b),
        (Type::Number, Json::Number(n)) => Value::Number(if let Some(i) = n.as_i64() {
            Number::Int(i)
        } else if let Some(f) = n.as_f64() {
            Number::Float(f)
        } else {
            Number::Decimal(n.to_string())
        }),
        // cty writes numbers as JSON numbers but accepts numeric strings too.
        (Type::Number, Json::String(s)) => Value::Number(Number::Decimal(s.clone()).normalized()),
        (Type::List(e) | Type::Set(e), Json::Array(items)) => {
            let vals = items
                .iter()
                .enumerate()
                .map(|(i, it)| from_json(it, e, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(ty, Type::Set(_)) {
                Value::Set(vals)
            } else {
                Value::List(vals)
            }
        }
        (Type::Tuple(es), Json::Array(items)) if es.len() == items.len() => Value::Tuple(
            items
                .iter()
                .zip(es)
                .enumerate()
                .map(|(i, (it, e))| from_json(it, e, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        (Type::Map(e), Json::Object(m)) => Value::Map(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), from_json(v, e, &format!("{path}[{k:?}]"))?)))
                .collect::<Result<_, _>>()?,
        ),
        (Type::Object(attrs), Json::Object(m)) => {
            let mut out = BTreeMap::new();
            for (name, aty) in attrs {
                let sub = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                let v = match m.get(name) {
                    Some(v) => from_json(v, aty, &sub)?,
                    None => Value::Null,
                };
                out.insert(name.clone(), v);
            }
            Value::Object(out)
        }
        (Type::Dynamic, Json::Object(m)) => {
            let (Some(tj), Some(vj)) = (m.get("type"), m.get("value")) else {
                return Err(mismatch(path, ty));
            };
            let inner_ty = json_type::from_json(tj).map_err(|_| mismatch(path, ty))?;
            Value::Dynamic(inner_ty.clone(), Box::new(from_json(vj, &inner_ty, path)?))
        }
        _ => return Err(mismatch(path, ty)),
    })
}
