//! The msgpack `DynamicValue` codec and the JSON encodings: property round-trips over generated
//! types and values (unknowns, refinements, nesting, dynamic), and golden bytes for the wire rules
//! of Terraform's object wire format.

use std::collections::BTreeMap;

use proptest::prelude::*;
use terraform_provider_otaas::codec::{json, json_type, msgpack};
use terraform_provider_otaas::framework::{Number, Refinements, Type, Value};

// ------------------------------------------------------------------ strategies

fn arb_type() -> impl Strategy<Value = Type> {
    let leaf = prop_oneof![
        Just(Type::String),
        Just(Type::Number),
        Just(Type::Bool),
        Just(Type::Dynamic)
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(Type::list),
            inner.clone().prop_map(Type::set),
            inner.clone().prop_map(Type::map),
            prop::collection::btree_map("[a-z_]{1,6}", inner.clone(), 0..4).prop_map(Type::Object),
            prop::collection::vec(inner, 0..3).prop_map(Type::Tuple),
        ]
    })
}

fn arb_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::Int),
        any::<f64>().prop_map(Number::Float),
        // Beyond int64: cty sends such numbers as decimal strings.
        "[1-9][0-9]{20,30}".prop_map(Number::Decimal),
    ]
}

fn arb_refinements() -> impl Strategy<Value = Refinements> {
    (
        prop::option::of(Just(false)),
        prop::option::of("[a-z]{0,12}"),
        prop::option::of((any::<i64>().prop_map(Number::Int), any::<bool>())),
        prop::option::of((any::<i64>().prop_map(Number::Int), any::<bool>())),
        prop::option::of(0i64..1000),
        prop::option::of(0i64..1000),
    )
        .prop_map(
            |(nullable, string_prefix, number_lower, number_upper, length_lower, length_upper)| {
                Refinements {
                    nullable,
                    string_prefix,
                    number_lower,
                    number_upper,
                    length_lower,
                    length_upper,
                }
            },
        )
}

/// A value of type `ty` (possibly null or unknown at any level).
fn arb_value(ty: &Type) -> BoxedStrategy<Value> {
    let known: BoxedStrategy<Value> = match ty {
        Type::String => ".{0,12}".prop_map(Value::String).boxed(),
        Type::Number => arb_number().prop_map(Value::Number).boxed(),
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::Dynamic => prop_oneof![
            ".{0,8}".prop_map(|s| Value::Dynamic(Type::String, Box::new(Value::String(s)))),
            any::<i64>().prop_map(|i| Value::Dynamic(Type::Number, Box::new(Value::int(i)))),
            prop::collection::vec(any::<bool>().prop_map(Value::Bool), 0..3)
                .prop_map(|v| Value::Dynamic(Type::list(Type::Bool), Box::new(Value::List(v)))),
            "[a-z]{1,5}".prop_map(|s| Value::Dynamic(
                Type::object([("k", Type::String)]),
                Box::new(Value::object([("k", Value::String(s))]))
            )),
        ]
        .boxed(),
        Type::List(e) => prop::collection::vec(arb_value(e), 0..4)
            .prop_map(Value::List)
            .boxed(),
        Type::Set(e) => prop::collection::vec(arb_value(e), 0..4)
            .prop_map(Value::Set)
            .boxed(),
        Type::Map(e) => prop::collection::btree_map(".{0,6}", arb_value(e), 0..4)
            .prop_map(Value::Map)
            .boxed(),
        Type::Object(attrs) => {
            let parts: Vec<(String, BoxedStrategy<Value>)> = attrs
                .iter()
                .map(|(k, t)| (k.clone(), arb_value(t)))
                .collect();
            let names: Vec<String> = parts.iter().map(|(k, _)| k.clone()).collect();
            parts
                .into_iter()
                .map(|(_, s)| s)
                .collect::<Vec<_>>()
                .prop_map(move |vals| Value::Object(names.iter().cloned().zip(vals).collect()))
                .boxed()
        }
        Type::Tuple(ts) => ts
            .iter()
            .map(arb_value)
            .collect::<Vec<_>>()
            .prop_map(Value::Tuple)
            .boxed(),
    };
    prop_oneof![
        1 => Just(Value::Null),
        1 => arb_refinements().prop_map(Value::Unknown),
        6 => known,
    ]
    .boxed()
}

