//! Store contract for the rollout engine's state rows (`put_rollout`, `list_rollouts`,
//! `delete_rollout`), on SQLite and on the machine's PostgreSQL.

mod common;

use std::str::FromStr;
use std::sync::Arc;

use common::*;
use otaas_api::AgentGroupId;
use otaas_server::store::{RolloutRow, Store};

async fn contract(store: Arc<dyn Store>) {
    let a = AgentGroupId::from_str("0190aaaa-0000-7000-8000-00000000000a").unwrap();
    let b = AgentGroupId::from_str("0190aaaa-0000-7000-8000-00000000000b").unwrap();
    // Given nothing stored
    assert_eq!(store.list_rollouts().await.unwrap(), vec![]);
    // When two groups' states are written
    store.put_rollout(b, r#"{"step":1}"#).await.unwrap();
    store.put_rollout(a, r#"{"step":0}"#).await.unwrap();
    // Then both come back, ordered by group id
    let row = |group_id, state: &str, version| RolloutRow {
        group_id,
        state: state.to_owned(),
        version,
    };
    assert_eq!(
        store.list_rollouts().await.unwrap(),
        vec![row(a, r#"{"step":0}"#, 1), row(b, r#"{"step":1}"#, 1)]
    );
    // When one is written again it is replaced, not duplicated, one version on
    store.put_rollout(a, r#"{"step":2}"#).await.unwrap();
    // And when the other is deleted (twice: absent is fine)
    store.delete_rollout(b).await.unwrap();
    store.delete_rollout(b).await.unwrap();
    assert_eq!(
        store.list_rollouts().await.unwrap(),
        vec![row(a, r#"{"step":2}"#, 2)]
    );
    assert_eq!(store.get_rollout(b).await.unwrap(), None);

    // Compare-and-swap: only on the expected version (or on nothing, with None)
    assert_eq!(
        store
            .put_rollout_if(a, r#"{"step":3}"#, None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .put_rollout_if(a, r#"{"step":3}"#, Some(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_rollout(a).await.unwrap(),
        Some(row(a, r#"{"step":2}"#, 2))
    );
    assert_eq!(
        store
            .put_rollout_if(a, r#"{"step":3}"#, Some(2))
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        store
            .put_rollout_if(b, r#"{"new":1}"#, Some(0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.put_rollout_if(b, r#"{"new":1}"#, None).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.list_rollouts().await.unwrap(),
        vec![row(a, r#"{"step":3}"#, 3), row(b, r#"{"new":1}"#, 1)]
    );
}

#[tokio::test]
async fn rollout_rows_on_sqlite() {
    with_sqlite(|store, _| contract(store)).await;
}

#[tokio::test]
async fn rollout_rows_on_postgres() {
    with_postgres(|store, _| contract(store)).await;
}
