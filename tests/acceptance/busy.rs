//! A busy or briefly unavailable server does not fail an apply: the provider waits out `429`
//! (the server's own per-token rate limit, `Retry-After`) and `503` (a real database outage,
//! made by cutting a TCP proxy between `otaas serve` and PostgreSQL), and the server's request
//! counters show that it really answered them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::common::*;
use crate::harness::{PgDatabase, Server};

/// Twelve pipelines: more writes at Terraform's default parallelism (10) than the limits below
/// let through at once.
const PIPELINES: &str = r#"
resource "otaas_pipeline" "p" {
  count   = 12
  name    = "busy-${count.index}"
  signals = ["logs"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/busy-${count.index}.log"] })
  }
}
"#;

/// How many REST answers with `status` the server counted (its Prometheus `/metrics`).
fn answered(server: &Server, status: u16) -> u64 {
    let text = block_on(async {
        reqwest::get(format!("{}/metrics", server.api_url()))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    });
    let needle = format!("status=\"{status}\"");
    text.lines()
        .filter(|l| l.starts_with("otaas_http_requests_total{") && l.contains(&needle))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<u64>().ok()))
        .sum()
}

#[test]
fn apply_waits_out_the_servers_rate_limit() {
    // Given a server whose per-token limit is far below what the plan needs at once
    let server = Server::start_with_flags(&["--api-rate-limit", "2", "--api-rate-burst", "3"], &[]);
    let ws = workspace(&server, PIPELINES);

    // When Terraform applies twelve pipelines at its default parallelism
    let out = ws.apply();

    // Then every pipeline exists, although the server throttled the provider on the way
    assert!(!out.stderr.contains("429"), "{}", out.stderr);
    assert_eq!(block_on(api(&server).list_pipelines()).unwrap().len(), 12);
    assert!(
        answered(&server, 429) > 0,
        "the server never throttled: the test proves nothing"
    );
    // And a refresh (twelve reads) and a destroy go through the same limit without a diagnostic
    assert_plan_clean(&ws);
    ws.destroy();
    assert_eq!(block_on(api(&server).list_pipelines()).unwrap().len(), 0);
}

/// A TCP proxy to PostgreSQL that can be cut (open connections dropped, new ones closed at once).
struct DbProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
}

impl DbProxy {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let state = up.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !state.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let state = state.clone();
                    thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        from.set_read_timeout(Some(Duration::from_millis(200))).ok();
                        loop {
                            if !state.load(Ordering::SeqCst) {
                                break;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { addr, up }
    }
}

#[test]
fn apply_waits_out_a_short_database_outage() {
    // Given otaas serve on PostgreSQL through a proxy
    let db = PgDatabase::create();
    let url = db.url().to_owned();
    let (scheme_auth, rest) = url.split_once('@').expect("postgres://user@host:port/db");
    let (host_port, path) = rest.split_once('/').expect("/db");
    let upstream: SocketAddr = host_port
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("host:port");
    let proxy = DbProxy::start(upstream);
    let server = Server::start_with(Some(&format!("{scheme_auth}@{}/{path}", proxy.addr)));
    let ws = workspace(&server, PIPELINES);

    // When the database goes away just before the apply and comes back four seconds later
    proxy.up.store(false, Ordering::SeqCst);
    let up = proxy.up.clone();
    let restore = thread::spawn(move || {
        thread::sleep(Duration::from_secs(4));
        up.store(true, Ordering::SeqCst);
    });
    let out = ws.apply();
    restore.join().unwrap();

    // Then the apply succeeded after waiting: the server answered 503 meanwhile
    assert!(!out.stderr.contains("503"), "{}", out.stderr);
    assert!(
        answered(&server, 503) > 0,
        "the outage was never seen: the test proves nothing"
    );
    assert_eq!(block_on(api(&server).list_pipelines()).unwrap().len(), 12);
    assert_plan_clean(&ws);
}

#[test]
fn five_hundred_resources_on_a_default_server() {
    // Given a server with the limits every user gets, and 500 pipelines at Terraform's default
    // parallelism
    let server = Server::start();
    let ws = workspace(
        &server,
        &PIPELINES
            .replace("count   = 12", "count   = 500")
            .replace("busy-", "fleet-"),
    );

    // When they are applied, then no diagnostic at all
    let out = ws.apply();
    assert!(!out.stderr.contains("Error"), "{}", out.stderr);
    assert!(!out.stdout.contains("Warning"), "{}", out.stdout);
    assert_eq!(block_on(api(&server).list_pipelines()).unwrap().len(), 500);
    // And nothing was throttled on the way (the client's retries would hide a 429 from the
    // output, not from the server's count)
    assert_eq!(
        answered(&server, 429),
        0,
        "a default server throttled Terraform at its default parallelism"
    );

    // And a no-op plan refreshes all 500 with a handful of requests, not one per resource
    let before = successful_gets(&server, None);
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(0);
    let refresh = successful_gets(&server, None) - before;
    assert!(
        refresh <= 4,
        "the refresh of 500 pipelines cost {refresh} GET requests (expected one list and the \
         metrics scrape)"
    );
    assert!(!plan.stderr.contains("Error"), "{}", plan.stderr);

    // And destroy goes through with no diagnostic either
    let out = ws.destroy();
    assert!(!out.stderr.contains("Error"), "{}", out.stderr);
    assert_eq!(block_on(api(&server).list_pipelines()).unwrap().len(), 0);
    assert_eq!(answered(&server, 429), 0, "the destroy was throttled");
}
