//! Entry point of the provider binary: logging to stderr, then handshake and serve only.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use terraform_provider_otaas::server::{self, Mode, ServeError, handshake};

/// Registry address used in debug-mode reattach instructions.
const PROVIDER_ADDRESS: &str = "registry.terraform.io/otaas/otaas";

/// Log lines as go-plugin's host parses them: `[LEVEL] message key=value`, so `TF_LOG` shows
/// them at the right level.
struct HclogLines;

impl<S, N> FormatEvent<S, N> for HclogLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::TRACE => "TRACE",
            Level::DEBUG => "DEBUG",
            Level::INFO => "INFO",
            Level::WARN => "WARN",
            Level::ERROR => "ERROR",
        };
        write!(writer, "[{level}] {}: ", event.metadata().target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OTAAS_PROVIDER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter)
        .event_format(HclogLines)
        .init();

    let mode = if std::env::args().skip(1).any(|a| a == "--debug") {
        Mode::Debug
    } else {
        Mode::Managed
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(server::serve(
        terraform_provider_otaas::registry(),
        mode,
        PROVIDER_ADDRESS,
    ));
    match result {
        Ok(()) => {
            // Do not wait for lingering connections: Terraform kills us 2 s after Shutdown.
            runtime.shutdown_background();
            std::process::exit(0);
        }
        Err(ServeError::Handshake(handshake::HandshakeError::NotAPlugin)) => {
            eprintln!("{}", handshake::NOT_A_PLUGIN_MESSAGE);
            std::process::exit(1);
        }
        Err(e) => Err(e.into()),
    }
}
