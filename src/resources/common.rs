//! What every otaas resource, data source and list resource shares: the API client built from
//! the provider configuration, API errors turned into diagnostics with attribute paths, the
//! plan-time checks that mirror the server's rules, and small `Value` helpers.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use otaas_api::{Client, ClientConfig, ClientError};

use crate::framework::semantic::json_equal;
use crate::framework::{
    Attribute, AttributePath, Context, Diagnostic, Diagnostics, PlanChange, ProviderConfig, Type,
    Val, Value,
};

/// One client per provider configuration: a provider process is configured once, and reusing
/// the client keeps its connection pool (the 500-resource plan would otherwise reconnect 500x).
static CLIENT: Mutex<Option<(ProviderConfig, Client)>> = Mutex::new(None);

/// The API client for the configured provider, or the diagnostic explaining why there is none.
pub(crate) fn client(ctx: &Context) -> Result<Client, Diagnostic> {
    client_for(ctx.provider_config()?)
}

/// The (cached) API client for `config`. ConfigureProvider calls it first, so a configuration
/// the client rejects (a CA bundle it cannot parse) fails there, at the provider block.
pub fn client_for(config: &ProviderConfig) -> Result<Client, Diagnostic> {
    let mut cached = CLIENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((c, client)) = cached.as_ref()
        && c == config
    {
        return Ok(client.clone());
    }
    let mut cc = ClientConfig::new(
        config.endpoint.clone(),
        config
            .token
            .as_ref()
            .map(|t| t.expose().to_string())
            .unwrap_or_default(),
    );
    cc.ca_cert_pem = config.ca_cert_pem.clone();
    let client = Client::new(cc).map_err(|e| {
        let d = Diagnostic::error(
            "Invalid provider configuration",
            format!("Could not build the otaas API client: {e}"),
        );
        if config.ca_cert_pem.is_some() {
            d.at(AttributePath::attr("ca_cert_pem"))
        } else {
            d
        }
    })?;
    *cached = Some((config.clone(), client.clone()));
    Ok(client)
}

/// `client(ctx)` that records its failure in `diags`.
pub(crate) fn client_or_diag(ctx: &Context, diags: &mut Diagnostics) -> Option<Client> {
    match client(ctx) {
        Ok(c) => Some(c),
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

/// An API error as a diagnostic: `action` says what failed ("creating pipeline \"x\""); when
/// the server names a field that exists in `value`, the diagnostic points at that attribute.
pub(crate) fn api_error(action: &str, err: &ClientError, value: &Value) -> Diagnostic {
    let remedy = if err.is_unauthorized() {
        " Check the provider's token (or OTAAS_TOKEN)."
    } else if err.is_conflict() {
        " Another change happened at the same time, or the object is still used; run plan again \
         to see the current state."
    } else {
        ""
    };
    let mut d = Diagnostic::error(
        format!("Error {action}"),
        format!("{}: {err}.{remedy}", capitalise(action)),
    );
    if let Some(path) = err.field().and_then(|f| field_path(f, value)) {
        d = d.at(path);
    }
    d
}

/// A failed create as a diagnostic. A name clash (409 `name_taken`) means the object already
/// exists on the server, so the diagnostic says how to adopt it (`terraform import`, or an
/// `import` block) instead of the generic advice; `type_name` is the resource type.
pub(crate) fn create_error(
    type_name: &str,
    action: &str,
    name: &str,
    err: &ClientError,
    planned: &Value,
) -> Diagnostic {
    if err.code() != Some(otaas_api::ErrorCode::NameTaken) {
        return api_error(action, err, planned);
    }
    let kind = type_name.trim_start_matches("otaas_").replace('_', " ");
    Diagnostic::error(
        format!("The {kind} {name:?} already exists"),
        format!(
            "{}: {err}.\nAn object with this name exists on the otaas server but not in this \
             Terraform state (it was created elsewhere, or the state lost it). To manage it with \
             this resource, import it, where <label> is this resource's label in your \
             configuration:\n\n  terraform import {type_name}.<label> {name}\n\nor add an \
             import block and apply again:\n\n  import {{\n    to = {type_name}.<label>\n    \
             id = \"{name}\"\n  }}\n\nOtherwise give this resource another name.",
            capitalise(action)
        ),
    )
    .at(AttributePath::attr("name"))
}

/// The computed attribute holding what an object renders in collector configs.
pub(crate) const COLLECTOR_CONFIG: &str = "collector_config";

/// `collector_config` of pipelines, endpoints and exporter bindings.
pub(crate) fn collector_config_attribute(parts: &str) -> Attribute {
    Attribute::computed(COLLECTOR_CONFIG, Type::String).description(&format!(
        "What this object puts into the collector config of every agent group running it: \
         its {parts}, as YAML with secret values redacted, made by the server's own renderer \
         (`POST /api/v1/config-preview`). Computed while planning, so a plan that changes the \
         object shows the collector config lines that change; the plan also warns which agent \
         groups the change reaches and how many agents they have."
    ))
}

/// Whether the plan changes the object (besides its computed and local attributes).
fn plan_changes(change: &PlanChange) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        for c in ["revision", COLLECTOR_CONFIG, "secret_digests", "token"]
            .iter()
            .chain(&LOCAL_ATTRS)
        {
            v.set(c, Value::Null);
        }
        v
    };
    change.is_create() || strip(&change.planned) != strip(&change.prior)
}

