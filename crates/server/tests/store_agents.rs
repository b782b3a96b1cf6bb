//! Store contract for the OpAMP agent rows (`upsert_agents`, `touch_agents`, `list_agents`,
//! `list_agent_rows`, `get_agent_row`), on SQLite and on the machine's PostgreSQL: the batched
//! write (multi-row statements, more rows than one statement holds, repeated ids) and the
//! replica rules (which replica holds a row; a stale "disconnected" never hides another
//! replica's connected agent).

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use otaas_server::store::{AGENT_ROWS_PER_STATEMENT, AgentRow, AgentRowFilter, Store};

fn row(id: &str, connected: bool, state: &str) -> AgentRow {
    AgentRow {
        id: id.to_owned(),
        group_id: Some("0190aaaa-0000-7000-8000-000000000001".to_owned()),
        connected,
        last_seen: DateTime::<Utc>::from_timestamp_millis(1_763_780_000_123),
        state: state.to_owned(),
        replica_id: Some("replica-a".to_owned()),
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

/// Given more agents than one statement holds, written in one batch with some ids repeated,
/// every agent is stored once with its last row, and a second batch updates them in place.
async fn batched(store: Arc<dyn Store>) {
    let n = AGENT_ROWS_PER_STATEMENT * 2 + 37;
    let id = |i: usize| format!("{i:032x}");
    let mut batch: Vec<AgentRow> = (0..n)
        .map(|i| row(&id(i), true, &format!(r#"{{"n":{i}}}"#)))
        .collect();
    // The same agent twice in one batch (two heartbeats in one flush period): the later wins.
    batch.push(row(&id(5), false, r#"{"n":"5 again"}"#));
    store.upsert_agents(&batch).await.unwrap();
    let stored = store.list_agents().await.unwrap();
    assert_eq!(stored.len(), n);
    assert_eq!(stored[5], row(&id(5), false, r#"{"n":"5 again"}"#));
    assert_eq!(
        stored[n - 1],
        row(&id(n - 1), true, &format!(r#"{{"n":{}}}"#, n - 1))
    );
    // When every agent reports again, now held by another replica
    let again: Vec<AgentRow> = (0..n)
        .map(|i| AgentRow {
            replica_id: Some("replica-b".to_owned()),
            ..row(&id(i), true, &format!(r#"{{"n":{i},"v":2}}"#))
        })
        .collect();
    store.upsert_agents(&again).await.unwrap();
    let stored = store.list_agents().await.unwrap();
    assert_eq!(stored, again);
}

/// Which replica holds an agent decides which writes count and what the filters return.
async fn replicas(store: Arc<dyn Store>) {
    let a = "000000000000000000000000000000aa";
    let b = "000000000000000000000000000000bb";
    let held_by = |id: &str, replica: &str, connected: bool| AgentRow {
        replica_id: Some(replica.to_owned()),
        ..row(id, connected, &format!(r#"{{"on":"{replica}"}}"#))
    };
    // Given agent a moved from replica-a to replica-b (b wrote "connected" first)
    store
        .upsert_agents(&[held_by(a, "replica-b", true), held_by(b, "replica-a", true)])
        .await
        .unwrap();
    // When replica-a notices late that a left it
    store
        .upsert_agents(&[held_by(a, "replica-a", false)])
        .await
        .unwrap();
    // Then a is still connected on replica-b
    assert_eq!(
        store.get_agent_row(a).await.unwrap(),
        Some(held_by(a, "replica-b", true))
    );
    // While replica-a's own agent goes disconnected as told
    store
        .upsert_agents(&[held_by(b, "replica-a", false)])
        .await
        .unwrap();
    assert_eq!(
        store.get_agent_row(b).await.unwrap(),
        Some(held_by(b, "replica-a", false))
    );
    // And a connected report from any replica takes the agent over
    store
        .upsert_agents(&[held_by(b, "replica-b", true)])
        .await
        .unwrap();
    assert_eq!(
        store
            .get_agent_row(b)
            .await
            .unwrap()
            .unwrap()
            .replica_id
            .as_deref(),
        Some("replica-b")
    );
    assert_eq!(
        store
            .get_agent_row("00000000000000000000000000000000")
            .await
            .unwrap(),
        None
    );

    // Filters: by group, and leaving out one replica's rows
    let mut other_group = held_by("000000000000000000000000000000cc", "replica-a", true);
    other_group.group_id = Some("0190aaaa-0000-7000-8000-000000000002".to_owned());
    store.upsert_agents(&[other_group.clone()]).await.unwrap();
    let ids = |rows: Vec<AgentRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let group_one = AgentRowFilter {
        group_id: Some("0190aaaa-0000-7000-8000-000000000001".to_owned()),
        not_replica: None,
    };
    assert_eq!(
        ids(store.list_agent_rows(&group_one).await.unwrap()),
        [a, b]
    );
    let not_b = AgentRowFilter {
        group_id: None,
        not_replica: Some("replica-b".to_owned()),
    };
    assert_eq!(
        ids(store.list_agent_rows(&not_b).await.unwrap()),
        [other_group.id]
    );
}

/// A heartbeat's write: `touch_agents` moves `last_seen` forward and nothing else, in batches
/// larger than one statement, skipping unknown ids and never moving a time back.
async fn touched(store: Arc<dyn Store>) {
    let n = AGENT_ROWS_PER_STATEMENT + 3;
    let id = |i: usize| format!("{i:032x}");
    let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
    let rows: Vec<AgentRow> = (0..n)
        .map(|i| row(&id(i), true, &format!(r#"{{"n":{i}}}"#)))
        .collect();
    store.upsert_agents(&rows).await.unwrap();
    let first = rows[0].last_seen.unwrap();
    // When every agent but the last is touched later, and an unknown agent too
    let later = first + chrono::Duration::seconds(30);
    let mut seen: Vec<(String, DateTime<Utc>)> = (0..n - 1).map(|i| (id(i), later)).collect();
    seen.push(("ffffffffffffffffffffffffffffffff".to_owned(), later));
    store.touch_agents(&seen).await.unwrap();
    // Then only their last_seen changed
    let stored = store.list_agents().await.unwrap();
    assert_eq!(stored.len(), n, "an unknown id is not inserted");
    for (i, got) in stored.iter().enumerate() {
        let want_seen = if i < n - 1 { later } else { first };
        assert_eq!(
            got,
            &AgentRow {
                last_seen: Some(want_seen),
                ..rows[i].clone()
            }
        );
    }
    // A touch older than what is stored does not move it back
    store
        .touch_agents(&[(id(0), at(first.timestamp_millis() - 1000))])
        .await
        .unwrap();
    let got = store.get_agent_row(&id(0)).await.unwrap().unwrap();
    assert_eq!(got.last_seen, Some(later));
    // An empty batch is a no-op
    store.touch_agents(&[]).await.unwrap();
}

#[tokio::test]
async fn touched_agents_on_sqlite() {
    with_sqlite(|store, _| touched(store)).await;
}

#[tokio::test]
async fn touched_agents_on_postgres() {
    with_postgres(|store, _| touched(store)).await;
}

#[tokio::test]
async fn agent_rows_on_sqlite() {
    with_sqlite(|store, _| contract(store)).await;
}

#[tokio::test]
async fn agent_rows_on_postgres() {
    with_postgres(|store, _| contract(store)).await;
}

#[tokio::test]
async fn batched_agent_writes_on_sqlite() {
    with_sqlite(|store, _| batched(store)).await;
}

#[tokio::test]
async fn batched_agent_writes_on_postgres() {
    with_postgres(|store, _| batched(store)).await;
}

#[tokio::test]
async fn agent_replicas_on_sqlite() {
    with_sqlite(|store, _| replicas(store)).await;
}

#[tokio::test]
async fn agent_replicas_on_postgres() {
    with_postgres(|store, _| replicas(store)).await;
}
