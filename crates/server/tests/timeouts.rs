//! Held connections cannot lock clients out, over real sockets against the real `otaas serve`
//! binary on 127.0.0.1: idle TCP connections do not count against the per-address caps (API
//! and OpAMP listener) and are closed; a request body that stalls fails the request; an
//! upgraded WebSocket that sends nothing is closed after a few heartbeat intervals.
//!
//! No assertion depends on timing: every wait is bounded by `TIMEOUT` (passing it fails the
//! test); the server's own timeouts are well below it.

mod common;
use otaas_testkit::procs;

use std::io::{Read, Write};
use std::net::TcpStream;

use procs::*;

/// One request on a fresh connection; returns the status line.
fn status_of(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Reads until the server closes the connection (or resets it); panics if it does not within
/// [`TIMEOUT`]. Returns what was read.
fn read_until_closed(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_neither_lock_an_address_out_nor_stay_open() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--max-conns-per-ip", "8", "--opamp-max-conns-per-ip", "8"],
    );
    let (api, opamp) = (server.api.clone(), server.opamp.clone());
    tokio::task::spawn_blocking(move || {
        // Twice the cap of silent connections on each listener.
        let idle: Vec<TcpStream> = (0..16)
            .flat_map(|_| [TcpStream::connect(&api), TcpStream::connect(&opamp)])
            .map(Result::unwrap)
            .collect();
        // Another client of the same address is served on both.
        assert_eq!(status_of(&api, HEALTHZ), "HTTP/1.1 200 OK");
        let poll = "POST /v1/opamp HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
                    Content-Length: 0\r\nConnection: close\r\n\r\n";
        let status = status_of(&opamp, poll);
        assert!(!status.contains("429"), "{status}");
        // And the silent connections are closed by the server, having received nothing.
        for s in idle {
            assert_eq!(read_until_closed(s), b"");
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let api = server.api.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&api).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let got = read_until_closed(s);
        assert!(got.starts_with(b"HTTP/1.1 200 OK"), "{got:?}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_request_body_fails_the_request_and_frees_the_connection() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let (api, opamp) = (server.api.clone(), server.opamp.clone());
    tokio::task::spawn_blocking(move || {
        let threads = [
            (
                &api,
                format!(
                    "POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
                     Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"scope\""
                ),
            ),
            (
                &opamp,
                "POST /v1/opamp HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
                 Content-Length: 100\r\n\r\n\x0a\x10"
                    .to_owned(),
            ),
        ]
        .map(|(addr, head)| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr.as_str()).unwrap();
                s.write_all(head.as_bytes()).unwrap();
                // The rest of the body never comes: the server answers (an error) and closes.
                let got = read_until_closed(s);
                let text = String::from_utf8_lossy(&got).into_owned();
                assert!(
                    text.starts_with("HTTP/1.1 400 Bad Request"),
                    "{addr}: {text:?}"
                );
            })
        });
        for t in threads {
            t.join().unwrap();
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_that_sends_nothing_is_closed_after_a_few_heartbeats() {
    let data = tempfile::tempdir().unwrap();
    // Serve offers a 2 s heartbeat (see `procs`): silence is ended after about 6 s.
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let opamp = server.opamp.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&opamp).unwrap();
        s.write_all(
            format!(
                "GET /v1/opamp HTTP/1.1\r\nHost: {opamp}\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        // Upgraded, then never a frame from us (not even a pong): the server closes.
        let got = read_until_closed(s);
        assert!(
            got.starts_with(b"HTTP/1.1 101 Switching Protocols"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    })
    .await
    .unwrap();
}
