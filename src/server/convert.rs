//! Conversions between tfplugin6 wire types and the framework's domain types: schemas,
//! diagnostics, attribute paths and `DynamicValue`s. The only place both sides meet.

use crate::codec::{json, json_type, msgpack};
use crate::framework::{
    AttrType, Attribute, AttributePath, Diagnostic, Diagnostics, IdentitySchema, Mode, Nesting,
    PathStep, Schema, Severity, Type, Value,
};
use crate::proto::tfplugin6 as tf;

pub(crate) fn schema_to_proto(s: &Schema) -> tf::Schema {
    tf::Schema {
        version: s.version,
        block: Some(tf::schema::Block {
            version: s.version,
            attributes: s.attributes.iter().map(attribute_to_proto).collect(),
            block_types: Vec::new(),
            description: s.description.clone(),
            description_kind: tf::StringKind::Markdown as i32,
            deprecated: s.deprecation.is_some(),
            deprecation_message: s.deprecation.clone().unwrap_or_default(),
        }),
    }
}

fn attribute_to_proto(a: &Attribute) -> tf::schema::Attribute {
    let (ty, nested_type) = match &a.ty {
        AttrType::Plain(t) => (json_type::to_string(t).into_bytes(), None),
        AttrType::Nested(nesting, attrs) => (
            Vec::new(),
            Some(tf::schema::Object {
                attributes: attrs.iter().map(attribute_to_proto).collect(),
                nesting: match nesting {
                    Nesting::Single => tf::schema::object::NestingMode::Single,
                    Nesting::List => tf::schema::object::NestingMode::List,
                    Nesting::Set => tf::schema::object::NestingMode::Set,
                    Nesting::Map => tf::schema::object::NestingMode::Map,
                } as i32,
                ..Default::default()
            }),
        ),
    };
    tf::schema::Attribute {
        name: a.name.clone(),
        r#type: ty,
        nested_type,
        description: a.description.clone(),
        required: a.mode == Mode::Required,
        optional: matches!(a.mode, Mode::Optional | Mode::OptionalComputed),
        computed: a.mode.is_computed(),
        sensitive: a.sensitive,
        description_kind: tf::StringKind::Markdown as i32,
        deprecated: a.deprecation.is_some(),
        write_only: a.write_only,
        deprecation_message: a.deprecation.clone().unwrap_or_default(),
    }
}

pub(crate) fn identity_schema_to_proto(s: &IdentitySchema) -> tf::ResourceIdentitySchema {
    tf::ResourceIdentitySchema {
        version: s.version,
        identity_attributes: s
            .attributes
            .iter()
            .map(|a| tf::resource_identity_schema::IdentityAttribute {
                name: a.name.clone(),
                r#type: json_type::to_string(&a.ty).into_bytes(),
                required_for_import: a.required_for_import,
                // Terraform requires exactly one of the two flags.
                optional_for_import: !a.required_for_import,
                description: a.description.clone(),
            })
            .collect(),
    }
}

pub(crate) fn path_to_proto(p: &AttributePath) -> tf::AttributePath {
    use tf::attribute_path::step::Selector;
    tf::AttributePath {
        steps: p
            .steps()
            .iter()
            .map(|s| tf::attribute_path::Step {
                selector: Some(match s {
                    PathStep::Attribute(a) => Selector::AttributeName(a.clone()),
                    PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

pub fn path_from_proto(p: &tf::AttributePath) -> AttributePath {
    use tf::attribute_path::step::Selector;
    p.steps
        .iter()
        .filter_map(|s| {
            s.selector.as_ref().map(|sel| match sel {
                Selector::AttributeName(a) => PathStep::Attribute(a.clone()),
                Selector::ElementKeyString(k) => PathStep::Key(k.clone()),
                Selector::ElementKeyInt(i) => PathStep::Index(*i),
            })
        })
        .collect::<Vec<_>>()
        .into()
}

pub(crate) fn diag_to_proto(d: &Diagnostic) -> tf::Diagnostic {
    tf::Diagnostic {
        severity: match d.severity {
            Severity::Error => tf::diagnostic::Severity::Error,
            Severity::Warning => tf::diagnostic::Severity::Warning,
        } as i32,
        summary: d.summary.clone(),
        detail: d.detail.clone(),
        attribute: d.path.as_ref().filter(|p| !p.is_root()).map(path_to_proto),
    }
}

pub(crate) fn diags_to_proto(d: &Diagnostics) -> Vec<tf::Diagnostic> {
    d.iter().map(diag_to_proto).collect()
}

pub fn diag_from_proto(d: &tf::Diagnostic) -> Diagnostic {
    Diagnostic {
        severity: if d.severity == tf::diagnostic::Severity::Warning as i32 {
            Severity::Warning
        } else {
            Severity::Error
        },
        summary: d.summary.clone(),
        detail: d.detail.clone(),
        path: d.attribute.as_ref().map(path_from_proto),
    }
}

/// Decodes a request `DynamicValue`: msgpack if present, else JSON, else null (as Terraform does).
pub(crate) fn decode_dv(
    dv: Option<&tf::DynamicValue>,
    ty: &Type,
    what: &str,
) -> Result<Value, Diagnostic> {
    let Some(dv) = dv else { return Ok(Value::Null) };
    if !dv.msgpack.is_empty() {
        msgpack::decode(&dv.msgpack, ty).map_err(|e| {
            Diagnostic::error(
                format!("Invalid {what}"),
                format!("decoding msgpack {what}: {e}"),
            )
        })
    } else if !dv.json.is_empty() {
        json::decode(&dv.json, ty).map_err(|e| {
            Diagnostic::error(
                format!("Invalid {what}"),
                format!("decoding JSON {what}: {e}"),
            )
        })
    } else {
        Ok(Value::Null)
    }
}

/// Encodes a response value as msgpack (the encoding Terraform asks providers to use).
pub(crate) fn encode_dv(v: &Value, ty: &Type, what: &str) -> Result<tf::DynamicValue, Diagnostic> {
    msgpack::encode(v, ty)
        .map(|msgpack| tf::DynamicValue {
            msgpack,
            json: Vec::new(),
        })
        .map_err(|e| {
            Diagnostic::error(
                format!("Provider produced an invalid {what}"),
                format!("encoding {what}: {e}. This is a bug in the provider."),
            )
        })
}
