//! Fuzz check `render_inputs`, shared by the cargo-fuzz target and the corpus regression test
//! (`crates/server/tests/fuzz_corpus.rs`): the renderer on any objects the API would accept.
//!
//! Input: JSON `{"group": AgentGroupSpec, "pipelines": [{"id", "spec"}], "endpoints": [...],
//! "bindings": [...]}`. Specs go through the API's validation first (the renderer only ever
//! sees validated objects). Invariants: no panic; a rendered config is valid YAML, its hash is
//! the SHA-256 of the YAML, rendering is deterministic, and the redacted view parses and holds
//! no endpoint token.

use otaas_api::{
    AgentGroupId, AgentGroupSpec, EndpointId, EndpointSpec, ExporterBindingId, ExporterBindingSpec,
    PipelineId, PipelineSpec,
};
use otaas_server::api::validate;
use otaas_server::auth::TokenKey;
use otaas_server::render::{redact_secrets, render};
use otaas_server::store::{GroupRecord, Record};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Input {
    group: AgentGroupSpec,
    #[serde(default)]
    pipelines: Vec<Obj<PipelineSpec>>,
    #[serde(default)]
    endpoints: Vec<Obj<EndpointSpec>>,
    #[serde(default)]
    bindings: Vec<Obj<ExporterBindingSpec>>,
}

#[derive(Deserialize)]
struct Obj<S> {
    id: String,
    spec: S,
}

fn record<I: std::str::FromStr, S>(o: Obj<S>) -> Option<Record<I, S>> {
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0)?;
    Some(Record {
        id: o.id.parse().ok()?,
        revision: 1,
        created_at: now,
        updated_at: now,
        spec: o.spec,
    })
}

/// `"not_json"`, `"bad_id"`, `"invalid"` (validation rejects it), `"render_error"` or `"ok"`.
pub(crate) fn check(data: &[u8]) -> &'static str {
    let Ok(input) = serde_json::from_slice::<Input>(data) else {
        return "not_json";
    };
    if validate::group(&input.group).is_err()
        || input
            .pipelines
            .iter()
            .any(|p| validate::pipeline(&p.spec).is_err())
        || input
            .endpoints
            .iter()
            .any(|e| validate::endpoint(&e.spec).is_err())
        || input
            .bindings
            .iter()
            .any(|b| validate::binding(&b.spec).is_err())
    {
        return "invalid";
    }
    let pipelines: Option<Vec<Record<PipelineId, _>>> =
        input.pipelines.into_iter().map(record).collect();
    let endpoints: Option<Vec<Record<EndpointId, _>>> =
        input.endpoints.into_iter().map(record).collect();
    let bindings: Option<Vec<Record<ExporterBindingId, _>>> =
        input.bindings.into_iter().map(record).collect();
    let (Some(pipelines), Some(endpoints), Some(bindings)) = (pipelines, endpoints, bindings)
    else {
        return "bad_id";
    };
    let Some(group) = record::<AgentGroupId, _>(Obj {
        id: "00000000-0000-4000-8000-000000000001".into(),
        spec: input.group,
    }) else {
        return "bad_id";
    };
    let group = GroupRecord {
        record: group,
        config_revision: 0,
        config_hash: String::new(),
    };
    let key = TokenKey::from_bytes([42; 32]);
    let Ok(out) = render(&group, &pipelines, &endpoints, &bindings, &key) else {
        return "render_error";
    };
    let again = render(&group, &pipelines, &endpoints, &bindings, &key).expect("deterministic");
    assert_eq!(again.yaml, out.yaml, "rendering is not deterministic");
    assert_eq!(
        out.hash,
        <[u8; 32]>::from(Sha256::digest(out.yaml.as_bytes()))
    );
    serde_yaml::from_str::<serde_yaml::Value>(&out.yaml).expect("rendered YAML parses");
    let redacted = redact_secrets(&out.yaml).expect("rendered YAML redacts");
    serde_yaml::from_str::<serde_yaml::Value>(&redacted).expect("redacted YAML parses");
    for e in &endpoints {
        let token = key.endpoint_token(e.id, e.spec.token_version);
        assert!(
            !redacted.contains(&token),
            "endpoint token survived redaction"
        );
    }
    "ok"
}
