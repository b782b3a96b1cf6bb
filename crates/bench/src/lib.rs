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
//! `otaas agent`), `terraform.rs` (Terraform and handshake figures), `console.rs` (the web
//! console's pages and live streams), `report.rs` (the table and the results file).

mod collector;
mod console;
mod error;
mod fleet;
mod plan;
mod procs;
mod report;
mod terraform;

pub use error::BenchError;
pub use plan::{BackendChoice, BenchArgs, BenchName};

use plan::{Backend, Plan};
use procs::{Database, PgDatabase};
use report::Report;

/// Runs the selected benchmarks and prints the table (and writes `--out`).
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    let nofile = procs::nofile_limit();
    let plan = Plan::from_args(&args)?;
    let tools = if plan.terraform || plan.handshake {
        Some(terraform::tools(&plan, &args)?)
    } else {
        None
    };
    let mut report = Report::new(&plan, nofile);
    if plan.console && !plan.backends.contains(&Backend::Sqlite) {
        report
            .notes
            .push("console: skipped, it runs on SQLite only (--backend sqlite or both)".to_owned());
    }
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
        if plan.console && backend == Backend::Sqlite {
            eprintln!("otaas bench: {} web console ...", backend.name());
            let db = dbs.get(backend).await?;
            report
                .console
                .insert(backend, console::run(plan, &db).await?);
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
