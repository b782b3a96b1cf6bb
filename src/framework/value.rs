//! Terraform values as the provider sees them: the type system (`Type`), a dynamic value tree
//! with a real unknown case (`Value`), and typed views (`Val<T>`) resources read and write.

use std::collections::BTreeMap;
use std::fmt;

/// A Terraform (cty) type. Attribute types in schemas and the shape every value is encoded against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    String,
    Number,
    Bool,
    /// `DynamicPseudoType`: the concrete type travels with the value.
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(t: Type) -> Self {
        Type::List(Box::new(t))
    }
    pub fn set(t: Type) -> Self {
        Type::Set(Box::new(t))
    }
    pub fn map(t: Type) -> Self {
        Type::Map(Box::new(t))
    }
    pub fn object<I, K>(attrs: I) -> Self
    where
        I: IntoIterator<Item = (K, Type)>,
        K: Into<String>,
    {
        Type::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// A number as cty carries it: exact integers, floats, and decimals too large or precise for
/// either (those travel as strings on the wire).
#[derive(Debug, Clone)]
pub enum Number {
    Int(i64),
    Float(f64),
    /// Decimal text, e.g. `"123456789012345678901234567890"`.
    Decimal(String),
}

impl Number {
    /// The value as an `i64` when it is an exact integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
            Number::Float(_) => None,
            Number::Decimal(s) => s.parse().ok(),
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Number::Int(i) => Some(*i as f64),
            Number::Float(f) => Some(*f),
            Number::Decimal(s) => s.parse().ok(),
        }
    }
    /// Canonical form: integral floats and integral decimals in range become `Int`, so that
    /// equality does not depend on which wire form the peer chose.
    pub fn normalized(&self) -> Number {
        match self {
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Number::Int(*f as i64),
            Number::Decimal(s) => match s.parse::<i64>() {
                Ok(i) => Number::Int(i),
                Err(_) => self.clone(),
            },
            other => other.clone(),
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self.normalized(), other.normalized()) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Decimal(a), Number::Decimal(b)) => a == b,
            (a, b) => match (a.as_f64(), b.as_f64()) {
                // Bitwise equality keeps NaN == NaN, so equality stays reflexive for tests.
                (Some(x), Some(y)) => x == y || x.to_bits() == y.to_bits(),
                _ => false,
            },
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Decimal(s) => f.write_str(s),
        }
    }
}

/// What Terraform already knows about a value that is not yet known ("refinements").
/// All fields empty means a plain unknown (msgpack ext 0).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Refinements {
    /// `Some(false)`: definitely not null. cty only ever refines to "not null".
    pub nullable: Option<bool>,
    pub string_prefix: Option<String>,
    /// Lower bound and whether it is inclusive.
    pub number_lower: Option<(Number, bool)>,
    pub number_upper: Option<(Number, bool)>,
    /// Collection length bounds (inclusive).
    pub length_lower: Option<i64>,
    pub length_upper: Option<i64>,
}

impl Refinements {
    pub fn is_empty(&self) -> bool {
        *self == Refinements::default()
    }
}

/// A value of some Terraform type. The type itself lives in the schema; `Value` only records
/// the shape, except under `Type::Dynamic` where `Dynamic` carries the concrete type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Not known until apply; refinements narrow what it can become.
    Unknown(Refinements),
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Element order is not significant on the wire; kept as received.
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
    /// A value in a `dynamic` slot, with the concrete type it was sent with.
    Dynamic(Type, Box<Value>),
}

impl Value {
    /// A plain unknown (no refinements).
    pub fn unknown() -> Self {
        Value::Unknown(Refinements::default())
    }
    pub fn string(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }
    pub fn int(i: i64) -> Self {
        Value::Number(Number::Int(i))
    }
    pub fn object<I, K>(attrs: I) -> Self
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        Value::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    pub fn is_null(&self) -> bool {
        matches!(self.unwrap_dynamic(), Value::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self.unwrap_dynamic(), Value::Unknown(_))
    }
    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown(_) => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                v.iter().all(Value::is_wholly_known)
            }
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            Value::Dynamic(_, v) => v.is_wholly_known(),
            _ => true,
        }
    }
    fn unwrap_dynamic(&self) -> &Value {
        match self {
            Value::Dynamic(_, v) => v.unwrap_dynamic(),
            v => v,
        }
    }
    /// Whether each named attribute is present and wholly known (absent counts as unknown).
    pub fn is_wholly_known_at(&self, names: &[&str]) -> bool {
        names
            .iter()
            .all(|n| self.get(n).is_some_and(Value::is_wholly_known))
    }
    /// Attribute of an object value; `None` for non-objects and missing attributes.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self.unwrap_dynamic() {
            Value::Object(m) => m.get(name),
            _ => None,
        }
    }
    /// Mutable attribute of an object value.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self {
            Value::Object(m) => m.get_mut(name),
            Value::Dynamic(_, v) => v.get_mut(name),
            _ => None,
        }
    }
    /// Sets an attribute of an object value (no-op on non-objects).
    pub fn set(&mut self, name: &str, v: Value) {
        if let Value::Object(m) = self {
            m.insert(name.to_string(), v);
        }
    }
    /// The value at a path; `None` when the path does not exist.
    pub fn at(&self, path: &super::diag::AttributePath) -> Option<&Value> {
        use super::diag::PathStep;
        let mut cur = self;
        for step in path.steps() {
            cur = match (step, cur.unwrap_dynamic()) {
                (PathStep::Attribute(a), Value::Object(m)) => m.get(a)?,
                (PathStep::Key(k), Value::Map(m)) => m.get(k)?,
                (PathStep::Index(i), Value::List(v) | Value::Tuple(v)) => {
                    v.get(usize::try_from(*i).ok()?)?
                }
                _ => return None,
            };
        }
        Some(cur)
    }
    /// Typed view of this value.
    pub fn typed<T: FromValue>(&self) -> Result<Val<T>, ValueError> {
        match self.unwrap_dynamic() {
            Value::Null => Ok(Val::Null),
            Value::Unknown(_) => Ok(Val::Unknown),
            v => T::from_value(v).map(Val::Known),
        }
    }
    /// Typed view of attribute `name` of this object (missing attributes read as null).
    pub fn attr<T: FromValue>(&self, name: &str) -> Result<Val<T>, ValueError> {
        match self.get(name) {
            None => Ok(Val::Null),
            Some(v) => v.typed().map_err(|e| e.within(name)),
        }
    }
}

