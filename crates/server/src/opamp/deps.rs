//! What the OpAMP server is given ([`OpampDeps`]) and its flags ([`OpampConfig`]).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::events::Events;
use crate::fleet::report_limits::ReportLimits;
use crate::insights::Insights;
use crate::limits::AuthFailures;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::rollout::Rollouts;
use crate::store::Store;

/// What the OpAMP server uses: its registry, the store, the engines it feeds (rollouts from
/// group events, insights from own metrics and refusals) and the shared auth parts.
#[derive(Clone)]
pub struct OpampDeps {
    pub store: Arc<dyn Store>,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub agents: Arc<Registry>,
    pub rollouts: Arc<Rollouts>,
    pub cluster: Arc<Cluster>,
    pub insights: Arc<Insights>,
    /// Failed authentications per source address, shared with the REST API.
    pub auth_failures: Arc<AuthFailures>,
    /// SHA-256 hex of the `--admin-token` value, if one was given.
    pub admin_token_hash: Option<Arc<str>>,
    /// Cancelled when the server begins graceful shutdown.
    pub shutdown: CancellationToken,
    /// Refused agent tokens are recorded here.
    pub audit: Arc<crate::audit::Audit>,
}

/// Flags of the OpAMP server (part of `otaas serve`).
#[derive(Clone, Debug, clap::Args)]
pub struct OpampConfig {
    /// Serve agents that present no token (a lab setting). By default every agent, and every
    /// own-metrics export, must present an active agent enrollment token (`otaas token create`,
    /// `POST /api/v1/tokens`) as `Authorization: Bearer`, or is refused with 401 before any
    /// WebSocket upgrade: without one, anyone who reaches the OpAMP listener and claims a
    /// group's labels would be handed that group's config, secrets included. A token that is
    /// presented is checked even with this flag.
    #[arg(
        long,
        env = "OTAAS_ALLOW_ANONYMOUS_AGENTS",
        conflicts_with = "require_agent_token"
    )]
    pub allow_anonymous_agents: bool,
    /// Agents must present a token: the default since anonymous agents became opt-in; kept so
    /// existing command lines and unit files keep working.
    #[arg(long, env = "OTAAS_REQUIRE_AGENT_TOKEN", hide = true)]
    pub require_agent_token: bool,
    /// Largest OpAMP message accepted, after decompression (WebSocket: close 1009; HTTP: 413).
    #[arg(long, env = "OTAAS_OPAMP_MAX_MESSAGE_BYTES", default_value_t = 16 << 20)]
    pub opamp_max_message_bytes: usize,
    /// Heartbeat interval offered to agents that report heartbeats; an agent silent for three
    /// intervals is marked disconnected. 0 = offer none.
    #[arg(long, env = "OTAAS_OPAMP_HEARTBEAT_SECONDS", default_value_t = 30)]
    pub opamp_heartbeat_seconds: u64,
    /// Most WebSocket agents served at once (0 = no limit); beyond it the upgrade is answered
    /// 503 with `Retry-After`, so a reconnect storm is spread out instead of overloading us.
    #[arg(long, env = "OTAAS_OPAMP_MAX_CONNECTIONS", default_value_t = 0)]
    pub opamp_max_connections: usize,
    /// Open connections allowed per source IP address on the OpAMP listener; one more gets a
    /// single `429 rate_limited` response (JSON body, `Retry-After`) before any upgrade and is
    /// closed. Agents behind one NAT address share it. 0 disables the limit.
    #[arg(long, env = "OTAAS_OPAMP_MAX_CONNS_PER_IP", default_value_t = 1024)]
    pub opamp_max_conns_per_ip: usize,
    /// New agents admitted per second, sustained (WebSocket upgrades, and HTTP polls from agents
    /// not connected yet); beyond it they get `503` with a `Retry-After` spread over time, so
    /// a fleet reconnecting after a restart comes back in waves. 0 disables the limit.
    #[arg(long, env = "OTAAS_OPAMP_ADMIT_RATE", default_value_t = 500.0)]
    pub opamp_admit_rate: f64,
    /// New agents admitted at once before `--opamp-admit-rate` applies (bucket size).
    #[arg(long, env = "OTAAS_OPAMP_ADMIT_BURST", default_value_t = 2000)]
    pub opamp_admit_burst: u32,
    /// PEM certificate chain: serve OpAMP over TLS (`wss://`, `https://`). Without it, OpAMP
    /// uses the API's TLS (`--tls-cert` or `--tls-self-signed`) when that is on.
    #[arg(long, env = "OTAAS_OPAMP_TLS_CERT", requires = "opamp_tls_key")]
    pub opamp_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--opamp-tls-cert`.
    #[arg(long, env = "OTAAS_OPAMP_TLS_KEY", requires = "opamp_tls_cert")]
    pub opamp_tls_key: Option<std::path::PathBuf>,
    /// PEM CA: agents must present a client certificate signed by it (mutual TLS). Needs TLS
    /// on the OpAMP listener.
    #[arg(long, env = "OTAAS_OPAMP_TLS_CLIENT_CA")]
    pub opamp_tls_client_ca: Option<std::path::PathBuf>,
    /// Most attributes (identifying plus non-identifying) in an agent description; a message
    /// with more is refused with a ServerErrorResponse and not applied.
    #[arg(long, env = "OTAAS_OPAMP_MAX_ATTRIBUTES", default_value_t = 256)]
    pub opamp_max_attributes: usize,
    /// Largest agent description attribute: key plus value as text, in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_ATTRIBUTE_BYTES", default_value_t = 4096)]
    pub opamp_max_attribute_bytes: usize,
    /// Largest agent description: all its attributes' keys and values, in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_DESCRIPTION_BYTES", default_value_t = 64 << 10)]
    pub opamp_max_description_bytes: usize,
    /// Deepest health tree an agent may report (the agent itself is level 1).
    #[arg(long, env = "OTAAS_OPAMP_MAX_HEALTH_DEPTH", default_value_t = 8)]
    pub opamp_max_health_depth: usize,
    /// Most nodes in a reported health tree (the agent itself included).
    #[arg(
        long,
        env = "OTAAS_OPAMP_MAX_HEALTH_COMPONENTS",
        default_value_t = 2048
    )]
    pub opamp_max_health_components: usize,
    /// Largest reported health tree, encoded, in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_HEALTH_BYTES", default_value_t = 512 << 10)]
    pub opamp_max_health_bytes: usize,
    /// Most entries (kinds, types, sub-components) in a reported available-components list.
    #[arg(long, env = "OTAAS_OPAMP_MAX_COMPONENTS", default_value_t = 4096)]
    pub opamp_max_components: usize,
    /// Largest reported available-components list, encoded, in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_COMPONENTS_BYTES", default_value_t = 1 << 20)]
    pub opamp_max_components_bytes: usize,
    /// Most files in a reported effective config.
    #[arg(
        long,
        env = "OTAAS_OPAMP_MAX_EFFECTIVE_CONFIG_FILES",
        default_value_t = 16
    )]
    pub opamp_max_effective_config_files: usize,
    /// Largest reported effective config (file names plus bodies), in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_EFFECTIVE_CONFIG_BYTES", default_value_t = 1 << 20)]
    pub opamp_max_effective_config_bytes: usize,
}

impl OpampConfig {
    /// The bounds on agent reports these flags set.
    pub fn report_limits(&self) -> ReportLimits {
        ReportLimits {
            attributes: self.opamp_max_attributes,
            attribute_bytes: self.opamp_max_attribute_bytes,
            description_bytes: self.opamp_max_description_bytes,
            health_depth: self.opamp_max_health_depth,
            health_components: self.opamp_max_health_components,
            health_bytes: self.opamp_max_health_bytes,
            components: self.opamp_max_components,
            components_bytes: self.opamp_max_components_bytes,
            effective_config_files: self.opamp_max_effective_config_files,
            effective_config_bytes: self.opamp_max_effective_config_bytes,
        }
    }
}

impl Default for OpampConfig {
    fn default() -> Self {
        let limits = ReportLimits::default();
        Self {
            allow_anonymous_agents: false,
            require_agent_token: false,
            opamp_max_message_bytes: 16 << 20,
            opamp_heartbeat_seconds: 30,
            opamp_max_connections: 0,
            opamp_max_conns_per_ip: 1024,
            opamp_admit_rate: 500.0,
            opamp_admit_burst: 2000,
            opamp_tls_cert: None,
            opamp_tls_key: None,
            opamp_tls_client_ca: None,
            opamp_max_attributes: limits.attributes,
            opamp_max_attribute_bytes: limits.attribute_bytes,
            opamp_max_description_bytes: limits.description_bytes,
            opamp_max_health_depth: limits.health_depth,
            opamp_max_health_components: limits.health_components,
            opamp_max_health_bytes: limits.health_bytes,
            opamp_max_components: limits.components,
            opamp_max_components_bytes: limits.components_bytes,
            opamp_max_effective_config_files: limits.effective_config_files,
            opamp_max_effective_config_bytes: limits.effective_config_bytes,
        }
    }
}
