//! The `otaas` binary.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "otaas",
    version,
    about = "OpenTelemetry as a Service control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulated collectors speaking OpAMP to a server.
    FleetSim(otaas_server::fleet_sim::FleetSimArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::FleetSim(args) => {
            otaas_server::fleet_sim::run(args).await?;
        }
    }
    Ok(())
}
