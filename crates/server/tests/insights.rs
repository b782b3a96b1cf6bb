//! Fleet insights end to end: `otaas fleet-sim` agents are offered the server's own-metrics
//! ingest over OpAMP and send OTLP/HTTP metrics to it; a throughput drop injected through the
//! simulator's control is flagged; refused agent tokens are counted by source; agents matching
//! no group and endpoints without TLS or auth are listed; all of it also on `/metrics`.

mod common;
#[path = "common/procs.rs"]
mod procs;

use common::*;
use otaas_api::insights::{AnomalyKind, FleetInsights};
use otaas_api::*;
use procs::*;
use serde_json::json;

async fn insights_until(
    client: &Client,
    what: &str,
    ok: impl Fn(&FleetInsights) -> bool,
) -> FleetInsights {
    let ok = &ok;
    wait_for(what, || {
        let client = client.clone();
        async move {
            let i = client.insights().await.ok()?;
            ok(&i).then_some(i)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throughput_drop_injected_by_the_simulator_is_flagged() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let mut spec = pipeline_spec("load");
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    let mut group = group_spec("load", vec![pipeline.id]);
    group.selector = [("fleet".to_string(), "load".to_string())].into();
    client.create_agent_group(&group).await.unwrap();
    // Given two agents reporting 200 items/s each in their own metrics every second
    let mut sim = Sim::start(
        &server.ws_url(),
        &[
            "--agents",
            "2",
            "--labels",
            "fleet=load,host=h{i}",
            "--throughput",
            "200",
            "--own-metrics-seconds",
            "1",
        ],
    );
    let steady = insights_until(&client, "a steady baseline", |i| {
        i.agents.len() == 2 && i.agents.iter().all(|a| a.reports >= 5)
    })
    .await;
    for a in &steady.agents {
        let base = a.baseline_accepted_per_second.unwrap();
        assert!((100.0..=300.0).contains(&base), "baseline {base}");
        assert_eq!(a.memory_rss_bytes, Some(48.0 * 1024.0 * 1024.0));
        assert_eq!(
            a.components
                .iter()
                .map(|c| c.component.as_str())
                .collect::<Vec<_>>(),
            ["exporter/debug", "receiver/otlp"]
        );
    }
    assert!(
        !steady
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::ThroughputDrop),
        "{:?}",
        steady.anomalies
    );

    // When throughput falls to 5 items/s
    sim.command("throughput 5");
    // Then both agents are flagged with a throughput drop
    let dropped = insights_until(&client, "the drop flagged", |i| {
        i.anomalies
            .iter()
            .filter(|a| a.kind == AnomalyKind::ThroughputDrop)
            .count()
            == 2
    })
    .await;
    let mut flagged: Vec<&str> = dropped
        .anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::ThroughputDrop)
        .map(|a| a.agent_id.as_str())
        .collect();
    flagged.sort();
    let mut ids: Vec<&str> = steady.agents.iter().map(|a| a.agent_id.as_str()).collect();
    ids.sort();
    assert_eq!(flagged, ids);
    assert_eq!(dropped.anomaly_counts[&AnomalyKind::ThroughputDrop], 2);
    // And Prometheus says so too (published every 2 s)
    let http = reqwest::Client::new();
    let url = format!("http://{}/metrics", server.api);
    wait_for("the drop on /metrics", || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let text = http.get(&url).send().await.ok()?.text().await.ok()?;
            text.contains("otaas_insights_anomalies{kind=\"throughput_drop\"} 2")
                .then_some(())
        }
    })
    .await;
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_auth_is_counted_and_unmanaged_agents_and_open_endpoints_are_listed() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &["--require-agent-token"]);
    let client = server.client();
    let token = client
        .create_token(&TokenCreate {
            description: "sim".into(),
            scope: TokenScope::Agent,
            expires_in: None,
            expires_at: None,
        })
        .await
        .unwrap()
        .token;
    // An endpoint without auth (and without TLS), and one with bearer auth (no TLS either).
    let pipeline = client.create_pipeline(&pipeline_spec("sec")).await.unwrap();
    let mut open = endpoint_spec("open", pipeline.id, 4318);
    open.auth = EndpointAuth::None;
    let open = client.create_endpoint(&open).await.unwrap();
    client
        .create_endpoint(&endpoint_spec("bearer", pipeline.id, 4319))
        .await
        .unwrap();
    // Given an agent with a wrong token, and one with a good token matching no group
    let bad = Sim::start(
        &server.ws_url(),
        &["--token", "not-a-token", "--labels", "x=1"],
    );
    let good = Sim::start(
        &server.ws_url(),
        &["--token", &token, "--labels", "team=nobody"],
    );
    let i = insights_until(&client, "auth failures and the unmanaged agent", |i| {
        i.security
            .auth_failures
            .iter()
            .any(|f| f.source == "127.0.0.1" && f.count >= 2)
            && i.security.unmanaged_agents.len() == 1
    })
    .await;
    // Then the unmanaged agent is the good one
    let agents = client.list_agents(&AgentQuery::default()).await.unwrap();
    assert_eq!(agents.len(), 1, "the refused agent never got in");
    assert_eq!(i.security.unmanaged_agents, vec![agents[0].id.clone()]);
    assert_eq!(i.security.auth_failures.len(), 1);
    // And both endpoints are listed: neither has TLS, one has no auth either
    let mut exposed: Vec<(&str, bool, bool)> = i
        .security
        .exposed_endpoints
        .iter()
        .map(|e| (e.name.as_str(), e.tls, e.auth))
        .collect();
    exposed.sort();
    assert_eq!(exposed, [("bearer", false, true), ("open", false, false)]);
    assert!(
        i.security
            .exposed_endpoints
            .iter()
            .any(|e| e.endpoint_id == open.id)
    );
    // A metrics export with a wrong token is refused and counted too.
    let before = i.security.auth_failures[0].count;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/metrics", server.opamp))
        .bearer_auth("wrong")
        .header("content-type", "application/x-protobuf")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let after = client.insights().await.unwrap().security.auth_failures[0].count;
    assert!(after > before, "{after} > {before}");
    bad.stop();
    good.stop();
}
