//! The `otaas` binary: parses the command line and hands over to the crate of each subcommand
//! (`serve` and `token` to the control plane, `agent`, `fleet-sim` and `bench` to theirs). To add
//! a subcommand: a variant in `Command` and an arm in `run`.
//!
//! `discovered` and `adopt` are REST clients of a running control plane (`discovery.rs`), and
//! so are `audit` (`audit.rs`) and `groups`, `group` and `agents` (`groups.rs`).
//!
//! `agent`, `fleet-sim` and `bench` are cargo features (all on by default):
//! `cargo build -p otaas --no-default-features` builds a control-plane-only `otaas`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use otaas_server::config::ServeConfig;
use otaas_server::token_cmd::TokenCreateArgs;

mod audit;
mod discovery;
mod groups;

#[derive(Parser)]
#[command(
    name = "otaas",
    version,
    about = "OpenTelemetry as a Service: control plane for OpAMP fleets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (REST API, OpAMP server, metrics).
    Serve(ServeConfig),
    /// Manage API and agent enrollment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List the pipelines the connected collectors run (discovered from their effective
    /// configs), whether otaas can adopt them and which otaas objects manage them.
    Discovered(discovery::DiscoveredArgs),
    /// Adopt a discovered pipeline: create the otaas pipeline, endpoints, exporter bindings and
    /// optionally an agent group that render it. `--dry-run` shows the plan only.
    Adopt(discovery::AdoptArgs),
    /// List the agent groups: config revision and hash, pipelines, selector.
    Groups(groups::ListArgs),
    /// One agent group: `status` (its rollout), `revisions` (its config history and who
    /// caused each), `diff A B` (what changed between two revisions).
    Group(groups::GroupArgs),
    /// List the agents the control plane knows (`--selector k=v,...` to filter by labels).
    Agents(groups::AgentsArgs),
    /// The audit trail of a running control plane: every write through its API and every
    /// refused token use (admin token needed).
    Audit(audit::AuditArgs),
    /// Print the version.
    Version,
    /// Simulated collectors speaking OpAMP to a server (JSON lines on stdout).
    #[cfg(feature = "fleet-sim")]
    FleetSim(otaas_fleet_sim::FleetSimArgs),
    /// Run a real OpenTelemetry Collector under OpAMP control (JSON lines on stdout).
    #[cfg(feature = "agent")]
    Agent(otaas_agent::AgentArgs),
    /// Check a collector config as a collector would at start-up (what `fleet-sim` runs on
    /// every config it receives); exits 1 with the collector-like message when refused.
    CheckConfig(otaas_collector::check::CheckConfigArgs),
    /// Benchmarks on loopback (servers, simulated fleets, Terraform); prints a results table.
    #[cfg(feature = "bench")]
    Bench(otaas_bench::BenchArgs),
    /// Print a shell completion script, e.g. `otaas completions bash > /etc/bash_completion.d/otaas`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token in the database and print it once on stdout.
    Create(TokenCreateArgs),
    /// List tokens (metadata only).
    List(otaas_server::token_cmd::TokenListArgs),
    /// Revoke a token by id.
    Revoke(otaas_server::token_cmd::TokenRevokeArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OTAAS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// One line per failure: each cause once (our error types already embed their sources in
/// their messages, so repeated text is skipped), no backtrace.
fn report(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let c = cause.to_string();
        if !msg.contains(&c) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&c);
        }
    }
    msg
}

/// Raises the soft open-files limit to the hard limit, so this process (and the children that
/// inherit it) can hold as many sockets as the machine allows.
fn raise_nofile_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_tracing();
    // A server or simulator with thousands of agents needs a socket each: use every file
    // descriptor the hard limit allows, not the 1024 a shell often gives by default.
    raise_nofile_limit();
    if let Err(err) = run(cli).await {
        eprintln!("otaas: error: {}", report(&err));
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => otaas_server::serve::run(config)
            .await
            .context("otaas serve")?,
        Command::Token(TokenCommand::Create(args)) => {
            let token = otaas_server::token_cmd::create(&args)
                .await
                .context("otaas token create")?;
            println!("{token}");
        }
        Command::Token(TokenCommand::List(args)) => {
            let table = otaas_server::token_cmd::list(&args)
                .await
                .context("otaas token list")?;
            print!("{table}");
        }
        Command::Token(TokenCommand::Revoke(args)) => {
            otaas_server::token_cmd::revoke(&args)
                .await
                .context("otaas token revoke")?;
            eprintln!("otaas: token {} revoked", args.id.trim());
        }
        Command::CheckConfig(args) => {
            otaas_collector::check::check_config(&args).context("otaas check-config")?;
            println!("config ok");
        }
        Command::Discovered(args) => {
            print!(
                "{}",
                discovery::discovered(&args)
                    .await
                    .context("otaas discovered")?
            );
        }
        Command::Adopt(args) => {
            print!("{}", discovery::adopt(&args).await.context("otaas adopt")?);
        }
        Command::Groups(args) => {
            print!("{}", groups::groups(&args).await.context("otaas groups")?);
        }
        Command::Group(args) => {
            print!("{}", groups::group(&args).await.context("otaas group")?);
        }
        Command::Agents(args) => {
            print!("{}", groups::agents(&args).await.context("otaas agents")?);
        }
        Command::Audit(args) => {
            print!("{}", audit::audit(&args).await.context("otaas audit")?);
        }
        Command::Version => println!("otaas {}", env!("CARGO_PKG_VERSION")),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Generated into memory: clap_complete panics on a write error (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "otaas", &mut script);
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(e).context("writing the completion script");
                }
                _ => {}
            }
        }
        #[cfg(feature = "bench")]
        Command::Bench(args) => otaas_bench::run(args).await.context("otaas bench")?,
        #[cfg(feature = "fleet-sim")]
        Command::FleetSim(args) => {
            otaas_fleet_sim::run(args)
                .await
                .context("otaas fleet-sim")?;
        }
        #[cfg(feature = "agent")]
        Command::Agent(args) => {
            otaas_agent::run(args).await.context("otaas agent")?;
        }
    }
    Ok(())
}
