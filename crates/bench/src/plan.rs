//! The flags of `otaas bench` and the run they resolve to ([`Plan`]): which benchmarks, sizes
//! and backends.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::BenchError;

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
    /// The web console with N agents: fleet and group page times (`Server-Timing`), server RSS
    /// and CPU with live streams open.
    Console,
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
    /// Agents of the idle, push, HTTP, TLS and console fleets (default 10,000; 200 with
    /// `--quick`).
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
    pub(crate) console: bool,
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
    /// Timed requests of each console page (after a warm-up).
    pub(crate) console_reps: usize,
    /// Loads of each console page while the live streams are open.
    pub(crate) console_loads: usize,
    /// How long the live streams stay open after those loads (RSS and CPU are read over it).
    pub(crate) console_open: Duration,
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
    pub(crate) fn from_args(args: &BenchArgs) -> Result<Self, BenchError> {
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
            console: selected(BenchName::Console),
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
            console_reps: if quick { 10 } else { 50 },
            console_loads: if quick { 20 } else { 100 },
            console_open: Duration::from_secs(if quick { 2 } else { 5 }),
            agents_per_process: args.agents_per_process.clamp(1, 19_000),
            backends: match args.backend {
                BackendChoice::Sqlite => vec![Backend::Sqlite],
                BackendChoice::Postgres => vec![Backend::Postgres],
                BackendChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
            },
        })
    }
}
