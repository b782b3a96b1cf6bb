//! [`ApiJson`]: the JSON body extractor of the API. Unlike axum's `Json` it reports every
//! failure in our error body, naming the field: 413 over the size limit, 415 without a JSON
//! content type, 400 for text that is not JSON, 422 for unknown/missing/mistyped fields.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::StatusCode;
use otaas_api::ErrorCode;
use serde::de::DeserializeOwned;

use super::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "expected Content-Type: application/json",
                Some("Content-Type"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    "request body is larger than the server accepts",
                    None,
                )
            } else {
                ApiError::bad_request(format!("reading request body: {rejection}"), None)
            }
        })?;
        decode(&bytes).map(ApiJson)
    }
}

/// Parses then maps to `T`, classifying serde's errors.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedJson,
            format!("request body is not valid JSON: {e}"),
            None,
        )
    })?;
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| classify(&e))
}

/// Does a serde path (e.g. `destinations[0].headers.x-api-key`) lead into a secret-bearing
/// field, whose values must never be echoed in errors?
fn is_secret_path(path: &str) -> bool {
    path.split(['.', '[']).any(|seg| seg == "headers")
}

fn classify(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let msg = e.inner().to_string();
    let join = |name: &str| {
        if path.is_empty() || path == name || path.ends_with(&format!(".{name}")) {
            if path.is_empty() {
                name.to_string()
            } else {
                path.clone()
            }
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = |prefix: &str| {
        msg.strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    if let Some(name) = quoted("unknown field `") {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::UnknownField,
            format!("unknown field {:?}", join(&name)),
            Some(&join(&name)),
        );
    }
    if let Some(name) = quoted("missing field `") {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::MissingField,
            format!("missing field {:?}", join(&name)),
            Some(&join(&name)),
        );
    }
    let field = if path.is_empty() {
        None
    } else {
        Some(path.as_str())
    };
    // serde quotes the offending value ("invalid type: string \"...\""); under a secret-bearing
    // field that value may be a credential, so the message names the field only.
    let msg = if is_secret_path(&path) {
        "invalid value (not echoed: the field holds secrets)".to_string()
    } else {
        msg
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidField,
        match field {
            Some(f) => format!("{f}: {msg}"),
            None => msg,
        },
        field,
    )
}
