//! The small hardening points of the REST API and the OpAMP HTTP transport, each over a real
//! socket to a real `otaas serve`, written as raw HTTP/1.1 so the test controls every byte
//! (clients refuse to send a NUL in a header, or fold a scheme's case).
//!
//! - every 4xx carries the JSON error body: an id whose percent-decoding is not UTF-8, a
//!   repeated query parameter, a NUL in `Authorization` (refused by hyper itself);
//! - the `Bearer` scheme is matched case-insensitively;
//! - a JSON body with a duplicate key is refused, naming the key;
//! - component ids the collector refuses (`otlp/|`) and header values with CR/LF are 422
//!   naming the field (and never echo the header value);
//! - failed authentications are rate-limited per address, on the REST API and on OpAMP: past
//!   the budget, 429 with `Retry-After` (JSON on the API) before the token is looked at;
//! - an OpAMP HTTP body in a `Content-Encoding` the server does not read is refused with 415
//!   (it used to be decoded as if uncompressed).

use otaas_testkit::procs;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use otaas_opamp::proto::{AgentToServer, ServerErrorResponseType, ServerToAgent};
use procs::{ADMIN, Serve};
use prost::Message as _;
use serde_json::Value;

/// A parsed answer: status, headers (lowercase names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON error body, failing the test if the answer does not carry one.
    fn error(&self) -> Value {
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{} without a JSON content type: {:?} {:?}",
            self.status,
            self.headers,
            self.body
        );
        let v: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {:?}", self.status, self.body));
        assert!(v["error"]["code"].is_string(), "no error code: {v}");
        assert!(v["error"]["message"].is_string(), "no error message: {v}");
        v["error"].clone()
    }
}

/// Sends `request` as is (it must say `Connection: close`) and reads the whole answer.
fn raw(addr: &str, request: &[u8]) -> Answer {
    let (answer, _) = raw_bytes(addr, request);
    answer
}

/// [`raw`], also returning the body's bytes.
fn raw_bytes(addr: &str, request: &[u8]) -> (Answer, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |i| i + 4);
    let body_bytes = out[split..].to_vec();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (
        Answer {
            status,
            headers,
            body: body.to_string(),
        },
        body_bytes,
    )
}

fn get(addr: &str, path: &str, authorization: &[u8]) -> Answer {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n").into_bytes();
    req.extend_from_slice(b"Authorization: ");
    req.extend_from_slice(authorization);
    req.extend_from_slice(b"\r\n\r\n");
    raw(addr, &req)
}

fn post_json(addr: &str, path: &str, body: &str) -> Answer {
    raw(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn serve() -> (tempfile::TempDir, Serve) {
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), "127.0.0.1:0", &[]);
    (data, serve)
}

#[test]
fn every_4xx_carries_the_json_error_body() {
    let (_data, serve) = serve();
    let auth = format!("Bearer {ADMIN}");

    let a = get(&serve.api, "/api/v1/pipelines/%ff", auth.as_bytes());
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["code"], "bad_request");

    let a = get(
        &serve.api,
        "/api/v1/agents?group_id=a&group_id=b",
        auth.as_bytes(),
    );
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["code"], "bad_request");

    // hyper refuses the request before any handler runs.
    let a = get(&serve.api, "/api/v1/pipelines", b"Bearer a\0b");
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["code"], "bad_request");

    // And what already was JSON stays so.
    let a = get(&serve.api, "/api/v1/no-such-route", auth.as_bytes());
    assert_eq!(a.status, 404);
    assert_eq!(a.error()["code"], "not_found");
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let (_data, serve) = serve();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let a = get(
            &serve.api,
            "/api/v1/pipelines",
            format!("{scheme} {ADMIN}").as_bytes(),
        );
        assert_eq!(a.status, 200, "{scheme}: {}", a.body);
    }
    // Another scheme is still no bearer token.
    let a = get(
        &serve.api,
        "/api/v1/pipelines",
        format!("Basic {ADMIN}").as_bytes(),
    );
    assert_eq!(a.status, 401);
    assert_eq!(a.error()["code"], "unauthorized");
}

#[test]
fn a_duplicate_json_key_is_refused_naming_it() {
    let (_data, serve) = serve();
    let a = post_json(
        &serve.api,
        "/api/v1/pipelines",
        r#"{"name":"a","signals":["traces"],"name":"b"}"#,
    );
    assert_eq!(a.status, 422, "{}", a.body);
    let e = a.error();
    assert_eq!(e["code"], "invalid_field");
    assert_eq!(e["field"], "name");

    let a = post_json(
        &serve.api,
        "/api/v1/pipelines",
        r#"{"name":"a","signals":["traces"],"processors":[{"id":"batch","config":{"timeout":"1s","timeout":"2s"}}]}"#,
    );
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.error()["field"], "processors[0].config.timeout");

    // Nothing was created by either.
    let a = get(
        &serve.api,
        "/api/v1/pipelines",
        format!("Bearer {ADMIN}").as_bytes(),
    );
    assert_eq!(a.body, r#"{"items":[]}"#);
}

