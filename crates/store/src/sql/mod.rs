//! The SQL of both backends, written once: plain functions generic over [`Db`], which holds
//! the little that differs per backend (how a write transaction starts, how config writes are
//! serialised across processes, how values are bound and read). The schema uses only TEXT,
//! BIGINT and BOOLEAN columns and `$N` placeholders, which SQLite and PostgreSQL both
//! understand. One file per record kind, all written against [`db`]; [`SqlStore`] and
//! [`SqlTx`](tx::SqlTx) wire them to the traits. This file only declares the modules and
//! re-exports what the backends use.

mod agents;
mod audit;
mod bindings;
mod children;
mod db;
mod endpoints;
mod groups;
mod pipelines;
mod records;
mod replicas;
mod revisions;
mod rollouts;
mod server_key;
mod store;
mod tokens;
mod tx;

pub(crate) use db::{Db, DbRow, Sql};
pub(crate) use server_key::load_or_create_key;
pub(crate) use store::SqlStore;
