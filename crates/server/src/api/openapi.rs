//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the API.
//!
//! Written out here rather than derived with a macro crate (one less heavy dependency); drift
//! is caught by `tests/api.rs::openapi_matches_the_types`, which serialises every DTO with all
//! optional fields set and checks each key against these schemas, and checks every route of
//! the router is described.

use axum::Json;
use serde_json::{Value, json};

pub(super) async fn serve() -> Json<Value> {
    Json(document())
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props, "additionalProperties": false })
}

fn resp_obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

/// A revision object's schema with the fields of its cause (`otaas_api::RevisionCause`,
/// flattened into it) added (a separate `json!`: one for all would hit the macro's recursion
/// limit).
fn with_cause(mut schema: Value) -> Value {
    let cause = json!({
            "token_id": { "type": ["string", "null"], "format": "uuid", "description": "the API token of the write; null for --admin-token and server-side causes" },
            "token_description": { "type": ["string", "null"], "description": "the token's description, \"admin token (--admin-token)\" or \"server\"; never the token" },
            "cause_kind": { "type": ["string", "null"], "enum": ["pipeline", "endpoint", "exporter_binding", "agent_group", null] },
            "cause_id": { "type": ["string", "null"] },
            "cause_name": { "type": ["string", "null"] },
            "cause_revision": { "type": ["integer", "null"], "description": "the object's revision after the write; null when it was deleted" },
    });
    if let (Some(props), Some(more)) = (schema["properties"].as_object_mut(), cause.as_object()) {
        props.extend(more.clone());
    }
    schema
}

fn json_object() -> Value {
    json!({ "type": "object", "description": "component configuration (a JSON object)" })
}

/// `rollouts` of a write's answer: what a client waits for after it.
fn rollouts() -> Value {
    json!({ "type": "array", "items": r("GroupRollout"),
        "description": "only in create/update answers: the agent groups whose rendered config \
            this write changed and their new config revisions ([] when none); absent on reads" })
}

fn ts() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn name() -> Value {
    json!({ "type": "string", "pattern": "^[a-z0-9_-]{1,63}$" })
}

fn error_responses() -> Value {
    let e = json!({ "content": { "application/json": { "schema": r("ErrorBody") } } });
    let mut m = serde_json::Map::new();
    for (code, what) in [
        ("400", "malformed JSON or request"),
        ("401", "missing, unknown, revoked or expired bearer token"),
        ("403", "the token's scope does not allow this request"),
        ("404", "no such object"),
        ("409", "name taken, stale If-Match, or still referenced"),
        ("413", "body too large"),
        ("415", "not application/json"),
        (
            "422",
            "invalid field (see error.field), or refused by the server's config policy (policy_denied: the message names the rule)",
        ),
        ("429", "rate limit of the token exceeded (see Retry-After)"),
        ("503", "database unavailable (see Retry-After)"),
    ] {
        let mut v = e.clone();
        v["description"] = json!(what);
        m.insert(code.into(), v);
    }
    Value::Object(m)
}

fn with_errors(mut ok: Value) -> Value {
    let errs = error_responses();
    for (k, v) in errs.as_object().unwrap() {
        ok[k] = v.clone();
    }
    ok
}

fn body(schema: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": r(schema) } } })
}

fn ok(status: &str, schema: Value) -> Value {
    with_errors(json!({ status: {
        "description": "success",
        "content": { "application/json": { "schema": schema } }
    }}))
}

/// CRUD paths of one kind.
fn crud(paths: &mut serde_json::Map<String, Value>, path: &str, tag: &str, spec: &str, obj: &str) {
    let id_param = json!([{ "name": "id", "in": "path", "required": true, "schema": uuid() }]);
    let if_match = json!({ "name": "If-Match", "in": "header", "required": false,
        "description": "the object's current revision; 409 if it moved on",
        "schema": { "type": "integer" } });
    paths.insert(
        path.to_string(),
        json!({
            "get": {
                "tags": [tag], "summary": format!("List {tag} (optionally by name)"),
                "parameters": paged(vec![json!({ "name": "name", "in": "query", "required": false, "schema": { "type": "string" } })]),
                "responses": ok("200", page(obj))
            },
            "post": {
                "tags": [tag], "summary": format!("Create a {tag} object"),
                "requestBody": body(spec),
                "responses": ok("201", r(obj))
            }
        }),
    );
    let mut params = id_param.as_array().unwrap().clone();
    params.push(if_match);
    paths.insert(
        format!("{path}/{{id}}"),
        json!({
            "parameters": id_param,
            "get": { "tags": [tag], "summary": "Read by id", "responses": ok("200", r(obj)) },
            "put": {
                "tags": [tag], "summary": "Replace (send If-Match)",
                "parameters": [params[1].clone()],
                "requestBody": body(spec),
                "responses": ok("200", r(obj))
            },
            "delete": {
                "tags": [tag], "summary": "Delete (409 while referenced)",
                "responses": with_errors(json!({ "204": { "description": "deleted" } }))
            }
        }),
    );
}

