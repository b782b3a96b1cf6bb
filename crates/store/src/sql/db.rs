//! What the SQL of every record kind is written against: the [`Db`] bound a backend
//! implements, statements with their bound values ([`Sql`]), and the small helpers (clock,
//! timestamps, unique-violation errors) the kind files share. A leaf: it uses no other
//! module of `sql`.

use std::borrow::Cow;
use std::future::Future;
use std::ops::DerefMut;

use chrono::{DateTime, Utc};

use crate::error::{Kind, StoreError};
use crate::records::Backend;

/// A backend: the sqlx types behind it and the operations whose SQL or sqlx types differ.
/// Everything else is written once against these.
pub trait Db: Send + Sync + Sized + 'static {
    const BACKEND: Backend;
    type Pool: Send + Sync + 'static;
    type Conn: Send;
    /// A transaction; dropped without [`Db::commit`], it rolls back.
    type Tx: DerefMut<Target = Self::Conn> + Send + 'static;
    type Pooled: DerefMut<Target = Self::Conn> + Send;
    type Row: DbRow + Send + Sync;

    fn acquire(pool: &Self::Pool)
    -> impl Future<Output = Result<Self::Pooled, sqlx::Error>> + Send;
    /// Starts a transaction that is going to write.
    fn begin_write(pool: &Self::Pool)
    -> impl Future<Output = Result<Self::Tx, sqlx::Error>> + Send;
    fn commit(tx: Self::Tx) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    /// Serialises config writes with those of other processes on the same database, until
    /// the transaction ends.
    fn lock_config_writes(
        conn: &mut Self::Conn,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Rows affected.
    fn execute(
        conn: &mut Self::Conn,
        q: Sql<'_>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;
    fn fetch_all(
        conn: &mut Self::Conn,
        q: Sql<'_>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send;
    fn fetch_optional(
        conn: &mut Self::Conn,
        q: Sql<'_>,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send;
}

/// Typed reads of a result row's columns.
pub trait DbRow {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error>;
}

/// One statement and its bound values.
pub struct Sql<'a> {
    text: Cow<'a, str>,
    args: Vec<Arg<'a>>,
}

/// A value bound to a placeholder.
pub(crate) enum Arg<'a> {
    Text(Cow<'a, str>),
    OptText(Option<Cow<'a, str>>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Cow::Owned(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v.map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v.map(Cow::Owned))
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// A statement to bind values to.
pub(crate) fn sql<'a>(text: impl Into<Cow<'a, str>>) -> Sql<'a> {
    Sql {
        text: text.into(),
        args: Vec::new(),
    }
}

impl<'a> Sql<'a> {
    /// Binds the next placeholder.
    pub(crate) fn bind(mut self, v: impl Into<Arg<'a>>) -> Self {
        self.args.push(v.into());
        self
    }

    /// The statement as sqlx runs it, values bound.
    pub(crate) fn query<'q, DB>(&'q self) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
    where
        DB: sqlx::Database,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        let mut q = sqlx::query(&self.text);
        for arg in &self.args {
            q = match arg {
                Arg::Text(v) => q.bind(v.as_ref()),
                Arg::OptText(v) => q.bind(v.as_deref()),
                Arg::Int(v) => q.bind(*v),
                Arg::OptInt(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
            };
        }
        q
    }
}

/// `($1, $2, ...), ($n+1, ...)`: the placeholders of a multi-row `VALUES` list of `rows`
/// rows of `width` values each.
pub(crate) fn values_list(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 6);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * width + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn ts(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// A write refused by a unique index on `name` (a concurrent create that won the race) is
/// the same `NameTaken` the explicit check gives.
pub(crate) fn name_error(e: sqlx::Error, kind: Kind, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::NameTaken {
            kind,
            name: name.to_string(),
        }
    } else {
        StoreError::Database(e)
    }
}
