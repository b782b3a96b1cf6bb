//! The audit trail end to end, against the real `otaas serve` binary on 127.0.0.1 (SQLite):
//! each kind of write and each refused token use (REST 401/403, OpAMP, own-metrics ingest)
//! recorded with its fields; filters, pagination and the JSON Lines export; retention by
//! count at start; and no secret value in the audit table or the export.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use otaas_api::*;
use otaas_testkit::procs::{ADMIN, Serve, wait_for};
use serde_json::{Value, json};
use sqlx::{Column, Row};

const PIPELINE_SECRET: &str = "kafka-Audit-S3cret-7731";
const HEADER_SECRET: &str = "org-header-Audit-S3cret-5519";
/// Not a token any server minted: what an attacker might try.
const UNKNOWN_TOKEN: &str = "otaas_admin_not-a-real-token-Audit-0042";

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// `GET`/`POST`... on the API with a bearer token; status and JSON body (`Null` if none).
async fn call(
    server: &Serve,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http()
        .request(
            method.parse().unwrap(),
            format!("http://{}{path}", server.api),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every audit entry, once at least `n` are there.
async fn entries(client: &Client, n: usize) -> Vec<AuditEntry> {
    wait_for(&format!("{n} audit entries"), || async {
        let all = client.list_audit(&AuditQuery::default()).await.unwrap();
        (all.len() >= n).then_some(all)
    })
    .await
}

/// The one entry of `method path`, failing when there is none or several.
#[track_caller]
fn one<'a>(all: &'a [AuditEntry], method: &str, path: &str) -> &'a AuditEntry {
    let hits: Vec<&AuditEntry> = all
        .iter()
        .filter(|e| e.method == method && e.path == path)
        .collect();
    assert_eq!(hits.len(), 1, "{method} {path}: {hits:#?}");
    hits[0]
}

struct Fixture {
    pipeline: Pipeline,
    endpoint: Endpoint,
    binding: ExporterBinding,
    group: AgentGroup,
    agent: TokenCreated,
    read_only: TokenCreated,
    revoked: TokenCreated,
}

/// The writes every test here starts from: a pipeline with a declared secret (created, then
/// updated with `If-Match`), a bearer endpoint (its token is in the answer), a binding with a
/// secret header, a group, three tokens (one then revoked), a deleted binding, a rollout
/// action, a refused adoption and a component check (a dry run).
async fn writes(client: &Client) -> Fixture {
    let mut p = pipeline_spec("audited");
    p.signals = vec![Signal::Logs];
    p.processors.clear();
    p.secrets = BTreeMap::from([("kafka-pw".to_string(), PIPELINE_SECRET.to_string())]);
    p.receivers.insert(
        "kafka".into(),
        json!({"brokers": ["kafka:9092"], "auth": {"sasl": {"username": "bob",
            "password": {"$secret": "kafka-pw"}, "mechanism": "PLAIN"}}}),
    );
    let created = client.create_pipeline(&p).await.unwrap();
    p.description = "second".into();
    let pipeline = client
        .update_pipeline(created.id, &p, Some(created.revision))
        .await
        .unwrap();
    let endpoint = client
        .create_endpoint(&endpoint_spec("audited-in", pipeline.id, 14318))
        .await
        .unwrap();
    let mut b = binding_spec("audited-out", pipeline.id);
    b.signals = Some(vec![Signal::Logs]);
    b.destinations[0].headers =
        BTreeMap::from([("x-scope-orgid".to_string(), HEADER_SECRET.to_string())]);
    let binding = client.create_exporter_binding(&b).await.unwrap();
    let group = client
        .create_agent_group(&group_spec("audited", vec![pipeline.id]))
        .await
        .unwrap();
    let token = |scope, description: &str| TokenCreate {
        scope,
        description: description.into(),
        expires_in: None,
        expires_at: None,
    };
    let agent = client
        .create_token(&token(TokenScope::Agent, "edge agents"))
        .await
        .unwrap();
    let read_only = client
        .create_token(&token(TokenScope::ReadOnly, "dashboards"))
        .await
        .unwrap();
    let revoked = client
        .create_token(&token(TokenScope::Admin, "old admin"))
        .await
        .unwrap();
    client.revoke_token(revoked.id).await.unwrap();
    let doomed = client
        .create_exporter_binding(&binding_spec("doomed", pipeline.id))
        .await
        .unwrap();
    client.delete_exporter_binding(doomed.id).await.unwrap();
    Fixture {
        pipeline,
        endpoint,
        binding,
        group,
        agent,
        read_only,
        revoked,
    }
}

