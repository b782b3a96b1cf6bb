//! `otaas discovered` and `otaas adopt`: the pipelines a running control plane discovered on its
//! collectors, and adopting one, through its REST API (the same endpoint and token variables as
//! the Terraform provider). Each command returns the text to print; `main` prints it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use otaas_api::discovery::{AdoptGroup, AdoptRequest, Adoption, DiscoveredPipeline};
use otaas_api::{Client, ClientConfig, ClientError};
use serde::Serialize;

/// Characters of a discovered pipeline id the table shows; `otaas adopt` takes such a prefix.
pub(crate) const SHORT_ID: usize = 12;

/// How long one command keeps retrying a busy or unreachable server.
const CLI_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum DiscoveryCmdError {
    #[error("no control plane given: pass --endpoint URL or set OTAAS_ENDPOINT")]
    NoEndpoint,
    #[error("reading the CA certificate {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error("--selector {0:?}: expected KEY=VALUE pairs separated by commas")]
    Selector(String),
    /// Carries nothing of what was given: it may be the secret value itself.
    #[error("--secret expects NAME=VALUE with a non-empty NAME (what was given is not repeated)")]
    Secret,
    /// Names the line, never its content (it may hold the value).
    #[error("--secrets-file {path}: line {line} is not NAME=VALUE with a non-empty NAME")]
    SecretsLine { path: String, line: usize },
    #[error("--secrets-file {path}: {source}")]
    SecretsFile {
        path: String,
        source: std::io::Error,
    },
    #[error("--selector only applies to the agent group: give --group NAME too")]
    SelectorWithoutGroup,
    #[error("{0:?} is not a discovered pipeline id (hex digits, as `otaas discovered` shows them)")]
    InvalidId(String),
    #[error("no discovered pipeline id starts with {0:?} (see `otaas discovered`)")]
    NoMatch(String),
    #[error(
        "{prefix:?} is ambiguous: {count} discovered pipeline ids start with it; give more digits"
    )]
    Ambiguous { prefix: String, count: usize },
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How to reach the control plane.
#[derive(Debug, Clone, Args)]
pub(crate) struct ApiArgs {
    /// Base URL of the otaas REST API, e.g. `https://otaas.internal:8080`.
    #[arg(long, env = "OTAAS_ENDPOINT")]
    pub(crate) endpoint: String,
    /// API token sent as `Authorization: Bearer`.
    #[arg(long, env = "OTAAS_TOKEN", hide_env_values = true, default_value = "")]
    pub(crate) token: String,
    /// PEM file of the CA to trust for the endpoint (a server with a private CA).
    #[arg(long, env = "OTAAS_CA_CERT_FILE")]
    pub(crate) ca_cert_file: Option<PathBuf>,
}

