//! The framework's planning rules, applied before `Resource::modify_plan`:
//! - computed attributes the user left null become unknown when anything changes (on create
//!   always), unless they `use_state_for_unknown` and have a prior value;
//! - write-only attributes are planned null;
//! - a `json_semantic` attribute whose configured JSON equals the prior JSON keeps the prior text;
//! - a changed (or unknown) `requires_replace` attribute is reported for replacement.

use std::collections::BTreeMap;

use super::diag::AttributePath;
use super::schema::{AttrType, Attribute, Nesting, PlanModifier, Schema};
use super::value::Value;

/// Plans a create or update. `prior` is null on create; `proposed` is Terraform's proposed new
/// state (config merged with prior computed values).
pub fn plan(
    schema: &Schema,
    prior: &Value,
    proposed: &Value,
    config: &Value,
) -> (Value, Vec<AttributePath>) {
    let creating = prior.is_null();
    let mut proposed = proposed.clone();
    if !creating && let Value::Object(m) = &mut proposed {
        apply_json_semantic(&schema.attributes, m, prior);
    }
    let proposed = &proposed;
    // An update where nothing differs from the prior state plans no change at all: computed
    // values keep their prior values instead of going unknown.
    let changed = creating
        || null_write_only(&schema.attributes, proposed)
            != null_write_only(&schema.attributes, prior);
    let mut planned = proposed.clone();
    if let Value::Object(m) = &mut planned {
        apply_attrs(
            &schema.attributes,
            m,
            Some(config),
            prior_obj(prior),
            changed,
        );
    }
    let mut replace = Vec::new();
    if !creating {
        collect_replace(
            &schema.attributes,
            prior,
            &planned,
            &AttributePath::root(),
            &mut replace,
        );
    }
    (planned, replace)
}

