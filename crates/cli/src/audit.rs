//! `otaas audit`: the audit trail of a running control plane (writes and refused token uses)
//! through its REST API, with the endpoint and token flags of `otaas discovered`. Returns the
//! text to print; `main` prints it.

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use otaas_api::{AuditEntry, AuditQuery, AuditResult, ClientError};

use crate::discovery::{ApiArgs, DiscoveryCmdError, columns};

#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditCmdError {
    #[error(transparent)]
    Setup(#[from] DiscoveryCmdError),
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(
        "--{flag} {value:?}: expected an RFC 3339 time (2026-01-31T12:00:00Z) or an age such as \
         30m, 12h or 7d"
    )]
    Time { flag: &'static str, value: String },
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum AuditOutput {
    /// Aligned columns for a person.
    #[default]
    Table,
    /// The entries as one JSON array.
    Json,
    /// JSON Lines, as `GET /api/v1/audit/export` streams them.
    Jsonl,
}

#[derive(Debug, Clone, ValueEnum, PartialEq, Eq, Copy)]
pub(crate) enum ResultArg {
    Success,
    Failure,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// Entries recorded at or after this time: RFC 3339, or an age (30m, 12h, 7d).
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Entries recorded before this time: RFC 3339, or an age (30m, 12h, 7d).
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Entries of this token (its id; `flag-admin` for the --admin-token flag's).
    #[arg(long)]
    pub(crate) token_id: Option<String>,
    /// Entries about this kind of object (pipelines, endpoints, exporter-bindings,
    /// agent-groups, tokens, discovered-pipelines, ...).
    #[arg(long)]
    pub(crate) object: Option<String>,
    /// Entries about the object with this id.
    #[arg(long)]
    pub(crate) object_id: Option<String>,
    /// Only successes or only failures (refusals included).
    #[arg(long, value_enum)]
    pub(crate) result: Option<ResultArg>,
    /// Only this HTTP method (POST, PUT, DELETE, ...).
    #[arg(long)]
    pub(crate) method: Option<String>,
    #[arg(long, value_enum, default_value_t = AuditOutput::Table)]
    pub(crate) output: AuditOutput,
}

/// A time flag: RFC 3339, or an age before `now`.
fn time(flag: &'static str, raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AuditCmdError> {
    let bad = || AuditCmdError::Time {
        flag,
        value: raw.chars().take(64).collect(),
    };
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let split = raw.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = raw.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let age = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    now.checked_sub_signed(age).ok_or_else(bad)
}

fn query(args: &AuditArgs, now: DateTime<Utc>) -> Result<AuditQuery, AuditCmdError> {
    Ok(AuditQuery {
        since: args
            .since
            .as_deref()
            .map(|s| time("since", s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| time("until", s, now))
            .transpose()?,
        token_id: args.token_id.clone(),
        object: args.object.clone(),
        object_id: args.object_id.clone(),
        result: args.result.map(|r| match r {
            ResultArg::Success => AuditResult::Success,
            ResultArg::Failure => AuditResult::Failure,
        }),
        method: args.method.clone(),
    })
}

/// `otaas audit`.
pub(crate) async fn audit(args: &AuditArgs) -> Result<String, AuditCmdError> {
    let client = args.api.client()?;
    let q = query(args, Utc::now())?;
    match args.output {
        AuditOutput::Jsonl => {
            let bytes = client.export_audit(&q).await?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        AuditOutput::Json => {
            let entries = client.list_audit(&q).await?;
            Ok(format!("{}\n", serde_json::to_string_pretty(&entries)?))
        }
        AuditOutput::Table => Ok(table(&client.list_audit(&q).await?)),
    }
}

fn table(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "no audit entries match\n".into();
    }
    let mut rows = vec![
        [
            "TIME", "RESULT", "STATUS", "VIA", "METHOD", "PATH", "REVISION", "TOKEN", "SOURCE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for e in entries {
        let token = match (&e.token_id, &e.token_description, &e.token_fingerprint) {
            (Some(id), Some(d), _) => format!("{d} ({id})"),
            (Some(id), None, _) => id.clone(),
            (None, Some(d), Some(f)) => format!("{d} [{f}]"),
            (None, Some(d), None) => d.clone(),
            (None, None, _) => "-".into(),
        };
        let revision = match (e.revision_before, e.revision_after) {
            (Some(b), Some(a)) => format!("{b}->{a}"),
            (None, Some(a)) => format!("->{a}"),
            (Some(b), None) => format!("{b}->"),
            (None, None) => "-".into(),
        };
        let mut result = e.result.as_str().to_owned();
        if e.dry_run {
            result.push_str(" (dry run)");
        }
        let status = match &e.error_code {
            Some(code) => format!("{} {code}", e.status),
            None => e.status.to_string(),
        };
        rows.push(vec![
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            result,
            status,
            e.interface.as_str().to_owned(),
            e.method.clone(),
            e.path.clone(),
            revision,
            token,
            e.source.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    columns(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given a fixed now, when --since is an age or an RFC 3339 time, then it is that time;
    /// anything else is refused naming the flag.
    #[test]
    fn times_are_ages_or_rfc3339() {
        let now = DateTime::parse_from_rfc3339("2026-01-31T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s| time("since", s, now).unwrap().to_rfc3339();
        assert_eq!(at("30m"), "2026-01-31T11:30:00+00:00");
        assert_eq!(at("2d"), "2026-01-29T12:00:00+00:00");
        assert_eq!(at("2026-01-01T00:00:00+01:00"), "2025-12-31T23:00:00+00:00");
        for bad in ["", "7", "7w", "h", "yesterday", "99999999999999999d"] {
            let err = time("since", bad, now).unwrap_err().to_string();
            assert!(err.starts_with("--since"), "{bad:?}: {err}");
        }
    }
}
