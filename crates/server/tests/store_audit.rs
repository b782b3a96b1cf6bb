//! Store contract for the audit trail (`append_audit`, `list_audit`, `prune_audit`), on
//! SQLite and on the machine's PostgreSQL.

mod common;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::*;
use otaas_api::AuditId;
use otaas_server::store::{AuditFilter, AuditRecord, Store};

fn entry(n: i64, token: Option<&str>, kind: &str, method: &str, status: u16) -> AuditRecord {
    AuditRecord {
        id: AuditId::new(),
        at: Utc
            .timestamp_millis_opt(1_700_000_000_000 + n * 1000)
            .unwrap(),
        interface: "rest".into(),
        token_id: token.map(str::to_owned),
        token_description: token.map(|t| format!("desc of {t}")),
        token_fingerprint: None,
        source: Some("127.0.0.1:5000".into()),
        method: method.into(),
        path: format!("/api/v1/{kind}/{n}"),
        object_kind: Some(kind.into()),
        object_id: Some(n.to_string()),
        status,
        error_code: (status >= 400).then(|| "not_found".to_owned()),
        success: status < 400,
        revision_before: (n % 2 == 0).then_some(n),
        revision_after: None,
        dry_run: n == 4,
    }
}

async fn contract(store: Arc<dyn Store>) {
    // Given nothing recorded
    assert_eq!(
        store.list_audit(&AuditFilter::default()).await.unwrap(),
        vec![]
    );
    // When ten entries are appended in one batch
    let all: Vec<AuditRecord> = (0..10)
        .map(|n| {
            let token = if n % 3 == 0 { Some("t-a") } else { None };
            let kind = if n < 5 { "pipelines" } else { "tokens" };
            let method = if n % 2 == 0 { "PUT" } else { "DELETE" };
            let status = if n == 7 { 404 } else { 200 };
            entry(n, token, kind, method, status)
        })
        .collect();
    store.append_audit(&all).await.unwrap();
    store.append_audit(&[]).await.unwrap();
    // Then they come back whole, in id (recording) order
    let got = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(got, all);

    // And each filter keeps what it names
    let ids = |v: Vec<AuditRecord>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let pick = |f: &dyn Fn(&AuditRecord) -> bool| {
        all.iter()
            .filter(|e| f(e))
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let q = |f: AuditFilter| {
        let store = store.clone();
        async move { ids(store.list_audit(&f).await.unwrap()) }
    };
    let t0 = all[3].at;
    assert_eq!(
        q(AuditFilter {
            since: Some(t0),
            until: Some(t0 + Duration::seconds(3)),
            ..Default::default()
        })
        .await,
        pick(&|e| e.at >= t0 && e.at < t0 + Duration::seconds(3))
    );
    assert_eq!(
        q(AuditFilter {
            token_id: Some("t-a".into()),
            ..Default::default()
        })
        .await,
        pick(&|e| e.token_id.as_deref() == Some("t-a"))
    );
    assert_eq!(
        q(AuditFilter {
            object_kind: Some("tokens".into()),
            object_id: Some("8".into()),
            ..Default::default()
        })
        .await,
        vec![all[8].id]
    );
    assert_eq!(
        q(AuditFilter {
            success: Some(false),
            ..Default::default()
        })
        .await,
        vec![all[7].id]
    );
    assert_eq!(
        q(AuditFilter {
            method: Some("DELETE".into()),
            success: Some(true),
            ..Default::default()
        })
        .await,
        pick(&|e| e.method == "DELETE" && e.success)
    );
    // And a cursor and a limit page through them
    assert_eq!(
        q(AuditFilter {
            after: Some(all[2].id),
            limit: Some(3),
            ..Default::default()
        })
        .await,
        vec![all[3].id, all[4].id, all[5].id]
    );

    // When pruning by age (before entry 2) and by count (keep 5 of the 8 left)
    let gone = store.prune_audit(all[2].at, 5).await.unwrap();
    // Then the two oldest went by age and three more by count: the newest five are left
    assert_eq!(gone, 5);
    assert_eq!(
        q(AuditFilter::default()).await,
        all[5..].iter().map(|e| e.id).collect::<Vec<_>>()
    );
    // And pruning with nothing over either limit deletes nothing
    assert_eq!(store.prune_audit(all[0].at, 100).await.unwrap(), 0);
    assert_eq!(store.prune_audit(all[0].at, 5).await.unwrap(), 0);
    assert_eq!(
        store
            .list_audit(&AuditFilter::default())
            .await
            .unwrap()
            .len(),
        5
    );
}

/// Given an empty trail, when entries are appended, filtered, paged and pruned on SQLite, then
/// each operation keeps exactly the entries it names.
#[tokio::test]
async fn audit_trail_on_sqlite() {
    with_sqlite(|store, _| contract(store)).await;
}

/// The same contract on PostgreSQL.
#[tokio::test]
async fn audit_trail_on_postgres() {
    with_postgres(|store, _| contract(store)).await;
}
