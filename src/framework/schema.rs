//! Schemas as resource authors write them: attributes with a `Mode` (never a bag of booleans),
//! markdown descriptions that become the registry docs, nested attributes for nested objects
//! (DESIGN: no blocks), plan modifiers, and resource identity schemas.

use std::collections::BTreeMap;

use super::value::Type;

/// Whether the user sets the attribute, the provider does, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Required,
    Optional,
    Computed,
    /// Optional in configuration; the provider fills it in when the user does not.
    OptionalComputed,
}

impl Mode {
    pub fn is_computed(self) -> bool {
        matches!(self, Mode::Computed | Mode::OptionalComputed)
    }
    pub fn is_configurable(self) -> bool {
        !matches!(self, Mode::Computed)
    }
}

/// How a nested attribute holds its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    Single,
    List,
    Set,
    Map,
}

/// The type of an attribute: a plain type or nested attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrType {
    Plain(Type),
    Nested(Nesting, Vec<Attribute>),
}

/// Framework-applied plan behaviour for one attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanModifier {
    /// A computed value that never changes once set (ids, creation times): on update keep the
    /// prior state value instead of planning unknown.
    UseStateForUnknown,
    /// A change to this attribute destroys and recreates the object.
    RequiresReplace,
    /// A JSON string (or map/list of them): a configured value that is the same JSON document as
    /// the prior state's plans as the prior value, so reformatting is not a diff.
    JsonSemantic,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub ty: AttrType,
    pub mode: Mode,
    pub sensitive: bool,
    /// Sent to the provider in config only, never stored in state.
    pub write_only: bool,
    /// Markdown; rendered into the docs.
    pub description: String,
    pub deprecation: Option<String>,
    pub modifiers: Vec<PlanModifier>,
}

impl Attribute {
    fn new(name: &str, ty: AttrType, mode: Mode) -> Self {
        Attribute {
            name: name.to_string(),
            ty,
            mode,
            sensitive: false,
            write_only: false,
            description: String::new(),
            deprecation: None,
            modifiers: Vec::new(),
        }
    }
    pub fn required(name: &str, ty: Type) -> Self {
        Self::new(name, AttrType::Plain(ty), Mode::Required)
    }
    pub fn optional(name: &str, ty: Type) -> Self {
        Self::new(name, AttrType::Plain(ty), Mode::Optional)
    }
    pub fn computed(name: &str, ty: Type) -> Self {
        Self::new(name, AttrType::Plain(ty), Mode::Computed)
    }
    pub fn optional_computed(name: &str, ty: Type) -> Self {
        Self::new(name, AttrType::Plain(ty), Mode::OptionalComputed)
    }
    /// Nested attributes (`= { ... }`, `= [ { ... } ]`, `= { key = { ... } }`).
    pub fn nested(name: &str, nesting: Nesting, mode: Mode, attributes: Vec<Attribute>) -> Self {
        Self::new(name, AttrType::Nested(nesting, attributes), mode)
    }
    #[must_use]
    pub fn description(mut self, markdown: &str) -> Self {
        self.description = markdown.to_string();
        self
    }
    #[must_use]
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    #[must_use]
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    #[must_use]
    pub fn deprecated(mut self, message: &str) -> Self {
        self.deprecation = Some(message.to_string());
        self
    }
    #[must_use]
    pub fn use_state_for_unknown(mut self) -> Self {
        self.modifiers.push(PlanModifier::UseStateForUnknown);
        self
    }
    /// Compare this JSON-string attribute semantically (see `framework::semantic`).
    #[must_use]
    pub fn json_semantic(mut self) -> Self {
        self.modifiers.push(PlanModifier::JsonSemantic);
        self
    }
    #[must_use]
    pub fn requires_replace(mut self) -> Self {
        self.modifiers.push(PlanModifier::RequiresReplace);
        self
    }
    pub fn has(&self, m: PlanModifier) -> bool {
        self.modifiers.contains(&m)
    }
    /// The cty type values of this attribute have.
    pub fn value_type(&self) -> Type {
        match &self.ty {
            AttrType::Plain(t) => t.clone(),
            AttrType::Nested(nesting, attrs) => {
                let obj = object_type(attrs);
                match nesting {
                    Nesting::Single => obj,
                    Nesting::List => Type::list(obj),
                    Nesting::Set => Type::set(obj),
                    Nesting::Map => Type::map(obj),
                }
            }
        }
    }
}

/// The object type implied by a list of attributes.
pub fn object_type(attrs: &[Attribute]) -> Type {
    Type::Object(
        attrs
            .iter()
            .map(|a| (a.name.clone(), a.value_type()))
            .collect(),
    )
}

/// The schema of a provider, resource, data source or list-resource config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    /// State version: bump it when stored state needs upgrading.
    pub version: i64,
    /// Markdown; the first paragraph of the docs page.
    pub description: String,
    pub attributes: Vec<Attribute>,
    pub deprecation: Option<String>,
}

impl Schema {
    pub fn new(description: &str, attributes: Vec<Attribute>) -> Self {
        Schema {
            version: 0,
            description: description.to_string(),
            attributes,
            deprecation: None,
        }
    }
    /// The msgpack/JSON type of whole objects of this schema.
    pub fn implied_type(&self) -> Type {
        object_type(&self.attributes)
    }
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

/// One attribute of a resource identity: primitives or lists only (Terraform rejects others).
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityAttribute {
    pub name: String,
    pub ty: Type,
    /// `true`: must be given in an `import { identity = ... }`; `false`: may be.
    pub required_for_import: bool,
    pub description: String,
}

/// The identity of a resource type: the stable keys that find one object (id, name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IdentitySchema {
    pub version: i64,
    pub attributes: Vec<IdentityAttribute>,
}

impl IdentitySchema {
    pub fn implied_type(&self) -> Type {
        Type::Object(
            self.attributes
                .iter()
                .map(|a| (a.name.clone(), a.ty.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }
}
