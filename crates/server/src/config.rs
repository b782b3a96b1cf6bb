//! `otaas serve` configuration: command-line flags with environment fallbacks. The doc comments
//! on the fields are the `--help` text users see.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

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

    #[command(flatten)]
    pub opamp: crate::opamp::OpampConfig,
}

impl ServeConfig {
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
            opamp: crate::opamp::OpampConfig::default(),
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
