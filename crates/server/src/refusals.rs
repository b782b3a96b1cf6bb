//! [`JsonRefusals`]: gives hyper's own refusals the JSON error body.
//!
//! When a request cannot even be parsed (a NUL or other control character in a header value,
//! a malformed request line, headers over hyper's size limit), hyper answers by itself — the
//! application never sees the request — with an empty `400`/`431` and closes the connection.
//! Every other 4xx of the server carries `{"error":{...}}`; this adapter sits between the
//! connection's byte stream and hyper and rewrites exactly those answers: a write that is one
//! whole HTTP/1 response head with a 4xx/5xx status, `content-length: 0` and no content type.
//! Responses of the application never match (their error answers always have a JSON body,
//! see `api::json_errors`), and neither does anything after an upgrade (WebSocket frames
//! never start with `HTTP/1.`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte stream whose outgoing hyper refusals get the JSON error body (see module docs).
pub struct JsonRefusals<T> {
    inner: T,
    /// A rewritten refusal not yet fully written, and how much of it is.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> JsonRefusals<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The rewritten response for `head`, if it is a bodiless refusal written by hyper.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    if !head.starts_with(b"HTTP/1.") || !head.ends_with(b"\r\n\r\n") || head.len() > 1024 {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let body = &text[..text.len() - 4];
    if body.contains("\r\n\r\n") {
        return None;
    }
    let mut lines = body.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    if !(400..600).contains(&status) {
        return None;
    }
    let headers: Vec<&str> = lines.collect();
    let lower = |h: &str| h.to_ascii_lowercase();
    if headers
        .iter()
        .any(|h| lower(h).starts_with("content-type:"))
        || !headers
            .iter()
            .any(|h| lower(h).replace(' ', "") == "content-length:0")
    {
        return None;
    }
    let (code, message) = match status {
        431 => (
            otaas_api::ErrorCode::BadRequest,
            "request headers are larger than the server accepts",
        ),
        414 => (
            otaas_api::ErrorCode::BadRequest,
            "request URI is longer than the server accepts",
        ),
        400..=499 => (
            otaas_api::ErrorCode::BadRequest,
            "malformed HTTP request (e.g. a control character such as NUL in a header)",
        ),
        _ => (
            otaas_api::ErrorCode::Internal,
            "the HTTP request could not be served",
        ),
    };
    let json = serde_json::to_vec(&otaas_api::ErrorBody::new(code, message, None)).ok()?;
    let mut out = Vec::with_capacity(head.len() + json.len() + 64);
    out.extend_from_slice(status_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers
        .iter()
        .filter(|h| !lower(h).starts_with("content-length:"))
    {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", json.len()).as_bytes());
    out.extend_from_slice(&json);
    Some(out)
}

impl<T: AsyncWrite + Unpin> JsonRefusals<T> {
    /// Writes out a pending rewritten refusal.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((buf, done)) = &mut self.pending {
            if *done == buf.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonRefusals<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonRefusals<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(replacement) = rewrite(buf) {
            // The caller's bytes count as written; the replacement goes out before anything
            // else (and before flush or shutdown complete).
            this.pending = Some((replacement, 0));
            let _ = this.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_error_heads_are_rewritten() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 18:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(hyper_400).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(out.contains("content-type: application/json\r\n"));
        assert!(out.contains("connection: close\r\n"));
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "bad_request");

        // 2xx, responses with a body or a content type, and partial heads pass unchanged.
        assert!(rewrite(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(
            rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n")
                .is_none()
        );
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
        assert!(rewrite(b"\x81\x05hello").is_none());
    }
}