/// Plans `collector_config`: the prior value when the object does not change; otherwise what
/// the server renders for `preview` (the object as planned; `None` when some of it is not
/// known yet: then unknown). A change that reaches agent groups is a warning naming them with
/// their agent counts. Quiet when the server cannot answer: the value is then unknown.
pub(crate) async fn plan_collector_config(
    ctx: &Context,
    change: &mut PlanChange,
    preview: Option<otaas_api::ConfigPreview>,
    diags: &mut Diagnostics,
) {
    if !plan_changes(change) {
        let prior = change
            .prior
            .get(COLLECTOR_CONFIG)
            .cloned()
            .unwrap_or(Value::Null);
        change.planned.set(COLLECTOR_CONFIG, prior);
        return;
    }
    let answer = match (preview, client(ctx)) {
        (Some(p), Ok(client)) => client.config_preview(&p).await.ok(),
        _ => None,
    };
    let Some(answer) = answer else {
        change.planned.set(COLLECTOR_CONFIG, Value::unknown());
        return;
    };
    change
        .planned
        .set(COLLECTOR_CONFIG, Value::string(&answer.yaml));
    let reached: Vec<String> = answer
        .groups
        .iter()
        .filter(|g| g.changes)
        .map(|g| format!("{:?} ({} agents)", g.group_name, g.agents))
        .collect();
    if !reached.is_empty() {
        diags.push(Diagnostic::warning(
            "Collector config change",
            format!(
                "This change gives agent groups a new collector config, rolled out with each \
                 group's strategy: {}.",
                reached.join(", ")
            ),
        ));
    }
}

/// `collector_config` after a write or a read: the planned value when known (Terraform holds
/// the applied object to it), else the prior one while the object's revision did not move,
/// else asked of the server. Left null when the server cannot say (the next read tries again).
pub(crate) async fn settle_collector_config(
    client: &Client,
    state: &mut Value,
    earlier: &Value,
    preview: Option<otaas_api::ConfigPreview>,
) {
    let kept = earlier
        .get(COLLECTOR_CONFIG)
        .filter(|v| matches!(v, Value::String(_)));
    let planned_or_same = match kept {
        Some(v) if earlier.get("revision").is_none_or(Value::is_unknown) => Some(v.clone()),
        Some(v) if earlier.get("revision") == state.get("revision") => Some(v.clone()),
        _ => None,
    };
    let value = match planned_or_same {
        Some(v) => v,
        None => match preview {
            Some(p) => match client.config_preview(&p).await {
                Ok(answer) => Value::string(&answer.yaml),
                Err(e) => {
                    tracing::debug!(error = %e, "No collector config preview");
                    Value::Null
                }
            },
            None => Value::Null,
        },
    };
    state.set(COLLECTOR_CONFIG, value);
}

