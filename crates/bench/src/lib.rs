//! `otaas bench`: starts what it needs on loopback (`otaas serve` on SQLite and on PostgreSQL,
//! `otaas fleet-sim` processes, the Terraform engine with our provider and the null provider),
//! measures, stops everything and prints one table: each figure, its target and the baseline
//! measured in the same run. `--out` also writes the table with the machine's description.
//!
//! The servers run with the defaults a user gets, but for the OpAMP per-address cap (the whole
//! simulated fleet is 127.0.0.1); the table says so.
//!
//! Files: `procs.rs` (child processes, databases, `/proc` readings), `fleet.rs` (idle fleet,
//! push fan-out, HTTP fleet, idle fleet over TLS), `collector.rs` (a real collector under
//! `otaas agent`), `terraform.rs` (Terraform and handshake figures), `report.rs` (the table and
//! the results file).

mod collector;
mod fleet;
mod procs;
mod report;
mod terraform;

use std::path::PathBuf;
use std::time::Duration;

use procs::{Database, PgDatabase};
use report::Report;

/// The benchmarks, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum BenchName {
    /// Idle WebSocket fleet: server RSS per agent and CPU.
    Idle,
    /// A new revision to 1,000 and to N WebSocket agents (all at once).
    Push,
    /// N HTTP agents polling every 30 s: server CPU.
    Http,
    /// `terraform apply` and `plan` of 500 and of 1,000 `otaas_pipeline` vs as many
    /// `null_resource`.
    Terraform,
    /// Provider start to handshake vs the null provider.
    Handshake,
    /// Idle WebSocket fleet over TLS (`wss://`): server RSS per agent.
    Tls,
    /// A real collector under `otaas agent`: new revision to APPLIED.
    Collector,
}

/// Which stores the fleet and Terraform figures run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

/// `otaas bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Agents of the idle, push and HTTP fleets (default 10,000; 200 with `--quick`).
    #[arg(long)]
    pub agents: Option<usize>,
    /// Run only these benchmarks (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<BenchName>,
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    pub backend: BackendChoice,
    /// Small sizes and short windows: proves the whole run works (CI), the figures mean little.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results with the machine's description to this file (Markdown).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// PostgreSQL server to create the run's databases on (each run makes its own and drops it).
    #[arg(
        long,
        env = "OTAAS_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
    /// The Terraform engine.
    #[arg(long, env = "OTAAS_TERRAFORM")]
    pub terraform: Option<PathBuf>,
    /// The Go null provider binary (protocol 5), the Terraform baseline.
    #[arg(long, env = "OTAAS_NULL_PROVIDER")]
    pub null_provider: Option<PathBuf>,
    /// Our provider binary (default: `terraform-provider-otaas` next to this `otaas`).
    #[arg(long)]
    pub provider: Option<PathBuf>,
    /// Sizes of the Terraform configurations (comma-separated; default 500,1000; 10,20 with
    /// `--quick`).
    #[arg(long, value_delimiter = ',')]
    pub resources: Vec<usize>,
    /// Runs of each Terraform size, null provider and ours alternately; the medians count
    /// (default 3; 1 with `--quick`).
    #[arg(long)]
    pub terraform_reps: Option<usize>,
    /// The OpenTelemetry Collector binary for the `collector` benchmark (scripts/setup.sh
    /// installs one); without it that benchmark is skipped with a note.
    #[arg(long, env = "OTAAS_COLLECTOR")]
    pub collector: Option<PathBuf>,
    /// Most simulated agents per fleet-sim process (each holds one socket per agent; a process
    /// here may hold at most 20,000 open files).
    #[arg(long, default_value_t = 5000)]
    pub agents_per_process: usize,
}

/// An error of the run, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

