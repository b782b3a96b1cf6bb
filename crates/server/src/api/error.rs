//! [`ApiError`]: the one error type of the REST API, rendered as `{"error":{...}}` with the
//! right status. Store errors are mapped here in one `match`; 5xx bodies are generic and the
//! cause is logged once.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use otaas_api::{ErrorBody, ErrorCode};

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
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
            body: ErrorBody::new(code, message, field.map(str::to_string)),
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
            StoreError::Render { source, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidField,
                msg.clone(),
                source.field(),
            ),
            StoreError::Database(sqlx::Error::PoolTimedOut)
            | StoreError::Database(sqlx::Error::Io(_)) => {
                tracing::warn!(error = %e, "Database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "database unavailable; retry later",
                    None,
                )
            }
            _ => {
                tracing::error!(error = %e, "Store operation failed");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
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
