//! Fuzz check `api_bodies`, shared by the cargo-fuzz target and the corpus regression test
//! (`crates/server/tests/fuzz_corpus.rs`): REST request bodies through the same decoder and
//! validation the handlers use.
//!
//! Input: one selector byte (`p` pipeline, `e` endpoint, `b` exporter binding, `g` agent
//! group, `t` token; anything else: pipeline) then the JSON body, judged by validation and
//! then by the default config policy (`policy_denied`). Invariants: no panic; every rejection
//! is a 4xx with an error code and a non-empty message; a secret reference to an undeclared
//! secret is never accepted.

use otaas_api::{AgentGroupSpec, EndpointSpec, ExporterBindingSpec, PipelineSpec, TokenCreate};
use otaas_server::api::json::decode;
use otaas_server::api::{ApiError, validate};
use otaas_server::policy::ConfigPolicy;
use serde_json::Value;

/// Every secret reference in `v` names a key of `secrets`.
fn refs_declared(v: &Value, secrets: &std::collections::BTreeMap<String, String>) -> bool {
    if let Some(r) = otaas_api::secret_ref(v) {
        return r.is_ok_and(|n| secrets.contains_key(n));
    }
    match v {
        Value::Object(m) => m.values().all(|x| refs_declared(x, secrets)),
        Value::Array(a) => a.iter().all(|x| refs_declared(x, secrets)),
        _ => true,
    }
}

/// `"ok"` or the error code of the rejection (e.g. `"unknown_field"`).
pub(crate) fn check(data: &[u8]) -> &'static str {
    let Some((&kind, body)) = data.split_first() else {
        return "empty";
    };
    let policy = ConfigPolicy::default();
    let result: Result<(), ApiError> = match kind {
        b'e' => decode::<EndpointSpec>(body).and_then(|s| {
            validate::endpoint(&s)?;
            policy.endpoint(&s).map_err(validate::policy_error)
        }),
        b'b' => decode::<ExporterBindingSpec>(body).and_then(|s| {
            validate::binding(&s)?;
            if !s.keep_secrets {
                let declared = s
                    .destinations
                    .iter()
                    .all(|d| refs_declared(&d.config, &s.secrets));
                assert!(declared, "a reference to an undeclared secret was accepted");
            }
            policy.binding(&s).map_err(validate::policy_error)
        }),
        b'g' => decode::<AgentGroupSpec>(body).and_then(|s| validate::group(&s)),
        b't' => decode::<TokenCreate>(body).map(|_| ()),
        _ => decode::<PipelineSpec>(body).and_then(|s| {
            validate::pipeline(&s)?;
            if !s.keep_secrets {
                let declared = s.receivers.values().all(|c| refs_declared(c, &s.secrets))
                    && s.processors
                        .iter()
                        .all(|p| refs_declared(&p.config, &s.secrets));
                assert!(declared, "a reference to an undeclared secret was accepted");
            }
            policy.pipeline(&s).map_err(validate::policy_error)
        }),
    };
    match result {
        Ok(()) => "ok",
        Err(e) => {
            assert!(
                e.status.is_client_error(),
                "status {} for bad input",
                e.status
            );
            assert!(!e.body.error.message.is_empty(), "empty error message");
            e.body.error.code.as_str()
        }
    }
}
