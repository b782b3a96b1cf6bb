//! `otaas token create`: mints a token directly in the database (the same `--data-dir` /
//! `--database` as `otaas serve`), prints it once on stdout and stores only its hash. Works
//! while the server runs (SQLite WAL allows a second writer process; PostgreSQL is shared).

use std::path::PathBuf;

use otaas_api::TokenScope;

use crate::auth;
use crate::config::database_url;
use crate::serve::{ServeError, ensure_data_dir};
use crate::store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeArg {
    /// OpAMP agent enrollment.
    Agent,
    /// Full REST API access.
    Admin,
}

/// Flags of `otaas token create`.
#[derive(Clone, Debug, clap::Args)]
pub struct TokenCreateArgs {
    /// What the token may do.
    #[arg(long, value_enum, default_value = "agent")]
    pub scope: ScopeArg,
    /// A note kept with the token's hash.
    #[arg(long, default_value = "")]
    pub description: String,
    #[arg(long, env = "OTAAS_DATA_DIR", default_value = "./otaas-data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "OTAAS_DATABASE")]
    pub database: Option<String>,
}

/// Creates the token; returns it so `main` prints it.
pub async fn create(args: &TokenCreateArgs) -> Result<String, ServeError> {
    if args.database.is_none() {
        ensure_data_dir(&args.data_dir)?;
    }
    let store = store::open(&database_url(args.database.as_deref(), &args.data_dir)).await?;
    let scope = match args.scope {
        ScopeArg::Agent => TokenScope::Agent,
        ScopeArg::Admin => TokenScope::Admin,
    };
    let token = auth::generate_token(scope);
    store
        .create_token(scope, &args.description, &auth::hash_token(&token))
        .await?;
    Ok(token)
}
