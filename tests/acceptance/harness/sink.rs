//! A local OTLP/HTTP destination for real collectors: answers every `POST` with 200 and an
//! empty (valid) protobuf response, and keeps the request bodies. Plain threads and HTTP/1.1
//! keep-alive, enough for the collector's `otlphttp` exporter with `compression: none`, whose
//! log bodies then appear verbatim in the protobuf bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub(crate) struct Sink {
    pub(crate) url: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Sink {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink");
        let url = format!("http://{}", listener.local_addr().expect("sink address"));
        let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || serve(conn, &kept));
            }
        });
        Self { url, bodies }
    }

    /// Whether some request body held `text`.
    pub(crate) fn received(&self, text: &str) -> bool {
        let bodies = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
        bodies
            .iter()
            .any(|b| b.windows(text.len()).any(|w| w == text.as_bytes()))
    }
}

/// Serves one connection until the peer closes it or sends something that is not HTTP.
fn serve(conn: TcpStream, kept: &Mutex<Vec<Vec<u8>>>) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        // Request line, then headers up to the empty line.
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() && !first {
                break;
            }
            first = false;
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        kept.lock().unwrap_or_else(|p| p.into_inner()).push(body);
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