/// Replaces configured JSON strings by the prior ones where they mean the same document.
fn apply_json_semantic(attrs: &[Attribute], planned: &mut BTreeMap<String, Value>, prior: &Value) {
    for attr in attrs {
        let Some(slot) = planned.get_mut(&attr.name) else {
            continue;
        };
        let prior_v = prior.get(&attr.name).unwrap_or(&Value::Null);
        if attr.has(PlanModifier::JsonSemantic) && !slot.is_null() && !prior_v.is_null() {
            *slot = super::semantic::keep_prior_json(prior_v, slot);
            continue;
        }
        if let AttrType::Nested(nesting, inner) = &attr.ty {
            match (nesting, slot, prior_v) {
                (Nesting::Single, Value::Object(m), p) => apply_json_semantic(inner, m, p),
                (Nesting::List, Value::List(items), Value::List(prior_items)) => {
                    for (item, p) in items.iter_mut().zip(prior_items) {
                        if let Value::Object(m) = item {
                            apply_json_semantic(inner, m, p);
                        }
                    }
                }
                (Nesting::Map, Value::Map(items), Value::Map(prior_items)) => {
                    for (k, item) in items.iter_mut() {
                        if let (Value::Object(m), Some(p)) = (item, prior_items.get(k)) {
                            apply_json_semantic(inner, m, p);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn prior_obj(v: &Value) -> Option<&BTreeMap<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Paths of the write-only attributes `v` sets (non-null), at any depth.
pub fn write_only_set(attrs: &[Attribute], v: &Value, base: &AttributePath) -> Vec<AttributePath> {
    let mut out = Vec::new();
    for attr in attrs {
        let Some(slot) = v.get(&attr.name) else {
            continue;
        };
        let path = base.push_attr(&attr.name);
        if attr.write_only {
            if !slot.is_null() {
                out.push(path);
            }
            continue;
        }
        if let AttrType::Nested(_, inner) = &attr.ty {
            match slot {
                Value::Object(_) => out.extend(write_only_set(inner, slot, &path)),
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        out.extend(write_only_set(inner, item, &path.push_index(i as i64)));
                    }
                }
                Value::Map(items) => {
                    for (k, item) in items {
                        out.extend(write_only_set(inner, item, &path.push_key(k)));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// `v` with every write-only attribute nulled, at any depth: Terraform never stores them, so a
/// state or plan must not hold them, and comparisons with a prior state must ignore them.
pub fn null_write_only(attrs: &[Attribute], v: &Value) -> Value {
    let Value::Object(m) = v else {
        return v.clone();
    };
    let mut out = m.clone();
    for attr in attrs {
        let Some(slot) = out.get_mut(&attr.name) else {
            continue;
        };
        if attr.write_only {
            *slot = Value::Null;
            continue;
        }
        if let AttrType::Nested(_, inner) = &attr.ty {
            let nulled = match &*slot {
                Value::Object(_) => null_write_only(inner, slot),
                Value::List(items) => {
                    Value::List(items.iter().map(|i| null_write_only(inner, i)).collect())
                }
                Value::Set(items) => {
                    Value::Set(items.iter().map(|i| null_write_only(inner, i)).collect())
                }
                Value::Map(items) => Value::Map(
                    items
                        .iter()
                        .map(|(k, i)| (k.clone(), null_write_only(inner, i)))
                        .collect(),
                ),
                other => other.clone(),
            };
            *slot = nulled;
        }
    }
    Value::Object(out)
}

fn apply_attrs(
    attrs: &[Attribute],
    planned: &mut BTreeMap<String, Value>,
    config: Option<&Value>,
    prior: Option<&BTreeMap<String, Value>>,
    changed: bool,
) {
    for attr in attrs {
        let cfg = config
            .and_then(|c| c.get(&attr.name))
            .unwrap_or(&Value::Null);
        let prior_v = prior
            .and_then(|p| p.get(&attr.name))
            .unwrap_or(&Value::Null);
        let slot = planned.entry(attr.name.clone()).or_insert(Value::Null);
        if attr.write_only {
            *slot = Value::Null;
            continue;
        }
        if attr.mode.is_computed() && cfg.is_null() {
            let keep_prior = attr.has(PlanModifier::UseStateForUnknown) && !prior_v.is_null();
            if keep_prior {
                *slot = prior_v.clone();
            } else if changed {
                *slot = Value::unknown();
            }
            continue;
        }
        // Configured nested objects may hold computed attributes of their own.
        if let AttrType::Nested(nesting, inner) = &attr.ty {
            apply_nested(*nesting, inner, slot, cfg, prior_v, changed);
        }
    }
}

fn apply_nested(
    nesting: Nesting,
    inner: &[Attribute],
    slot: &mut Value,
    cfg: &Value,
    prior: &Value,
    changed: bool,
) {
    match (nesting, slot) {
        (Nesting::Single, Value::Object(m)) => {
            apply_attrs(inner, m, Some(cfg), prior_obj(prior), changed)
        }
        (Nesting::List | Nesting::Set, Value::List(items) | Value::Set(items)) => {
            let cfg_items = match cfg {
                Value::List(c) | Value::Set(c) => c.as_slice(),
                _ => &[],
            };
            let prior_items = match prior {
                Value::List(p) | Value::Set(p) => p.as_slice(),
                _ => &[],
            };
            for (i, item) in items.iter_mut().enumerate() {
                if let Value::Object(m) = item {
                    apply_attrs(
                        inner,
                        m,
                        cfg_items.get(i),
                        prior_items.get(i).and_then(prior_obj),
                        changed,
                    );
                }
            }
        }
        (Nesting::Map, Value::Map(items)) => {
            for (k, item) in items.iter_mut() {
                if let Value::Object(m) = item {
                    let prior_item = match prior {
                        Value::Map(p) => p.get(k).and_then(prior_obj),
                        _ => None,
                    };
                    apply_attrs(inner, m, cfg.get_map(k), prior_item, changed);
                }
            }
        }
        _ => {}
    }
}

trait MapGet {
    fn get_map(&self, k: &str) -> Option<&Value>;
}
impl MapGet for Value {
    fn get_map(&self, k: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.get(k),
            _ => None,
        }
    }
}

fn collect_replace(
    attrs: &[Attribute],
    prior: &Value,
    planned: &Value,
    base: &AttributePath,
    out: &mut Vec<AttributePath>,
) {
    for attr in attrs {
        let p = prior.get(&attr.name).unwrap_or(&Value::Null);
        let n = planned.get(&attr.name).unwrap_or(&Value::Null);
        let path = base.push_attr(&attr.name);
        if attr.has(PlanModifier::RequiresReplace) && (n.is_unknown() || p != n) {
            out.push(path);
            continue;
        }
        if let AttrType::Nested(Nesting::Single, inner) = &attr.ty
            && !p.is_null()
            && !n.is_null()
        {
            collect_replace(inner, p, n, &path, out);
        }
    }
}

/// Paths where `new` (the state after apply) differs from a value `planned` already knew.
/// Terraform rejects such results ("inconsistent result after apply"); the framework reports
/// them first with the attribute named, so resource bugs are obvious.
pub fn inconsistencies(planned: &Value, new: &Value) -> Vec<AttributePath> {
    let mut out = Vec::new();
    diff_known(planned, new, &AttributePath::root(), &mut out);
    out
}

fn diff_known(planned: &Value, new: &Value, path: &AttributePath, out: &mut Vec<AttributePath>) {
    match (planned, new) {
        (Value::Unknown(_), _) => {}
        (Value::Dynamic(_, p), n) => diff_known(p, n, path, out),
        (p, Value::Dynamic(_, n)) => diff_known(p, n, path, out),
        (Value::Object(p), Value::Object(n)) => {
            for (k, pv) in p {
                diff_known(
                    pv,
                    n.get(k).unwrap_or(&Value::Null),
                    &path.push_attr(k),
                    out,
                );
            }
        }
        (Value::Map(p), Value::Map(n)) if p.len() == n.len() && p.keys().eq(n.keys()) => {
            for (k, pv) in p {
                diff_known(pv, &n[k], &path.push_key(k), out);
            }
        }
        (Value::List(p), Value::List(n)) | (Value::Tuple(p), Value::Tuple(n))
            if p.len() == n.len() =>
        {
            for (i, (pv, nv)) in p.iter().zip(n).enumerate() {
                diff_known(pv, nv, &path.push_index(i as i64), out);
            }
        }
        // Sets have no stable element paths: a known set must come back as the same elements.
        (Value::Set(p), Value::Set(n)) => {
            let same =
                p.len() == n.len() && p.iter().all(|e| !e.is_wholly_known() || n.contains(e));
            if !same {
                out.push(path.clone());
            }
        }
        (p, n) if p == n => {}
        _ => out.push(path.clone()),
    }
}
