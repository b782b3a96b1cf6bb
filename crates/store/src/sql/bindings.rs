//! Exporter bindings: the `exporter_bindings` table (destination header values are kept in
//! the sealed `secrets` column with the declared secrets).

use otaas_api::{ExporterBindingId, ExporterBindingSpec};

use super::children::{self, Table};
use super::db::Db;
use super::records::get_record;
use crate::{BindingRecord, Kind, Replaced, ServerKey, StoreError, merge_binding};

pub(crate) const TABLE: Table = Table {
    name: "exporter_bindings",
    kind: Kind::ExporterBinding,
};

pub(crate) async fn get<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: ExporterBindingId,
) -> Result<BindingRecord, StoreError> {
    get_record::<B, _, _>(conn, key, TABLE.name, TABLE.kind, &id.to_string()).await
}

pub(crate) async fn create<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    mut spec: ExporterBindingSpec,
) -> Result<BindingRecord, StoreError> {
    let (name, pid) = (spec.name.clone(), spec.pipeline_id);
    // Nothing to keep on create: the stored body always holds the whole header set.
    for d in &mut spec.destinations {
        d.keep_headers = false;
    }
    children::create::<B, _, _>(
        conn,
        key,
        &TABLE,
        ExporterBindingId::new(),
        &name,
        pid,
        spec,
    )
    .await
}

pub(crate) async fn update<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: ExporterBindingId,
    spec: ExporterBindingSpec,
    if_match: Option<i64>,
) -> Result<Replaced<BindingRecord>, StoreError> {
    let (name, pid) = (spec.name.clone(), spec.pipeline_id);
    children::update::<B, _, _>(
        conn,
        key,
        &TABLE,
        id,
        &name,
        pid,
        spec,
        if_match,
        merge_binding,
    )
    .await
}

pub(crate) async fn delete<B: Db>(
    conn: &mut B::Conn,
    key: &ServerKey,
    id: ExporterBindingId,
) -> Result<BindingRecord, StoreError> {
    children::delete::<B, _, _>(conn, key, &TABLE, &id.to_string()).await
}
