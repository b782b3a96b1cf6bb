//! Console sessions: a pasted token becomes a signed session cookie (HttpOnly, SameSite=Strict,
//! Secure under TLS); every page request is checked against the token it came from, and every
//! form that changes something carries a CSRF token bound to the session.
//!
//! The cookie holds the SHA-256 of the token (what the database keeps, never the token), an
//! expiry, and an HMAC of both under a key derived from the server key, which every replica
//! shares: any replica can check it, and a revoked or expired token ends its sessions on the
//! next request. Nothing is kept per session on the server.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use otaas_api::TokenScope;
use sha2::Sha256;

use super::context::{Console, Viewer};
use crate::auth::{Principal, TokenCheck, check_token_hash, hash_token, hashes_equal};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "otaas_session";

/// How long a session lasts (a token that expires sooner ends it sooner).
pub(crate) const LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(8);

/// The key sessions are signed with, derived from the server key so that it serves no other
/// purpose.
fn session_key(state: &Console) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(state.store.server_key().bytes())
        .expect("HMAC accepts any key size");
    mac.update(b"otaas-console-session-v1");
    mac.finalize().into_bytes().into()
}

fn sign(key: &[u8; 32], what: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key size");
    mac.update(what.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// A cookie value for a token: `<sha256 hex>.<expiry unix seconds>.<hmac>`.
pub(crate) fn mint(state: &Console, token: &str, expires: chrono::DateTime<chrono::Utc>) -> String {
    let payload = format!("{}.{}", hash_token(token), expires.timestamp());
    let mac = sign(&session_key(state), &payload);
    format!("{payload}.{mac}")
}

/// The token hash of a genuine, unexpired cookie value.
fn open(key: &[u8; 32], value: &str) -> Option<String> {
    let (payload, mac) = value.rsplit_once('.')?;
    if !hashes_equal(mac, &sign(key, payload)) {
        return None;
    }
    let (hash, expires) = payload.split_once('.')?;
    let expires: i64 = expires.parse().ok()?;
    (expires > chrono::Utc::now().timestamp() && hash.len() == 64).then(|| hash.to_owned())
}

/// The CSRF token of a session: an HMAC of its cookie, so it changes with every sign-in and
/// cannot be computed without the server key.
fn csrf_of(key: &[u8; 32], cookie: &str) -> String {
    sign(key, &format!("csrf:{cookie}"))
}

/// The session cookie's value in a request, if any.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The principal of a session's token hash, judged as the bearer check judges the token
/// (revoked and expired tokens have no session); agent tokens cannot sign in.
async fn principal_of(state: &Console, hash: &str) -> Option<Principal> {
    match check_token_hash(
        state.store.as_ref(),
        state.admin_token_hash.as_deref(),
        hash,
    )
    .await
    {
        Ok(TokenCheck::Valid(p)) if p.scope() != TokenScope::Agent => Some(p),
        _ => None,
    }
}

/// The viewer of a request with a valid session, if it has one.
pub(crate) async fn viewer(state: &Console, headers: &HeaderMap) -> Option<Viewer> {
    let value = cookie_value(headers)?;
    let key = session_key(state);
    let hash = open(&key, value)?;
    let principal = principal_of(state, &hash).await?;
    Some(Viewer {
        principal,
        csrf: csrf_of(&key, value),
    })
}

/// `Set-Cookie` for a new session.
pub(crate) fn set_cookie(state: &Console, value: &str) -> HeaderValue {
    let secure = if state.tls { "; Secure" } else { "" };
    let max_age = LIFETIME.num_seconds();
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie characters are base64url, hex, digits and dots")
}

/// `Set-Cookie` that ends the session in the browser.
pub(crate) fn clear_cookie(state: &Console) -> HeaderValue {
    let secure = if state.tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .expect("static cookie")
}

/// Is the request's `Origin` (when the browser sent one) this server? Browsers send it on every
/// cross-site POST, so a mismatch is a forged form even before the CSRF token is looked at.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (
        origin.to_str(),
        headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

/// The client address of a request on a listener connection.
pub(crate) fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// A page that needs a session, asked for without one: GETs go to the sign-in page, anything
/// else is refused (a form cannot be replayed after signing in).
pub(crate) struct SignInFirst {
    get: bool,
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        if self.get {
            Redirect::to("/sign-in").into_response()
        } else {
            super::layout::error_page(
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                "This action needs a session: sign in and try again.",
                None,
            )
        }
    }
}

impl<S> FromRequestParts<S> for Viewer
where
    S: Send + Sync,
    Console: FromRef<S>,
{
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let console = Console::from_ref(state);
        viewer(&console, &parts.headers).await.ok_or(SignInFirst {
            get: parts.method == http::Method::GET,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given cookie headers, when the session cookie is looked for, then only a cookie of that
    /// exact name is taken, wherever it is in the header.
    #[test]
    fn the_session_cookie_is_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_static("a=1; otaas_session_x=2; otaas_session=abc.1.x"),
        );
        assert_eq!(cookie_value(&h), Some("abc.1.x"));
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, HeaderValue::from_static("x=1"));
        assert_eq!(cookie_value(&h), None);
    }

    /// Given `Origin` headers, when compared with `Host`, then only this server's origin (or no
    /// `Origin` at all) passes.
    #[test]
    fn a_foreign_origin_is_not_same_origin() {
        let h = |origin: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::HOST,
                HeaderValue::from_static("127.0.0.1:8080"),
            );
            if let Some(o) = origin {
                h.insert(http::header::ORIGIN, HeaderValue::from_static(o));
            }
            h
        };
        assert!(same_origin(&h(None)));
        assert!(same_origin(&h(Some("http://127.0.0.1:8080"))));
        assert!(!same_origin(&h(Some("http://evil.example"))));
        assert!(!same_origin(&h(Some("null"))));
    }
}
