//! Pagination of every `/api/v1` list over real sockets against the real `otaas serve` binary:
//! `limit` and an opaque `cursor` in, `next_cursor` out (absent on the last page), id order,
//! every object exactly once, filters working together with paging, a `limit` above the
//! server's `--api-max-page-size` lowered to it, and 400 naming the parameter for a bad
//! `limit` or `cursor`. The typed client's `list_all` walks every page.

mod common;
use otaas_testkit::procs;

use common::*;
use otaas_api::*;
use otaas_opamp::proto::{AgentDescription, AgentToServer, AnyValue, KeyValue, any_value};
use procs::*;
use prost::Message as _;
use serde_json::Value;

/// `GET /api/v1{path}` with `query` appended; the status and the JSON body.
async fn get(server: &Serve, path: &str, query: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("http://{}/api/v1{path}{query}", server.api))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Walks `path` (with `filter`, e.g. `name=x&`) in pages of `limit`; the ids seen, in order,
/// and the number of pages.
async fn walk(
    server: &Serve,
    path: &str,
    filter: &str,
    limit: usize,
    id: &str,
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?{filter}limit={limit}&cursor={c}"),
            None => format!("?{filter}limit={limit}"),
        };
        let (status, body) = get(server, path, &query).await;
        assert_eq!(status, 200, "{path}{query}: {body}");
        pages += 1;
        let items = body["items"].as_array().unwrap();
        assert!(
            items.len() <= limit,
            "{path}: a page of {} > {limit}",
            items.len()
        );
        ids.extend(items.iter().map(|i| i[id].to_string()));
        match body.get("next_cursor").and_then(Value::as_str) {
            Some(c) => {
                assert_eq!(items.len(), limit, "only a full page has a next page");
                cursor = Some(c.to_owned());
            }
            None => {
                assert!(
                    body.get("next_cursor").is_none(),
                    "absent, not null: {body}"
                );
                return (ids, pages);
            }
        }
        assert!(pages < 100, "{path}: the walk does not end");
    }
}

