//! The JSON type encoding Terraform uses in schemas and dynamic values:
//! `"string"`, `["list","number"]`, `["object",{"a":"bool"}]`, `["tuple",[...]]`, `"dynamic"`.

use serde_json::{Value as Json, json};

use crate::framework::value::Type;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TypeJsonError {
    #[error("type JSON is not valid JSON: {0}")]
    Syntax(String),
    #[error("unsupported type expression: {0}")]
    Unsupported(String),
}

pub fn to_json(ty: &Type) -> Json {
    match ty {
        Type::String => json!("string"),
        Type::Number => json!("number"),
        Type::Bool => json!("bool"),
        Type::Dynamic => json!("dynamic"),
        Type::List(t) => json!(["list", to_json(t)]),
        Type::Set(t) => json!(["set", to_json(t)]),
        Type::Map(t) => json!(["map", to_json(t)]),
        Type::Object(attrs) => {
            let m: serde_json::Map<String, Json> =
                attrs.iter().map(|(k, t)| (k.clone(), to_json(t))).collect();
            json!(["object", m])
        }
        Type::Tuple(ts) => json!(["tuple", ts.iter().map(to_json).collect::<Vec<_>>()]),
    }
}

/// Compact JSON text of a type, as it goes into `Schema.Attribute.type`.
pub fn to_string(ty: &Type) -> String {
    to_json(ty).to_string()
}

pub fn from_slice(bytes: &[u8]) -> Result<Type, TypeJsonError> {
    let j: Json =
        serde_json::from_slice(bytes).map_err(|e| TypeJsonError::Syntax(e.to_string()))?;
    from_json(&j)
}

pub fn from_json(j: &Json) -> Result<Type, TypeJsonError> {
    let unsupported = || TypeJsonError::Unsupported(j.to_string());
    match j {
        Json::String(s) => match s.as_str() {
            "string" => Ok(Type::String),
            "number" => Ok(Type::Number),
            "bool" => Ok(Type::Bool),
            "dynamic" => Ok(Type::Dynamic),
            _ => Err(unsupported()),
        },
        Json::Array(parts) => match (parts.first().and_then(Json::as_str), parts.get(1)) {
            (Some("list"), Some(t)) => Ok(Type::list(from_json(t)?)),
            (Some("set"), Some(t)) => Ok(Type::set(from_json(t)?)),
            (Some("map"), Some(t)) => Ok(Type::map(from_json(t)?)),
            // A third element (optional-attribute markers) only matters for type constraints.
            (Some("object"), Some(Json::Object(m))) => m
                .iter()
                .map(|(k, t)| Ok((k.clone(), from_json(t)?)))
                .collect::<Result<_, _>>()
                .map(Type::Object),
            (Some("tuple"), Some(Json::Array(ts))) => ts
                .iter()
                .map(from_json)
                .collect::<Result<_, _>>()
                .map(Type::Tuple),
            _ => Err(unsupported()),
        },
        _ => Err(unsupported()),
    }
}
