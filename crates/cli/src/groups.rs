//! `otaas groups`, `otaas group <name> status|revisions|diff A B` and `otaas agents`: the read
//! paths of a running control plane on the command line, through its REST API, with the
//! endpoint, token and output flags of `discovery.rs`. Each command returns the text to print;
//! `main` prints it.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use otaas_api::{
    Agent, AgentGroup, AgentGroupId, AgentQuery, Client, ClientError, GroupRevisionSummary,
    GroupStatus,
};
use serde::Serialize;

use crate::discovery::{ApiArgs, DiscoveryCmdError, Output, columns, json, parse_selector};

/// Characters of a hash or agent id the tables show.
const SHORT: usize = 12;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadCmdError {
    /// Reaching the server, the flags shared with `otaas discovered`.
    #[error(transparent)]
    Setup(#[from] DiscoveryCmdError),
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error("no agent group is named {0:?} (see `otaas groups`)")]
    NoGroup(String),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ListArgs {
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct GroupArgs {
    /// The agent group's name (or id).
    pub(crate) name: String,
    #[command(subcommand)]
    pub(crate) command: GroupCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum GroupCommand {
    /// Where the group's rollout stands: revision, last good one, agents applied, failed.
    Status(ListArgs),
    /// The group's config revisions, oldest first, with who and what caused each.
    Revisions(ListArgs),
    /// A unified diff of two revisions' collector YAML (secrets redacted).
    Diff(DiffArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct DiffArgs {
    /// The revision to compare from.
    pub(crate) from: i64,
    /// The revision to compare to.
    pub(crate) to: i64,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct AgentsArgs {
    /// Only agents with these labels, `k=v,k2=v2` (all must match).
    #[arg(long)]
    pub(crate) selector: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

/// `otaas groups`.
pub(crate) async fn groups(args: &ListArgs) -> Result<String, ReadCmdError> {
    let groups = args.api.client()?.list_agent_groups().await?;
    match args.output {
        Output::Json => Ok(json(&groups)?),
        Output::Table => Ok(groups_table(&groups)),
    }
}

/// `otaas group <name> ...`.
pub(crate) async fn group(args: &GroupArgs) -> Result<String, ReadCmdError> {
    let api = match &args.command {
        GroupCommand::Status(a) | GroupCommand::Revisions(a) => &a.api,
        GroupCommand::Diff(a) => &a.api,
    };
    let client = api.client()?;
    let id = group_id(&client, &args.name).await?;
    match &args.command {
        GroupCommand::Status(a) => {
            let status = client.group_status(id).await?;
            render(a.output, &status, || status_report(&args.name, &status))
        }
        GroupCommand::Revisions(a) => {
            let revisions = client.agent_group_revisions(id).await?;
            render(a.output, &revisions, || revisions_table(&revisions))
        }
        GroupCommand::Diff(a) => {
            let diff = client.agent_group_diff(id, a.from, a.to).await?;
            render(a.output, &diff, || {
                if diff.diff.is_empty() {
                    format!("revisions {} and {} are the same\n", diff.from, diff.to)
                } else {
                    diff.diff.clone()
                }
            })
        }
    }
}

/// `otaas agents`.
pub(crate) async fn agents(args: &AgentsArgs) -> Result<String, ReadCmdError> {
    let selector = args
        .selector
        .as_deref()
        .map(parse_selector)
        .transpose()?
        .unwrap_or_default();
    let client = args.api.client()?;
    let query = AgentQuery {
        selector,
        ..Default::default()
    };
    let agents = client.list_agents(&query).await?;
    match args.output {
        Output::Json => Ok(json(&agents)?),
        Output::Table => {
            let names: BTreeMap<AgentGroupId, String> = client
                .list_agent_groups()
                .await?
                .into_iter()
                .map(|g| (g.id, g.name))
                .collect();
            Ok(agents_table(&agents, &names))
        }
    }
}

fn render<T: Serialize>(
    output: Output,
    value: &T,
    table: impl FnOnce() -> String,
) -> Result<String, ReadCmdError> {
    match output {
        Output::Json => Ok(json(value)?),
        Output::Table => Ok(table()),
    }
}

/// The group named `name`, or with that id.
async fn group_id(client: &Client, name: &str) -> Result<AgentGroupId, ReadCmdError> {
    if let Some(g) = client.find_agent_group(name).await? {
        return Ok(g.id);
    }
    match name.parse::<AgentGroupId>() {
        Ok(id) => match client.get_agent_group(id).await {
            Ok(g) => Ok(g.id),
            Err(e) if e.is_not_found() => Err(ReadCmdError::NoGroup(name.to_string())),
            Err(e) => Err(e.into()),
        },
        Err(_) => Err(ReadCmdError::NoGroup(name.to_string())),
    }
}

fn short(s: &str) -> &str {
    s.get(..SHORT).unwrap_or(s)
}

fn selector(m: &BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "(all agents)".to_string();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `otaas groups` table.
pub(crate) fn groups_table(groups: &[AgentGroup]) -> String {
    if groups.is_empty() {
        return "no agent groups\n".to_string();
    }
    let mut rows = vec![
        ["NAME", "REVISION", "CONFIG", "PIPELINES", "SELECTOR"]
            .map(String::from)
            .to_vec(),
    ];
    for g in groups {
        rows.push(vec![
            g.name.clone(),
            g.config_revision.to_string(),
            short(&g.config_hash).to_string(),
            g.pipeline_ids.len().to_string(),
            selector(&g.selector),
        ]);
    }
    columns(&rows)
}

/// The `otaas group <name> revisions` table.
pub(crate) fn revisions_table(revisions: &[GroupRevisionSummary]) -> String {
    if revisions.is_empty() {
        return "no revisions\n".to_string();
    }
    let mut rows = vec![
        ["REVISION", "CREATED", "CONFIG", "BY", "CAUSE"]
            .map(String::from)
            .to_vec(),
    ];
    for r in revisions {
        let c = &r.cause;
        let cause = match (&c.cause_kind, &c.cause_name) {
            (Some(kind), Some(name)) => match c.cause_revision {
                Some(rev) => format!("{kind} {name} (revision {rev})"),
                None => format!("{kind} {name} (deleted)"),
            },
            _ => "-".to_string(),
        };
        rows.push(vec![
            r.revision.to_string(),
            r.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            short(&r.sha256).to_string(),
            c.token_description.clone().unwrap_or_else(|| "-".into()),
            cause,
        ]);
    }
    columns(&rows)
}

/// The `otaas group <name> status` report: one `key  value` line per fact.
pub(crate) fn status_report(name: &str, s: &GroupStatus) -> String {
    let last_good = match (s.last_good_revision, &s.last_good_config_hash) {
        (Some(r), Some(h)) => format!("{r} ({})", short(h)),
        (Some(r), None) => r.to_string(),
        _ => "-".to_string(),
    };
    let mut rows: Vec<Vec<String>> = vec![
        vec!["group".into(), name.to_string()],
        vec![
            "revision".into(),
            format!("{} ({})", s.revision, short(&s.config_hash)),
        ],
        vec!["state".into(), wire_name(&s.state)],
        vec!["strategy".into(), wire_name(&s.strategy)],
        vec!["last good".into(), last_good],
        vec![
            "agents".into(),
            format!(
                "{} matched, {} applied, {} applying, {} pending, {} failed, {} drifted",
                s.matched, s.applied, s.applying, s.pending, s.failed, s.drifted
            ),
        ],
        vec![
            "health".into(),
            format!("{} healthy, {} unhealthy", s.healthy, s.unhealthy),
        ],
    ];
    if !s.message.is_empty() {
        rows.push(vec!["message".into(), s.message.clone()]);
    }
    for f in &s.failures {
        rows.push(vec![
            "failed".into(),
            format!("{}: {}", f.agent_id, f.message),
        ]);
    }
    columns(&rows)
}

/// The `otaas agents` table; `groups` names the group ids.
pub(crate) fn agents_table(agents: &[Agent], groups: &BTreeMap<AgentGroupId, String>) -> String {
    if agents.is_empty() {
        return "no agents\n".to_string();
    }
    let mut rows = vec![
        ["ID", "GROUP", "STATUS", "CONNECTED", "HEALTHY", "LABELS"]
            .map(String::from)
            .to_vec(),
    ];
    for a in agents {
        let group = match a.group_id {
            Some(id) => groups.get(&id).cloned().unwrap_or_else(|| id.to_string()),
            None => "-".to_string(),
        };
        let healthy = match a.healthy {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        let labels = if a.labels.is_empty() {
            "-".to_string()
        } else {
            selector(&a.labels)
        };
        rows.push(vec![
            short(&a.id).to_string(),
            group,
            wire_name(&a.status),
            if a.connected { "yes" } else { "no" }.to_string(),
            healthy.to_string(),
            labels,
        ]);
    }
    columns(&rows)
}

/// A unit enum's wire name (`in_progress`), for display.
fn wire_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use otaas_api::RevisionCause;

    /// Given revisions caused by a token's pipeline update and by a deletion, when tabled, then
    /// each row names the token's description and the object with its revision or "deleted".
    #[test]
    fn revisions_table_names_who_and_what() {
        let now = chrono::Utc::now();
        let rev = |n: i64, kind: &str, rev: Option<i64>| GroupRevisionSummary {
            revision: n,
            sha256: "0123456789abcdef0123".into(),
            created_at: now,
            cause: RevisionCause {
                token_id: None,
                token_description: Some("ci".into()),
                cause_kind: Some(kind.into()),
                cause_id: Some("x".into()),
                cause_name: Some("checkout".into()),
                cause_revision: rev,
            },
        };
        let t = revisions_table(&[rev(1, "pipeline", Some(3)), rev(2, "endpoint", None)]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("REVISION"), "{t}");
        assert!(
            lines[1].contains("0123456789ab ") && lines[1].contains("ci"),
            "{t}"
        );
        assert!(lines[1].ends_with("pipeline checkout (revision 3)"), "{t}");
        assert!(lines[2].ends_with("endpoint checkout (deleted)"), "{t}");
    }
}
