//! The otaas provider block: its schema, validation (with attribute paths) and how configuration
//! and the `OTAAS_ENDPOINT` / `OTAAS_TOKEN` environment resolve into a `ProviderConfig`.

use crate::framework::{
    Attribute, AttributePath, Diagnostics, ProviderConfig, Schema, Secret, Type, Val, Value,
};

pub const ENV_ENDPOINT: &str = "OTAAS_ENDPOINT";
pub const ENV_TOKEN: &str = "OTAAS_TOKEN";
/// A PEM file of the CA that signed the server's certificate (e.g. `<data-dir>/tls/ca.pem` of a
/// server started with `--tls-self-signed`), when `ca_cert_pem` is not set.
pub const ENV_CA_CERT_FILE: &str = "OTAAS_CA_CERT_FILE";

/// Local name and registry address of the provider.
pub const PROVIDER_NAME: &str = "otaas";

pub fn schema() -> Schema {
    Schema::new(
        "The otaas provider manages OpenTelemetry collector fleets through an otaas control \
         plane (`otaas serve`): pipelines, secure ingest endpoints, \
         exporter bindings and agent groups, with health-gated rollouts.",
        vec![
            Attribute::optional("endpoint", Type::String).description(
                "Base URL of the otaas REST API, e.g. `https://otaas.internal:8080`. \
                 Falls back to the `OTAAS_ENDPOINT` environment variable.",
            ),
            Attribute::optional("token", Type::String)
                .sensitive()
                .description(
                    "API token sent as `Authorization: Bearer`. Falls back to the `OTAAS_TOKEN` \
                 environment variable.",
                ),
            Attribute::optional("ca_cert_pem", Type::String).description(
                "PEM-encoded CA certificate(s) to trust for `endpoint`, for servers using a \
                 private CA. Falls back to the file named by the `OTAAS_CA_CERT_FILE` \
                 environment variable (e.g. `otaas-data/tls/ca.pem` of a server started with \
                 `--tls-self-signed`).",
            ),
            Attribute::optional("wait_for_rollout", Type::Bool).description(
                "Default of `wait_for_rollout` for `otaas_agent_group`, `otaas_pipeline`, \
                 `otaas_endpoint` and `otaas_exporter_binding` (each may override it): whether \
                 apply waits until the agent groups a change reaches applied it. Default `true`.",
            ),
            Attribute::optional("rollout_timeout", Type::String).description(
                "Default of `rollout_timeout` for those resources: how long apply waits for a \
                 rollout, as a duration such as `90s`, `10m`, `1h30m`. Default `10m`.",
            ),
        ],
    )
}

/// Checks the provider block. Unknown values (not known until apply) are accepted here.
pub fn validate(config: &Value, diags: &mut Diagnostics) {
    if let Ok(Val::Known(endpoint)) = config.attr::<String>("endpoint") {
        check_endpoint(&endpoint, AttributePath::attr("endpoint"), diags);
    }
    if let Ok(Val::Known(pem)) = config.attr::<String>("ca_cert_pem")
        && !pem.contains("-----BEGIN CERTIFICATE-----")
    {
        diags.error_at(
            AttributePath::attr("ca_cert_pem"),
            "Invalid CA certificate",
            "ca_cert_pem must contain at least one PEM block \"-----BEGIN CERTIFICATE-----\".",
        );
    }
    if let Ok(Val::Known(t)) = config.attr::<String>("rollout_timeout")
        && crate::resources::common::parse_duration(&t).is_none()
    {
        diags.error_at(
            AttributePath::attr("rollout_timeout"),
            "Invalid duration",
            format!(
                "rollout_timeout must be a duration such as \"90s\", \"10m\" or \"1h30m\"; got {t:?}."
            ),
        );
    }
    if let Err(e) = config.attr::<bool>("wait_for_rollout") {
        diags.error_at(
            AttributePath::attr("wait_for_rollout"),
            "Invalid value",
            e.to_string(),
        );
    }
    for name in ["endpoint", "token", "ca_cert_pem", "rollout_timeout"] {
        if let Err(e) = config.attr::<String>(name) {
            diags.error_at(AttributePath::attr(name), "Invalid value", e.to_string());
        }
    }
}

fn check_endpoint(endpoint: &str, path: AttributePath, diags: &mut Diagnostics) {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty()
                && !host.starts_with('/')
                && !host.contains(char::is_whitespace) => {}
        _ => diags.error_at(
            path,
            "Invalid endpoint",
            format!(
                "endpoint must be an http:// or https:// URL with a host, such as \
                 \"https://otaas.internal:8080\"; got {endpoint:?}."
            ),
        ),
    }
}