/// The plan-time component check (`POST /api/v1/component-check`): a diagnostic at the
/// attribute to blame when the object, as planned, would give some connected agent of its
/// group a config using a component type its collector build lacks, or putting a component
/// into a pipeline of a signal the agent reports that type does not support. Quiet when the provider
/// is not configured yet or the server cannot answer: apply makes the same check and reports.
pub(crate) async fn plan_component_check(
    ctx: &Context,
    check: &otaas_api::ComponentCheck,
    change: &PlanChange,
    diags: &mut Diagnostics,
) {
    // Unchanged objects were checked when they were written; a plan of a large, settled
    // configuration should not cost a request per object.
    if change.planned == change.prior {
        return;
    }
    let planned = &change.planned;
    let Ok(client) = client(ctx) else {
        return;
    };
    let Err(err) = client.component_check(check).await else {
        return;
    };
    let what = err.to_string();
    let what = what.trim_end_matches('.');
    let mut d = match err.code() {
        Some(otaas_api::ErrorCode::MissingComponents) => Diagnostic::error(
            "Component not available on the target agents",
            format!(
                "{what}. Use component types every agent's collector build has (GET \
                 /api/v1/agents lists each agent's available_components), or change the \
                 group's selector."
            ),
        ),
        Some(otaas_api::ErrorCode::UnsupportedSignal) => Diagnostic::error(
            "Signal not supported by a component on the target agents",
            format!(
                "{what}. Limit the signals to those the component supports (GET \
                 /api/v1/agents/{{id}} lists each agent's component_signals), or use another \
                 component type."
            ),
        ),
        _ => {
            tracing::debug!(error = %err, "Component check at plan time did not answer");
            return;
        }
    };
    if let Some(path) = err.field().and_then(|f| field_path(f, planned)) {
        d = d.at(path);
    }
    diags.push(d);
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Converts a server field (`processors[1].config`, `receivers.otlp`, `rollout.canary_percent`)
/// into an attribute path, checking each step against `value` so that map keys become keys.
pub(crate) fn field_path(field: &str, value: &Value) -> Option<AttributePath> {
    let mut path = AttributePath::root();
    let mut cur = value;
    for segment in field.split('.') {
        let (name, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            match cur {
                Value::Map(m) => {
                    path = path.push_key(name);
                    cur = m.get(name)?;
                }
                _ => {
                    path = path.push_attr(name);
                    cur = cur.get(name)?;
                }
            }
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: i64 = idx.trim_end_matches(']').parse().ok()?;
            path = path.push_index(i);
            cur = match cur {
                Value::List(v) => v.get(usize::try_from(i).ok()?)?,
                _ => return None,
            };
        }
    }
    (!path.is_root()).then_some(path)
}

// ------------------------------------------------------------------ plan-time checks

/// Object names: `[a-z0-9_-]{1,63}` (the server's rule).
pub(crate) fn check_name(v: Option<&Value>, path: AttributePath, diags: &mut Diagnostics) {
    if let Some(Value::String(s)) = v {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            diags.error_at(
                path,
                "Invalid name",
                format!(
                    "Names use 1 to 63 lowercase letters, digits, '_' or '-' ([a-z0-9_-]{{1,63}}); \
                     got {s:?}."
                ),
            );
        }
    }
}

fn component_type(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// May `c` appear in a component name? The server's rule (`crates/server/src/api/validate.rs`),
/// a subset of the collector's: no whitespace, control or symbol characters, no `/`.
fn component_name_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || (c.is_ascii_punctuation() && !"$+<=>^`|~/".contains(c))
    } else {
        c.is_alphanumeric()
    }
}

/// Component ids: `type` or `type/name`.
pub(crate) fn check_component_id(s: &str, path: AttributePath, diags: &mut Diagnostics) {
    let ok = match s.split_once('/') {
        None => component_type(s),
        Some((ty, name)) => {
            component_type(ty)
                && !name.is_empty()
                && name.len() <= 63
                && name.chars().all(component_name_char)
        }
    };
    if !ok {
        diags.error_at(
            path,
            "Invalid component id",
            format!(
                "A component id is `type` or `type/name` (type: a lowercase letter, then lowercase \
                 letters, digits or '_'; name: letters, digits and punctuation other than '/', \
                 no whitespace, control or symbol characters such as '|', '+', '='), such as \
                 \"batch\" or \"attributes/redact\"; got {s:?}."
            ),
        );
    }
}

/// Exporter types (`otlp`, `otlphttp`, ...): a component type without a name.
pub(crate) fn check_component_type(s: &str, path: AttributePath, diags: &mut Diagnostics) {
    if !component_type(s) {
        diags.error_at(
            path,
            "Invalid exporter type",
            format!(
                "The type is an exporter type such as \"otlp\", \"otlphttp\", \"debug\" or \
                 \"file\" (a lowercase letter, then lowercase letters, digits or '_'); got {s:?}."
            ),
        );
    }
}