impl BenchError {
    pub(crate) fn new(what: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        Self(format!("{what}: {err}"))
    }
    pub(crate) fn msg(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// The run's settings, resolved from the flags.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) exe: PathBuf,
    pub(crate) agents: usize,
    pub(crate) push_sizes: Vec<usize>,
    pub(crate) idle: bool,
    pub(crate) push: bool,
    pub(crate) http: bool,
    pub(crate) terraform: bool,
    pub(crate) handshake: bool,
    pub(crate) tls: bool,
    pub(crate) collector: bool,
    pub(crate) quick: bool,
    /// Heartbeat offered by the servers, which is also the HTTP polling interval.
    pub(crate) heartbeat_seconds: u64,
    /// Pause before each measurement (start-up, connect bursts).
    pub(crate) settle: Duration,
    /// CPU measurement window: one heartbeat period, so every agent's heartbeat (or poll) is
    /// in it exactly once.
    pub(crate) window: Duration,
    /// Sizes of the Terraform configurations.
    pub(crate) resources: Vec<usize>,
    /// Alternating runs per size (medians).
    pub(crate) terraform_reps: usize,
    pub(crate) handshake_reps: usize,
    /// Revisions pushed to the real collector (and to its simulated baseline); the median counts.
    pub(crate) collector_reps: usize,
    pub(crate) agents_per_process: usize,
    pub(crate) backends: Vec<Backend>,
}

/// A store the fleet figures run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Self, BenchError> {
        let exe =
            std::env::current_exe().map_err(|e| BenchError::new("locating the otaas binary", e))?;
        let quick = args.quick;
        let agents = args.agents.unwrap_or(if quick { 200 } else { 10_000 });
        if agents == 0 {
            return Err(BenchError::msg("--agents must be at least 1"));
        }
        let small = if quick { agents.div_ceil(10) } else { 1000 };
        let mut push_sizes = vec![small.min(agents), agents];
        push_sizes.dedup();
        let selected = |b| args.only.is_empty() || args.only.contains(&b);
        let heartbeat_seconds = if quick { 2 } else { 30 };
        Ok(Self {
            exe,
            agents,
            push_sizes,
            idle: selected(BenchName::Idle),
            push: selected(BenchName::Push),
            http: selected(BenchName::Http),
            terraform: selected(BenchName::Terraform),
            handshake: selected(BenchName::Handshake),
            tls: selected(BenchName::Tls),
            collector: selected(BenchName::Collector),
            quick,
            heartbeat_seconds,
            settle: Duration::from_secs(if quick { 1 } else { 5 }),
            window: Duration::from_secs(heartbeat_seconds),
            resources: match (&args.resources[..], quick) {
                ([], true) => vec![10, 20],
                ([], false) => vec![500, 1000],
                (sizes, _) if sizes.contains(&0) => {
                    return Err(BenchError::msg("--resources sizes must be at least 1"));
                }
                (sizes, _) => sizes.to_vec(),
            },
            terraform_reps: args
                .terraform_reps
                .unwrap_or(if quick { 1 } else { 3 })
                .max(1),
            handshake_reps: if quick { 3 } else { 15 },
            collector_reps: if quick { 1 } else { 5 },
            agents_per_process: args.agents_per_process.clamp(1, 19_000),
            backends: match args.backend {
                BackendChoice::Sqlite => vec![Backend::Sqlite],
                BackendChoice::Postgres => vec![Backend::Postgres],
                BackendChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
            },
        })
    }

    fn tools(&self, args: &BenchArgs) -> Result<terraform::Tools, BenchError> {
        let missing = |flag: &str, env: &str| {
            BenchError::msg(format!(
                "{flag} (or {env}) is needed for the terraform and handshake benchmarks; \
                 scripts/setup.sh installs the tools and writes .tools/env.sh (or use --only)"
            ))
        };
        let terraform = args
            .terraform
            .clone()
            .ok_or_else(|| missing("--terraform", "OTAAS_TERRAFORM"))?;
        let null_provider = args
            .null_provider
            .clone()
            .ok_or_else(|| missing("--null-provider", "OTAAS_NULL_PROVIDER"))?;
        let provider = args.provider.clone().unwrap_or_else(|| {
            self.exe
                .parent()
                .map(|d| d.join("terraform-provider-otaas"))
                .unwrap_or_default()
        });
        for (what, path) in [
            ("--terraform", &terraform),
            ("--null-provider", &null_provider),
            ("--provider", &provider),
        ] {
            if !path.is_file() {
                return Err(BenchError::msg(format!(
                    "{what} {}: no such file (build the provider with `cargo build --release`)",
                    path.display()
                )));
            }
        }
        Ok(terraform::Tools {
            terraform,
            null_provider,
            provider,
        })
    }
}

