//! What an update keeps of the stored spec: secrets and header values the client asked to keep
//! or sent back redacted, and the endpoint token grace a rotation starts.

use otaas_api::{EndpointSpec, ExporterBindingSpec, PipelineSpec};

/// Resolves `keep_headers` on a binding update: each destination that asks for it gets the
/// header values the current binding has under the same destination name (none for a new
/// name), so the stored body always holds the whole header set and the renderer sees values.
pub fn keep_headers(
    current: &ExporterBindingSpec,
    mut new: ExporterBindingSpec,
) -> ExporterBindingSpec {
    for d in &mut new.destinations {
        if d.keep_headers {
            d.headers = current
                .destinations
                .iter()
                .find(|c| c.name == d.name)
                .map(|c| c.headers.clone())
                .unwrap_or_default();
            d.keep_headers = false;
        }
    }
    new
}

/// A pipeline update against the stored pipeline: `keep_secrets` takes the stored secrets,
/// and a config value sent back exactly as the API shows it redacted (`<redacted>`, a URL
/// with `:<redacted>@`) keeps the stored value ([`otaas_api::redact::restore_json`]), so a
/// client writing back what it read loses no credential.
pub fn merge_pipeline(current: &PipelineSpec, mut new: PipelineSpec) -> PipelineSpec {
    use otaas_api::redact::restore_json;
    if new.keep_secrets {
        new.secrets = current.secrets.clone();
        new.keep_secrets = false;
    }
    for (id, cfg) in new.receivers.iter_mut() {
        if let Some(old) = current.receivers.get(id) {
            *cfg = restore_json(cfg, old);
        }
    }
    for p in new.processors.iter_mut() {
        if let Some(old) = current.processors.iter().find(|o| o.id == p.id) {
            p.config = restore_json(&p.config, &old.config);
        }
    }
    new
}

/// [`merge_pipeline`] for bindings: `keep_secrets`, `keep_headers`, and redacted values of
/// destination configs (matched by destination name).
pub fn merge_binding(
    current: &ExporterBindingSpec,
    new: ExporterBindingSpec,
) -> ExporterBindingSpec {
    use otaas_api::redact::restore_json;
    let mut new = keep_headers(current, new);
    if new.keep_secrets {
        new.secrets = current.secrets.clone();
        new.keep_secrets = false;
    }
    for d in new.destinations.iter_mut() {
        if let Some(old) = current.destinations.iter().find(|o| o.name == d.name) {
            d.config = restore_json(&d.config, &old.config);
            if let (Some(e), Some(o)) = (&d.endpoint, &old.endpoint)
                && otaas_api::redact::redact_url_password(o).as_ref() == Some(e)
            {
                d.endpoint = Some(o.clone());
            }
        }
    }
    new
}

/// What an endpoint update does to its token grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenGrace {
    /// Leave it as it is (running or not).
    Keep,
    /// The token was rotated: keep rendering `previous_version`'s token for `seconds`.
    Start { previous_version: u32, seconds: u32 },
    /// No previous token any more (auth switched off, or a rotation without grace).
    End,
}

/// The grace an endpoint update from `current` to `new` starts or ends. A second rotation
/// during a grace replaces it: only the token just replaced stays accepted.
pub fn token_grace(current: &EndpointSpec, new: &EndpointSpec) -> TokenGrace {
    use otaas_api::EndpointAuth::Bearer;
    if new.auth != Bearer {
        return TokenGrace::End;
    }
    if current.auth != Bearer || current.token_version == new.token_version {
        return TokenGrace::Keep;
    }
    if new.token_grace_seconds == 0 {
        return TokenGrace::End;
    }
    TokenGrace::Start {
        previous_version: current.token_version,
        seconds: new.token_grace_seconds,
    }
}