/// A known JSON string must hold a JSON object.
pub(crate) fn check_json_object(v: Option<&Value>, path: AttributePath, diags: &mut Diagnostics) {
    if let Some(Value::String(s)) = v {
        match serde_json::from_str::<serde_json::Value>(s) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => diags.error_at(
                path,
                "Invalid JSON configuration",
                "The value must be a JSON object, such as jsonencode({ timeout = \"2s\" }).",
            ),
            Err(e) => diags.error_at(
                path,
                "Invalid JSON configuration",
                format!("The value is not valid JSON ({e}); use jsonencode({{ ... }})."),
            ),
        }
    }
}

pub(crate) const SIGNALS: [&str; 3] = ["traces", "metrics", "logs"];

/// Signals: known elements must be traces, metrics or logs; the set must not be empty.
pub(crate) fn check_signals(v: Option<&Value>, path: AttributePath, diags: &mut Diagnostics) {
    if let Some(Value::Set(items) | Value::List(items)) = v {
        if items.is_empty() {
            diags.error_at(
                path.clone(),
                "Invalid signals",
                "signals must name at least one of \"traces\", \"metrics\", \"logs\".",
            );
        }
        for item in items {
            if let Value::String(s) = item
                && !SIGNALS.contains(&s.as_str())
            {
                diags.error_at(
                    path.clone(),
                    "Invalid signal",
                    format!("{s:?} is not a signal; use \"traces\", \"metrics\" or \"logs\"."),
                );
            }
        }
    }
}

/// A known string must be one of `allowed`.
pub(crate) fn check_enum(
    v: Option<&Value>,
    allowed: &[&str],
    path: AttributePath,
    diags: &mut Diagnostics,
) {
    if let Some(Value::String(s)) = v
        && !allowed.contains(&s.as_str())
    {
        let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        diags.error_at(
            path,
            "Invalid value",
            format!("{s:?} is not allowed here; use one of {}.", list.join(", ")),
        );
    }
}

/// A known number must lie in `min..=max`.
pub(crate) fn check_range(
    v: Option<&Value>,
    min: i64,
    max: i64,
    path: AttributePath,
    diags: &mut Diagnostics,
) {
    if let Some(Value::Number(n)) = v {
        match n.as_i64() {
            Some(i) if (min..=max).contains(&i) => {}
            _ => diags.error_at(
                path,
                "Value out of range",
                format!("The value must be a whole number from {min} to {max}; got {n}."),
            ),
        }
    }
}

/// Parses Go-style durations as Terraform users write them: `90s`, `10m`, `1h30m`, `500ms`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_len..];
    }
    Some(total)
}

// ------------------------------------------------------------------ value helpers

/// A data source's `group_id` argument: `Ok(None)` when unset (or unknown at plan time),
/// `Err` with an error at the attribute when it is not an agent group's id.
pub(crate) fn group_id_arg(
    config: &Value,
    diags: &mut Diagnostics,
) -> Result<Option<otaas_api::AgentGroupId>, ()> {
    let Some(g) = string(config, "group_id") else {
        return Ok(None);
    };
    match g.parse() {
        Ok(id) => Ok(Some(id)),
        Err(_) => {
            diags.error_at(
                AttributePath::attr("group_id"),
                "Invalid group id",
                format!("group_id must be an agent group's id (a UUID); got {g:?}."),
            );
            Err(())
        }
    }
}

/// A known string attribute.
pub(crate) fn string(v: &Value, name: &str) -> Option<String> {
    v.attr::<String>(name).ok().and_then(Val::into_known)
}

/// A known number attribute as i64.
pub(crate) fn int(v: &Value, name: &str) -> Option<i64> {
    v.attr::<i64>(name).ok().and_then(Val::into_known)
}

pub(crate) fn boolean(v: &Value, name: &str) -> Option<bool> {
    v.attr::<bool>(name).ok().and_then(Val::into_known)
}

