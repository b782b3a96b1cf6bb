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

/// Parses then maps to `T`, classifying serde's errors. An object with the same key twice is
/// refused (422 naming the key): serde_json would silently keep the last one, so what the
/// server acts on could differ from what another reader of the same body sees.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |msg: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedJson,
            format!("request body is not valid JSON: {msg}"),
            None,
        )
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, Unique>(&mut de) {
        Ok(Unique(v)) => v,
        Err(e) => {
            let msg = e.inner().to_string();
            if let Some(key) = msg
                .strip_prefix(DUPLICATE_KEY)
                .map(|rest| rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k))
            {
                let parent = e.path().to_string();
                let field = if parent == "." {
                    key.to_string()
                } else {
                    format!("{parent}.{key}")
                };
                return Err(ApiError::invalid(
                    &field,
                    format!("duplicate key {field:?} in the request body"),
                ));
            }
            return Err(malformed(msg));
        }
    };
    // Trailing characters after the value.
    de.end().map_err(|e| malformed(e.to_string()))?;
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| classify(&e))
}

/// Start of the error message [`Unique`] fails with; the key follows.
const DUPLICATE_KEY: &str = "duplicate key ";

/// A JSON value whose objects have unique keys (deserialising fails on a repeated one).
struct Unique(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE_KEY}{key}")));
            }
            let Unique(v) = map.next_value()?;
            object.insert(key, v);
        }
        Ok(object.into())
    }
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