/// Given a server that requires agent tokens, when objects of every kind are written and
/// tokens are refused on each interface, then each is one audit entry carrying the token's
/// id and description (never the token), the peer address, method, path, object kind and id,
/// status, error code and the revisions before and after.
#[tokio::test]
async fn writes_and_refused_token_uses_are_recorded_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start_default(dir.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let f = writes(&client).await;

    // Extra writes and refusals over raw HTTP
    let group_path = format!("/api/v1/agent-groups/{}", f.group.id);
    let pause = call(
        &server,
        ADMIN,
        "POST",
        &format!("{group_path}/rollout/pause"),
        None,
    )
    .await;
    let adopt = call(
        &server,
        ADMIN,
        "POST",
        "/api/v1/discovered-pipelines/ab12/adopt",
        Some(json!({"dry_run": true})),
    )
    .await;
    let check = call(
        &server,
        ADMIN,
        "POST",
        "/api/v1/component-check",
        Some(json!({"pipeline": {"spec": serde_json::to_value(pipeline_spec("probe")).unwrap()}})),
    )
    .await;
    assert_eq!(
        call(&server, UNKNOWN_TOKEN, "GET", "/api/v1/pipelines", None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(&server, &f.revoked.token, "DELETE", &group_path, None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            &server,
            &f.read_only.token,
            "POST",
            "/api/v1/endpoints",
            Some(json!({"name": "nope"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(&server, &f.read_only.token, "GET", "/api/v1/audit", None)
            .await
            .0,
        403
    );
    assert_eq!(call(&server, "", "PUT", &group_path, None).await.0, 401);
    // A read that is answered is not recorded
    assert_eq!(
        call(
            &server,
            &f.read_only.token,
            "GET",
            "/api/v1/pipelines",
            None
        )
        .await
        .0,
        200
    );
    // OpAMP (plain HTTP transport) and own-metrics ingest with an unknown and a read-only token
    let opamp = http()
        .post(server.http_url())
        .bearer_auth(UNKNOWN_TOKEN)
        .header("content-type", "application/x-protobuf")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(opamp.status(), 401);
    let ingest = http()
        .post(format!("http://{}/v1/metrics", server.opamp))
        .bearer_auth(&f.read_only.token)
        .header("content-type", "application/x-protobuf")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 401);

    // 11 writes of the fixture, 3 more, 5 REST refusals, 2 other refusals
    let all = entries(&client, 21).await;
    assert_eq!(all.len(), 21, "{all:#?}");
    let p = format!("/api/v1/pipelines/{}", f.pipeline.id);

    // Then the create names the new object and its first revision
    let create = one(&all, "POST", "/api/v1/pipelines");
    assert_eq!(create.interface, AuditInterface::Rest);
    assert_eq!(create.token_id.as_deref(), Some("flag-admin"));
    assert_eq!(
        create.token_description.as_deref(),
        Some("the --admin-token flag")
    );
    assert_eq!(create.token_fingerprint, None);
    assert_eq!(create.source.as_deref(), Some("127.0.0.1"));
    assert_eq!(create.object_kind.as_deref(), Some("pipelines"));
    assert_eq!(create.object_id, Some(f.pipeline.id.to_string()));
    assert_eq!((create.status, create.result), (201, AuditResult::Success));
    assert_eq!(
        (create.revision_before, create.revision_after),
        (None, Some(1))
    );
    assert_eq!(create.error_code, None);
    // And the update the revisions it went from and to
    let update = one(&all, "PUT", &p);
    assert_eq!(
        (update.revision_before, update.revision_after),
        (Some(1), Some(2))
    );
    assert_eq!(update.status, 200);
    // And endpoint, binding, group and token creates name their objects
    let e = all
        .iter()
        .find(|e| e.method == "POST" && e.path == "/api/v1/endpoints")
        .unwrap();
    assert_eq!(e.object_id, Some(f.endpoint.id.to_string()));
    let e = one(&all, "POST", "/api/v1/agent-groups");
    assert_eq!(e.object_id, Some(f.group.id.to_string()));
    let binding_creates: Vec<_> = all
        .iter()
        .filter(|e| e.method == "POST" && e.path == "/api/v1/exporter-bindings")
        .collect();
    assert_eq!(binding_creates.len(), 2);
    assert_eq!(binding_creates[0].object_id, Some(f.binding.id.to_string()));
    let token_creates: Vec<_> = all
        .iter()
        .filter(|e| e.method == "POST" && e.path == "/api/v1/tokens")
        .map(|e| e.object_id.clone())
        .collect();
    assert_eq!(
        token_creates,
        [&f.agent, &f.read_only, &f.revoked].map(|t| Some(t.id.to_string()))
    );
    // And the revocation and delete are there, without revisions
    let revoke = one(&all, "DELETE", &format!("/api/v1/tokens/{}", f.revoked.id));
    assert_eq!(
        (revoke.status, revoke.object_kind.as_deref()),
        (204, Some("tokens"))
    );
    let delete = all
        .iter()
        .find(|e| e.method == "DELETE" && e.object_kind.as_deref() == Some("exporter-bindings"))
        .unwrap();
    assert_eq!((delete.status, delete.revision_after), (204, None));
    // And the rollout action, the refused adoption (a dry run) and the component check
    let e = one(&all, "POST", &format!("{group_path}/rollout/pause"));
    assert_eq!(e.status, pause.0);
    assert_eq!(e.object_id, Some(f.group.id.to_string()));
    let e = one(&all, "POST", "/api/v1/discovered-pipelines/ab12/adopt");
    assert_eq!(
        (e.status, e.result, e.dry_run),
        (adopt.0, AuditResult::Failure, true)
    );
    assert_eq!(e.error_code.as_deref(), adopt.1["error"]["code"].as_str());
    let e = one(&all, "POST", "/api/v1/component-check");
    assert_eq!((e.status, e.dry_run), (check.0, true));

    // And an unknown token: 401, no id, "unknown token" and a fingerprint only
    let e = one(&all, "GET", "/api/v1/pipelines");
    assert_eq!(
        (e.status, e.error_code.as_deref()),
        (401, Some("unauthorized"))
    );
    assert_eq!(e.token_id, None);
    assert_eq!(e.token_description.as_deref(), Some("unknown token"));
    let fp = e.token_fingerprint.clone().unwrap();
    assert_eq!(fp.len(), 12);
    assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
    // And a revoked token: 401 with its id and description
    let e = one(&all, "DELETE", &group_path);
    assert_eq!(e.status, 401);
    assert_eq!(e.token_id, Some(f.revoked.id.to_string()));
    assert_eq!(e.token_description.as_deref(), Some("old admin"));
    assert_eq!(e.object_kind.as_deref(), Some("agent-groups"));
    // And out-of-scope uses: 403 with the read-only token's id
    for (method, path) in [("POST", "/api/v1/endpoints"), ("GET", "/api/v1/audit")] {
        let e = all
            .iter()
            .find(|e| e.method == method && e.path == path && e.status == 403)
            .unwrap_or_else(|| panic!("no 403 of {method} {path}"));
        assert_eq!(
            (e.status, e.error_code.as_deref()),
            (403, Some("forbidden")),
            "{path}"
        );
        assert_eq!(e.token_id, Some(f.read_only.id.to_string()));
        assert_eq!(e.token_description.as_deref(), Some("dashboards"));
        assert_eq!(e.result, AuditResult::Failure);
    }
    // And no token at all
    let e = one(&all, "PUT", &group_path);
    assert_eq!(
        (e.status, e.token_description.as_deref()),
        (401, Some("no token"))
    );
    // And the OpAMP and ingest refusals, on their interfaces
    let e = one(&all, "POST", "/v1/opamp");
    assert_eq!((e.interface, e.status), (AuditInterface::Opamp, 401));
    assert_eq!(
        e.token_fingerprint.as_deref(),
        Some(fp.as_str()),
        "same value, same fingerprint"
    );
    assert_eq!(e.source.as_deref(), Some("127.0.0.1"));
    let e = one(&all, "POST", "/v1/metrics");
    assert_eq!((e.interface, e.status), (AuditInterface::Ingest, 401));
    assert_eq!(e.token_id, Some(f.read_only.id.to_string()));
    // And the answered read is not there
    assert!(!all.iter().any(|e| e.method == "GET" && e.status == 200));
    server.stop();
}

/// Given recorded writes, when the trail is read with each filter, page by page, and as an
/// export, then each answer holds exactly the matching entries, pages walk them all once,
/// and the export is the same entries as JSON Lines.
#[tokio::test]
async fn filters_pages_and_export_agree() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start_default(dir.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let f = writes(&client).await;
    assert_eq!(
        call(&server, UNKNOWN_TOKEN, "POST", "/api/v1/pipelines", None)
            .await
            .0,
        401
    );
    let all = entries(&client, 12).await;
    let ids = |v: &[AuditEntry]| v.iter().map(|e| e.id).collect::<Vec<_>>();
    let want = |f: &dyn Fn(&AuditEntry) -> bool| {
        all.iter()
            .filter(|e| f(e))
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let q = |q: AuditQuery| {
        let client = client.clone();
        async move { client.list_audit(&q).await.unwrap() }
    };
    let tokens = q(AuditQuery {
        object: Some("tokens".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        ids(&tokens),
        want(&|e| e.object_kind.as_deref() == Some("tokens"))
    );
    assert_eq!(tokens.len(), 4);
    let pid = f.pipeline.id.to_string();
    let on_pipeline = q(AuditQuery {
        object: Some("pipelines".into()),
        object_id: Some(pid.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        ids(&on_pipeline),
        want(&|e| e.object_id.as_deref() == Some(pid.as_str()))
    );
    let failed = q(AuditQuery {
        result: Some(AuditResult::Failure),
        ..Default::default()
    })
    .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].token_description.as_deref(),
        Some("unknown token")
    );
    let deletes = q(AuditQuery {
        method: Some("delete".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&deletes), want(&|e| e.method == "DELETE"));
    assert_eq!(deletes.len(), 2);
    let by_flag = q(AuditQuery {
        token_id: Some("flag-admin".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_flag.len(), 11);
    let mid = all[5].at;
    let window = q(AuditQuery {
        since: Some(mid),
        until: Some(all[9].at),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&window), want(&|e| e.at >= mid && e.at < all[9].at));
    assert!(!window.is_empty());
    let later = q(AuditQuery {
        since: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        ..Default::default()
    })
    .await;
    assert!(later.is_empty());

    // Pages of 4 walk every entry once, in order
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page: List<AuditEntry> = client
            .page("/audit", &[], Some(4), cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        walked.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(ids(&walked), ids(&all));
    assert_eq!(pages, all.len().div_ceil(4));

    // The export: JSON Lines of the same entries, with the filters applied
    let resp = http()
        .get(format!(
            "http://{}/api/v1/audit/export?object=tokens",
            server.api
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<AuditEntry> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, tokens);
    let everything = client.export_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&everything).lines().count(),
        all.len()
    );

    // Bad filters are refused, naming the parameter
    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("result=maybe", "result"),
        ("colour=red", "colour"),
    ] {
        for route in ["/api/v1/audit", "/api/v1/audit/export"] {
            let (status, body) =
                call(&server, ADMIN, "GET", &format!("{route}?{query}"), None).await;
            assert_eq!(status, 400, "{route}?{query}: {body}");
            assert_eq!(body["error"]["field"], field, "{route}?{query}");
        }
    }
    server.stop();
}

/// Every cell of the audit table, as text, read from the database file.
async fn raw_rows(data_dir: &Path) -> Vec<String> {
    let url = format!("sqlite://{}", data_dir.join("otaas.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT * FROM audit_log")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut out = Vec::new();
    for row in &rows {
        for col in row.columns() {
            let i = col.ordinal();
            let cell = row
                .try_get::<Option<String>, _>(i)
                .ok()
                .flatten()
                .or_else(|| {
                    row.try_get::<Option<i64>, _>(i)
                        .ok()
                        .flatten()
                        .map(|v| v.to_string())
                })
                .unwrap_or_default();
            out.push(cell);
        }
    }
    out
}

/// Given writes carrying secrets (a pipeline secret, a binding header, an endpoint's token in
/// its answer, new tokens in theirs) and refused uses of the admin, agent, revoked and an
/// unknown token, when the audit table is read raw from the database and the trail is
/// exported, then none of the secret values appears in either.
#[tokio::test]
async fn no_secret_in_the_audit_table_or_its_export() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start_default(dir.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let f = writes(&client).await;
    let endpoint_token = f.endpoint.token.clone().expect("a bearer endpoint's token");
    // (An agent token is a known token outside its scope on the REST API: 403.)
    for (token, status) in [
        (UNKNOWN_TOKEN, 401),
        (f.revoked.token.as_str(), 401),
        (f.agent.token.as_str(), 403),
    ] {
        assert_eq!(
            call(&server, token, "POST", "/api/v1/pipelines", None)
                .await
                .0,
            status
        );
    }
    assert_eq!(
        call(&server, &endpoint_token, "GET", "/api/v1/pipelines", None)
            .await
            .0,
        401
    );
    let opamp = http()
        .post(server.http_url())
        .bearer_auth(&f.read_only.token)
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(opamp.status(), 401);
    let all = entries(&client, 16).await;
    assert_eq!(all.len(), 16, "{all:#?}");
    let export = String::from_utf8(
        client
            .export_audit(&AuditQuery::default())
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    server.stop();
    let cells = raw_rows(dir.path()).await;
    assert_eq!(cells.len(), 16 * 17, "every column of every row read");
    let secrets = [
        PIPELINE_SECRET,
        HEADER_SECRET,
        endpoint_token.as_str(),
        ADMIN,
        UNKNOWN_TOKEN,
        f.agent.token.as_str(),
        f.read_only.token.as_str(),
        f.revoked.token.as_str(),
    ];
    for secret in secrets {
        // The token's hash is not kept either (it would let a stolen trail be matched
        // against guesses).
        let hash = otaas_server::auth::hash_token(secret);
        for cell in &cells {
            assert!(!cell.contains(secret), "secret in the audit table: {cell}");
            assert!(
                !cell.contains(&hash[..16]),
                "token hash in the audit table: {cell}"
            );
        }
        assert!(!export.contains(secret), "secret in the export");
        assert!(!export.contains(&hash[..16]), "token hash in the export");
    }
}

/// Given a trail of 11 entries, when the server restarts with `--audit-retention-count 3`,
/// then its retention task keeps only the newest three.
#[tokio::test]
async fn retention_keeps_the_newest_entries() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start_default(dir.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    writes(&client).await;
    let all = entries(&client, 11).await;
    server.stop();
    let server = Serve::start_default(
        dir.path(),
        "127.0.0.1:0",
        &[
            "--audit-retention-count",
            "3",
            "--audit-retention-days",
            "30",
        ],
    );
    let client = server.client();
    let kept = wait_for("the trail pruned to 3", || async {
        let now = client.list_audit(&AuditQuery::default()).await.unwrap();
        (now.len() == 3).then_some(now)
    })
    .await;
    assert_eq!(
        kept.iter().map(|e| e.id).collect::<Vec<_>>(),
        all[all.len() - 3..]
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    );
    server.stop();
}

/// `otaas audit` with the endpoint and token from the environment, as `otaas discovered`.
fn otaas_audit(server: &Serve, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(otaas_testkit::bin::otaas())
        .arg("audit")
        .args(args)
        .env("OTAAS_ENDPOINT", format!("http://{}", server.api))
        .env("OTAAS_TOKEN", token)
        .output()
        .expect("run otaas audit")
}

/// Given recorded writes, when `otaas audit` is run with filters in each output format, then
/// the table, the JSON array and the JSON Lines hold the matching entries; a read-only token
/// and a malformed --since are refused with a message.
#[tokio::test]
async fn the_cli_reads_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start_default(dir.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let f = writes(&client).await;
    entries(&client, 11).await;

    let out = otaas_audit(&server, ADMIN, &["--object", "tokens", "--since", "1h"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "a header and 4 rows:\n{table}");
    assert!(lines[0].starts_with("TIME"), "{table}");
    assert!(
        lines[4].contains(&format!("/api/v1/tokens/{}", f.revoked.id))
            && lines[4].contains("DELETE")
            && lines[4].contains("flag-admin"),
        "{table}"
    );

    let out = otaas_audit(&server, ADMIN, &["--method", "DELETE", "--output", "json"]);
    assert!(out.status.success(), "{out:?}");
    let json: Vec<AuditEntry> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.len(), 2);
    assert!(json.iter().all(|e| e.method == "DELETE"));

    let out = otaas_audit(
        &server,
        ADMIN,
        &[
            "--token-id",
            "flag-admin",
            "--result",
            "success",
            "--output",
            "jsonl",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<AuditEntry> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 11);

    let out = otaas_audit(&server, &f.read_only.token, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("audit trail"), "{err}");

    let out = otaas_audit(&server, ADMIN, &["--since", "last week"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--since"), "{err}");
    server.stop();
}
