//! The audit trail as `GET /api/v1/audit` and `GET /api/v1/audit/export` show it: who wrote
//! what through the API, and which token uses were refused. Entries never carry a secret.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::AuditId;

/// Where a token was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditInterface {
    /// The REST API (`/api/v1`).
    Rest,
    /// The OpAMP agent endpoints.
    Opamp,
    /// The collectors' own-metrics ingest on the OpAMP listener.
    Ingest,
    /// The web console (sign-ins and its actions).
    Console,
    /// Anything a newer server records that this client does not know.
    #[serde(other)]
    Other,
}

impl AuditInterface {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditInterface::Rest => "rest",
            AuditInterface::Opamp => "opamp",
            AuditInterface::Ingest => "ingest",
            AuditInterface::Console => "console",
            AuditInterface::Other => "other",
        }
    }
}

/// Whether the recorded request succeeded (2xx) or was refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    Success,
    Failure,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Success => "success",
            AuditResult::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(AuditResult::Success),
            "failure" => Some(AuditResult::Failure),
            _ => None,
        }
    }
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: AuditId,
    /// When the server recorded it (the answer was known).
    pub at: DateTime<Utc>,
    pub interface: AuditInterface,
    /// The token's id (`flag-admin` for the `--admin-token` flag's token); absent when no
    /// token or an unknown one was presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The token's description, or `unknown token` / `no token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_description: Option<String>,
    /// Unknown tokens only: 12 hex digits of an HMAC of the value under the server key, so
    /// repeated attempts with one value can be told from many values (neither the value nor
    /// its hash can be recovered from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_fingerprint: Option<String>,
    /// The peer address of the connection, as the server saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub method: String,
    /// The request path (no query string).
    pub path: String,
    /// The collection written (`pipelines`, `endpoints`, `exporter-bindings`, `agent-groups`,
    /// `tokens`, `discovered-pipelines`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The error code answered, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub result: AuditResult,
    /// The object's revision before the write (from `If-Match`, or the one the update
    /// replaced); absent where there is none.
    #[serde(default)]
    pub revision_before: Option<i64>,
    /// The object's revision after the write (from the answer); absent where there is none.
    #[serde(default)]
    pub revision_after: Option<i64>,
    /// A dry run: the request was checked and answered but changed nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The filters of `GET /api/v1/audit` and `/audit/export`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub token_id: Option<String>,
    pub object: Option<String>,
    pub object_id: Option<String>,
    pub result: Option<AuditResult>,
    pub method: Option<String>,
}

impl AuditQuery {
    /// The query parameters.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        if let Some(t) = &self.since {
            out.push(("since", time(t)));
        }
        if let Some(t) = &self.until {
            out.push(("until", time(t)));
        }
        for (k, v) in [
            ("token_id", &self.token_id),
            ("object", &self.object),
            ("object_id", &self.object_id),
            ("method", &self.method),
        ] {
            if let Some(v) = v {
                out.push((k, v.clone()));
            }
        }
        if let Some(r) = self.result {
            out.push(("result", r.as_str().to_owned()));
        }
        out
    }
}