fn typed_value() -> impl Strategy<Value = (Type, Value)> {
    arb_type().prop_flat_map(|t| {
        let v = arb_value(&t);
        (Just(t), v)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn msgpack_round_trips_any_value((ty, value) in typed_value()) {
        let bytes = msgpack::encode(&value, &ty).unwrap();
        let back = msgpack::decode(&bytes, &ty).unwrap();
        prop_assert_eq!(back, value);
    }

    #[test]
    fn type_json_round_trips(ty in arb_type()) {
        let text = json_type::to_string(&ty);
        prop_assert_eq!(json_type::from_slice(text.as_bytes()).unwrap(), ty);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64), ty in arb_type()) {
        // Errors are fine; panics and hangs are not.
        let _ = msgpack::decode(&bytes, &ty);
    }

    #[test]
    fn refined_unknowns_survive_and_plain_unknowns_stay_ext0(r in arb_refinements()) {
        let bytes = msgpack::encode(&Value::Unknown(r.clone()), &Type::String).unwrap();
        if r.is_empty() {
            prop_assert_eq!(bytes.clone(), vec![0xd4, 0x00, 0x00]);
        } else {
            // Never an ext 12 without refinements.
            prop_assert!(bytes.len() > 3);
        }
        prop_assert_eq!(msgpack::decode(&bytes, &Type::String).unwrap(), Value::Unknown(r));
    }
}

// ------------------------------------------------------------------ golden bytes

fn obj_type(attrs: &[(&str, Type)]) -> Type {
    Type::object(attrs.iter().cloned())
}

#[test]
fn object_attributes_are_all_present_with_nil_for_null() {
    let ty = obj_type(&[("a", Type::String), ("b", Type::String)]);
    // Only "b" given: "a" must still be written, as nil.
    let v = Value::object([("b", Value::string("x"))]);
    assert_eq!(
        msgpack::encode(&v, &ty).unwrap(),
        vec![0x82, 0xa1, b'a', 0xc0, 0xa1, b'b', 0xa1, b'x']
    );
}

#[test]
fn unknown_is_fixext1_type_0() {
    assert_eq!(
        msgpack::encode(&Value::unknown(), &Type::Number).unwrap(),
        vec![0xd4, 0x00, 0x00]
    );
}

#[test]
fn refined_unknown_is_ext12_with_integer_keyed_map() {
    let r = Refinements {
        nullable: Some(false),
        string_prefix: Some("ab".into()),
        ..Default::default()
    };
    let bytes = msgpack::encode(&Value::Unknown(r), &Type::String).unwrap();
    // ext8, 7 payload bytes, type 12; payload {1: false, 2: "ab"}.
    assert_eq!(
        bytes,
        vec![0xc7, 0x07, 0x0c, 0x82, 0x01, 0xc2, 0x02, 0xa2, b'a', b'b']
    );
}

#[test]
fn numbers_use_int_float_or_decimal_string() {
    assert_eq!(
        msgpack::encode(&Value::int(42), &Type::Number).unwrap(),
        vec![0x2a]
    );
    assert_eq!(
        msgpack::encode(&Value::int(-1), &Type::Number).unwrap(),
        vec![0xff]
    );
    // An integral float is sent as an int, like cty.
    assert_eq!(
        msgpack::encode(&Value::Number(Number::Float(3.0)), &Type::Number).unwrap(),
        vec![0x03]
    );
    let mut f = vec![0xcb];
    f.extend_from_slice(&1.5f64.to_bits().to_be_bytes());
    assert_eq!(
        msgpack::encode(&Value::Number(Number::Float(1.5)), &Type::Number).unwrap(),
        f
    );
    let big = "123456789012345678901234567890";
    let mut s = vec![0xbe];
    s.extend_from_slice(big.as_bytes());
    assert_eq!(
        msgpack::encode(&Value::Number(Number::Decimal(big.into())), &Type::Number).unwrap(),
        s
    );
}

#[test]
fn numbers_decode_from_string_form_too() {
    assert_eq!(
        msgpack::decode(&[0xa2, b'1', b'2'], &Type::Number).unwrap(),
        Value::int(12)
    );
    assert_eq!(
        msgpack::decode(&[0xcd, 0x01, 0x00], &Type::Number).unwrap(),
        Value::int(256)
    );
}

#[test]
fn dynamic_values_are_a_pair_of_type_json_bin_and_value() {
    let v = Value::Dynamic(Type::String, Box::new(Value::string("hi")));
    let mut want = vec![0x92, 0xc4, 0x08];
    want.extend_from_slice(b"\"string\"");
    want.extend_from_slice(&[0xa2, b'h', b'i']);
    assert_eq!(msgpack::encode(&v, &Type::Dynamic).unwrap(), want);
    // Wholly unknown and null dynamic values are written bare.
    assert_eq!(
        msgpack::encode(&Value::unknown(), &Type::Dynamic).unwrap(),
        vec![0xd4, 0, 0]
    );
    assert_eq!(
        msgpack::encode(&Value::Null, &Type::Dynamic).unwrap(),
        vec![0xc0]
    );
    // A value without a recorded type is sent with its inferred type.
    let inferred = msgpack::encode(&Value::Bool(true), &Type::Dynamic).unwrap();
    let mut want = vec![0x92, 0xc4, 0x06];
    want.extend_from_slice(b"\"bool\"");
    want.push(0xc3);
    assert_eq!(inferred, want);
}

#[test]
fn any_extension_type_decodes_as_unknown_and_unknown_refinement_keys_are_ignored() {
    assert_eq!(
        msgpack::decode(&[0xd4, 0x05, 0x00], &Type::String).unwrap(),
        Value::unknown()
    );
    // ext 12, payload {1: false, 9: "zz"}: key 9 is not a refinement we know.
    let bytes = [0xc7, 0x07, 0x0c, 0x82, 0x01, 0xc2, 0x09, 0xa2, b'z', b'z'];
    let want = Refinements {
        nullable: Some(false),
        ..Default::default()
    };
    assert_eq!(
        msgpack::decode(&bytes, &Type::String).unwrap(),
        Value::Unknown(want)
    );
}

#[test]
fn nested_collections_encode_in_wire_order() {
    let ty = Type::object([
        ("tags", Type::map(Type::String)),
        ("ports", Type::list(Type::Number)),
        ("on", Type::set(Type::Bool)),
    ]);
    let v = Value::object([
        (
            "tags",
            Value::Map(BTreeMap::from([("k".to_string(), Value::string("v"))])),
        ),
        ("ports", Value::List(vec![Value::int(1), Value::unknown()])),
        ("on", Value::Set(vec![Value::Bool(true)])),
    ]);
    let want = vec![
        0x83, // object with 3 attributes, sorted by name
        0xa2, b'o', b'n', 0x91, 0xc3, // on = [true]
        0xa5, b'p', b'o', b'r', b't', b's', 0x92, 0x01, 0xd4, 0x00,
        0x00, // ports = [1, unknown]
        0xa4, b't', b'a', b'g', b's', 0x81, 0xa1, b'k', 0xa1, b'v', // tags = {k = "v"}
    ];
    assert_eq!(msgpack::encode(&v, &ty).unwrap(), want);
    assert_eq!(msgpack::decode(&want, &ty).unwrap(), v);
}

#[test]
fn type_mismatches_and_unknown_attributes_are_errors_not_panics() {
    let ty = obj_type(&[("a", Type::String)]);
    let err = msgpack::encode(&Value::object([("a", Value::int(1))]), &ty).unwrap_err();
    assert_eq!(
        err.to_string(),
        "at a: value does not match type \"string\""
    );
    let err = msgpack::encode(&Value::object([("zz", Value::Null)]), &ty).unwrap_err();
    assert_eq!(err.to_string(), "at (root): object has no attribute \"zz\"");
    // {"zz": nil} against object{a}
    let err = msgpack::decode(&[0x81, 0xa2, b'z', b'z', 0xc0], &ty).unwrap_err();
    assert_eq!(err.to_string(), "at (root): object has no attribute \"zz\"");
}

#[test]
fn type_json_matches_terraform_spelling() {
    let ty = Type::object([
        ("a", Type::String),
        ("b", Type::list(Type::Number)),
        ("c", Type::Tuple(vec![Type::Bool, Type::Dynamic])),
    ]);
    assert_eq!(
        json_type::to_string(&ty),
        r#"["object",{"a":"string","b":["list","number"],"c":["tuple",["bool","dynamic"]]}]"#
    );
    assert_eq!(
        json_type::to_string(&Type::map(Type::set(Type::String))),
        r#"["map",["set","string"]]"#
    );
    assert!(json_type::from_slice(br#"["frob","string"]"#).is_err());
}

#[test]
fn json_state_fills_missing_attributes_drops_removed_ones_and_reads_dynamic() {
    let ty = Type::object([
        ("id", Type::String),
        ("n", Type::Number),
        ("extra", Type::Dynamic),
    ]);
    let raw = br#"{"id":"p-1","removed":"x","extra":{"value":["a"],"type":["list","string"]}}"#;
    let v = json::decode(raw, &ty).unwrap();
    assert_eq!(
        v,
        Value::object([
            ("id", Value::string("p-1")),
            ("n", Value::Null),
            (
                "extra",
                Value::Dynamic(
                    Type::list(Type::String),
                    Box::new(Value::List(vec![Value::string("a")]))
                )
            ),
        ])
    );
}
