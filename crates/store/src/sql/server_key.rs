//! The server key in `server_secrets`: created by the first open, read by every later one
//! (replicas on one database share it).

use super::db::{Db, DbRow, sql};
use crate::{ServerKey, StoreError};

pub(crate) async fn load_or_create_key<B: Db>(conn: &mut B::Conn) -> Result<ServerKey, StoreError> {
    let q = sql(
        "INSERT INTO server_secrets (name, value) VALUES ('endpoint_token_key', $1) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(ServerKey::generate().to_hex());
    B::execute(conn, q).await?;
    let q = sql("SELECT value FROM server_secrets WHERE name = 'endpoint_token_key'");
    let hex = match B::fetch_optional(conn, q).await? {
        Some(row) => row.text("value")?,
        None => return Err(StoreError::Corrupt("endpoint_token_key is missing".into())),
    };
    ServerKey::from_hex(&hex)
        .ok_or_else(|| StoreError::Corrupt("endpoint_token_key is not 32 hex bytes".into()))
}
