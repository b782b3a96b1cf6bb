//! The one error type of `otaas bench`: what was being done, and why it failed.

/// An error of the run, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

impl BenchError {
    pub(crate) fn new(what: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        Self(format!("{what}: {err}"))
    }
    pub(crate) fn msg(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