/// One page of a list of `item` objects (see `paging.rs`).
fn page(item: &str) -> Value {
    json!({ "type": "object", "required": ["items"], "properties": {
        "items": { "type": "array", "items": r(item),
            "description": "at most `limit` objects, in id order" },
        "next_cursor": { "type": "string",
            "description": "absent on the last page; pass it as ?cursor= for the next one" } } })
}

/// `limit` and `cursor`, the query parameters of every list.
fn page_params() -> [Value; 2] {
    [
        json!({ "name": "limit", "in": "query", "required": false,
            "schema": { "type": "integer", "minimum": 1, "default": 100 },
            "description": "objects per page; above the server's --api-max-page-size (default \
                1000) it is lowered to it; 400 when not a whole number from 1" }),
        json!({ "name": "cursor", "in": "query", "required": false, "schema": { "type": "string" },
            "description": "the next_cursor of the previous page (opaque); 400 when it is not \
                one of this list" }),
    ]
}

/// `params` followed by the paging parameters.
fn paged(mut params: Vec<Value>) -> Value {
    params.extend(page_params());
    Value::Array(params)
}

fn signals() -> Value {
    json!({ "type": "array", "items": r("Signal") })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    crud(
        &mut paths,
        "/pipelines",
        "pipelines",
        "PipelineSpec",
        "Pipeline",
    );
    crud(
        &mut paths,
        "/endpoints",
        "endpoints",
        "EndpointSpec",
        "Endpoint",
    );
    crud(
        &mut paths,
        "/exporter-bindings",
        "exporter-bindings",
        "ExporterBindingSpec",
        "ExporterBinding",
    );
    crud(
        &mut paths,
        "/agent-groups",
        "agent-groups",
        "AgentGroupSpec",
        "AgentGroup",
    );
    paths.insert(
        "/agent-groups/{id}/config".into(),
        json!({ "get": {
            "tags": ["agent-groups"], "summary": "The group's rendered collector config: the current one, or the one of ?revision=N (404 when the group has no such revision)",
            "parameters": [
                { "name": "id", "in": "path", "required": true, "schema": uuid() },
                { "name": "revision", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1 } }
            ],
            "responses": ok("200", r("GroupConfig"))
        }}),
    );
    let rev_param = |name: &str| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } });
    paths.insert(
        "/agent-groups/{id}/revisions/{rev}".into(),
        json!({ "get": {
            "tags": ["agent-groups"], "summary": "One revision of the group's config, secrets redacted, with its cause",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": uuid() }, rev_param("rev")],
            "responses": ok("200", r("GroupConfig"))
        }}),
    );
    paths.insert(
        "/agent-groups/{id}/revisions/{from}/diff/{to}".into(),
        json!({ "get": {
            "tags": ["agent-groups"], "summary": "A unified diff of two revisions' redacted YAML (empty when equal)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": uuid() }, rev_param("from"), rev_param("to")],
            "responses": ok("200", r("RevisionDiff"))
        }}),
    );
    paths.insert(
        "/agent-groups/{id}/revisions".into(),
        json!({ "get": {
            "tags": ["agent-groups"], "summary": "The group's config history, oldest first",
            "parameters": paged(vec![json!({ "name": "id", "in": "path", "required": true, "schema": uuid() })]),
            "responses": ok("200", page("GroupRevisionSummary"))
        }}),
    );
    paths.insert(
        "/agent-groups/{id}/status".into(),
        json!({ "get": {
            "tags": ["agent-groups"], "summary": "Where the group's rollout stands",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": uuid() }],
            "responses": ok("200", r("GroupStatus"))
        }}),
    );
    for (action, summary) in [
        (
            "pause",
            "Stop advancing the rollout (agents keep what they run)",
        ),
        ("resume", "Continue a paused rollout from its current step"),
        (
            "rollback",
            "Send every agent back to the last good revision",
        ),
    ] {
        paths.insert(
            format!("/agent-groups/{{id}}/rollout/{action}"),
            json!({ "post": {
                "tags": ["agent-groups"], "summary": summary,
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": uuid() }],
                "responses": ok("200", r("GroupStatus"))
            }}),
        );
    }
    paths.insert(
        "/agents".into(),
        json!({ "get": {
            "tags": ["agents"],
            "summary": "Agents known from OpAMP, on every replica (filters combine with AND)",
            "parameters": paged(vec![
                json!({ "name": "selector", "in": "query", "schema": { "type": "string" },
                  "description": "labels that must all match: k=v,k2=v2" }),
                json!({ "name": "group_id", "in": "query", "schema": uuid() }),
                json!({ "name": "health", "in": "query", "schema": { "type": "string", "enum": ["healthy", "unhealthy"] } }),
                json!({ "name": "connected", "in": "query", "schema": { "type": "boolean" } })
            ]),
            "responses": ok("200", page("Agent"))
        }}),
    );
    paths.insert(
        "/agents/{id}".into(),
        json!({ "get": {
            "tags": ["agents"], "summary": "One agent, with its redacted effective config",
            "parameters": [{ "name": "id", "in": "path", "required": true,
                "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } }],
            "responses": ok("200", r("Agent"))
        }}),
    );
    paths.insert(
        "/insights".into(),
        json!({ "get": {
            "tags": ["insights"],
            "summary": "Fleet load (own metrics), anomalies and security events",
            "responses": ok("200", r("FleetInsights"))
        }}),
    );
    paths.insert(
        "/discovered-pipelines".into(),
        json!({ "get": {
            "tags": ["discovery"],
            "summary": "Pipelines the connected agents run (from their effective configs), equal ones grouped by content",
            "parameters": paged(vec![]),
            "responses": ok("200", page("DiscoveredPipeline"))
        }}),
    );
    paths.insert(
        "/discovered-pipelines/{id}".into(),
        json!({ "get": {
            "tags": ["discovery"], "summary": "One discovered pipeline",
            "parameters": [{ "name": "id", "in": "path", "required": true,
                "schema": { "type": "string", "pattern": "^[0-9a-f]{64}$" } }],
            "responses": ok("200", r("DiscoveredPipeline"))
        }}),
    );
    paths.insert(
        "/discovered-pipelines/{id}/adopt".into(),
        json!({ "post": {
            "tags": ["discovery"],
            "summary": "Make otaas objects of a discovered pipeline (dry_run first: the objects, the secrets needed, what changes on which agent, the YAML diff); refused (422) when it has parts otaas cannot represent, lacks secret values, or would change what collectors run without accept_changes",
            "parameters": [{ "name": "id", "in": "path", "required": true,
                "schema": { "type": "string", "pattern": "^[0-9a-f]{64}$" } }],
            "requestBody": body("AdoptRequest"),
            "responses": ok("200", r("Adoption"))
        }}),
    );
    paths.insert(
        "/config-preview".into(),
        json!({ "post": {
            "tags": ["pipelines"],
            "summary": "Dry run: the collector config sections one pipeline, endpoint or exporter binding renders (secrets redacted), and the agent groups the write reaches with their agent counts and whether their config changes",
            "requestBody": body("ConfigPreview"),
            "responses": ok("200", r("ConfigPreviewResult"))
        }}),
    );
    paths.insert(
        "/tokens".into(),
        json!({ "post": {
            "tags": ["tokens"], "summary": "Mint a token (shown once, stored hashed)",
            "requestBody": body("TokenCreate"),
            "responses": ok("201", r("TokenCreated"))
        }, "get": {
            "tags": ["tokens"], "summary": "Token metadata (never tokens or hashes); admin only",
            "parameters": paged(vec![]),
            "responses": ok("200", page("TokenInfo"))
        }}),
    );
    paths.insert(
        "/tokens/{id}".into(),
        json!({ "delete": {
            "tags": ["tokens"], "summary": "Revoke a token (idempotent); admin only",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": uuid() }],
            "responses": with_errors(json!({ "204": { "description": "revoked" } }))
        }}),
    );
    let audit_filters = || {
        vec![
            json!({ "name": "since", "in": "query", "required": false, "schema": ts(),
                "description": "entries recorded at or after this time (RFC 3339)" }),
            json!({ "name": "until", "in": "query", "required": false, "schema": ts(),
                "description": "entries recorded before this time (RFC 3339)" }),
            json!({ "name": "token_id", "in": "query", "required": false,
                "schema": { "type": "string" },
                "description": "a token id, or flag-admin for the --admin-token flag's token" }),
            json!({ "name": "object", "in": "query", "required": false,
                "schema": { "type": "string" },
                "description": "the collection written: pipelines, endpoints, exporter-bindings, agent-groups, tokens, discovered-pipelines, ..." }),
            json!({ "name": "object_id", "in": "query", "required": false,
                "schema": { "type": "string" } }),
            json!({ "name": "result", "in": "query", "required": false,
                "schema": { "type": "string", "enum": ["success", "failure"] } }),
            json!({ "name": "method", "in": "query", "required": false,
                "schema": { "type": "string" }, "description": "POST, PUT, DELETE, GET, ..." }),
        ]
    };
    paths.insert(
        "/audit".into(),
        json!({ "get": {
            "tags": ["audit"],
            "summary": "The audit trail: every write through this API and every refused token use (REST, OpAMP, own-metrics ingest), oldest first; never a secret; admin only",
            "parameters": paged(audit_filters()),
            "responses": ok("200", page("AuditEntry"))
        }}),
    );
    paths.insert(
        "/audit/export".into(),
        json!({ "get": {
            "tags": ["audit"],
            "summary": "The matching audit entries as JSON Lines (one AuditEntry per line), streamed; admin only",
            "parameters": audit_filters(),
            "responses": with_errors(json!({ "200": { "description": "JSON Lines",
                "content": { "application/x-ndjson": { "schema": r("AuditEntry") } } } }))
        }}),
    );
    paths.insert(
        "/component-check".into(),
        json!({ "post": {
            "tags": ["agent-groups"],
            "summary": "Dry run: would this pipeline, agent group or exporter binding (id set for an update) use a component type that connected agents it reaches lack (422 missing_components), or put a component into a pipeline of a signal those agents report its type does not support (422 unsupported_signal)?",
            "requestBody": body("ComponentCheck"),
            "responses": ok("200", r("ComponentCheckResult"))
        }}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({ "get": { "summary": "This document",
            "responses": { "200": { "description": "OpenAPI 3.1" } } } }),
    );

    let schemas = json!({
        "ComponentHealth": resp_obj(&["healthy"], json!({
            "healthy": { "type": "boolean" }, "status": { "type": "string" },
            "last_error": { "type": "string" }, "start_time_unix_nano": { "type": "integer" },
            "components": { "type": "object", "additionalProperties": r("ComponentHealth") } })),
        "Agent": resp_obj(&["id", "labels", "capabilities", "connected", "status", "remote_config_status"], json!({
            "id": { "type": "string", "description": "instance uid, 32 lowercase hex digits" },
            "labels": { "type": "object", "additionalProperties": { "type": "string" } },
            "capabilities": { "type": "array", "items": { "type": "string" } },
            "connected": { "type": "boolean" },
            "transport": { "type": ["string", "null"], "enum": ["ws", "http", null] },
            "last_seen": { "type": ["string", "null"], "format": "date-time" },
            "healthy": { "type": ["boolean", "null"] },
            "health": { "oneOf": [r("ComponentHealth"), { "type": "null" }] },
            "status": { "type": "string", "enum": ["unmanaged", "pending", "applying", "applied", "failed", "drifted"] },
            "remote_config_status": { "type": "string", "enum": ["unset", "applied", "applying", "failed"] },
            "remote_config_error": { "type": ["string", "null"] },
            "remote_config_hash": { "type": ["string", "null"] },
            "config_hash": { "type": ["string", "null"], "description": "hash of the config the agent should run" },
            "effective_config_hash": { "type": ["string", "null"] },
            "effective_config": { "type": "string", "description": "redacted; only in GET /agents/{id}" },
            "group_id": { "type": ["string", "null"], "format": "uuid" },
            "agent_version": { "type": ["string", "null"] },
            "replica_id": { "type": ["string", "null"],
                "description": "the otaas serve replica (--replica-id) the agent is connected to, or last was" },
            "available_components": { "type": "object",
                "description": "component types of the agent's collector build (kind → types), when it reports them (OpAMP AvailableComponents)",
                "additionalProperties": { "type": "array", "items": { "type": "string" } } },
            "component_signals": { "type": "object",
                "description": "signals its components support as the agent reports them (kind → type → signals; AvailableComponents metadata stability.<signal> other than Undefined), only for the types it reports them for; only in GET /agents/{id}",
                "additionalProperties": { "type": "object",
                    "additionalProperties": { "type": "array", "items": { "type": "string" } } } } })),
        "ErrorBody": resp_obj(&["error"], json!({ "error": resp_obj(&["code", "message", "field"], json!({
            "code": { "type": "string", "enum": [
                "malformed_json", "unsupported_media_type", "unknown_field", "missing_field",
                "invalid_field", "dangling_reference", "missing_components", "incomplete_config", "unsupported_signal", "policy_denied", "bad_request", "unauthorized", "forbidden", "not_found",
                "name_taken", "revision_mismatch", "in_use", "state_conflict", "payload_too_large", "rate_limited", "internal",
                "unavailable"] },
            "message": { "type": "string" },
            "field": { "type": ["string", "null"] },
            "missing_components": { "type": "array", "description":
                "with missing_components: each component type the change needs that agents of the target group lack",
                "items": resp_obj(&["kind", "type", "group", "agents"], json!({
                    "kind": { "type": "string", "enum": ["receivers", "processors", "exporters", "extensions", "connectors"] },
                    "type": { "type": "string" },
                    "group": { "type": "string" },
                    "agents": { "type": "array", "items": { "type": "string" } } })) },
            "unsupported_signals": { "type": "array", "description":
                "with unsupported_signal: each component type put into a pipeline of a signal that agents of the target group report it does not support",
                "items": resp_obj(&["kind", "type", "signal", "group", "agents"], json!({
                    "kind": { "type": "string", "enum": ["receivers", "processors", "exporters"] },
                    "type": { "type": "string" },
                    "signal": { "type": "string", "enum": ["traces", "metrics", "logs"] },
                    "group": { "type": "string" },
                    "agents": { "type": "array", "items": { "type": "string" } } })) }
        })) })),
        "ComponentCheck": obj(&[], json!({
            "pipeline": obj(&["spec"], json!({ "id": uuid(), "spec": r("PipelineSpec") })),
            "agent_group": obj(&["spec"], json!({ "id": uuid(), "spec": r("AgentGroupSpec") })),
            "exporter_binding": obj(&["spec"], json!({ "id": uuid(), "spec": r("ExporterBindingSpec") }))
        })),
        "ComponentCheckResult": resp_obj(&["groups", "agents"], json!({
            "groups": { "type": "array", "items": { "type": "string" } },
            "agents": { "type": "integer" }
        })),
        "Signal": { "type": "string", "enum": ["traces", "metrics", "logs"] },
        "PipelineThroughput": resp_obj(&["pipeline", "agents", "accepted_per_second",
            "refused_per_second", "sent_per_second"], json!({
            "pipeline": { "type": "string", "description": "collector pipeline id, e.g. traces/checkout" },
            "agents": { "type": "integer" },
            "accepted_per_second": { "type": "number" }, "refused_per_second": { "type": "number" },
            "sent_per_second": { "type": "number" } })),
        "FleetInsights": resp_obj(&["generated_at", "agents", "pipelines", "anomalies", "anomaly_counts", "security"], json!({
            "generated_at": ts(),
            "pipelines": { "type": "array", "items": r("PipelineThroughput") },
            "agents": { "type": "array", "items": resp_obj(&["agent_id", "accepted_per_second",
                "refused_per_second", "sent_per_second", "components", "pipelines", "last_report_at", "reports"], json!({
                "agent_id": { "type": "string" }, "group_id": { "type": ["string", "null"], "format": "uuid" },
                "accepted_per_second": { "type": "number" }, "refused_per_second": { "type": "number" },
                "sent_per_second": { "type": "number" },
                "baseline_accepted_per_second": { "type": ["number", "null"] },
                "cpu_seconds_total": { "type": ["number", "null"] },
                "memory_rss_bytes": { "type": ["number", "null"] },
                "components": { "type": "array", "items": { "type": "object" } },
                "pipelines": { "type": "array", "items": r("PipelineThroughput") },
                "last_report_at": ts(), "reports": { "type": "integer" } })) },
            "anomalies": { "type": "array", "items": resp_obj(&["kind", "agent_id", "message"], json!({
                "kind": { "type": "string", "enum": ["throughput_drop", "throughput_spike",
                    "refused_spike", "heartbeat_loss", "unhealthy_component", "drift",
                    "flapping_connection"] },
                "agent_id": { "type": "string" },
                "group_id": { "type": ["string", "null"], "format": "uuid" },
                "message": { "type": "string" } })) },
            "anomaly_counts": { "type": "object", "additionalProperties": { "type": "integer" } },
            "security": resp_obj(&["auth_failures", "unmanaged_agents", "exposed_endpoints"], json!({
                "auth_failures": { "type": "array", "items": { "type": "object" } },
                "unmanaged_agents": { "type": "array", "items": { "type": "string" } },
                "exposed_endpoints": { "type": "array", "items": { "type": "object" } } }))
        })),
        "GroupStatus": resp_obj(&["group_id", "revision", "config_hash", "state", "strategy",
            "matched", "applied", "applying", "failed", "pending", "healthy", "unhealthy",
            "drifted", "failures", "steps", "message", "updated_at"], json!({
            "group_id": uuid(),
            "revision": { "type": "integer" },
            "config_hash": { "type": "string" },
            "last_good_revision": { "type": ["integer", "null"] },
            "last_good_config_hash": { "type": ["string", "null"] },
            "state": { "type": "string", "enum": ["in_progress", "complete", "failed", "rolled_back", "paused"] },
            "strategy": { "type": "string", "enum": ["all_at_once", "batched", "canary"] },
            "matched": { "type": "integer" }, "applied": { "type": "integer" },
            "applying": { "type": "integer" }, "failed": { "type": "integer" },
            "pending": { "type": "integer" }, "healthy": { "type": "integer" },
            "unhealthy": { "type": "integer" }, "drifted": { "type": "integer" },
            "failures": { "type": "array", "items": resp_obj(&["agent_id", "message"], json!({
                "agent_id": { "type": "string" }, "message": { "type": "string" } })) },
            "current_step": { "type": ["integer", "null"] },
            "driver": { "type": ["string", "null"],
                "description": "the replica (--replica-id) driving this rollout" },
            "steps": { "type": "array", "items": resp_obj(&["index", "agents", "last", "started_at"], json!({
                "index": { "type": "integer" }, "agents": { "type": "integer" },
                "last": { "type": "boolean" }, "started_at": ts(),
                "healthy_at": { "type": ["string", "null"], "format": "date-time" } })) },
            "message": { "type": "string" },
            "updated_at": ts()
        })),
        "ProcessorSpec": obj(&["id"], json!({
            "id": { "type": "string", "description": "type or type/name" },
            "config": json_object()
        })),
        "PipelineSpec": obj(&["name", "signals"], json!({
            "name": name(),
            "description": { "type": "string" },
            "signals": signals(),
            "receivers": { "type": "object", "additionalProperties": json_object() },
            "processors": { "type": "array", "items": r("ProcessorSpec") },
            "secrets": { "type": "object", "additionalProperties": { "type": "string" }, "writeOnly": true,
                "description": "secret values by name ([a-z0-9_-]{1,63}), referenced from this object's JSON configs as {\"$secret\": \"<name>\"} (a whole string value); stored apart, never returned (see secret_digests), put only into the config agents receive; the whole set unless keep_secrets" },
            "keep_secrets": { "type": "boolean", "default": false,
                "description": "on update, keep the secret values the server has (secrets must then be empty); nothing to keep on create" }
        })),
        "Pipeline": resp_obj(&["id", "name", "description", "signals", "receivers", "processors", "secret_digests", "revision", "created_at", "updated_at"], json!({
            "id": uuid(), "name": name(), "description": { "type": "string" },
            "signals": signals(),
            "receivers": { "type": "object", "additionalProperties": json_object(),
                "description": "credentials inside (values under keys such as password, token, api_key, authorization, credentials, every header value, URL passwords) are shown as <redacted>; sending <redacted> back at the same place keeps the stored value" },
            "processors": { "type": "array", "items": r("ProcessorSpec") },
            "secret_digests": { "type": "object", "additionalProperties": { "type": "string" },
                "description": "secret name -> sha256:<hex of value>" },
            "revision": { "type": "integer" }, "created_at": ts(), "updated_at": ts(),
            "rollouts": rollouts()
        })),
        "ServerTls": obj(&["cert_file", "key_file"], json!({
            "cert_file": { "type": "string" }, "key_file": { "type": "string" },
            "client_ca_file": { "type": "string" }
        })),
        "EndpointSpec": obj(&["name", "pipeline_id", "protocol", "port"], json!({
            "name": name(), "pipeline_id": uuid(),
            "protocol": { "type": "string", "enum": ["otlp_grpc", "otlp_http"] },
            "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
            "tls": r("ServerTls"),
            "auth": { "type": "string", "enum": ["bearer", "none"], "default": "bearer" },
            "token_version": { "type": "integer", "minimum": 1, "default": 1,
                "description": "bump to rotate the ingest token; the previous one stays accepted for token_grace_seconds" },
            "token_grace_seconds": { "type": "integer", "minimum": 0, "maximum": 604800, "default": 600,
                "description": "how long the previous token stays accepted after a token_version bump (0 = at once); when it ends the server re-renders the affected groups without it" }
        })),
        "Endpoint": resp_obj(&["id", "name", "pipeline_id", "protocol", "port", "auth", "token_version", "revision", "created_at", "updated_at"], json!({
            "id": uuid(), "name": name(), "pipeline_id": uuid(),
            "protocol": { "type": "string", "enum": ["otlp_grpc", "otlp_http"] },
            "port": { "type": "integer" }, "tls": r("ServerTls"),
            "auth": { "type": "string", "enum": ["bearer", "none"] },
            "token_version": { "type": "integer" },
            "token_grace_seconds": { "type": "integer" },
            "token": { "type": "string", "description": "only in the response that minted it" },
            "revision": { "type": "integer" }, "created_at": ts(), "updated_at": ts(),
            "rollouts": rollouts()
        })),
        "ClientTls": obj(&[], json!({
            "insecure": { "type": "boolean" }, "insecure_skip_verify": { "type": "boolean" },
            "ca_file": { "type": "string" }, "cert_file": { "type": "string" }, "key_file": { "type": "string" }
        })),
        "DestinationSpec": obj(&["name", "type"], json!({
            "name": name(), "type": { "type": "string" }, "endpoint": { "type": "string" },
            "headers": { "type": "object", "additionalProperties": { "type": "string" }, "writeOnly": true,
                "description": "the whole header set of the destination; {} or absent removes all headers (unless keep_headers)" },
            "keep_headers": { "type": "boolean", "default": false,
                "description": "on update, keep the header values the server has for the destination of this name (headers must then be empty); nothing to keep on create" },
            "tls": r("ClientTls"), "config": json_object()
        })),
        "ExporterBindingSpec": obj(&["name", "pipeline_id", "destinations"], json!({
            "name": name(), "pipeline_id": uuid(), "signals": signals(),
            "destinations": { "type": "array", "items": r("DestinationSpec") },
            "secrets": { "type": "object", "additionalProperties": { "type": "string" }, "writeOnly": true,
                "description": "secret values by name ([a-z0-9_-]{1,63}), referenced from this object's JSON configs as {\"$secret\": \"<name>\"} (a whole string value); stored apart, never returned (see secret_digests), put only into the config agents receive; the whole set unless keep_secrets" },
            "keep_secrets": { "type": "boolean", "default": false,
                "description": "on update, keep the secret values the server has (secrets must then be empty); nothing to keep on create" }
        })),
        "Destination": resp_obj(&["name", "type", "header_digests", "config"], json!({
            "name": name(), "type": { "type": "string" }, "endpoint": { "type": "string" },
            "header_digests": { "type": "object", "additionalProperties": { "type": "string" },
                "description": "header name -> sha256:<hex of value>" },
            "tls": r("ClientTls"), "config": json_object()
        })),
        "ExporterBinding": resp_obj(&["id", "name", "pipeline_id", "destinations", "secret_digests", "revision", "created_at", "updated_at"], json!({
            "id": uuid(), "name": name(), "pipeline_id": uuid(), "signals": signals(),
            "destinations": { "type": "array", "items": r("Destination") },
            "secret_digests": { "type": "object", "additionalProperties": { "type": "string" },
                "description": "secret name -> sha256:<hex of value>" },
            "revision": { "type": "integer" }, "created_at": ts(), "updated_at": ts(),
            "rollouts": rollouts()
        })),
        "GroupRollout": resp_obj(&["group_id", "group_name", "config_revision", "config_hash"], json!({
            "group_id": uuid(), "group_name": name(),
            "config_revision": { "type": "integer", "description": "the group's new config revision" },
            "config_hash": { "type": "string", "description": "SHA-256 (hex) of that revision's YAML" }
        })),
        "RolloutSpec": obj(&[], json!({
            "strategy": { "type": "string", "enum": ["all_at_once", "batched", "canary"] },
            "batch_sizes": { "type": "array", "items": { "type": "integer", "minimum": 1 } },
            "canary_percent": { "type": "integer", "minimum": 1, "maximum": 100 },
            "bake_seconds": { "type": "integer" }, "max_failures": { "type": "integer" },
            "auto_rollback": { "type": "boolean" }
        })),
        "AgentGroupSpec": obj(&["name"], json!({
            "name": name(),
            "selector": { "type": "object", "additionalProperties": { "type": "string" } },
            "pipeline_ids": { "type": "array", "items": uuid() },
            "rollout": r("RolloutSpec"),
            "pinned_revision": { "type": "integer", "minimum": 1, "description": "hold the group's agents on this config revision of the group (null: the latest); null on create" }
        })),
        "AgentGroup": resp_obj(&["id", "name", "selector", "pipeline_ids", "rollout", "revision", "config_revision", "config_hash", "created_at", "updated_at"], json!({
            "id": uuid(), "name": name(),
            "selector": { "type": "object", "additionalProperties": { "type": "string" } },
            "pipeline_ids": { "type": "array", "items": uuid() },
            "rollout": r("RolloutSpec"),
            "pinned_revision": { "type": "integer", "description": "the config revision the group is held on, if pinned" },
            "revision": { "type": "integer" }, "config_revision": { "type": "integer" },
            "config_hash": { "type": "string" }, "created_at": ts(), "updated_at": ts()
        })),
        "GroupConfig": with_cause(resp_obj(&["group_id", "revision", "sha256", "file_name", "content_type", "yaml", "created_at"], json!({
            "group_id": uuid(), "revision": { "type": "integer" }, "sha256": { "type": "string" },
            "file_name": { "type": "string" }, "content_type": { "type": "string" },
            "yaml": { "type": "string", "description": "secret values replaced by <redacted>" },
            "created_at": ts()
        }))),
        "GroupRevisionSummary": with_cause(resp_obj(&["revision", "sha256", "created_at"], json!({
            "revision": { "type": "integer" }, "sha256": { "type": "string" }, "created_at": ts()
        }))),
        "RevisionDiff": resp_obj(&["from", "to", "diff"], json!({
            "from": { "type": "integer" }, "to": { "type": "integer" },
            "diff": { "type": "string", "description": "unified diff, 3 lines of context; empty when the two are the same" }
        })),
        "TokenCreate": obj(&[], json!({
            "description": { "type": "string" },
            "scope": { "type": "string", "enum": ["agent", "admin", "read_only"], "default": "agent" },
            "expires_in": { "type": "integer", "minimum": 1, "description": "lifetime in seconds; exclusive with expires_at" },
            "expires_at": ts()
        })),
        "TokenCreated": resp_obj(&["id", "scope", "description", "token", "created_at"], json!({
            "id": uuid(), "scope": { "type": "string", "enum": ["agent", "admin", "read_only"] },
            "description": { "type": "string" }, "token": { "type": "string" }, "created_at": ts(),
            "expires_at": ts()
        })),
        "TokenInfo": resp_obj(&["id", "scope", "description", "created_at"], json!({
            "id": uuid(), "scope": { "type": "string", "enum": ["agent", "admin", "read_only"] },
            "description": { "type": "string" }, "created_at": ts(),
            "expires_at": ts(), "revoked_at": ts()
        }))
    });
    let mut schemas = schemas;
    if let (Some(all), Value::Object(more)) = (schemas.as_object_mut(), discovery_schemas()) {
        all.extend(more);
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "otaas control plane API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Pipelines, secure ingest endpoints, exporter bindings and agent groups of an OpenTelemetry collector fleet managed over OpAMP."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "paths": Value::Object(paths),
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas
        }
    })
}

