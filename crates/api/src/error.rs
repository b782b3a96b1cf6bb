//! The error body every 4xx/5xx response carries: `{"error":{"code","message","field"}}`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The JSON document of an error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine code, a human message, and the offending field when one is
/// to blame (a dotted path such as `processors[1].id`, or a header name such as `If-Match`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default)]
    pub field: Option<String>,
    /// With `missing_components`: each component type the change needs that some agents'
    /// collector builds lack, and those agents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_components: Vec<MissingComponent>,
    /// With `unsupported_signal`: each component put into a pipeline of a signal that some
    /// agents report the component's type does not support, and those agents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported_signals: Vec<UnsupportedSignal>,
}

/// A component type a rendered config uses that some agents of the target group lack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingComponent {
    /// The config section: `receivers`, `processors`, `exporters`, `extensions`, `connectors`.
    pub kind: String,
    /// The component type (`kafka`, `transform`, ...).
    #[serde(rename = "type")]
    pub component_type: String,
    /// The agent group whose config uses it.
    pub group: String,
    /// Instance uids (hex) of the agents whose collector lacks it.
    pub agents: Vec<String>,
}

/// A component type a rendered config puts into a `<signal>/...` pipeline although agents of the
/// target group report that the type does not support that signal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsupportedSignal {
    /// The config section: `receivers`, `processors`, `exporters`.
    pub kind: String,
    /// The component type (`filelog`, ...).
    #[serde(rename = "type")]
    pub component_type: String,
    /// The signal (`traces`, `metrics`, `logs`).
    pub signal: String,
    /// The agent group whose config does it.
    pub group: String,
    /// Instance uids (hex) of the agents that report the type does not support the signal.
    pub agents: Vec<String>,
}

/// Stable error codes. Clients match on these, never on messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON at all.
    MalformedJson,
    /// 415: the body is not declared as `application/json`.
    UnsupportedMediaType,
    /// 422: a field the API does not know.
    UnknownField,
    /// 422: a required field is absent.
    MissingField,
    /// 422: a field has the wrong type or a value outside its rules.
    InvalidField,
    /// 422: a referenced object does not exist.
    DanglingReference,
    /// 422: the change's rendered config uses a component type that agents of the target
    /// group lack (see `missing_components`).
    MissingComponents,
    /// 422: after the change some agent group's config would leave a pipeline out (no
    /// receiver or no exporter for any of its signals) or list no pipeline; `field` names
    /// what to fix, the message the group, the pipeline and what to add.
    IncompleteConfig,
    /// 422: the change's rendered config puts a component into a pipeline of a signal that
    /// agents of the target group report its type does not support (see `unsupported_signals`).
    UnsupportedSignal,
    /// 422: the server's config policy (`--deny-components`, `--deny-paths`, ...) refuses
    /// the change; the message names the rule, `field` the value it refuses.
    PolicyDenied,
    /// 400: a malformed path parameter, query or header.
    BadRequest,
    /// 401: no or wrong bearer token.
    Unauthorized,
    /// 403: the token is valid but its scope does not allow this request.
    Forbidden,
    /// 404: no such object.
    NotFound,
    /// 409: the name is taken by another object of the same kind.
    NameTaken,
    /// 409: `If-Match` names a revision that is no longer current.
    RevisionMismatch,
    /// 409: the object is still referenced by another; the message names the referrer.
    InUse,
    /// 409: the request does not fit the object's current state (e.g. pausing a finished
    /// rollout, rolling back a group's first revision).
    StateConflict,
    /// 413: the request body is larger than the server accepts.
    PayloadTooLarge,
    /// 429: too many requests for this token (or connections from this address); see
    /// `Retry-After`.
    RateLimited,
    /// 500: something broke on the server; details are in its log, not here.
    Internal,
    /// 503: the server cannot answer now (e.g. the database is unreachable); retry later.
    Unavailable,
    /// A code this client does not know yet (newer server).
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::UnknownField => "unknown_field",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::DanglingReference => "dangling_reference",
            Self::MissingComponents => "missing_components",
            Self::IncompleteConfig => "incomplete_config",
            Self::UnsupportedSignal => "unsupported_signal",
            Self::PolicyDenied => "policy_denied",
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::NameTaken => "name_taken",
            Self::RevisionMismatch => "revision_mismatch",
            Self::InUse => "in_use",
            Self::StateConflict => "state_conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>, field: Option<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                field,
                missing_components: Vec::new(),
                unsupported_signals: Vec::new(),
            },
        }
    }
}
