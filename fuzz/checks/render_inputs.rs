//! Fuzz check `render_inputs`, shared by the cargo-fuzz target and the corpus regression test
//! (`crates/server/tests/fuzz_corpus.rs`): the renderer on any objects the API would accept.
//!
//! Input: JSON `{"group": AgentGroupSpec, "pipelines": [{"id", "spec"}], "endpoints": [...],
//! "bindings": [...]}`. Specs go through the API's validation first (the renderer only ever
//! sees validated objects). Invariants: no panic; a rendered config is valid YAML, its hash is
//! the SHA-256 of the YAML, rendering is deterministic, and the redacted view parses and holds
//! no endpoint token; declared secrets (validated references) always resolve, and the view
//! redacted by the known values (`redact_known`, what `GET /agent-groups/{id}/config` serves)
//! holds no declared secret or header value in any value, raw or `$`-escaped.

use otaas_api::{
    AgentGroupId, AgentGroupSpec, EndpointId, EndpointSpec, ExporterBindingId, ExporterBindingSpec,
    PipelineId, PipelineSpec,
};
use otaas_server::api::validate;
use otaas_server::auth::TokenKey;
use otaas_server::render::{RenderError, redact_known, redact_secrets, render};
use otaas_server::secrets::KnownSecrets;
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
    let out = match render(&group, &pipelines, &endpoints, &bindings, &key) {
        Ok(out) => out,
        Err(RenderError::UnknownSecret { .. }) => {
            panic!("a validated secret reference did not resolve")
        }
        Err(_) => return "render_error",
    };
    let again = render(&group, &pipelines, &endpoints, &bindings, &key).expect("deterministic");
    assert_eq!(again.yaml, out.yaml, "rendering is not deterministic");
    assert_eq!(
        out.hash,
        <[u8; 32]>::from(Sha256::digest(out.yaml.as_bytes()))
    );
    serde_norway::from_str::<serde_norway::Value>(&out.yaml).expect("rendered YAML parses");
    let redacted = redact_secrets(&out.yaml).expect("rendered YAML redacts");
    serde_norway::from_str::<serde_norway::Value>(&redacted).expect("redacted YAML parses");
    for e in &endpoints {
        let token = key.endpoint_token(e.id, e.spec.token_version);
        assert!(
            !redacted.contains(&token),
            "endpoint token survived redaction"
        );
    }
    let mut values: Vec<String> = Vec::new();
    for p in &pipelines {
        values.extend(p.spec.secrets.values().cloned());
    }
    for b in &bindings {
        values.extend(b.spec.secrets.values().cloned());
        for d in &b.spec.destinations {
            values.extend(d.headers.values().cloned());
        }
    }
    let view = redact_known(&out.yaml, &KnownSecrets::new(values.clone())).expect("view redacts");
    let doc: serde_norway::Value = serde_norway::from_str(&view).expect("view parses");
    for v in &values {
        // A value that is part of the marker itself, or that could straddle one, can reappear
        // next to a marker without having leaked.
        if v.contains(['<', '>']) || otaas_server::render::REDACTED.contains(v.as_str()) {
            continue;
        }
        for form in [v.clone(), v.replace('$', "$$")] {
            assert!(
                !holds(&doc, &form),
                "a declared secret survived in the view: {form:?}"
            );
        }
    }
    "ok"
}

/// Does any scalar value (not key) of `doc` contain `v` (values shorter than 4 bytes: equal
/// it, as [`KnownSecrets`] redacts those only whole)?
fn holds(doc: &serde_norway::Value, v: &str) -> bool {
    let hit = |s: &str| if v.len() >= 4 { s.contains(v) } else { s == v };
    match doc {
        serde_norway::Value::String(s) => hit(s),
        serde_norway::Value::Number(n) => hit(&n.to_string()),
        serde_norway::Value::Sequence(items) => items.iter().any(|x| holds(x, v)),
        serde_norway::Value::Mapping(m) => m.values().any(|x| holds(x, v)),
        serde_norway::Value::Tagged(t) => holds(&t.value, v),
        _ => false,
    }
}