/// Runs the selected benchmarks and prints the table (and writes `--out`).
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    let nofile = procs::nofile_limit();
    let plan = Plan::from_args(&args)?;
    let tools = if plan.terraform || plan.handshake {
        Some(plan.tools(&args)?)
    } else {
        None
    };
    let mut report = Report::new(&plan, nofile);
    if cfg!(debug_assertions) {
        eprintln!(
            "otaas bench: warning: this is a debug build; real figures need `cargo build --release`"
        );
    }

    let mut databases = Vec::new();
    let result = run_all(&plan, &args, tools.as_ref(), &mut report, &mut databases).await;
    for db in databases {
        db.drop_now().await;
    }
    result?;
    report.finish();
    print!("{}", report.table());
    if let Some(out) = &args.out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| BenchError::new(format!("creating {}", dir.display()), e))?;
        }
        std::fs::write(out, report.markdown())
            .map_err(|e| BenchError::new(format!("writing {}", out.display()), e))?;
        eprintln!("otaas bench: results written to {}", out.display());
    }
    Ok(())
}

async fn run_all(
    plan: &Plan,
    args: &BenchArgs,
    tools: Option<&terraform::Tools>,
    report: &mut Report,
    databases: &mut Vec<PgDatabase>,
) -> Result<(), BenchError> {
    // One database per server: each server starts on an empty store.
    let mut dbs = Databases {
        admin_url: &args.postgres_url,
        made: 0,
        databases,
    };
    if let (Some(tools), true) = (tools, plan.handshake) {
        eprintln!("otaas bench: provider handshakes ...");
        report.handshake = Some(terraform::handshakes(tools, plan.handshake_reps).await?);
    }
    for &backend in &plan.backends {
        let mut results = fleet::FleetResults::default();
        if plan.idle || plan.push {
            eprintln!("otaas bench: {} WebSocket fleet ...", backend.name());
            let db = dbs.get(backend).await?;
            fleet::run_ws(plan, &db, &mut results).await?;
        }
        if plan.http {
            eprintln!("otaas bench: {} HTTP fleet ...", backend.name());
            let db = dbs.get(backend).await?;
            fleet::run_http(plan, &db, &mut results).await?;
        }
        if plan.tls {
            eprintln!(
                "otaas bench: {} WebSocket fleet over TLS ...",
                backend.name()
            );
            let db = dbs.get(backend).await?;
            fleet::run_tls_idle(plan, &db, &mut results).await?;
        }
        report.fleets.insert(backend, results);
        if plan.collector {
            match &args.collector {
                Some(path) if path.is_file() => {
                    eprintln!("otaas bench: {} real collector ...", backend.name());
                    let db = dbs.get(backend).await?;
                    let r = collector::run(plan, &db, path, plan.collector_reps).await?;
                    report.collector.insert(backend, r);
                }
                _ => report.notes.push(
                    "collector: skipped, no collector binary (--collector or OTAAS_COLLECTOR; \
                     scripts/setup.sh installs one)"
                        .to_owned(),
                ),
            }
        }
        if let (Some(tools), true) = (tools, plan.terraform) {
            for &n in &plan.resources {
                let (mut nulls, mut ours) = (Vec::new(), Vec::new());
                for rep in 1..=plan.terraform_reps {
                    eprintln!(
                        "otaas bench: {} terraform, {n} null_resource then {n} otaas_pipeline \
                         (run {rep} of {}) ...",
                        backend.name(),
                        plan.terraform_reps
                    );
                    // The baseline right before, so both see the same machine load.
                    nulls.push(terraform::measure_null(tools, n).await?);
                    let db = dbs.get(backend).await?;
                    let server =
                        procs::Server::start(&plan.exe, &db, &plan.server_options(None)).await?;
                    let times = terraform::measure_otaas(tools, &server, n).await;
                    server.child.stop().await;
                    ours.push(times?);
                }
                report
                    .null_tf
                    .insert((backend, n), terraform::TfTimes::median(&nulls));
                report
                    .otaas_tf
                    .insert((backend, n), terraform::TfTimes::median(&ours));
            }
        }
    }
    Ok(())
}

/// Makes a fresh store for each server and remembers the PostgreSQL databases to drop.
struct Databases<'a> {
    admin_url: &'a str,
    made: u32,
    databases: &'a mut Vec<PgDatabase>,
}

impl Databases<'_> {
    async fn get(&mut self, backend: Backend) -> Result<Database, BenchError> {
        match backend {
            Backend::Sqlite => Ok(Database::Sqlite),
            Backend::Postgres => {
                self.made += 1;
                let db = PgDatabase::create(self.admin_url, self.made).await?;
                let url = db.url.clone();
                self.databases.push(db);
                Ok(Database::Postgres(url))
            }
        }
    }
}
