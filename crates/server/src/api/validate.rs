//! Semantic checks on request bodies, after serde accepted their shape. Each failure names the
//! field (dotted path) so Terraform can point at the attribute.

use std::collections::BTreeSet;

use otaas_api::{
    AgentGroupSpec, EndpointSpec, ExporterBindingSpec, PipelineSpec, RolloutStrategy, Signal,
};
use serde_json::Value;

use super::ApiError;
use crate::render::components::{ComponentTable, Kind, Signals, type_of};

type R = Result<(), ApiError>;

/// Object names: `[a-z0-9_-]{1,63}`.
pub fn name(field: &str, s: &str) -> R {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must match [a-z0-9_-]{{1,63}}, got {s:?}"),
        ))
    }
}

/// Component type: lowercase letter, then lowercase letters, digits, `_`.
fn component_type(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// May `c` appear in a component name? The collector allows any character but whitespace,
/// control and symbol characters (Unicode categories Z, C and S: its `nameRegexp`); we take
/// ASCII letters, digits and punctuation other than the ASCII symbols `$+<=>^`|~` and our
/// `/` separator, and beyond ASCII only letters and numbers (a subset of what it allows).
fn component_name_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || (c.is_ascii_punctuation() && !"$+<=>^`|~/".contains(c))
    } else {
        c.is_alphanumeric()
    }
}

/// Component ids: `type` or `type/name`, as the collector accepts them (see
/// `component_name_char`; at most 63 bytes of name).
pub fn component_id(field: &str, s: &str) -> R {
    let ok = match s.split_once('/') {
        None => component_type(s),
        Some((ty, name)) => {
            component_type(ty)
                && !name.is_empty()
                && name.len() <= 63
                && name.chars().all(component_name_char)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{field} must be a component id `type` or `type/name` (type: a lowercase letter, \
                 then lowercase letters, digits, _; name: letters, digits and punctuation other \
                 than / and no whitespace, control or symbol characters such as | + = ~), got {s:?}"
            ),
        ))
    }
}

/// HTTP header names: a `token` (RFC 9110 §5.1), restricted to letters, digits, `-`, `_`, `.`.
fn header_name(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
}

/// HTTP header values (RFC 9110 §5.5): visible characters, spaces and tabs; no CR, LF, NUL or
/// other control characters (a CR/LF would end the header and start another one).
fn header_value(v: &str) -> bool {
    !v.chars().any(|c| c.is_control() && c != '\t')
}

pub fn json_object(field: &str, v: &Value) -> R {
    if v.is_object() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be a JSON object"),
        ))
    }
}

