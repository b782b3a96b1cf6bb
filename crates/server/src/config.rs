//! `otaas serve` configuration: command-line flags with environment fallbacks. The doc comments
//! on the fields are the `--help` text users see.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Default of `--api-max-page-size`: one page of 1,000 agents is about 1 MB of JSON, so a
/// page stays cheap to build and send while Terraform's refresh of 1,000 objects of a kind
/// still takes one request.
pub const DEFAULT_MAX_PAGE_SIZE: usize = 1000;

/// A secret string (token, password): parsed from flags/env, never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// Flags of `otaas serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeConfig {
    /// Address of the REST API and /metrics (use port 0 for any free port; the bound address is
    /// printed on stderr as `otaas: api listening on ADDR`).
    #[arg(long, env = "OTAAS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address of the OpAMP server (`/v1/opamp`, WebSocket and HTTP).
    #[arg(long, env = "OTAAS_OPAMP_LISTEN", default_value = "127.0.0.1:4320")]
    pub opamp_listen: SocketAddr,

    /// Directory for the SQLite database and generated secrets; created on first start.
    #[arg(long, env = "OTAAS_DATA_DIR", default_value = "./otaas-data")]
    pub data_dir: PathBuf,

    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`; default `sqlite://<data-dir>/otaas.db`.
    #[arg(long, env = "OTAAS_DATABASE")]
    pub database: Option<String>,

    /// Admin token for the REST API. Without it, a token is generated on first start and written
    /// to `<data-dir>/admin-token` (mode 0600); only its hash is stored.
    #[arg(long, env = "OTAAS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Largest accepted request body in bytes (larger → 413).
    #[arg(long, env = "OTAAS_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most objects in one page of a `/api/v1` list (`?limit=` above it is lowered to it; the
    /// answer's `next_cursor` leads on). Lists default to 100 per page.
    #[arg(long, env = "OTAAS_API_MAX_PAGE_SIZE", default_value_t = DEFAULT_MAX_PAGE_SIZE, value_parser = page_size)]
    pub api_max_page_size: usize,

    /// This process's name among the replicas sharing a PostgreSQL database: agents' records
    /// say which replica holds them, and two live processes may not use the same id (the
    /// second refuses to start). Letters, digits, `.`, `_`, `-`; at most 64. Default:
    /// `<hostname>-<pid>`.
    #[arg(long, env = "OTAAS_REPLICA_ID")]
    pub replica_id: Option<String>,

    #[command(flatten)]
    pub opamp: crate::opamp::OpampConfig,
    /// Sustained REST API requests per second allowed per token (a token bucket; excess → 429
    /// with `Retry-After`). 0 disables the limit. The default lets Terraform apply thousands of
    /// resources at its default parallelism (about 55 writes a second on loopback) and several
    /// times that without one 429; `otaas bench` counts the 429s of each run.
    #[arg(long, env = "OTAAS_API_RATE_LIMIT", default_value_t = 200.0)]
    pub api_rate_limit: f64,

    /// Requests a token may make at once before `--api-rate-limit` applies (bucket size).
    #[arg(long, env = "OTAAS_API_RATE_BURST", default_value_t = 1000)]
    pub api_rate_burst: u32,

    /// Failed authentications allowed per source IP address per minute (a token bucket) on the
    /// REST API and the OpAMP listener; beyond it the address's requests get 429 with
    /// `Retry-After` until the budget refills. 0 disables the limit.
    #[arg(long, env = "OTAAS_AUTH_FAILURE_LIMIT", default_value_t = 20)]
    pub auth_failure_limit: u32,

    /// Days an audit trail entry is kept; older ones are deleted (checked every 10 minutes).
    #[arg(long, env = "OTAAS_AUDIT_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub audit_retention_days: u32,

    /// Audit trail entries kept at most; the oldest beyond it are deleted (checked every 10
    /// minutes).
    #[arg(long, env = "OTAAS_AUDIT_RETENTION_COUNT", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub audit_retention_count: u64,

    /// Open connections allowed per source IP address on the API listener; further ones get
    /// one `429 rate_limited` response and are closed. 0 disables the limit.
    #[arg(long, env = "OTAAS_MAX_CONNS_PER_IP", default_value_t = 256)]
    pub max_conns_per_ip: usize,

    /// PEM certificate chain for TLS on the API (and OpAMP) listener; needs `--tls-key`.
    #[arg(
        long,
        env = "OTAAS_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `--tls-cert`.
    #[arg(long, env = "OTAAS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve TLS with a certificate from a private CA generated on first start and kept in
    /// `<data-dir>/tls/` (reused across restarts). Give `<data-dir>/tls/ca.pem` to clients (the
    /// provider's `ca_cert_pem`).
    #[arg(long, env = "OTAAS_TLS_SELF_SIGNED", default_value_t = false)]
    pub tls_self_signed: bool,

    /// Extra DNS names or IP addresses for the generated certificate (besides `localhost`,
    /// `127.0.0.1`, `::1` and the listen address); comma-separated in the environment.
    #[arg(long, env = "OTAAS_TLS_SAN", value_delimiter = ',')]
    pub tls_san: Vec<String>,

    #[command(flatten)]
    pub policy: crate::policy::PolicyFlags,

    /// Group config revisions kept per agent group: older ones are deleted (about once a
    /// minute), except the latest, any revision an agent runs or is being sent, and the
    /// rollout's last good revision. At least 1.
    #[arg(long, env = "OTAAS_REVISION_RETENTION_COUNT", default_value_t = crate::retention::DEFAULT_COUNT, value_parser = retention_count)]
    pub revision_retention_count: usize,

    /// Group config revisions older than this many days are deleted (with the same exceptions
    /// as `--revision-retention-count`; a revision goes when either limit says so). 0: no age
    /// limit.
    #[arg(long, env = "OTAAS_REVISION_RETENTION_DAYS", default_value_t = 0)]
    pub revision_retention_days: u32,
}

