//! Store records → the objects the API returns. Secrets are dropped here: destination header
//! values and declared secrets become digests, credentials inside JSON configs (by key name,
//! URL passwords) are shown as `<redacted>`; endpoint tokens are added only by the handlers
//! that mint them.

use std::collections::BTreeMap;

use otaas_api::redact::{redact_json, redact_url_password};

use otaas_api::{
    AgentGroup, Destination, Endpoint, ExporterBinding, GroupConfig, GroupRevisionSummary,
    Pipeline, TokenInfo, header_digest,
};

use crate::render::{CONFIG_CONTENT_TYPE, CONFIG_FILE_NAME, RenderError, redact_known};
use crate::secrets::KnownSecrets;

fn digests(secrets: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    secrets
        .iter()
        .map(|(k, v)| (k.clone(), header_digest(v)))
        .collect()
}
use crate::store::{BindingRecord, EndpointRecord, GroupRecord, GroupRevision, PipelineRecord};

pub(super) fn pipeline(r: PipelineRecord) -> Pipeline {
    Pipeline {
        secret_digests: digests(&r.spec.secrets),
        id: r.id,
        name: r.spec.name,
        description: r.spec.description,
        signals: r.spec.signals,
        receivers: r
            .spec
            .receivers
            .iter()
            .map(|(k, v)| (k.clone(), redact_json(v)))
            .collect(),
        processors: r
            .spec
            .processors
            .into_iter()
            .map(|mut p| {
                p.config = redact_json(&p.config);
                p
            })
            .collect(),
        revision: r.revision,
        created_at: r.created_at,
        updated_at: r.updated_at,
        rollouts: None,
    }
}

pub(super) fn endpoint(r: EndpointRecord, token: Option<String>) -> Endpoint {
    Endpoint {
        id: r.id,
        name: r.spec.name,
        pipeline_id: r.spec.pipeline_id,
        protocol: r.spec.protocol,
        port: r.spec.port,
        tls: r.spec.tls,
        auth: r.spec.auth,
        token_version: r.spec.token_version,
        token_grace_seconds: r.spec.token_grace_seconds,
        token,
        revision: r.revision,
        created_at: r.created_at,
        updated_at: r.updated_at,
        rollouts: None,
    }
}

pub(super) fn binding(r: BindingRecord) -> ExporterBinding {
    ExporterBinding {
        secret_digests: digests(&r.spec.secrets),
        id: r.id,
        name: r.spec.name,
        pipeline_id: r.spec.pipeline_id,
        signals: r.spec.signals,
        destinations: r
            .spec
            .destinations
            .into_iter()
            .map(|d| Destination {
                name: d.name,
                kind: d.kind,
                endpoint: d.endpoint.map(|e| redact_url_password(&e).unwrap_or(e)),
                header_digests: d
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), header_digest(v)))
                    .collect(),
                tls: d.tls,
                config: redact_json(&d.config),
            })
            .collect(),
        revision: r.revision,
        created_at: r.created_at,
        updated_at: r.updated_at,
        rollouts: None,
    }
}

pub(super) fn group(g: GroupRecord) -> AgentGroup {
    let r = g.record;
    AgentGroup {
        id: r.id,
        name: r.spec.name,
        selector: r.spec.selector,
        pipeline_ids: r.spec.pipeline_ids,
        rollout: r.spec.rollout,
        pinned_revision: r.spec.pinned_revision,
        revision: r.revision,
        config_revision: g.config_revision,
        config_hash: g.config_hash,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// The API shows the config with secrets redacted; `sha256` stays that of the real document
/// the agents receive, so it matches `config_hash` and what agents report.
pub(super) fn group_config(
    r: GroupRevision,
    known: &KnownSecrets,
) -> Result<GroupConfig, RenderError> {
    Ok(GroupConfig {
        group_id: r.group_id,
        revision: r.revision,
        sha256: r.hash,
        file_name: CONFIG_FILE_NAME.to_string(),
        content_type: CONFIG_CONTENT_TYPE.to_string(),
        yaml: redact_known(&r.yaml, known)?,
        created_at: r.created_at,
        cause: r.cause,
    })
}

pub(super) fn revision_summary(r: GroupRevision) -> GroupRevisionSummary {
    GroupRevisionSummary {
        revision: r.revision,
        sha256: r.hash,
        created_at: r.created_at,
        cause: r.cause,
    }
}

/// A token's metadata: no token, no hash.
pub(super) fn token(r: crate::store::TokenRecord) -> TokenInfo {
    TokenInfo {
        id: r.id,
        scope: r.scope,
        description: r.description,
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
    }
}