impl ApiArgs {
    pub(crate) fn client(&self) -> Result<Client, DiscoveryCmdError> {
        if self.endpoint.trim().is_empty() {
            return Err(DiscoveryCmdError::NoEndpoint);
        }
        let mut config = ClientConfig::new(self.endpoint.trim(), self.token.clone());
        // Someone is waiting at a terminal: report a down server after a short while, not after
        // the five minutes the provider rides out for a large plan.
        config.retry_for = CLI_RETRY_FOR;
        if let Some(path) = &self.ca_cert_file {
            config.ca_cert_pem = Some(std::fs::read_to_string(path).map_err(|source| {
                DiscoveryCmdError::CaFile {
                    path: path.clone(),
                    source,
                }
            })?);
        }
        Ok(Client::new(config)?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum Output {
    /// Aligned columns for a person.
    #[default]
    Table,
    /// The API's JSON, for scripts.
    Json,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct DiscoveredArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct AdoptArgs {
    /// The discovered pipeline's id, or a unique prefix of it (the table's 12 characters).
    pub(crate) id: String,
    /// Show the plan (objects, secrets, what changes on the agents); create nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Name of the otaas pipeline (default: the suggested name).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Also create an agent group of this name for the agents running the pipeline.
    #[arg(long)]
    pub(crate) group: Option<String>,
    /// The group's selector, `k=v,k2=v2` (default: the labels all those agents share).
    #[arg(long)]
    pub(crate) selector: Option<String>,
    /// A secret value the agents' config holds, by the name the plan gives it; repeatable.
    /// The value is visible to other users of the host (process list): prefer --secrets-file.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub(crate) secrets: Vec<String>,
    /// A file of `NAME=VALUE` lines (blank lines and `#` comments skipped), or `-` for standard
    /// input: the secret values, kept out of the process list. `--secret` wins for a name given
    /// both ways.
    #[arg(long = "secrets-file", value_name = "FILE")]
    pub(crate) secrets_file: Option<PathBuf>,
    /// Adopt even though the group would change the config of some agents.
    #[arg(long)]
    pub(crate) accept_changes: bool,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

/// `otaas discovered`.
pub(crate) async fn discovered(args: &DiscoveredArgs) -> Result<String, DiscoveryCmdError> {
    let found = args.api.client()?.list_discovered_pipelines().await?;
    match args.output {
        Output::Json => json(&found),
        Output::Table => Ok(discovered_table(&found)),
    }
}

/// `otaas adopt`.
pub(crate) async fn adopt(args: &AdoptArgs) -> Result<String, DiscoveryCmdError> {
    let request = adopt_request(args)?;
    let client = args.api.client()?;
    let id = resolve_id(&client, &args.id).await?;
    let adoption = client.adopt_discovered_pipeline(&id, &request).await?;
    match args.output {
        Output::Json => json(&adoption),
        Output::Table => Ok(adoption_report(&adoption)),
    }
}

pub(crate) fn json<T: Serialize>(v: &T) -> Result<String, DiscoveryCmdError> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

/// `NAME=VALUE` lines of a secrets file; blank lines and `#` comments are skipped, values keep
/// any `=` and surrounding spaces but lose a trailing `\r`.
fn secrets_from(text: &str, path: &str) -> Result<BTreeMap<String, String>, DiscoveryCmdError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                out.insert(name.trim().to_string(), value.to_string());
            }
            _ => {
                return Err(DiscoveryCmdError::SecretsLine {
                    path: path.to_owned(),
                    line: i + 1,
                });
            }
        }
    }
    Ok(out)
}

/// The request body the flags describe.
pub(crate) fn adopt_request(args: &AdoptArgs) -> Result<AdoptRequest, DiscoveryCmdError> {
    let selector = args.selector.as_deref().map(parse_selector).transpose()?;
    if selector.is_some() && args.group.is_none() {
        return Err(DiscoveryCmdError::SelectorWithoutGroup);
    }
    let mut secrets = match &args.secrets_file {
        None => BTreeMap::new(),
        Some(path) => {
            let shown = path.display().to_string();
            let text = if shown == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(path)
            }
            .map_err(|source| DiscoveryCmdError::SecretsFile {
                path: shown.clone(),
                source,
            })?;
            secrets_from(&text, &shown)?
        }
    };
    for s in &args.secrets {
        match s.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                secrets.insert(name.trim().to_string(), value.to_string());
            }
            _ => return Err(DiscoveryCmdError::Secret),
        }
    }
    Ok(AdoptRequest {
        dry_run: args.dry_run,
        name: args.name.clone(),
        secrets,
        group: args.group.as_ref().map(|name| AdoptGroup {
            name: name.clone(),
            selector,
            pipeline_ids: Vec::new(),
            rollout: Default::default(),
        }),
        accept_changes: args.accept_changes,
    })
}

/// `k=v,k2=v2` as a map; empty pairs (a trailing comma) are skipped.
pub(crate) fn parse_selector(s: &str) -> Result<BTreeMap<String, String>, DiscoveryCmdError> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => return Err(DiscoveryCmdError::Selector(s.to_string())),
        }
    }
    if out.is_empty() {
        return Err(DiscoveryCmdError::Selector(s.to_string()));
    }
    Ok(out)
}

/// The full id for `given`: itself when it is a whole id, else the one discovered pipeline
/// whose id starts with it.
async fn resolve_id(client: &Client, given: &str) -> Result<String, DiscoveryCmdError> {
    let given = given.trim().to_ascii_lowercase();
    if given.is_empty() || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DiscoveryCmdError::InvalidId(given));
    }
    if given.len() >= 64 {
        return Ok(given);
    }
    let found = client.list_discovered_pipelines().await?;
    match_prefix(&given, found.iter().map(|p| p.id.as_str()))
}