/// `--revision-retention-count`: 1 to 1,000,000.
fn retention_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a whole number from 1 to 1000000")),
    }
}

/// `--api-max-page-size`: 1 to 100,000.
fn page_size(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a whole number from 1 to 100000")),
    }
}

impl ServeConfig {
    /// The revision retention in effect.
    pub fn retention(&self) -> crate::retention::Policy {
        crate::retention::Policy {
            count: self.revision_retention_count,
            days: self.revision_retention_days,
        }
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        database_url(self.database.as_deref(), &self.data_dir)
    }

    /// A configuration for tests and embedding: loopback, port 0, the given data dir.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: ([127, 0, 0, 1], 0).into(),
            opamp_listen: ([127, 0, 0, 1], 0).into(),
            data_dir: data_dir.into(),
            database: None,
            admin_token: None,
            max_body_bytes: 1024 * 1024,
            api_max_page_size: DEFAULT_MAX_PAGE_SIZE,
            replica_id: None,
            opamp: crate::opamp::OpampConfig::default(),
            policy: crate::policy::PolicyFlags::default(),
            api_rate_limit: 200.0,
            api_rate_burst: 1000,
            auth_failure_limit: 20,
            audit_retention_days: 90,
            audit_retention_count: 1_000_000,
            max_conns_per_ip: 256,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            tls_san: Vec::new(),
            revision_retention_count: crate::retention::DEFAULT_COUNT,
            revision_retention_days: 0,
        }
    }
}

/// The replica id in effect: `--replica-id`, checked, or `<hostname>-<pid>`.
pub fn replica_id(given: Option<&str>) -> Result<String, String> {
    match given {
        Some(id) => {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(format!(
                    "--replica-id {id:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
                ));
            }
            Ok(id.to_owned())
        }
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_default();
            // Keep only what a replica id may hold (a hostname may be long or odd).
            let host: String = host
                .trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .take(48)
                .collect();
            let host = if host.is_empty() {
                "otaas".to_owned()
            } else {
                host
            };
            Ok(format!("{host}-{}", std::process::id()))
        }
    }
}

/// `--database` or the default SQLite file under the data dir.
pub fn database_url(database: Option<&str>, data_dir: &std::path::Path) -> String {
    match database {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", data_dir.join("otaas.db").display()),
    }
}
