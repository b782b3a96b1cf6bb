//! The client's retries against a scripted HTTP server on 127.0.0.1: 429 and 503 are waited
//! out (honouring `Retry-After`), an unreachable server is retried, a POST whose connection
//! broke mid-request is not, and a server that stays busy is reported with what was tried.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use otaas_api::{Client, ClientConfig, ClientError, PipelineSpec, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted server does with the n-th request (0-based).
#[derive(Clone, Copy)]
enum Reply {
    /// Status line, extra headers, body.
    Send(&'static str, &'static str, &'static str),
    /// Read the request, then close the connection without answering.
    Hangup,
}

const EMPTY_LIST: Reply = Reply::Send("200 OK", "", r#"{"items":[]}"#);
const THROTTLED: Reply = Reply::Send(
    "429 Too Many Requests",
    "Retry-After: 1\r\n",
    r#"{"error":{"code":"rate_limited","message":"too many requests for this token"}}"#,
);
const UNAVAILABLE: Reply = Reply::Send("503 Service Unavailable", "", "upstream restarting");

/// Serves `script(n)` for the n-th request; returns the base URL and the request counter.
async fn scripted(script: fn(usize) -> Reply) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            read_request(&mut sock).await;
            match script(n) {
                Reply::Send(status, headers, body) => {
                    let resp = format!(
                        "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                }
                Reply::Hangup => {}
            }
            let _ = sock.shutdown().await;
        }
    });
    (url, count)
}

/// Reads one request's headers and body (by Content-Length).
async fn read_request(sock: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return;
        }
    }
}

fn client(url: &str, retry_for: Duration) -> Client {
    let mut cfg = ClientConfig::new(url, "t");
    cfg.retry_for = retry_for;
    Client::new(cfg).unwrap()
}

fn spec() -> PipelineSpec {
    serde_json::from_value(serde_json::json!({"name": "p", "signals": [Signal::Logs]})).unwrap()
}

#[tokio::test]
async fn throttled_calls_wait_for_retry_after_and_succeed() {
    // Given a server that throttles the first two requests with Retry-After: 1
    let (url, count) = scripted(|n| if n < 2 { THROTTLED } else { EMPTY_LIST }).await;
    let started = tokio::time::Instant::now();
    // When a list is read
    let items = client(&url, Duration::from_secs(30))
        .list_pipelines()
        .await
        .unwrap();
    // Then it succeeds on the third attempt, after waiting at least the two Retry-After hints
    assert_eq!(items, vec![]);
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn a_short_outage_answering_503_is_waited_out_also_for_writes() {
    // Given a load balancer answering 503 (no Retry-After, no JSON) twice
    let (url, count) = scripted(|n| {
        if n < 2 {
            UNAVAILABLE
        } else {
            Reply::Send(
                "201 Created",
                "",
                r#"{"id":"0190f1d2-0000-7000-8000-000000000001","name":"p","description":"","signals":["logs"],"receivers":{},"processors":[],"revision":1,"created_at":"2026-12-06T00:00:00Z","updated_at":"2026-12-06T00:00:00Z"}"#,
            )
        }
    })
    .await;
    // When a pipeline is created (a POST: 503 means the server did not act on it)
    let created = client(&url, Duration::from_secs(30))
        .create_pipeline(&spec())
        .await
        .unwrap();
    // Then the third attempt creates it
    assert_eq!(created.name, "p");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_post_whose_connection_broke_is_not_repeated() {
    // Given a server that reads the request and hangs up without answering
    let (url, count) = scripted(|_| Reply::Hangup).await;
    // When a pipeline is created, the request may have been acted on: it is not sent again
    let err = client(&url, Duration::from_secs(30))
        .create_pipeline(&spec())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // While a GET (idempotent) is repeated until the budget is spent
    let err = client(&url, Duration::from_millis(600))
        .list_pipelines()
        .await
        .unwrap_err();
    assert!(count.load(Ordering::SeqCst) >= 3, "GET attempts");
    assert!(matches!(err, ClientError::GaveUp { .. }), "{err}");
}

#[tokio::test]
async fn a_server_that_stays_busy_is_reported_with_what_was_tried() {
    // Given a server that always throttles, and a budget of 2.5 s
    let (url, count) = scripted(|_| THROTTLED).await;
    let err = client(&url, Duration::from_millis(2500))
        .list_pipelines()
        .await
        .unwrap_err();
    // Then the error keeps the server's answer and says what was throttled and for how long
    let attempts = count.load(Ordering::SeqCst);
    assert!(attempts >= 2, "attempts: {attempts}");
    assert_eq!(err.status(), Some(429));
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "otaas kept throttling (429) GET /api/v1/pipelines: gave up after {attempts} attempts over "
        )),
        "{text}"
    );
    assert!(
        text.ends_with("too many requests for this token (rate_limited)"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_retried_until_it_listens() {
    // Given a port nobody listens on yet, that a server takes over after a second
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let url = format!("http://{addr}");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let listener = TcpListener::bind(addr).await.unwrap();
        let (mut sock, _) = listener.accept().await.unwrap();
        read_request(&mut sock).await;
        let body = r#"{"items":[]}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(resp.as_bytes()).await.unwrap();
    });
    // When a list is read, even a POST-safe connect failure is retried; the call succeeds
    let items = client(&url, Duration::from_secs(30))
        .list_pipelines()
        .await
        .unwrap();
    assert_eq!(items, vec![]);
}

#[tokio::test]
async fn zero_budget_means_no_retry() {
    let (url, count) = scripted(|_| THROTTLED).await;
    let err = client(&url, Duration::ZERO)
        .list_pipelines()
        .await
        .unwrap_err();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(matches!(err, ClientError::Api { status: 429, .. }), "{err}");
}