/// The known strings of a list or set attribute (empty when null).
pub(crate) fn strings(v: &Value, name: &str) -> Vec<String> {
    match v.get(name) {
        Some(Value::List(items) | Value::Set(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The known entries of a map-of-strings attribute (empty when null).
pub(crate) fn string_map(v: &Value, name: &str) -> BTreeMap<String, String> {
    match v.get(name) {
        Some(Value::Map(m)) => m
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

pub(crate) fn string_list(items: impl IntoIterator<Item = String>) -> Value {
    Value::List(items.into_iter().map(Value::String).collect())
}

pub(crate) fn string_set(items: impl IntoIterator<Item = String>) -> Value {
    Value::Set(items.into_iter().map(Value::String).collect())
}

pub(crate) fn map_value(m: &BTreeMap<String, String>) -> Value {
    Value::Map(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::string(v)))
            .collect(),
    )
}

pub(crate) fn opt_string(s: Option<&str>) -> Value {
    s.map_or(Value::Null, Value::string)
}

/// Parses a JSON config string (checked at plan time; an empty object when null).
pub(crate) fn parse_json(
    v: Option<&Value>,
    path: AttributePath,
    diags: &mut Diagnostics,
) -> serde_json::Value {
    match v {
        Some(Value::String(s)) => match serde_json::from_str(s) {
            Ok(j) => j,
            Err(e) => {
                diags.error_at(path, "Invalid JSON configuration", e.to_string());
                serde_json::Value::Object(Default::default())
            }
        },
        _ => serde_json::Value::Object(Default::default()),
    }
}

/// The server's JSON document as state: the prior text when it is the same document (so a
/// user's formatting survives refresh), otherwise compact JSON.
pub(crate) fn json_state(prior: Option<&Value>, json: &serde_json::Value) -> Value {
    // The server shows credentials inside configs redacted: where that is all that differs
    // from the configured document, state keeps the configured one (no diff after apply).
    let restored = match prior {
        Some(Value::String(p)) => match serde_json::from_str::<serde_json::Value>(p) {
            Ok(known) => otaas_api::redact::restore_json(json, &known),
            Err(_) => json.clone(),
        },
        _ => json.clone(),
    };
    let json = &restored;
    let text = serde_json::to_string(json).unwrap_or_else(|_| "{}".into());
    match prior {
        Some(Value::String(p)) if json_equal(p, &text) => Value::String(p.clone()),
        _ => Value::String(text),
    }
}

/// Sets `planned.name = default` when the configuration leaves it null (optional+computed
/// attributes whose server-side default is known at plan time).
pub(crate) fn default_if_unset(planned: &mut Value, config: &Value, name: &str, default: Value) {
    if config.get(name).is_none_or(Value::is_null) && !planned.is_null() && !planned.is_unknown() {
        planned.set(name, default);
    }
}

/// The names of the local-only attributes (the rollout wait settings): they never reach the
/// server.
pub(crate) const LOCAL_ATTRS: [&str; 2] = ["wait_for_rollout", "rollout_timeout"];

/// After defaults were filled in: when the object changes at all, the computed values the
/// server assigns per change (`revision`, hashes) are unknown; otherwise they keep the prior.
/// The local-only wait settings are no change: the server never sees them.
pub(crate) fn computed_follow_change(change: &mut PlanChange, computed: &[&str]) {
    if change.is_create() {
        return;
    }
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        // `collector_config` is planned after this (unknown until then).
        for c in computed
            .iter()
            .chain(&LOCAL_ATTRS)
            .chain(&[COLLECTOR_CONFIG])
        {
            v.set(c, Value::Null);
        }
        v
    };
    let changed = strip(&change.planned) != strip(&change.prior);
    for c in computed {
        let v = if changed {
            Value::unknown()
        } else {
            change.prior.get(c).cloned().unwrap_or(Value::Null)
        };
        change.planned.set(c, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_rejects_a_ca_bundle_the_client_cannot_use() {
        let config = Value::object([
            ("endpoint", Value::string("https://otaas.internal:8080")),
            ("token", Value::Null),
            (
                "ca_cert_pem",
                Value::string(
                    "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                ),
            ),
        ]);
        let mut diags = Diagnostics::new();
        let configured = crate::provider::configure(&config, |_| None, &mut diags);
        assert_eq!(configured, None);
        let d = diags.iter().next().expect("a diagnostic");
        assert_eq!(d.path, Some(AttributePath::attr("ca_cert_pem")));
        assert_eq!(d.summary, "Invalid provider configuration");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("ten minutes"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn field_paths_follow_the_value() {
        let v = Value::object([
            (
                "processors",
                Value::List(vec![Value::object([("id", Value::string("batch"))])]),
            ),
            (
                "receivers",
                Value::Map([("otlp".to_string(), Value::string("{}"))].into()),
            ),
        ]);
        assert_eq!(
            field_path("processors[0].id", &v),
            Some(
                AttributePath::attr("processors")
                    .push_index(0)
                    .push_attr("id")
            )
        );
        assert_eq!(
            field_path("receivers.otlp", &v),
            Some(AttributePath::attr("receivers").push_key("otlp"))
        );
        assert_eq!(field_path("nope", &v), None);
    }
}