/// POSTs an uncompressed `AgentToServer` to the OpAMP HTTP endpoint declaring `encoding`.
fn opamp_post(addr: &str, encoding: Option<&str>) -> (Answer, Vec<u8>) {
    let hello = AgentToServer {
        instance_uid: uuid::Uuid::now_v7().as_bytes().to_vec().into(),
        sequence_num: 0,
        ..Default::default()
    }
    .encode_to_vec();
    let mut req = format!(
        "POST /v1/opamp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/x-protobuf\r\nContent-Length: {}\r\n",
        hello.len()
    );
    if let Some(e) = encoding {
        req.push_str(&format!("Content-Encoding: {e}\r\n"));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(&hello);
    raw_bytes(addr, &req)
}

#[test]
fn an_unknown_content_encoding_on_opamp_http_is_refused_with_415() {
    let (_data, serve) = serve();
    for coding in ["br", "deflate", "gzip, br", "zstd"] {
        let (a, body) = opamp_post(&serve.opamp, Some(coding));
        assert_eq!(a.status, 415, "{coding}: {:?}", a.body);
        let reply = ServerToAgent::decode(body.as_slice()).expect("a ServerToAgent body");
        let err = reply.error_response.expect("a ServerErrorResponse");
        assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
        assert!(err.error_message.contains("Content-Encoding"), "{err:?}");
    }
    // The same bytes without a coding (or as identity) are read.
    for coding in [None, Some("identity")] {
        let (a, _) = opamp_post(&serve.opamp, coding);
        assert_eq!(a.status, 200, "{coding:?}: {:?}", a.body);
    }
}

#[test]
fn component_ids_are_checked_as_the_collector_does() {
    let (_data, serve) = serve();
    for (body, field) in [
        (
            r#"{"name":"a","signals":["logs"],"receivers":{"filelog/|":{}}}"#,
            "receivers.filelog/|",
        ),
        (
            r#"{"name":"a","signals":["traces"],"processors":[{"id":"batch/a+b","config":{}}]}"#,
            "processors[0].id",
        ),
        (
            r#"{"name":"a","signals":["traces"],"processors":[{"id":"batch/a\u0000","config":{}}]}"#,
            "processors[0].id",
        ),
    ] {
        let a = post_json(&serve.api, "/api/v1/pipelines", body);
        assert_eq!(a.status, 422, "{body}: {}", a.body);
        let e = a.error();
        assert_eq!(e["code"], "invalid_field");
        assert_eq!(e["field"], field, "{body}");
    }
}

#[test]
fn header_values_with_control_characters_are_refused_naming_the_header() {
    let (_data, serve) = serve();
    let a = post_json(
        &serve.api,
        "/api/v1/pipelines",
        r#"{"name":"p","signals":["traces"]}"#,
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let pid: Value = serde_json::from_str(&a.body).unwrap();
    let pid = pid["id"].as_str().unwrap();
    // JSON escapes: the decoded values hold CR/LF and NUL.
    for value in [r"secret\r\nX-Injected: 1", r"secret\n", r"sec\u0000ret"] {
        let body = format!(
            r#"{{"name":"b","pipeline_id":"{pid}","destinations":[{{"name":"d","type":"otlp",
               "endpoint":"tempo:4317","headers":{{"x-api-key":"{value}"}}}}]}}"#
        );
        let a = post_json(&serve.api, "/api/v1/exporter-bindings", &body);
        assert_eq!(a.status, 422, "{value:?}: {}", a.body);
        let e = a.error();
        assert_eq!(e["field"], "destinations[0].headers.x-api-key");
        assert!(
            !a.body.contains("secret") && !a.body.contains("sec"),
            "{}",
            a.body
        );
    }
    // A tab and spaces are fine in a value.
    let body = format!(
        r#"{{"name":"b","pipeline_id":"{pid}","destinations":[{{"name":"d","type":"otlp",
           "endpoint":"tempo:4317","headers":{{"x-api-key":"Bearer a\tb c"}}}}]}}"#
    );
    let a = post_json(&serve.api, "/api/v1/exporter-bindings", &body);
    assert_eq!(a.status, 201, "{}", a.body);
}

#[test]
fn failed_authentications_are_rate_limited_per_address() {
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start_default(data.path(), "127.0.0.1:0", &["--auth-failure-limit", "5"]);
    for i in 0..5 {
        let a = get(&serve.api, "/api/v1/pipelines", b"Bearer wrong-guess");
        assert_eq!(a.status, 401, "guess {i}: {}", a.body);
    }
    let a = get(&serve.api, "/api/v1/pipelines", b"Bearer wrong-guess");
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.error()["code"], "rate_limited");
    let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&wait), "Retry-After {wait}");
    // Refused before the token is looked at: a right token from the same address waits too.
    let a = get(
        &serve.api,
        "/api/v1/pipelines",
        format!("Bearer {ADMIN}").as_bytes(),
    );
    assert_eq!(a.status, 429, "{}", a.body);

    // The OpAMP listener shares the budget: the address is over it there too.
    let (a, _) = opamp_post(&serve.opamp, None);
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.header("retry-after").is_some());
}

#[test]
fn failed_agent_authentications_are_rate_limited_on_opamp() {
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start_default(data.path(), "127.0.0.1:0", &["--auth-failure-limit", "3"]);
    for i in 0..3 {
        let (a, _) = opamp_post(&serve.opamp, None);
        assert_eq!(a.status, 401, "attempt {i}: {}", a.body);
    }
    let (a, _) = opamp_post(&serve.opamp, None);
    assert_eq!(a.status, 429, "{}", a.body);
    let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
}
