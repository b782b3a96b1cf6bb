//! Persistence of the otaas control plane: the [`Store`] trait every backend implements, the
//! records it keeps and its errors. The store knows records only: rendering configs, deriving
//! tokens and deciding what a change means for the fleet happen above it.
//!
//! Backends: [`sqlite::SqliteStore`] (default, WAL) and [`postgres::PgStore`], chosen by URL
//! scheme in [`open()`]. Both run the same SQL (`sql/`, one file per record kind) and the
//! migrations in `crates/store/migrations/<backend>/` at open (listed in `migrations.rs`).
//!
//! Config writes (pipelines, endpoints, exporter bindings, agent groups, and the group
//! revisions they lead to) go through a [`ConfigTx`] from [`Store::begin_config`]: one
//! transaction, serialised with every other config write (across replicas on PostgreSQL), so
//! the writer can read what a group's config is made of, render it, and record the revision
//! before anything becomes visible; dropping the transaction without
//! [`ConfigTx::commit`] leaves nothing behind.
//!
//! Extending: another area adds its own migration file (next version number) and its own
//! methods — either on [`Store`] with a default body, or on a separate trait implemented by
//! both backends — without changing the existing methods.

mod coordination;
mod error;
mod migrations;
mod open;
pub mod postgres;
mod records;
mod seal;
mod spec;
mod sql;
pub mod sqlite;
mod traits;

pub use coordination::{Coordination, LockSession, Notices};
pub use error::{Kind, StoreError};
pub use open::open;
pub use records::{
    AGENT_ROWS_PER_STATEMENT, AgentRow, AgentRowFilter, AuditFilter, AuditRecord, Backend,
    BindingRecord, EndpointRecord, GroupInputs, GroupRecord, GroupRevision, PipelineRecord, Record,
    Replaced, RolloutRow, TokenRecord,
};
pub use seal::{SEALED_PREFIX, ServerKey};
pub use spec::{TokenGrace, keep_headers, merge_binding, merge_pipeline, token_grace};
pub use traits::{ConfigTx, Store};