/// Schemas of the config-preview and discovered-pipeline routes (apart: one `json!` of every
/// schema is past the macro's recursion limit).
fn discovery_schemas() -> Value {
    json!({
        "ConfigPreview": obj(&[], json!({
            "pipeline": obj(&["spec"], json!({ "id": uuid(), "spec": r("PipelineSpec") })),
            "endpoint": obj(&["spec"], json!({ "id": uuid(), "spec": r("EndpointSpec") })),
            "exporter_binding": obj(&["spec"], json!({ "id": uuid(), "spec": r("ExporterBindingSpec") })) })),
        "ConfigPreviewResult": resp_obj(&["yaml", "groups"], json!({
            "yaml": { "type": "string", "description": "the collector config sections the object renders, secrets redacted" },
            "groups": { "type": "array", "items": resp_obj(&["group_id", "group_name", "agents", "changes"], json!({
                "group_id": uuid(), "group_name": name(), "agents": { "type": "integer" },
                "changes": { "type": "boolean" },
                "pinned_revision": { "type": ["integer", "null"] } })) } })),
        "DiscoveredPipeline": resp_obj(&["id", "suggested_name", "signals", "pipelines", "agents",
            "unmanaged_agents", "common_labels", "managed", "unrepresentable", "adoptable", "health",
            "throughput", "anomalies", "sample_agents"], json!({
            "id": { "type": "string", "description": "content hash (SHA-256 hex): equal for equal pipelines whatever their formatting, key order and component names" },
            "suggested_name": name(),
            "signals": signals(),
            "pipelines": { "type": "array", "items": { "type": "object", "description": "service pipeline: name, receivers, processors, exporters (each {id, config})" } },
            "connectors": { "type": "object", "additionalProperties": json_object() },
            "agents": { "type": "integer" }, "unmanaged_agents": { "type": "integer" },
            "common_labels": { "type": "object", "additionalProperties": { "type": "string" } },
            "managed": { "type": "array", "items": { "type": "object", "description": "group_id, group_name, pipeline_id, pipeline_name, endpoint_ids, exporter_binding_ids" } },
            "unrepresentable": { "type": "array", "items": { "type": "object", "description": "part, reason" } },
            "adoptable": { "type": "boolean" },
            "health": { "type": "object", "description": "healthy, unhealthy, unknown agent counts" },
            "throughput": { "type": "object", "description": "agents_reporting, accepted/refused/sent_per_second" },
            "anomalies": { "type": "array", "items": { "type": "object" } },
            "sample_agents": { "type": "array", "items": { "type": "string" } } })),
        "AuditEntry": resp_obj(&["id", "at", "interface", "method", "path", "status", "result"], json!({
            "id": uuid(),
            "at": ts(),
            "interface": { "type": "string", "enum": ["rest", "opamp", "ingest"] },
            "token_id": { "type": "string", "description": "absent for no token or an unknown one; flag-admin for the --admin-token flag" },
            "token_description": { "type": "string", "description": "the token's description, or: no token, unknown token" },
            "token_fingerprint": { "type": "string", "description": "unknown tokens only: 12 hex digits of an HMAC under the server key (tells repeated values apart, reveals none)" },
            "source": { "type": "string", "description": "the connection's peer address" },
            "method": { "type": "string" },
            "path": { "type": "string" },
            "object_kind": { "type": "string" },
            "object_id": { "type": "string" },
            "status": { "type": "integer" },
            "error_code": { "type": "string" },
            "result": { "type": "string", "enum": ["success", "failure"] },
            "revision_before": { "type": ["integer", "null"] },
            "revision_after": { "type": ["integer", "null"] },
            "dry_run": { "type": "boolean" } })),
        "AdoptRequest": obj(&[], json!({
            "dry_run": { "type": "boolean" },
            "name": name(),
            "secrets": { "type": "object", "additionalProperties": { "type": "string" }, "writeOnly": true },
            "group": { "type": "object", "description": "name, selector (default: the agents' common labels), pipeline_ids (other existing pipelines), rollout" },
            "accept_changes": { "type": "boolean" } })),
        "Adoption": resp_obj(&["dry_run", "discovered_pipeline_id", "pipeline", "endpoints",
            "exporter_bindings", "secrets_required", "equivalent", "differences", "agents",
            "rendered_yaml", "diff"], json!({
            "dry_run": { "type": "boolean" },
            "discovered_pipeline_id": { "type": "string" },
            "pipeline": r("PipelineSpec"),
            "endpoints": { "type": "array", "items": r("EndpointSpec") },
            "exporter_bindings": { "type": "array", "items": r("ExporterBindingSpec") },
            "group": r("AgentGroupSpec"),
            "secrets_required": { "type": "array", "items": { "type": "object", "description": "name, object, path, given" } },
            "equivalent": { "type": "boolean" },
            "differences": { "type": "array", "items": { "type": "string" } },
            "agents": { "type": "array", "items": { "type": "object", "description": "agent_id, changes, reason" } },
            "rendered_yaml": { "type": "string" },
            "diff": { "type": "string", "description": "unified diff from an agent's effective config to rendered_yaml" },
            "created": { "type": "object", "description": "pipeline_id, endpoint_ids, exporter_binding_ids, group_id" } })),
    })
}
