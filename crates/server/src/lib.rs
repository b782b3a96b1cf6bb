//! otaas control plane: REST API, OpAMP server, rollout engine, insights (`otaas serve`).
//!
//! Map of the crate:
//! - [`serve`]: `otaas serve` — opens the store, bootstraps the admin token, binds the listeners,
//!   runs until SIGTERM/SIGINT.
//! - [`config`]: the flags of `otaas serve` ([`config::ServeConfig`]).
//! - [`data_dir`]: the data dir, created and kept private.
//! - [`state`]: [`state::AppState`], the server assembled (engines and shared parts).
//! - [`api`]: the REST API router (`/api/v1`, `/healthz`, `/readyz`, `/metrics`).
//! - [`audit`]: the audit trail recorder (writes and refused token uses, queued and written
//!   in the background) and its retention.
//! - [`auth`]: tokens (hashing, verification, bearer middleware, endpoint token derivation).
//! - [`store`]: the `Store` trait and its SQLite and PostgreSQL backends (crate `otaas-store`).
//! - [`revisions`]: config writes — records, the groups they re-render and their revisions,
//!   in one store transaction.
//! - [`retention`]: deletes old group revisions no agent or rollout needs.
//! - [`render`]: agent group → OpenTelemetry Collector YAML.
//! - [`events`]: in-process change events (new group revisions, group changes).
//! - [`cluster`]: several replicas on one PostgreSQL (`LISTEN/NOTIFY`, rollout locks, the
//!   fleet as every replica sees it).
//! - [`metrics`]: the Prometheus registry behind `/metrics`.
//! - [`fleet`]: the fleet model (agent records, health, config status, the agent filter).
//! - [`registry`]: this replica's agents in memory, the groups' configs and rollout pins.
//! - [`opamp`]: the OpAMP server (`/v1/opamp`): transports and protocol decisions.
//! - [`rollout`]: the rollout engine (per-agent target revisions, health gates, rollback).
//! - [`discovery`]: the pipelines agents run, read from their effective configs, and their
//!   adoption as otaas objects.
//! - [`insights`]: fleet insights (own-metrics ingest, anomalies, security events).
//! - [`token_cmd`]: `otaas token create|list|revoke`.
//! - [`tls`]: TLS server configs (files or a generated private CA in the data dir).
//! - [`listener`]: the accept loop (TLS, per-address connection limit, graceful shutdown).
//! - [`limits`]: per-token rate limiter and per-address connection counter.
//! - [`refusals`]: hyper's own refusals (unparsable requests) get the JSON error body.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod console;
pub mod data_dir;
pub mod discovery;
pub mod events;
pub mod fleet;
pub mod insights;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod opamp;
pub mod policy;
pub mod refusals;
pub mod registry;
pub mod render;
pub mod retention;
pub mod revisions;
pub mod rollout;
pub mod secrets;
pub mod serve;
pub mod state;
pub use otaas_store as store;
pub mod tls;
pub mod token_cmd;
pub mod token_grace;
