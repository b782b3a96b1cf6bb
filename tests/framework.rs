//! The framework's planning rules and helpers, without the protocol: computed values, write-only
//! attributes, semantic JSON equality, replacement paths and the after-apply consistency check.

use terraform_provider_otaas::framework::semantic::{json_equal, keep_prior_json};
use terraform_provider_otaas::framework::*;

fn pipeline_schema() -> Schema {
    Schema::new(
        "A pipeline-like resource.",
        vec![
            Attribute::computed("id", Type::String).use_state_for_unknown(),
            Attribute::required("name", Type::String),
            Attribute::optional("receivers", Type::map(Type::String)).json_semantic(),
            Attribute::nested(
                "processors",
                Nesting::List,
                Mode::Optional,
                vec![
                    Attribute::required("id", Type::String),
                    Attribute::optional("config", Type::String).json_semantic(),
                ],
            ),
            Attribute::optional("password", Type::String)
                .sensitive()
                .write_only(),
            Attribute::computed("revision", Type::Number),
        ],
    )
}

fn prior() -> Value {
    Value::object([
        ("id", Value::string("p-1")),
        ("name", Value::string("checkout")),
        (
            "receivers",
            Value::Map([("otlp".to_string(), Value::string(r#"{"a":1,"b":[1,2]}"#))].into()),
        ),
        (
            "processors",
            Value::List(vec![Value::object([
                ("id", Value::string("batch")),
                ("config", Value::string(r#"{"x":{"y":true}}"#)),
            ])]),
        ),
        ("password", Value::Null),
        ("revision", Value::int(4)),
    ])
}

/// Config as Terraform sends it for `prior` with the given JSON spellings.
fn config(receiver_json: &str, processor_json: &str, name: &str) -> Value {
    Value::object([
        ("id", Value::Null),
        ("name", Value::string(name)),
        (
            "receivers",
            Value::Map([("otlp".to_string(), Value::string(receiver_json))].into()),
        ),
        (
            "processors",
            Value::List(vec![Value::object([
                ("id", Value::string("batch")),
                ("config", Value::string(processor_json)),
            ])]),
        ),
        ("password", Value::string("pw")),
        ("revision", Value::Null),
    ])
}

/// Terraform's proposed new state: config, with computed nulls taken from prior.
fn proposed(cfg: &Value) -> Value {
    let mut p = cfg.clone();
    p.set("id", prior().get("id").unwrap().clone());
    p.set("revision", prior().get("revision").unwrap().clone());
    p
}

#[test]
fn reformatted_json_is_not_a_change() {
    let cfg = config(
        "{ \"b\": [1, 2],\n  \"a\": 1 }",
        r#"{"x": {"y": true}}"#,
        "checkout",
    );
    let (planned, replace) = plan::plan(&pipeline_schema(), &prior(), &proposed(&cfg), &cfg);
    // Same documents: the prior text is kept, nothing changes, computed values stay known.
    assert_eq!(planned, prior());
    assert_eq!(replace, vec![]);
}

#[test]
fn a_real_json_change_plans_the_new_text_and_unknown_computed_values() {
    let cfg = config(r#"{"a":2,"b":[1,2]}"#, r#"{"x":{"y":true}}"#, "checkout");
    let (planned, _) = plan::plan(&pipeline_schema(), &prior(), &proposed(&cfg), &cfg);
    assert_eq!(planned.get("receivers"), cfg.get("receivers"));
    assert_eq!(
        planned.get("id"),
        Some(&Value::string("p-1")),
        "use_state_for_unknown keeps the id"
    );
    assert_eq!(planned.get("revision"), Some(&Value::unknown()));
    assert_eq!(
        planned.get("password"),
        Some(&Value::Null),
        "write-only attributes are planned null"
    );
}

#[test]
fn create_plans_every_unset_computed_value_unknown() {
    let cfg = config("{}", "{}", "checkout");
    let (planned, replace) = plan::plan(&pipeline_schema(), &Value::Null, &cfg, &cfg);
    assert_eq!(planned.get("id"), Some(&Value::unknown()));
    assert_eq!(planned.get("revision"), Some(&Value::unknown()));
    assert_eq!(planned.get("name"), Some(&Value::string("checkout")));
    assert_eq!(replace, vec![]);
}

#[test]
fn json_helpers_compare_documents_not_text() {
    assert!(json_equal(r#"{"a":1,"b":2}"#, "{\n \"b\": 2, \"a\": 1\n}"));
    assert!(!json_equal(r#"{"a":1}"#, r#"{"a":2}"#));
    assert!(!json_equal("not json", "not  json"));
    let prior = Value::Map([("k".to_string(), Value::string(r#"{"a":1}"#))].into());
    let server = Value::Map(
        [
            ("k".to_string(), Value::string(r#"{ "a" : 1 }"#)),
            ("new".to_string(), Value::string("{}")),
        ]
        .into(),
    );
    assert_eq!(
        keep_prior_json(&prior, &server),
        Value::Map(
            [
                ("k".to_string(), Value::string(r#"{"a":1}"#)),
                ("new".to_string(), Value::string("{}"))
            ]
            .into()
        )
    );
}

#[test]
fn inconsistencies_name_known_planned_values_that_changed() {
    let planned = Value::object([
        ("a", Value::string("x")),
        ("b", Value::unknown()),
        (
            "tags",
            Value::Map([("k".to_string(), Value::string("v"))].into()),
        ),
        ("items", Value::List(vec![Value::int(1), Value::int(2)])),
    ]);
    let new = Value::object([
        ("a", Value::string("y")),
        ("b", Value::string("anything")),
        (
            "tags",
            Value::Map([("k".to_string(), Value::string("w"))].into()),
        ),
        ("items", Value::List(vec![Value::int(1), Value::int(2)])),
    ]);
    let paths: Vec<String> = plan::inconsistencies(&planned, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(paths, vec!["a".to_string(), "tags[\"k\"]".to_string()]);
    assert_eq!(plan::inconsistencies(&planned, &planned.clone()), vec![]);
}

#[test]
fn typed_views_read_known_null_and_unknown() {
    let v = Value::object([
        ("n", Value::int(3)),
        ("s", Value::unknown()),
        ("l", Value::List(vec![Value::string("a")])),
    ]);
    assert_eq!(v.attr::<i64>("n").unwrap(), Val::Known(3));
    assert_eq!(v.attr::<String>("s").unwrap(), Val::Unknown);
    assert_eq!(v.attr::<String>("missing").unwrap(), Val::Null);
    assert_eq!(
        v.attr::<Vec<String>>("l").unwrap(),
        Val::Known(vec!["a".to_string()])
    );
    assert_eq!(
        v.attr::<String>("n").unwrap_err().to_string(),
        "n: expected string, got number"
    );
}

/// Given a write-only attribute inside a list of nested objects,
/// when a state or plan is cleaned for Terraform,
/// then the nested write-only value is null and a change to it alone is no change.
#[test]
fn nested_write_only_values_never_reach_state_and_are_no_change() {
    let schema = Schema::new(
        "t",
        vec![Attribute::nested(
            "items",
            Nesting::List,
            Mode::Required,
            vec![
                Attribute::required("name", Type::String),
                Attribute::optional("secret_wo", Type::String).write_only(),
            ],
        )],
    );
    let with = |secret: Value| {
        Value::object([(
            "items",
            Value::List(vec![Value::object([
                ("name", Value::string("a")),
                ("secret_wo", secret),
            ])]),
        )])
    };
    let cleaned = terraform_provider_otaas::framework::plan::null_write_only(
        &schema.attributes,
        &with(Value::string("s3cr3t")),
    );
    assert_eq!(cleaned, with(Value::Null));

    let prior = with(Value::Null);
    let config = with(Value::string("new-value"));
    let (planned, replace) =
        terraform_provider_otaas::framework::plan::plan(&schema, &prior, &config, &config);
    assert_eq!((planned, replace), (with(Value::Null), vec![]));
}
