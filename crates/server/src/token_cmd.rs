//! `otaas token create|list|revoke`: token management straight on the database (the same
//! `--data-dir` / `--database` as `otaas serve`). `create` prints the token once on stdout and
//! stores only its hash; `list` prints metadata (never tokens or hashes); `revoke` takes effect
//! on the next request. Works while the server runs (SQLite WAL allows a second writer
//! process; PostgreSQL is shared).

use std::path::PathBuf;

use std::str::FromStr;

use otaas_api::{TokenId, TokenScope};

use crate::auth;
use crate::config::database_url;
use crate::data_dir::ensure_data_dir;
use crate::serve::ServeError;
use crate::store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeArg {
    /// OpAMP agent enrollment.
    Agent,
    /// Full REST API access.
    Admin,
    /// REST API reads only (spelt as in the API; `read-only` is accepted too).
    #[value(name = "read_only", alias = "read-only")]
    ReadOnly,
}

/// Where the tokens live (the flags `otaas serve` uses for the same).
#[derive(Clone, Debug, clap::Args)]
pub struct DbArgs {
    #[arg(long, env = "OTAAS_DATA_DIR", default_value = "./otaas-data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "OTAAS_DATABASE")]
    pub database: Option<String>,
}

/// Flags of `otaas token list`.
#[derive(Clone, Debug, clap::Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

/// Flags of `otaas token revoke`.
#[derive(Clone, Debug, clap::Args)]
pub struct TokenRevokeArgs {
    /// The token's id (from `otaas token list` or the create response), not the token.
    pub id: String,
    #[command(flatten)]
    pub db: DbArgs,
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
    /// Lifetime in seconds; without it the token does not expire.
    #[arg(long)]
    pub expires_in: Option<u64>,
    #[arg(long, env = "OTAAS_DATA_DIR", default_value = "./otaas-data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "OTAAS_DATABASE")]
    pub database: Option<String>,
}

/// Creates the token; returns it so `main` prints it.
pub async fn create(args: &TokenCreateArgs) -> Result<String, ServeError> {
    crate::serve::private_umask();
    if args.database.is_none() {
        ensure_data_dir(&args.data_dir)?;
    }
    let store = store::open(&database_url(args.database.as_deref(), &args.data_dir)).await?;
    let scope = match args.scope {
        ScopeArg::Agent => TokenScope::Agent,
        ScopeArg::Admin => TokenScope::Admin,
        ScopeArg::ReadOnly => TokenScope::ReadOnly,
    };
    let now = chrono::Utc::now();
    let expires_at = args
        .expires_in
        .map(|s| now + chrono::Duration::seconds(s.min(i64::MAX as u64) as i64));
    let token = auth::generate_token(scope);
    store
        .create_token_expiring(
            scope,
            &args.description,
            &auth::hash_token(&token),
            now,
            expires_at,
        )
        .await?;
    Ok(token)
}

async fn open(db: &DbArgs) -> Result<std::sync::Arc<dyn store::Store>, ServeError> {
    crate::serve::private_umask();
    if db.database.is_none() {
        ensure_data_dir(&db.data_dir)?;
    }
    Ok(store::open(&database_url(db.database.as_deref(), &db.data_dir)).await?)
}

/// One line per token: `id scope state created_at expires_at description` (tab-separated).
pub async fn list(args: &TokenListArgs) -> Result<String, ServeError> {
    let store = open(&args.db).await?;
    let now = chrono::Utc::now();
    let mut out = String::from("ID\tSCOPE\tSTATE\tCREATED\tEXPIRES\tDESCRIPTION\n");
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for t in store.list_tokens().await? {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            t.id,
            t.scope.as_str(),
            state,
            fmt(t.created_at),
            t.expires_at.map(fmt).unwrap_or_else(|| "-".into()),
            t.description
        ));
    }
    Ok(out)
}

/// Revokes a token by id.
pub async fn revoke(args: &TokenRevokeArgs) -> Result<(), RevokeError> {
    let id = TokenId::from_str(args.id.trim()).map_err(|_| RevokeError::BadId(args.id.clone()))?;
    let store = open(&args.db).await?;
    store
        .revoke_token(id)
        .await
        .map_err(|e| RevokeError::Serve(e.into()))?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("{0:?} is not a token id (ids look like those `otaas token list` prints)")]
    BadId(String),
    #[error(transparent)]
    Serve(#[from] ServeError),
}