fn signals(field: &str, s: &[Signal], allow_empty: bool) -> R {
    if s.is_empty() && !allow_empty {
        return Err(ApiError::invalid(
            field,
            format!("{field} must name at least one of traces, metrics, logs"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, sig) in s.iter().enumerate() {
        if !seen.insert(*sig) {
            return Err(ApiError::invalid(
                &format!("{field}[{i}]"),
                format!("{field} lists {} twice", sig.as_str()),
            ));
        }
    }
    Ok(())
}

fn non_empty(field: &str, s: &str) -> R {
    if s.trim().is_empty() {
        Err(ApiError::invalid(
            field,
            format!("{field} must not be empty"),
        ))
    } else {
        Ok(())
    }
}

/// Refuses a component that supports none of `wanted` (the component table's signals; types
/// it does not list are assumed to support all): a collector would refuse it in every
/// pipeline it could go into, so the component could never run.
pub fn supports_some(field: &str, kind: Kind, id: &str, wanted: &[Signal]) -> R {
    let wanted = Signals::of(wanted);
    let has = ComponentTable::builtin().signals(kind, type_of(id));
    if wanted.is_empty() || has.intersects(wanted) {
        return Ok(());
    }
    Err(ApiError::invalid(
        field,
        format!(
            "{} {id:?} supports {} but none of {} it would run for ({}); use another {} that supports them or change the signals",
            kind.as_str(),
            has.describe(),
            if kind == Kind::Exporter {
                "the signals"
            } else {
                "the pipeline's signals"
            },
            wanted.describe(),
            kind.as_str(),
        ),
    ))
}

fn secret_error(e: crate::secrets::SecretError) -> ApiError {
    ApiError::invalid(&e.field, e.message)
}

/// The `secrets` map itself and `keep_secrets` beside it.
fn declared_secrets(secrets: &std::collections::BTreeMap<String, String>, keep: bool) -> R {
    if keep && !secrets.is_empty() {
        return Err(ApiError::invalid(
            "keep_secrets",
            "keep_secrets keeps the server's secret values; send either secrets or \
             keep_secrets = true, not both",
        ));
    }
    crate::secrets::check_declared(secrets).map_err(secret_error)
}

/// Secret references in `v` name declared secrets (not judged while `keep_secrets` stands
/// for secrets the server has: the handler checks again after resolving them).
fn refs(
    field: &str,
    v: &Value,
    secrets: &std::collections::BTreeMap<String, String>,
    keep: bool,
) -> R {
    if keep {
        return Ok(());
    }
    crate::secrets::check_refs(field, v, secrets).map_err(secret_error)
}

/// A policy refusal as the API answers it: 422 `policy_denied` naming the rule and the field.
pub fn policy_error(e: crate::policy::PolicyError) -> ApiError {
    ApiError::new(
        http::StatusCode::UNPROCESSABLE_ENTITY,
        otaas_api::ErrorCode::PolicyDenied,
        format!("{}: refused by the rule {}", e.message, e.rule),
        Some(&e.field),
    )
}

pub fn pipeline(p: &PipelineSpec) -> R {
    name("name", &p.name)?;
    signals("signals", &p.signals, false)?;
    declared_secrets(&p.secrets, p.keep_secrets)?;
    for (id, cfg) in &p.receivers {
        component_id(&format!("receivers.{id}"), id)?;
        json_object(&format!("receivers.{id}"), cfg)?;
        refs(&format!("receivers.{id}"), cfg, &p.secrets, p.keep_secrets)?;
        supports_some(&format!("receivers.{id}"), Kind::Receiver, id, &p.signals)?;
    }
    let mut seen = BTreeSet::new();
    for (i, proc_) in p.processors.iter().enumerate() {
        component_id(&format!("processors[{i}].id"), &proc_.id)?;
        json_object(&format!("processors[{i}].config"), &proc_.config)?;
        refs(
            &format!("processors[{i}].config"),
            &proc_.config,
            &p.secrets,
            p.keep_secrets,
        )?;
        if !seen.insert(&proc_.id) {
            return Err(ApiError::invalid(
                &format!("processors[{i}].id"),
                format!("processor {:?} appears twice", proc_.id),
            ));
        }
        supports_some(
            &format!("processors[{i}].id"),
            Kind::Processor,
            &proc_.id,
            &p.signals,
        )?;
    }
    Ok(())
}

/// A binding's destinations against the signals they would carry: the binding's `signals`
/// within the pipeline's (all of the pipeline's when the binding names none). Nothing to
/// judge when those do not overlap (the binding reaches no pipeline of this one yet).
pub fn binding_signals(b: &ExporterBindingSpec, pipeline_signals: &[Signal]) -> R {
    let carried: Vec<Signal> = match &b.signals {
        Some(s) => s
            .iter()
            .copied()
            .filter(|x| pipeline_signals.contains(x))
            .collect(),
        None => pipeline_signals.to_vec(),
    };
    for (i, d) in b.destinations.iter().enumerate() {
        supports_some(
            &format!("destinations[{i}].type"),
            Kind::Exporter,
            &d.kind,
            &carried,
        )?;
    }
    Ok(())
}

pub fn endpoint(e: &EndpointSpec) -> R {
    name("name", &e.name)?;
    if e.port == 0 {
        return Err(ApiError::invalid(
            "port",
            "port must be between 1 and 65535",
        ));
    }
    if e.token_version == 0 {
        return Err(ApiError::invalid(
            "token_version",
            "token_version must be at least 1",
        ));
    }
    if e.token_grace_seconds > otaas_api::MAX_TOKEN_GRACE_SECONDS {
        return Err(ApiError::invalid(
            "token_grace_seconds",
            format!(
                "token_grace_seconds must be at most {} (7 days), got {}",
                otaas_api::MAX_TOKEN_GRACE_SECONDS,
                e.token_grace_seconds
            ),
        ));
    }
    if let Some(tls) = &e.tls {
        non_empty("tls.cert_file", &tls.cert_file)?;
        non_empty("tls.key_file", &tls.key_file)?;
        if let Some(ca) = &tls.client_ca_file {
            non_empty("tls.client_ca_file", ca)?;
        }
    }
    Ok(())
}

pub fn binding(b: &ExporterBindingSpec) -> R {
    name("name", &b.name)?;
    declared_secrets(&b.secrets, b.keep_secrets)?;
    if let Some(s) = &b.signals {
        signals("signals", s, false)?;
    }
    if b.destinations.is_empty() {
        return Err(ApiError::invalid(
            "destinations",
            "destinations must list at least one destination",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, d) in b.destinations.iter().enumerate() {
        name(&format!("destinations[{i}].name"), &d.name)?;
        if !seen.insert(&d.name) {
            return Err(ApiError::invalid(
                &format!("destinations[{i}].name"),
                format!("destination name {:?} appears twice", d.name),
            ));
        }
        if !component_type(&d.kind) {
            return Err(ApiError::invalid(
                &format!("destinations[{i}].type"),
                format!(
                    "destination type must be an exporter type like otlp, got {:?}",
                    d.kind
                ),
            ));
        }
        if let Some(ep) = &d.endpoint {
            non_empty(&format!("destinations[{i}].endpoint"), ep)?;
        }
        if d.keep_headers && !d.headers.is_empty() {
            return Err(ApiError::invalid(
                &format!("destinations[{i}].keep_headers"),
                "keep_headers keeps the server's header values; send either headers or \
                 keep_headers = true, not both",
            ));
        }
        for (h, v) in &d.headers {
            if !header_name(h) {
                return Err(ApiError::invalid(
                    &format!("destinations[{i}].headers"),
                    format!("header name {h:?} is not a valid HTTP header name"),
                ));
            }
            if !header_value(v) {
                // The value is a secret: named by its header, never echoed.
                return Err(ApiError::invalid(
                    &format!("destinations[{i}].headers.{h}"),
                    format!(
                        "the value of header {h:?} contains a control character (CR, LF, NUL, \
                         ...), which HTTP does not allow"
                    ),
                ));
            }
        }
        json_object(&format!("destinations[{i}].config"), &d.config)?;
        refs(
            &format!("destinations[{i}].config"),
            &d.config,
            &b.secrets,
            b.keep_secrets,
        )?;
        if let Some(s) = &b.signals {
            supports_some(
                &format!("destinations[{i}].type"),
                Kind::Exporter,
                &d.kind,
                s,
            )?;
        }
    }
    Ok(())
}

pub fn group(g: &AgentGroupSpec) -> R {
    name("name", &g.name)?;
    for k in g.selector.keys() {
        non_empty("selector", k)?;
    }
    let mut seen = BTreeSet::new();
    for (i, p) in g.pipeline_ids.iter().enumerate() {
        if !seen.insert(p) {
            return Err(ApiError::invalid(
                &format!("pipeline_ids[{i}]"),
                format!("pipeline {p} is listed twice"),
            ));
        }
    }
    let r = &g.rollout;
    if let Some(pct) = r.canary_percent
        && !(1..=100).contains(&pct)
    {
        return Err(ApiError::invalid(
            "rollout.canary_percent",
            "canary_percent must be between 1 and 100",
        ));
    }
    if r.strategy == RolloutStrategy::Canary && r.canary_percent.is_none() {
        return Err(ApiError::invalid(
            "rollout.canary_percent",
            "the canary strategy needs canary_percent",
        ));
    }
    if let Some(i) = r.batch_sizes.iter().position(|b| *b == 0) {
        return Err(ApiError::invalid(
            &format!("rollout.batch_sizes[{i}]"),
            "batch sizes must be at least 1",
        ));
    }
    Ok(())
}

/// A group to create: as [`group`], and unpinned (it has no config revisions to be held on).
pub fn new_group(g: &AgentGroupSpec) -> R {
    group(g)?;
    if g.pinned_revision.is_some() {
        return Err(ApiError::invalid(
            "pinned_revision",
            "a new agent group has no config revisions to be pinned to: create it with \
             pinned_revision null, then pin one of the revisions it gets",
        ));
    }
    Ok(())
}

/// A group update's `pinned_revision` names a config revision group `id` has (checked against
/// the store; a group that does not exist is left to the update's own 404).
pub async fn pin(
    store: &dyn crate::store::Store,
    id: otaas_api::AgentGroupId,
    g: &AgentGroupSpec,
) -> R {
    let Some(rev) = g.pinned_revision else {
        return Ok(());
    };
    let unknown = || {
        ApiError::invalid(
            "pinned_revision",
            format!("agent group {id} has no config revision {rev}"),
        )
    };
    if rev < 1 {
        return Err(unknown());
    }
    match store.get_group(id).await {
        Ok(_) => {}
        Err(crate::store::StoreError::NotFound { .. }) => return Ok(()),
        Err(err) => return Err(err.into()),
    }
    match store.group_revision(id, Some(rev)).await {
        Ok(_) => Ok(()),
        Err(crate::store::StoreError::NotFound { .. }) => Err(unknown()),
        Err(err) => Err(err.into()),
    }
}

/// An update as it will be stored: the stored secrets when it keeps them, stored values where
/// it sends back a redacted one (see `store::merge_pipeline`); then judged again, now that
/// every secret reference can be resolved.
pub(super) async fn resolve_pipeline(
    store: &dyn crate::store::Store,
    id: otaas_api::PipelineId,
    spec: PipelineSpec,
) -> Result<PipelineSpec, ApiError> {
    let current = store.get_pipeline(id).await?;
    let spec = crate::store::merge_pipeline(&current.spec, spec);
    pipeline(&spec)?;
    Ok(spec)
}

/// [`resolve_pipeline`] for bindings.
pub(super) async fn resolve_binding(
    store: &dyn crate::store::Store,
    id: otaas_api::ExporterBindingId,
    spec: ExporterBindingSpec,
) -> Result<ExporterBindingSpec, ApiError> {
    let current = store.get_binding(id).await?;
    let spec = crate::store::merge_binding(&current.spec, spec);
    binding(&spec)?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        assert!(header_value("Bearer abc\tdef"));
        for bad in ["a\r\nX-Injected: 1", "a\nb", "a\u{0}b", "a\u{7f}"] {
            assert!(!header_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        assert!(name("name", "checkout-otlp_2").is_ok());
        let long = "a".repeat(64);
        for bad in ["", "Checkout", "a b", "a.b", long.as_str()] {
            let e = name("name", bad).unwrap_err();
            assert_eq!(e.body.error.field.as_deref(), Some("name"), "{bad:?}");
        }
    }

    #[test]
    fn component_ids() {
        for ok in [
            "batch",
            "memory_limiter",
            "attributes/redact",
            "otlp/a.b-c",
            "otlp/a@b#1",
        ] {
            assert!(component_id("f", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Batch",
            "9x",
            "batch/",
            "/x",
            "a/b/c",
            "a/b c",
            "a-b",
            "otlp/|",
            "otlp/a+b",
            "otlp/a\u{0}",
            "otlp/a\u{a0}b",
            "otlp/€",
            "otlp/a\tb",
        ] {
            assert!(component_id("f", bad).is_err(), "{bad}");
        }
        assert!(component_id("f", "otlp/café-1.2_x:y").is_ok());
    }
}
