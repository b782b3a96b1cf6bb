//! Replicas: the `replicas` table (who has run on this database and where it serves;
//! liveness is not kept here but in each replica's session lock).

use super::db::{Db, now_ms, sql};
use crate::StoreError;

pub(crate) async fn register<B: Db>(
    conn: &mut B::Conn,
    id: &str,
    api: &str,
    opamp: &str,
) -> Result<(), StoreError> {
    let q = sql(
        "INSERT INTO replicas (id, started_at, api, opamp) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, \
         api = excluded.api, opamp = excluded.opamp",
    )
    .bind(id)
    .bind(now_ms())
    .bind(api)
    .bind(opamp);
    B::execute(conn, q).await?;
    Ok(())
}
