//! The console's stylesheet and script, compiled into the binary (no request leaves the
//! machine: no CDN, no web font), served under `/assets/`.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Where pages link the stylesheet; the version makes a new build's assets bypass old caches.
pub(crate) const CSS_PATH: &str = concat!("/assets/console.css?v=", env!("CARGO_PKG_VERSION"));
/// Where pages load the script from.
pub(crate) const JS_PATH: &str = concat!("/assets/console.js?v=", env!("CARGO_PKG_VERSION"));

/// `GET /assets/{name}`: the two embedded files, cacheable for an hour.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}
