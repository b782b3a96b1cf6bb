//! What can go wrong in the store ([`StoreError`]) and the kinds of objects errors name ([`Kind`]).

use std::fmt;

/// The kinds of objects the REST API manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Pipeline,
    Endpoint,
    ExporterBinding,
    AgentGroup,
    Token,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pipeline => "pipeline",
            Kind::Endpoint => "endpoint",
            Kind::ExporterBinding => "exporter binding",
            Kind::AgentGroup => "agent group",
            Kind::Token => "token",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the storage layer. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: Kind, id: String },
    #[error("a {kind} named {name:?} already exists")]
    NameTaken { kind: Kind, name: String },
    #[error("{kind} {id} is at revision {actual}, not {expected}")]
    RevisionMismatch {
        kind: Kind,
        id: String,
        expected: i64,
        actual: i64,
    },
    #[error("{field}: {kind} {id} does not exist")]
    DanglingReference {
        field: String,
        kind: Kind,
        id: String,
    },
    #[error("{kind} {name:?} is still used by {referrer_kind} {referrer_name:?} ({referrer_id})")]
    InUse {
        kind: Kind,
        name: String,
        referrer_kind: Kind,
        referrer_name: String,
        referrer_id: String,
    },
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}
