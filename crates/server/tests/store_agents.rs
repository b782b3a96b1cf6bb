//! Store contract for the OpAMP agent rows (`upsert_agents`, `list_agents`), on SQLite and on
//! the machine's PostgreSQL.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use otaas_server::store::{AgentRow, Store};

fn row(id: &str, connected: bool, state: &str) -> AgentRow {
    AgentRow {
        id: id.to_owned(),
        group_id: Some("0190aaaa-0000-7000-8000-000000000001".to_owned()),
        connected,
        last_seen: DateTime::<Utc>::from_timestamp_millis(1_763_780_000_123),
        state: state.to_owned(),
    }
}

async fn contract(store: Arc<dyn Store>) {
    // Given nothing stored
    assert_eq!(store.list_agents().await.unwrap(), vec![]);
    // When a batch is written
    let a = row("0000000000000000000000000000000a", true, r#"{"id":"a"}"#);
    let b = row("0000000000000000000000000000000b", true, r#"{"id":"b"}"#);
    store.upsert_agents(&[b.clone(), a.clone()]).await.unwrap();
    // Then both come back, ordered by id, field for field
    assert_eq!(
        store.list_agents().await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    // When one changes (disconnected, no group) it is replaced, not duplicated
    let mut b2 = row(
        "0000000000000000000000000000000b",
        false,
        r#"{"id":"b","v":2}"#,
    );
    b2.group_id = None;
    b2.last_seen = None;
    store.upsert_agents(&[b2.clone()]).await.unwrap();
    assert_eq!(store.list_agents().await.unwrap(), vec![a, b2]);
    // An empty batch is a no-op
    store.upsert_agents(&[]).await.unwrap();
    assert_eq!(store.list_agents().await.unwrap().len(), 2);
}

#[tokio::test]
async fn agent_rows_on_sqlite() {
    with_sqlite(|store, _| contract(store)).await;
}

#[tokio::test]
async fn agent_rows_on_postgres() {
    with_postgres(|store, _| contract(store)).await;
}
