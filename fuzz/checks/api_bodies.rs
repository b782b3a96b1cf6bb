//! Fuzz check `api_bodies`, shared by the cargo-fuzz target and the corpus regression test
//! (`crates/server/tests/fuzz_corpus.rs`): REST request bodies through the same decoder and
//! validation the handlers use.
//!
//! Input: one selector byte (`p` pipeline, `e` endpoint, `b` exporter binding, `g` agent
//! group, `t` token; anything else: pipeline) then the JSON body. Invariants: no panic; every
//! rejection is a 4xx with an error code and a non-empty message.

use otaas_api::{AgentGroupSpec, EndpointSpec, ExporterBindingSpec, PipelineSpec, TokenCreate};
use otaas_server::api::json::decode;
use otaas_server::api::{ApiError, validate};

/// `"ok"` or the error code of the rejection (e.g. `"unknown_field"`).
pub(crate) fn check(data: &[u8]) -> &'static str {
    let Some((&kind, body)) = data.split_first() else {
        return "empty";
    };
    let result: Result<(), ApiError> = match kind {
        b'e' => decode::<EndpointSpec>(body).and_then(|s| validate::endpoint(&s)),
        b'b' => decode::<ExporterBindingSpec>(body).and_then(|s| validate::binding(&s)),
        b'g' => decode::<AgentGroupSpec>(body).and_then(|s| validate::group(&s)),
        b't' => decode::<TokenCreate>(body).map(|_| ()),
        _ => decode::<PipelineSpec>(body).and_then(|s| validate::pipeline(&s)),
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