fn match_prefix<'a>(
    prefix: &str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<String, DiscoveryCmdError> {
    let matching: Vec<&str> = ids.filter(|id| id.starts_with(prefix)).collect();
    match matching.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(DiscoveryCmdError::NoMatch(prefix.to_string())),
        many => Err(DiscoveryCmdError::Ambiguous {
            prefix: prefix.to_string(),
            count: many.len(),
        }),
    }
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub(crate) fn columns(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..width)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn short_id(id: &str) -> &str {
    id.get(..SHORT_ID).unwrap_or(id)
}

/// The `otaas discovered` table: one row per discovered pipeline.
pub(crate) fn discovered_table(found: &[DiscoveredPipeline]) -> String {
    if found.is_empty() {
        return "no discovered pipelines (no connected collector reports an effective config)\n"
            .to_string();
    }
    let mut rows = vec![
        [
            "ID",
            "NAME",
            "SIGNALS",
            "AGENTS",
            "UNMANAGED",
            "ADOPTABLE",
            "MANAGED BY",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for p in found {
        let adoptable = if p.adoptable {
            "yes".to_string()
        } else {
            let why: Vec<String> = p
                .unrepresentable
                .iter()
                .map(|u| format!("{}: {}", u.part, u.reason))
                .collect();
            format!("no ({})", why.join("; "))
        };
        let managed = if p.managed.is_empty() {
            "-".to_string()
        } else {
            p.managed
                .iter()
                .map(|m| format!("{}/{}", m.group_name, m.pipeline_name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push(vec![
            short_id(&p.id).to_string(),
            p.suggested_name.clone(),
            p.signals
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            p.agents.to_string(),
            p.unmanaged_agents.to_string(),
            adoptable,
            managed,
        ]);
    }
    columns(&rows)
}

/// A unit enum's wire name (`otlp_grpc`), for display.
fn wire_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn labels(m: &BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "(none)".to_string();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `otaas adopt` report: the plan and, when not a dry run, what was created.
pub(crate) fn adoption_report(a: &Adoption) -> String {
    let mut out = String::new();
    let short = short_id(&a.discovered_pipeline_id);
    let _ = writeln!(
        out,
        "{} discovered pipeline {short}",
        if a.dry_run {
            "Plan to adopt"
        } else {
            "Adopted"
        }
    );

    out.push_str("\nObjects:\n");
    let mut rows = vec![vec![
        "  pipeline".to_string(),
        a.pipeline.name.clone(),
        a.pipeline
            .signals
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
    ]];
    for e in &a.endpoints {
        rows.push(vec![
            "  endpoint".to_string(),
            e.name.clone(),
            format!("{} port {}", wire_name(&e.protocol), e.port),
        ]);
    }
    for b in &a.exporter_bindings {
        let kinds: Vec<&str> = b.destinations.iter().map(|d| d.kind.as_str()).collect();
        rows.push(vec![
            "  exporter binding".to_string(),
            b.name.clone(),
            kinds.join(","),
        ]);
    }
    if let Some(g) = &a.group {
        rows.push(vec![
            "  agent group".to_string(),
            g.name.clone(),
            format!("selector {}", labels(&g.selector)),
        ]);
    }
    out.push_str(&columns(&rows));

    if !a.secrets_required.is_empty() {
        out.push_str("\nSecrets required (give each as a NAME=VALUE line of --secrets-file, or with --secret):\n");
        let rows: Vec<Vec<String>> = a
            .secrets_required
            .iter()
            .map(|s| {
                vec![
                    format!("  {}", s.name),
                    s.object.clone(),
                    s.path.clone(),
                    if s.given { "given" } else { "missing" }.to_string(),
                ]
            })
            .collect();
        out.push_str(&columns(&rows));
    }

    if a.equivalent {
        out.push_str("\nEquivalent: yes, otaas renders the same pipelines, components and settings (names aside)\n");
    } else {
        out.push_str("\nEquivalent: no\n");
        for d in &a.differences {
            let _ = writeln!(out, "  - {d}");
        }
    }

    if !a.agents.is_empty() {
        let changing = a.agents.iter().filter(|c| c.changes).count();
        let _ = writeln!(
            out,
            "\nAgents the group matches: {} ({changing} would change)",
            a.agents.len()
        );
        let rows: Vec<Vec<String>> = a
            .agents
            .iter()
            .map(|c| {
                vec![
                    format!("  {}", c.agent_id),
                    if c.changes { "changes" } else { "unchanged" }.to_string(),
                    c.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&columns(&rows));
    }

    if !a.diff.trim().is_empty() {
        out.push_str("\nDiff (agent's config -> otaas rendered):\n");
        for line in a.diff.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }

    match &a.created {
        Some(c) => {
            out.push_str("\nCreated:\n");
            let mut rows = vec![vec!["  pipeline".to_string(), c.pipeline_id.to_string()]];
            rows.extend(
                c.endpoint_ids
                    .iter()
                    .map(|id| vec!["  endpoint".to_string(), id.to_string()]),
            );
            rows.extend(
                c.exporter_binding_ids
                    .iter()
                    .map(|id| vec!["  exporter binding".to_string(), id.to_string()]),
            );
            rows.extend(
                c.group_id
                    .iter()
                    .map(|id| vec!["  agent group".to_string(), id.to_string()]),
            );
            out.push_str(&columns(&rows));
            let _ = writeln!(
                out,
                "\nTo manage them with Terraform: list blocks with \
                 `config {{ discovered_pipeline_id = \"{}\" }}` and \
                 `terraform query -generate-config-out=generated.tf`.",
                a.discovered_pipeline_id
            );
        }
        None if a.dry_run => {
            out.push_str("\nDry run: nothing was created.\n");
        }
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use otaas_api::discovery::{
        AgentChange, DiscoveredHealth, DiscoveredThroughput, ManagedEquivalent, RequiredSecret,
        UnrepresentablePart,
    };
    use otaas_api::{
        AgentGroupId, DestinationSpec, EndpointAuth, EndpointSpec, ExporterBindingSpec, PipelineId,
        PipelineSpec, Protocol, Signal,
    };

    fn discovered(id: &str, name: &str) -> DiscoveredPipeline {
        DiscoveredPipeline {
            id: id.to_string(),
            suggested_name: name.to_string(),
            signals: vec![Signal::Traces, Signal::Logs],
            pipelines: vec![],
            connectors: Default::default(),
            agents: 12,
            unmanaged_agents: 3,
            common_labels: Default::default(),
            managed: vec![],
            unrepresentable: vec![],
            adoptable: true,
            health: DiscoveredHealth::default(),
            throughput: DiscoveredThroughput::default(),
            anomalies: vec![],
            sample_agents: vec![],
        }
    }

    fn args(extra: &[&str]) -> AdoptArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            adopt: AdoptArgs,
        }
        let mut argv = vec!["otaas-adopt", "abc123", "--endpoint", "http://127.0.0.1:1"];
        argv.extend(extra);
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().adopt
    }

    /// Given an adoptable pipeline and one blocked by a connector and managed by a group, when
    /// tabled, then ids are cut to 12 characters, columns line up, and the blocked one says why
    /// and by whom it is managed.
    #[test]
    fn discovered_table_shows_why_not_and_who_manages() {
        let a = discovered(&"a".repeat(64), "logs-app");
        let mut b = discovered(&"b".repeat(64), "traces-with-forward");
        b.adoptable = false;
        b.unrepresentable = vec![UnrepresentablePart {
            part: "connector forward".into(),
            reason: "connectors are not supported".into(),
        }];
        b.managed = vec![ManagedEquivalent {
            group_id: AgentGroupId::new(),
            group_name: "edge".into(),
            pipeline_id: Some(PipelineId::new()),
            pipeline_name: "traces".into(),
            endpoint_ids: vec![],
            exporter_binding_ids: vec![],
        }];
        let table = discovered_table(&[a, b]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("ID            NAME"), "{table}");
        assert!(
            lines[1].starts_with(&format!("{}  logs-app ", "a".repeat(12))),
            "{table}"
        );
        assert!(!table.contains(&"a".repeat(13)), "{table}");
        assert!(lines[1].contains("traces,logs"), "{table}");
        assert!(lines[1].contains("  yes  "), "{table}");
        assert!(lines[1].ends_with("  -"), "{table}");
        assert!(
            lines[2].ends_with("no (connector forward: connectors are not supported)  edge/traces"),
            "{table}"
        );
        // Every row's NAME column starts at the same place.
        let at = lines[0].find("NAME").unwrap();
        assert_eq!(&lines[2][at..at + 6], "traces", "{table}");
    }

    /// Given no discovered pipelines, when tabled, then one line says so instead of a bare
    /// header.
    #[test]
    fn empty_discovery_says_so() {
        assert!(discovered_table(&[]).starts_with("no discovered pipelines"));
    }

    /// Given group, selector and secret flags, when turned into the request, then the selector
    /// is parsed into the group and secrets keep `=` inside their values.
    #[test]
    fn flags_become_the_request() {
        let req = adopt_request(&args(&[
            "--dry-run",
            "--group",
            "edge",
            "--selector",
            "env=prod, region=eu,",
            "--secret",
            "otlphttp_authorization=Bearer a=b",
            "--name",
            "checkout",
        ]))
        .unwrap();
        assert!(req.dry_run);
        assert!(!req.accept_changes);
        assert_eq!(req.name.as_deref(), Some("checkout"));
        let group = req.group.unwrap();
        assert_eq!(group.name, "edge");
        assert_eq!(
            group.selector.unwrap(),
            BTreeMap::from([
                ("env".to_string(), "prod".to_string()),
                ("region".to_string(), "eu".to_string())
            ])
        );
        assert_eq!(
            req.secrets["otlphttp_authorization"],
            "Bearer a=b".to_string()
        );
    }

    /// Given a selector without a group, a malformed selector and secrets without a name, when
    /// turned into the request, then each is refused, and the secret's error repeats nothing
    /// of what was given (it may be the value).
    #[test]
    fn bad_flags_are_refused() {
        assert!(matches!(
            adopt_request(&args(&["--selector", "env=prod"])),
            Err(DiscoveryCmdError::SelectorWithoutGroup)
        ));
        assert!(matches!(
            adopt_request(&args(&["--group", "g", "--selector", "env"])),
            Err(DiscoveryCmdError::Selector(_))
        ));
        for given in ["hunter2", "=hunter2"] {
            let err = adopt_request(&args(&["--secret", given])).unwrap_err();
            assert!(matches!(err, DiscoveryCmdError::Secret), "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    /// Given a secrets file with comments, blank lines, `=` inside a value and a name also
    /// given by --secret, when read, then every value is taken, --secret wins, and a bad line
    /// is refused by its number without repeating it.
    #[test]
    fn secrets_come_from_a_file_and_never_show_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(
            &path,
            "# values the server saw redacted\n\nsasl-password=pa=ss\r\nheaders-authorization=Bearer x\n",
        )
        .unwrap();
        let file = path.display().to_string();
        let req = adopt_request(&args(&[
            "--secrets-file",
            &file,
            "--secret",
            "headers-authorization=Bearer y",
        ]))
        .unwrap();
        assert_eq!(req.secrets["sasl-password"], "pa=ss");
        assert_eq!(req.secrets["headers-authorization"], "Bearer y");
        std::fs::write(&path, "ok=1\nhunter2\n").unwrap();
        let err = adopt_request(&args(&["--secrets-file", &file])).unwrap_err();
        assert!(
            matches!(err, DiscoveryCmdError::SecretsLine { line: 2, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let missing = dir.path().join("missing").display().to_string();
        assert!(matches!(
            adopt_request(&args(&["--secrets-file", &missing])),
            Err(DiscoveryCmdError::SecretsFile { .. })
        ));
    }

    /// Given ids and a prefix matching one, none or two of them, when matched, then only the
    /// single match resolves.
    #[test]
    fn prefixes_resolve_only_when_unique() {
        let ids = ["abc1", "abc2", "def0"];
        assert_eq!(match_prefix("def", ids.into_iter()).unwrap(), "def0");
        assert!(matches!(
            match_prefix("abc", ids.into_iter()),
            Err(DiscoveryCmdError::Ambiguous { count: 2, .. })
        ));
        assert!(matches!(
            match_prefix("fff", ids.into_iter()),
            Err(DiscoveryCmdError::NoMatch(_))
        ));
    }

    fn adoption(dry_run: bool) -> Adoption {
        let pipeline_id = PipelineId::new();
        Adoption {
            dry_run,
            discovered_pipeline_id: "c".repeat(64),
            pipeline: PipelineSpec {
                name: "logs-app".into(),
                description: String::new(),
                signals: vec![Signal::Logs],
                receivers: Default::default(),
                processors: vec![],
                secrets: Default::default(),
                keep_secrets: false,
            },
            endpoints: vec![EndpointSpec {
                name: "logs-app-otlp".into(),
                pipeline_id,
                protocol: Protocol::OtlpGrpc,
                port: 4317,
                tls: None,
                auth: EndpointAuth::None,
                token_version: 1,
                token_grace_seconds: otaas_api::DEFAULT_TOKEN_GRACE_SECONDS,
            }],
            exporter_bindings: vec![ExporterBindingSpec {
                name: "logs-app-out".into(),
                pipeline_id,
                signals: None,
                destinations: vec![DestinationSpec {
                    name: "otlphttp".into(),
                    kind: "otlphttp".into(),
                    endpoint: Some("https://sink.example:4318".into()),
                    headers: Default::default(),
                    keep_headers: false,
                    tls: None,
                    config: serde_json::json!({}),
                }],
                secrets: Default::default(),
                keep_secrets: false,
            }],
            group: None,
            secrets_required: vec![RequiredSecret {
                name: "otlphttp_authorization".into(),
                object: "exporter_binding logs-app-out".into(),
                path: "exporters.otlphttp.headers.authorization".into(),
                given: false,
            }],
            equivalent: false,
            differences: vec!["processor batch: timeout 5s vs 1s".into()],
            agents: vec![
                AgentChange {
                    agent_id: "01".repeat(16),
                    changes: false,
                    reason: "same pipelines".into(),
                },
                AgentChange {
                    agent_id: "02".repeat(16),
                    changes: true,
                    reason: "runs another pipeline too".into(),
                },
            ],
            rendered_yaml: String::new(),
            diff: "-timeout: 5s\n+timeout: 1s\n".into(),
            created: None,
        }
    }

    /// Given a dry-run plan with a missing secret, a difference and one changing agent, when
    /// reported, then each appears: objects, the secret as missing, the difference, the agent
    /// count and which agent changes, the diff, and that nothing was created.
    #[test]
    fn dry_run_report_shows_the_plan() {
        let report = adoption_report(&adoption(true));
        for expected in [
            "Plan to adopt discovered pipeline cccccccccccc",
            "pipeline          logs-app       logs",
            "endpoint          logs-app-otlp  otlp_grpc port 4317",
            "exporter binding  logs-app-out   otlphttp",
            "otlphttp_authorization  exporter_binding logs-app-out  exporters.otlphttp.headers.authorization  missing",
            "Equivalent: no",
            "  - processor batch: timeout 5s vs 1s",
            "Agents the group matches: 2 (1 would change)",
            &format!("{}  changes    runs another pipeline too", "02".repeat(16)),
            "  -timeout: 5s",
            "Dry run: nothing was created.",
        ] {
            assert!(
                report.contains(expected),
                "missing {expected:?} in:\n{report}"
            );
        }
        assert!(!report.contains("Created:"), "{report}");
    }

    /// Given an adoption that created objects, when reported, then the created ids are listed
    /// with the list-block hint naming the full discovered id.
    #[test]
    fn created_report_lists_ids() {
        let mut a = adoption(false);
        let pipeline_id = PipelineId::new();
        let group_id = AgentGroupId::new();
        a.created = Some(otaas_api::discovery::AdoptedObjects {
            pipeline_id,
            endpoint_ids: vec![],
            exporter_binding_ids: vec![],
            group_id: Some(group_id),
        });
        let report = adoption_report(&a);
        assert!(
            report.starts_with("Adopted discovered pipeline"),
            "{report}"
        );
        assert!(
            report.contains(&format!("pipeline     {pipeline_id}")),
            "{report}"
        );
        assert!(
            report.contains(&format!("agent group  {group_id}")),
            "{report}"
        );
        assert!(
            report.contains(&format!("discovered_pipeline_id = \"{}\"", "c".repeat(64))),
            "{report}"
        );
        assert!(!report.contains("Dry run"), "{report}");
    }
}
