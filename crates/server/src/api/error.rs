//! [`ApiError`]: the one error type of the REST API, rendered as `{"error":{...}}` with the
//! right status. Store errors are mapped here in one `match`; 5xx bodies are generic and the
//! cause is logged once.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use otaas_api::{ErrorBody, ErrorCode};

use crate::revisions::WriteError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: the body's lists (missing components, unsupported signals) would make every
    /// `Result<_, ApiError>` of the handlers carry them inline.
    pub body: Box<ErrorBody>,
    /// `Retry-After` seconds for 429/503 (503 defaults to 1 when unset).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: ErrorCode,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody::new(code, message, field.map(str::to_string))),
            retry_after: None,
        }
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            message,
            None,
        )
    }

    /// 403 `forbidden`: a valid token whose scope does not allow the request.
    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message, None)
    }

    /// 429 `rate_limited` with `Retry-After` (whole seconds, at least 1).
    pub fn rate_limited(message: &str, wait: std::time::Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            message,
            None,
        );
        e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        e
    }

    /// 503 `unavailable` with `Retry-After`.
    pub fn unavailable(message: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            message,
            None,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message, None)
    }

    pub fn bad_request(message: impl Into<String>, field: Option<&str>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            message,
            field,
        )
    }

    /// 422 `invalid_field` naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidField,
            message,
            Some(field),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the server log",
            None,
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let msg = e.to_string();
        match &e {
            StoreError::NotFound { .. } => Self::not_found(msg),
            StoreError::NameTaken { .. } => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::NameTaken,
                msg,
                Some("name"),
            ),
            StoreError::RevisionMismatch { .. } => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::RevisionMismatch,
                msg,
                Some("If-Match"),
            ),
            StoreError::DanglingReference { field, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::DanglingReference,
                msg,
                Some(field),
            ),
            StoreError::InUse { .. } => {
                Self::new(StatusCode::CONFLICT, ErrorCode::InUse, msg, None)
            }
            StoreError::Database(db) if is_unavailable(db) => {
                tracing::warn!(error = %e, "Database unavailable");
                Self::unavailable("database unavailable; retry later")
            }
            _ => {
                tracing::error!(error = %e, "Store operation failed");
                Self::internal()
            }
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        let msg = e.to_string();
        match e {
            WriteError::Store(e) => e.into(),
            WriteError::Render { source, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidField,
                msg,
                source.field(),
            ),
            WriteError::Incomplete { field, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IncompleteConfig,
                msg,
                Some(field),
            ),
        }
    }
}

/// Is this a "the database is not there right now" failure (retrying later can help) rather
/// than a bug? Connection-level errors, pool exhaustion, and PostgreSQL's connection-exception
/// (class 08), operator-intervention (57P0x: shutdown, cannot connect now) and
/// insufficient-resources (class 53) codes; and contention that outlasted the store's bounded
/// wait: SQLite busy/locked (primary codes 5 and 6, with their extended codes such as 517) and
/// PostgreSQL serialization failure, deadlock and lock timeout (40001, 40P01, 55P03).
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => {
            let code = d.code();
            let code = code.as_deref().unwrap_or_default();
            if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Extended result codes keep the primary code in the low byte.
                return code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            }
            code.starts_with("08")
                || code.starts_with("57P0")
                || code.starts_with("53")
                || matches!(code, "40001" | "40P01" | "55P03")
        }
        _ => false,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.body.error.code;
        let mut resp = (self.status, Json(*self.body)).into_response();
        // For the audit trail: the code without reading the body back.
        resp.extensions_mut().insert(code);
        let retry_after = match (self.retry_after, self.status) {
            (Some(s), _) => Some(s),
            (None, StatusCode::SERVICE_UNAVAILABLE) => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// The error code of an error status whose answer did not say one (axum's rejections).
pub(super) fn code_for_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidField,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};

    use super::*;

    /// A write that still meets SQLite's lock after the busy timeout is a 503 with
    /// `Retry-After` (the database is there, only busy), not a 500.
    #[tokio::test]
    async fn a_busy_sqlite_database_is_unavailable_not_internal() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("busy.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder = options.clone().connect().await.unwrap();
        let mut other = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut holder)
            .await
            .unwrap();
        let held = holder.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let err = other.begin_with("BEGIN IMMEDIATE").await.unwrap_err();
        assert!(is_unavailable(&err), "{err:?}");
        let api = ApiError::from(StoreError::Database(err));
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.into_response().headers()["retry-after"], "1");
        // Dropping a transaction only queues its rollback for the connection's next use: end it
        // now, or the lock is still held below.
        held.rollback().await.unwrap();

        // A constraint violation stays a 500 (a bug, not contention).
        sqlx::query("CREATE TABLE u (x INTEGER NOT NULL)")
            .execute(&mut other)
            .await
            .unwrap();
        let err = sqlx::query("INSERT INTO u (x) VALUES (NULL)")
            .execute(&mut other)
            .await
            .unwrap_err();
        assert!(!is_unavailable(&err), "{err:?}");
    }
}