/// Conversion errors between `Value` and Rust types.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValueError {
    #[error("{path}expected {expected}, got {got}")]
    Mismatch {
        path: String,
        expected: &'static str,
        got: String,
    },
}

impl ValueError {
    fn mismatch(expected: &'static str, got: &Value) -> Self {
        let got = match got {
            Value::Null => "null",
            Value::Unknown(_) => "unknown",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
            Value::Tuple(_) => "tuple",
            Value::Dynamic(..) => "dynamic",
        };
        ValueError::Mismatch {
            path: String::new(),
            expected,
            got: got.to_string(),
        }
    }
    fn within(self, name: &str) -> Self {
        match self {
            ValueError::Mismatch {
                path,
                expected,
                got,
            } => ValueError::Mismatch {
                path: format!("{name}: {path}"),
                expected,
                got,
            },
        }
    }
}

/// A typed Terraform value: known, null, or not yet known.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Val<T> {
    Known(T),
    #[default]
    Null,
    Unknown,
}

impl<T> Val<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Val::Known(t) => Some(t),
            _ => None,
        }
    }
    pub fn into_known(self) -> Option<T> {
        match self {
            Val::Known(t) => Some(t),
            _ => None,
        }
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Val::Unknown)
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }
}

impl<T: IntoValue> Val<T> {
    pub fn into_value(self) -> Value {
        match self {
            Val::Known(t) => t.into_value(),
            Val::Null => Value::Null,
            Val::Unknown => Value::unknown(),
        }
    }
}

impl<T> From<Option<T>> for Val<T> {
    fn from(o: Option<T>) -> Self {
        o.map_or(Val::Null, Val::Known)
    }
}

/// Rust types that can be read from a known, non-null `Value`.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self, ValueError>;
}

/// Rust types that become a `Value`.
pub trait IntoValue {
    fn into_value(self) -> Value;
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(ValueError::mismatch("string", other)),
        }
    }
}
impl IntoValue for String {
    fn into_value(self) -> Value {
        Value::String(self)
    }
}
impl IntoValue for &str {
    fn into_value(self) -> Value {
        Value::String(self.to_string())
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        match v {
            Value::Bool(b) => Ok(*b),
            other => Err(ValueError::mismatch("bool", other)),
        }
    }
}
impl IntoValue for bool {
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        match v {
            Value::Number(n) => n.as_i64().ok_or(ValueError::Mismatch {
                path: String::new(),
                expected: "whole number",
                got: n.to_string(),
            }),
            other => Err(ValueError::mismatch("number", other)),
        }
    }
}
impl IntoValue for i64 {
    fn into_value(self) -> Value {
        Value::int(self)
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        match v {
            Value::Number(n) => n.as_f64().ok_or_else(|| ValueError::mismatch("number", v)),
            other => Err(ValueError::mismatch("number", other)),
        }
    }
}
impl IntoValue for f64 {
    fn into_value(self) -> Value {
        Value::Number(Number::Float(self))
    }
}
impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        Ok(v.clone())
    }
}
impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}
/// Lists and sets both read as `Vec<T>`; unknown or null elements are a mismatch.
impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        match v {
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                items.iter().map(T::from_value).collect()
            }
            other => Err(ValueError::mismatch("list", other)),
        }
    }
}
/// A `Vec` becomes a list; use `Value::Set` directly for set attributes.
impl<T: IntoValue> IntoValue for Vec<T> {
    fn into_value(self) -> Value {
        Value::List(self.into_iter().map(IntoValue::into_value).collect())
    }
}
impl<T: FromValue> FromValue for BTreeMap<String, T> {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        match v {
            Value::Map(m) | Value::Object(m) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), T::from_value(v)?)))
                .collect(),
            other => Err(ValueError::mismatch("map", other)),
        }
    }
}
impl<T: IntoValue> IntoValue for BTreeMap<String, T> {
    fn into_value(self) -> Value {
        Value::Map(self.into_iter().map(|(k, v)| (k, v.into_value())).collect())
    }
}
impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        self.map_or(Value::Null, IntoValue::into_value)
    }
}