/// Resolves the provider block against the environment (`env` looks a variable up).
pub fn configure(
    config: &Value,
    env: impl Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> Option<ProviderConfig> {
    validate(config, diags);
    let from = |name: &str, var: &str, diags: &mut Diagnostics| -> Option<String> {
        match config.attr::<String>(name) {
            Ok(Val::Known(s)) => Some(s),
            Ok(Val::Unknown) => {
                diags.error_at(
                    AttributePath::attr(name),
                    "Value not yet known",
                    format!("{name} depends on a value known only after apply; the provider needs it to plan."),
                );
                None
            }
            _ => env(var).filter(|s| !s.is_empty()),
        }
    };
    let endpoint = from("endpoint", ENV_ENDPOINT, diags);
    let token = from("token", ENV_TOKEN, diags);
    let ca_cert_pem = match config.attr::<String>("ca_cert_pem") {
        Ok(Val::Known(pem)) => Some(pem),
        Ok(Val::Unknown) => {
            diags.error_at(
                AttributePath::attr("ca_cert_pem"),
                "Value not yet known",
                "ca_cert_pem depends on a value known only after apply; the provider needs it to plan.",
            );
            None
        }
        // Not in the configuration: the file the environment names, read now so a wrong path
        // is reported at configuration rather than as a TLS failure later.
        _ => match env(ENV_CA_CERT_FILE).filter(|p| !p.is_empty()) {
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => Some(pem),
                Ok(_) => {
                    diags.error_at(
                        AttributePath::attr("ca_cert_pem"),
                        "Invalid CA certificate",
                        format!(
                            "{ENV_CA_CERT_FILE} names {path:?}, which holds no PEM certificate."
                        ),
                    );
                    None
                }
                Err(e) => {
                    diags.error_at(
                        AttributePath::attr("ca_cert_pem"),
                        "Unreadable CA certificate",
                        format!("{ENV_CA_CERT_FILE} names {path:?}, which cannot be read: {e}."),
                    );
                    None
                }
            },
            None => None,
        },
    };
    let Some(endpoint) = endpoint else {
        if !diags.has_errors() {
            diags.error_at(
                AttributePath::attr("endpoint"),
                "Missing endpoint",
                format!(
                    "Set endpoint in the provider block or the {ENV_ENDPOINT} environment variable."
                ),
            );
        }
        return None;
    };
    check_endpoint(&endpoint, AttributePath::attr("endpoint"), diags);
    if diags.has_errors() {
        return None;
    }
    let config = ProviderConfig {
        endpoint: endpoint.trim_end_matches('/').to_string(),
        token: token.map(Secret::new),
        ca_cert_pem,
        // Unknown until apply: the built-in defaults then (the attribute is a preference, not
        // something the provider needs to plan).
        wait_for_rollout: config
            .attr::<bool>("wait_for_rollout")
            .ok()
            .and_then(Val::into_known),
        rollout_timeout: config
            .attr::<String>("rollout_timeout")
            .ok()
            .and_then(Val::into_known)
            .and_then(|t| crate::resources::common::parse_duration(&t)),
    };
    // Build the API client now, so what it rejects is reported against the provider block.
    if let Err(d) = crate::resources::common::client_for(&config) {
        diags.push(d);
        return None;
    }
    Some(config)
}

/// After [`configure`]: over https, checks once that the server's certificate is trusted, so a
/// wrong or missing `ca_cert_pem` is reported on that attribute of the provider block (not as
/// a transport error on the first resource). Any other failure (server down, slow) is left to
/// the calls that need the server, which report it with their own context.
pub async fn check_trust(config: &ProviderConfig, diags: &mut Diagnostics) {
    if !config.endpoint.starts_with("https://") {
        return;
    }
    let Ok(client) = crate::resources::common::client_for(config) else {
        return; // configure() already reported it
    };
    if let Err(err) = client.probe().await
        && let Some(reason) = err.certificate_error()
    {
        let given = if config.ca_cert_pem.is_some() {
            "is not signed by a CA in ca_cert_pem"
        } else {
            "is not signed by a CA this machine trusts, and ca_cert_pem is not set"
        };
        diags.error_at(
            AttributePath::attr("ca_cert_pem"),
            "Server certificate not trusted",
            format!(
                "The TLS certificate of {} {given} ({reason}). Set ca_cert_pem to the PEM of \
                 the CA that issued it; for `otaas serve --tls-self-signed` that is \
                 <data-dir>/tls/ca.pem, e.g. ca_cert_pem = file(\"otaas-data/tls/ca.pem\").",
                config.endpoint
            ),
        );
    }
}
