//! [`open()`]: the store a `--database` URL names, its backend chosen by the URL's scheme.

use std::sync::Arc;

use crate::error::StoreError;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::traits::Store;

/// Opens the store a `--database` URL names: `sqlite://PATH` (created if missing, WAL) or
/// `postgres://...`/`postgresql://...`. Runs the migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url, None).await?))
    } else {
        Err(StoreError::BadUrl(format!(
            "expected sqlite://PATH or postgres://..., got scheme of {:?}",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