/// Every id once, in order.
fn assert_each_once_in_order(ids: &[String], expected: usize) {
    assert_eq!(ids.len(), expected, "{ids:?}");
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), expected, "an object came twice: {ids:?}");
    assert_eq!(sorted, ids, "not in id order");
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_list_walks_in_pages_each_object_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &["--api-max-page-size", "10"]);
    let client = server.client();
    // Given 23 pipelines, each with an endpoint and a binding, one group over the first, and
    // that group's endpoint moved 11 times (12 config revisions)
    let mut pipelines = Vec::new();
    for i in 0..23 {
        let p = client
            .create_pipeline(&pipeline_spec(&format!("p{i:02}")))
            .await
            .unwrap();
        client
            .create_endpoint(&endpoint_spec(&format!("e{i:02}"), p.id, 4400 + i))
            .await
            .unwrap();
        client
            .create_exporter_binding(&debug_binding_spec(&format!("b{i:02}"), p.id))
            .await
            .unwrap();
        pipelines.push(p);
    }
    let group = client
        .create_agent_group(&group_spec("g", vec![pipelines[0].id]))
        .await
        .unwrap();
    let endpoint = client.find_endpoint("e00").await.unwrap().unwrap();
    for port in 5000..5011 {
        let spec = endpoint_spec("e00", pipelines[0].id, port);
        client
            .update_endpoint(endpoint.id, &spec, None)
            .await
            .unwrap();
    }
    // And 12 tokens (plus none other: the admin token is the flag's)
    for i in 0..12 {
        client
            .create_token(&TokenCreate {
                description: format!("t{i}"),
                scope: TokenScope::ReadOnly,
                expires_in: None,
                expires_at: None,
            })
            .await
            .unwrap();
    }
    // And 7 agents
    for _ in 0..7 {
        let hello = AgentToServer {
            instance_uid: uuid::Uuid::now_v7().as_bytes().to_vec().into(),
            capabilities: 1,
            agent_description: Some(AgentDescription {
                identifying_attributes: vec![kv("service.name", "otelcol")],
                non_identifying_attributes: vec![kv("env", "prod")],
            }),
            ..Default::default()
        };
        let resp = reqwest::Client::new()
            .post(format!("http://{}/v1/opamp", server.opamp))
            .header("content-type", "application/x-protobuf")
            .body(hello.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    // When each list is walked in pages of 4 (and of 10, the server's maximum)
    let gid = group.id;
    for (path, id, expected) in [
        ("/pipelines".to_owned(), "id", 23),
        ("/endpoints".to_owned(), "id", 23),
        ("/exporter-bindings".to_owned(), "id", 23),
        ("/agent-groups".to_owned(), "id", 1),
        (format!("/agent-groups/{gid}/revisions"), "revision", 12),
        ("/tokens".to_owned(), "id", 12),
        ("/agents".to_owned(), "id", 7),
    ] {
        for limit in [4, 10] {
            let (ids, pages) = walk(&server, &path, "", limit, id).await;
            // Then every object comes exactly once, in id order, in as many pages as needed
            if id == "revision" {
                let numbers: Vec<i64> = ids.iter().map(|r| r.parse().unwrap()).collect();
                assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
            } else {
                assert_each_once_in_order(&ids, expected);
            }
            assert_eq!(pages, expected.div_ceil(limit).max(1), "{path} by {limit}");
        }
    }

    // And a limit above the maximum is lowered to it; no limit is min(100, maximum)
    let (_, body) = get(&server, "/pipelines", "?limit=1000").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 10);
    let (_, body) = get(&server, "/pipelines", "").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 10);
    assert!(body["next_cursor"].is_string());

    // And filters work together with paging
    let (ids, _) = walk(&server, "/pipelines", "name=p07&", 4, "id").await;
    assert_eq!(ids, vec![format!("\"{}\"", pipelines[7].id)]);
    let (ids, _) = walk(
        &server,
        "/agents",
        "selector=env%3Dprod&connected=true&",
        3,
        "id",
    )
    .await;
    assert_each_once_in_order(&ids, 7);
    let (ids, _) = walk(&server, "/agents", "selector=env%3Dtest&", 3, "id").await;
    assert!(ids.is_empty());

    // And the typed client walks every page (10 per page here)
    assert_eq!(client.list_pipelines().await.unwrap().len(), 23);
    assert_eq!(client.list_endpoints().await.unwrap().len(), 23);
    assert_eq!(
        client.list_agents(&Default::default()).await.unwrap().len(),
        7
    );
    assert_eq!(client.agent_group_revisions(gid).await.unwrap().len(), 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_limits_and_cursors_are_400_naming_the_parameter() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    for i in 0..3 {
        client
            .create_pipeline(&pipeline_spec(&format!("p{i}")))
            .await
            .unwrap();
    }
    let (_, first) = get(&server, "/pipelines", "?limit=1").await;
    let pipelines_cursor = first["next_cursor"].as_str().unwrap().to_owned();
    for path in [
        "/pipelines",
        "/endpoints",
        "/exporter-bindings",
        "/agent-groups",
        "/tokens",
        "/agents",
    ] {
        for (query, field) in [
            ("?limit=0", "limit"),
            ("?limit=-3", "limit"),
            ("?limit=ten", "limit"),
            ("?limit=", "limit"),
            ("?cursor=%25%25", "cursor"),
            ("?cursor=bm90LWEtY3Vyc29y", "cursor"),
        ] {
            let (status, body) = get(&server, path, query).await;
            assert_eq!(status, 400, "{path}{query}: {body}");
            assert_eq!(
                body["error"]["code"], "bad_request",
                "{path}{query}: {body}"
            );
            assert_eq!(body["error"]["field"], field, "{path}{query}: {body}");
        }
        // A cursor of another list is not one of this list
        if path != "/pipelines" {
            let (status, body) = get(&server, path, &format!("?cursor={pipelines_cursor}")).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert_eq!(body["error"]["field"], "cursor");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_default_to_pages_of_100() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given 105 tokens
    for i in 0..105 {
        client
            .create_token(&TokenCreate {
                description: format!("t{i}"),
                scope: TokenScope::ReadOnly,
                expires_in: None,
                expires_at: None,
            })
            .await
            .unwrap();
    }
    // When the list is read without a limit: 100 and a cursor; the rest on the next page
    let (_, first) = get(&server, "/tokens", "").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 100);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = get(&server, "/tokens", &format!("?cursor={cursor}")).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 5);
    assert!(second.get("next_cursor").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_between_pages_never_repeat_or_skip_an_object_that_stays() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given 12 pipelines
    let mut stay = Vec::new();
    for i in 0..12 {
        let p = client
            .create_pipeline(&pipeline_spec(&format!("p{i:02}")))
            .await
            .unwrap();
        stay.push(p.id);
    }
    // When the list is walked in pages of 4 while, between pages, another client renames an
    // object already seen and one not seen yet, creates one and deletes one not seen yet
    let gone = stay.pop().unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut page = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=4&cursor={c}"),
            None => "?limit=4".to_owned(),
        };
        let (status, body) = get(&server, "/pipelines", &query).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().parse::<PipelineId>().unwrap()),
        );
        if page == 0 {
            for (id, name) in [(stay[0], "zz-renamed-seen"), (stay[8], "aa-renamed-unseen")] {
                client
                    .update_pipeline(id, &pipeline_spec(name), None)
                    .await
                    .unwrap();
            }
            client.create_pipeline(&pipeline_spec("new")).await.unwrap();
            client.delete_pipeline(gone).await.unwrap();
        }
        page += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // Then each pipeline that existed throughout came exactly once, renamed or not; the
    // deleted one did not come (it was not reached before its delete)
    for id in &stay {
        assert_eq!(
            seen.iter().filter(|s| *s == id).count(),
            1,
            "{id} in {seen:?}"
        );
    }
    assert!(!seen.contains(&gone));
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "in id order");
}
