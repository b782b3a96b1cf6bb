//! `otaas serve`: start-up (data dir, store, admin token), the listeners, graceful shutdown.
//!
//! Shutdown: SIGTERM or SIGINT cancels `AppState::shutdown`; axum stops accepting, finishes the
//! requests in flight, and `run` returns. Every background task starts in [`start_tasks`] (the
//! engines' own) or in the OpAMP server (its sessions, flusher and sweeper), from the parts it
//! uses, and stops when `shutdown` is cancelled.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use otaas_api::TokenScope;
use tokio::net::TcpListener;

use axum::extract::FromRef;

use crate::api;
use crate::auth;
use crate::cluster::ClusterTasks;
use crate::config::ServeConfig;
use crate::data_dir::{DataDirError, ensure_data_dir};
use crate::limits::ConnLimiter;
use crate::listener::{self, ListenerOptions};
use crate::opamp::OpampDeps;
use crate::state::AppState;
use crate::store::{self, Store, StoreError};
use crate::tls;
use crate::token_grace::TokenGrace;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("opening store: {0}")]
    Store(#[from] StoreError),
    #[error("writing admin token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Http(std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Config(String),
    #[error("joining the replicas: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// Makes every file and directory this process creates private to its user (0600/0700),
/// whatever umask it was started with. SQLite creates the database, `-wal` and `-shm` files
/// itself with 0644 masked by the umask, so the umask is the one place that covers them.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// When no `--admin-token` is given and the database has no active admin token, mints one,
/// stores its hash and writes it to `<data-dir>/admin-token` (0600).
pub async fn bootstrap_admin_token(
    store: &dyn Store,
    config: &ServeConfig,
) -> Result<(), ServeError> {
    if config.admin_token.is_some() {
        return Ok(());
    }
    let path = config.data_dir.join("admin-token");
    if store.count_active_tokens(TokenScope::Admin).await? > 0 {
        eprintln!(
            "otaas: admin token from an earlier start is in effect (written to {} when it was generated)",
            path.display()
        );
        return Ok(());
    }
    let token = auth::generate_token(TokenScope::Admin);
    write_secret_file(&path, &token).map_err(|source| ServeError::TokenFile {
        path: path.clone(),
        source,
    })?;
    store
        .create_token(
            TokenScope::Admin,
            "generated on first start",
            &auth::hash_token(&token),
        )
        .await?;
    eprintln!(
        "otaas: generated an admin token; it is in {} (mode 0600)",
        path.display()
    );
    Ok(())
}

fn write_secret_file(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` only applies on creation; tighten a pre-existing file too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(f, "{content}")?;
    f.sync_all()
}

/// Opens everything and serves until a signal arrives.
pub async fn run(mut config: ServeConfig) -> Result<(), ServeError> {
    let replica_id =
        crate::config::replica_id(config.replica_id.as_deref()).map_err(ServeError::Config)?;
    config.replica_id = Some(replica_id.clone());
    private_umask();
    let url = config.database_url();
    if url.starts_with("sqlite:") || config.database.is_none() {
        ensure_data_dir(&config.data_dir)?;
    }
    let store = store::open(&url).await?;
    tracing::info!(backend = ?store.backend(), "Store opened");
    // The data dir also holds the admin token file, whatever the backend.
    if config.admin_token.is_none() {
        ensure_data_dir(&config.data_dir)?;
    }
    bootstrap_admin_token(store.as_ref(), &config).await?;

    // TLS before binding: a bad certificate is a start-up error, not a half-started server.
    let tls_material = tls::load(&config)?;
    let api_tls = tls_material
        .as_ref()
        .map(|m| tls::server_config(m, None, tls::Alpn::Http2AndHttp1))
        .transpose()?;
    if let Some(ca) = tls_material.as_ref().and_then(|m| m.ca_pem_path.as_ref()) {
        eprintln!(
            "otaas: tls enabled with a generated private CA; clients trust {}",
            ca.display()
        );
    } else if tls_material.is_some() {
        eprintln!("otaas: tls enabled");
    }
    // The OpAMP listener's TLS (its own files, else the API's material): also checked before
    // anything binds, and a bad file stops the server — serving agents in clear instead would
    // be worse.
    let opamp_tls =
        crate::opamp::tls_config(&config.opamp, tls_material.as_ref()).map_err(|err| {
            eprintln!("otaas: opamp: {err}");
            ServeError::Config(format!("opamp: {err}"))
        })?;

    if config.opamp.allow_anonymous_agents {
        eprintln!(
            "otaas: anonymous agents allowed (--allow-anonymous-agents): any agent that reaches \
             the OpAMP listener and matches a group's selector gets that group's config; use \
             agent tokens outside a lab"
        );
    } else {
        eprintln!(
            "otaas: agents must present an agent token (otaas token create --scope agent; \
             --allow-anonymous-agents for a lab)"
        );
    }

    // Before serving: a second process with a live replica's id stops here.
    let cluster = crate::cluster::Cluster::join(store.as_ref(), replica_id).await?;
    tracing::info!(
        replica = cluster.replica_id(),
        shared = cluster.is_shared(),
        "Replica joined"
    );
    let state = AppState::with_cluster(store, config, cluster);
    let listener = TcpListener::bind(state.config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: state.config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Http)?;
    // Machine-readable: tests and scripts read the port from this line.
    eprintln!("otaas: api listening on {addr}");
    tracing::info!(%addr, "REST API listening");

    let opamp_listener = TcpListener::bind(state.config.opamp_listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: state.config.opamp_listen,
            source,
        })?;
    if let Ok(opamp_addr) = opamp_listener.local_addr() {
        state
            .cluster
            .register(
                state.store.as_ref(),
                &addr.to_string(),
                &opamp_addr.to_string(),
            )
            .await;
    }
    let opamp = tokio::spawn(run_engines(state.clone(), opamp_listener, opamp_tls));

    let shutdown = state.shutdown.clone();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("Shutdown requested");
            shutdown.cancel();
        }
    });
    let options = ListenerOptions {
        name: "api",
        tls: api_tls,
        conn_limit: ConnLimiter::new(state.config.max_conns_per_ip),
    };
    let audit = state.audit.clone();
    listener::serve(listener, app(state), options, shutdown).await;
    // The OpAMP server drains its sessions and flushes agent state before we exit.
    match opamp.await {
        Ok(result) => result.map_err(ServeError::Http)?,
        Err(err) => tracing::error!(error = %err, "OpAMP server task failed"),
    }
    // The last requests' entries are still queued: written before the process exits.
    audit.flush(std::time::Duration::from_secs(5)).await;
    eprintln!("otaas: stopped");
    Ok(())
}

/// Loads the fleet, starts the engines' tasks and serves OpAMP; after shutdown, waits for
/// them and leaves the replicas (last, so the rollouts this replica drove are free at once).
async fn run_engines(
    state: AppState,
    listener: TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let opamp = OpampDeps::from_ref(&state);
    // Before any task runs: the engines start from the persisted agents and groups.
    crate::opamp::load(&opamp).await;
    let tasks = start_tasks(&state);
    let result = crate::opamp::serve(opamp, state.config.opamp.clone(), listener, tls).await;
    for task in tasks {
        let _ = task.await;
    }
    state.cluster.leave().await;
    result
}

/// Starts the engines' background tasks: the rollout driver, the insights gauges, the
/// cluster's (PostgreSQL only), the endpoint token grace, revision retention and the audit
/// trail's retention. They stop with `state.shutdown`.
/// The whole HTTP application of the API listener: the REST API and the web console.
pub fn app(state: AppState) -> axum::Router {
    api::router(state.clone())
        .merge(crate::console::router(state))
        .fallback(|| async { api::ApiError::not_found("no such route") })
}

pub fn start_tasks(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let shutdown = state.shutdown.clone();
    let mut tasks = vec![
        state.rollouts.clone().spawn(shutdown.clone()),
        state
            .insights
            .clone()
            .spawn_metrics(crate::insights::GAUGES_EVERY, shutdown.clone()),
        tokio::spawn(crate::token_grace::run(TokenGrace::from_ref(state))),
        tokio::spawn(crate::retention::run(
            crate::retention::Retention::from_ref(state),
        )),
        tokio::spawn(crate::audit::retention(
            state.store.clone(),
            state.config.audit_retention_days,
            state.config.audit_retention_count,
            crate::audit::PRUNE_EVERY,
            shutdown.clone(),
        )),
    ];
    tasks.extend(crate::cluster::spawn(&ClusterTasks {
        cluster: state.cluster.clone(),
        store: state.store.clone(),
        events: state.events.clone(),
        metrics: state.metrics.clone(),
        shutdown,
        rollouts: state.rollouts.clone(),
    }));
    tasks
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, Ctrl-C is the only way out.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
