//! Fleet insights end to end: `otaas fleet-sim` agents are offered the server's own-metrics
//! ingest over OpAMP and send gzip OTLP/HTTP metrics to it. Through the simulator's control: a
//! throughput drop, a refused spike, unhealthy components and flapping connections are flagged,
//! and a killed agent shows as heartbeat loss. Throughput is kept per agent and per pipeline;
//! refused agent tokens are counted by source; agents matching no group and endpoints without
//! TLS or auth are listed; bad ingest bodies get OTLP errors; all of it also on `/metrics`.

mod common;
use otaas_testkit::procs;

use common::*;
use otaas_api::insights::{AnomalyKind, FleetInsights};
use otaas_api::*;
use procs::*;
use serde_json::json;

/// Polls the insights until `ok` holds; on timeout, fails showing the last report seen.
async fn insights_until(
    client: &Client,
    what: &str,
    ok: impl Fn(&FleetInsights) -> bool,
) -> FleetInsights {
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut last = None;
    loop {
        if let Ok(i) = client.insights().await {
            if ok(&i) {
                return i;
            }
            last = Some(i);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; last insights: {last:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throughput_drop_and_spike_injected_by_the_simulator_are_flagged() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let mut spec = pipeline_spec("load");
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    client
        .create_exporter_binding(&debug_binding_spec("load", pipeline.id))
        .await
        .unwrap();
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

    // When throughput jumps to 20 times the baseline
    sim.command("throughput 4000");
    // Then the drop clears and both agents are flagged with a spike against the same baseline
    // (the dropped intervals did not move it)
    let spiked = insights_until(&client, "the spike flagged", |i| {
        let spikes: Vec<_> = i
            .anomalies
            .iter()
            .filter(|a| a.kind == AnomalyKind::ThroughputSpike)
            .collect();
        spikes.len() == 2
            && spikes
                .iter()
                .all(|a| a.message.starts_with("accepted 4000.0/s, baseline "))
    })
    .await;
    assert!(
        !spiked
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::ThroughputDrop),
        "{:?}",
        spiked.anomalies
    );
    for a in &spiked.agents {
        let base = a.baseline_accepted_per_second.unwrap();
        assert!((100.0..=300.0).contains(&base), "baseline {base}");
    }
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_auth_is_counted_and_unmanaged_agents_and_open_endpoints_are_listed() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start_default(data.path(), "127.0.0.1:0", &[]);
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

/// The value of the Prometheus series `line_prefix` (name and labels) on `/metrics`, if any.
async fn prometheus(server: &Serve, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{}/metrics", server.api))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.01
}

#[tokio::test(flavor = "multi_thread")]
async fn throughput_is_kept_per_agent_and_per_pipeline() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given a group running two otaas pipelines, each rendered as a traces and a metrics
    // collector pipeline
    let mut ids = Vec::new();
    for name in ["web", "jobs"] {
        let mut spec = pipeline_spec(name);
        spec.receivers
            .insert("otlp".into(), json!({"protocols": {"http": {}}}));
        let id = client.create_pipeline(&spec).await.unwrap().id;
        // A pipeline is rendered once it has somewhere to send to.
        let mut binding = binding_spec(name, id);
        binding.destinations[0].kind = "debug".into();
        binding.destinations[0].endpoint = None;
        binding.destinations[0].headers.clear();
        client.create_exporter_binding(&binding).await.unwrap();
        ids.push(id);
    }
    let mut group = group_spec("perpipe", ids);
    group.selector = [("fleet".to_string(), "perpipe".to_string())].into();
    client.create_agent_group(&group).await.unwrap();
    // And two agents receiving 200 items/s each, reporting every second
    let sim = Sim::start(
        &server.ws_url(),
        &[
            "--agents",
            "2",
            "--labels",
            "fleet=perpipe,host=h{i}",
            "--throughput",
            "200",
            "--own-metrics-seconds",
            "1",
        ],
    );
    let want = ["metrics/jobs", "metrics/web", "traces/jobs", "traces/web"];
    // Then each agent's throughput is split over its four pipelines (the simulator shares its
    // rate evenly), and the fleet list sums them over both agents
    let i = insights_until(&client, "per-pipeline throughput", |i| {
        i.agents.len() == 2
            && i.agents.iter().all(|a| {
                a.pipelines.iter().map(|p| p.pipeline.as_str()).eq(want)
                    && a.pipelines
                        .iter()
                        .all(|p| close(p.accepted_per_second, 50.0))
            })
            && i.pipelines.len() == 4
    })
    .await;
    for a in &i.agents {
        assert!(close(a.accepted_per_second, 200.0), "{a:?}");
        for p in &a.pipelines {
            assert_eq!(p.agents, 1);
            assert!(close(p.sent_per_second, 50.0), "{p:?}");
            assert_eq!(p.refused_per_second, 0.0);
        }
    }
    let fleet: Vec<&str> = i.pipelines.iter().map(|p| p.pipeline.as_str()).collect();
    assert_eq!(fleet, want);
    for p in &i.pipelines {
        assert_eq!(p.agents, 2, "{p:?}");
        assert!(close(p.accepted_per_second, 100.0), "{p:?}");
    }
    // And Prometheus has the fleet-level series per pipeline
    wait_for("per-pipeline gauges on /metrics", || async {
        let v = prometheus(
            &server,
            "otaas_pipeline_accepted_per_second{pipeline=\"traces/web\"}",
        )
        .await?;
        let n = prometheus(&server, "otaas_pipeline_agents{pipeline=\"traces/web\"}").await?;
        (close(v, 100.0) && n == 2.0).then_some(())
    })
    .await;
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flapping_connection_is_flagged() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given a steady agent, and two that will flap: one over WebSocket, one over HTTP
    let steady = Sim::start(&server.ws_url(), &["--labels", "role=steady"]);
    let mut ws = Sim::start(&server.ws_url(), &["--labels", "role=flap-ws"]);
    let http_url = format!("http://{}", server.opamp);
    let mut http = Sim::start(
        &http_url,
        &["--labels", "role=flap-http", "--transport", "http"],
    );
    let uid = |sim: &Sim| -> String {
        sim.events("connected")
            .first()
            .and_then(|e| e["uid"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let (steady_uid, ws_uid, http_uid) = wait_for("all three connected", || {
        let ids = (uid(&steady), uid(&ws), uid(&http));
        async move { (!ids.0.is_empty() && !ids.1.is_empty() && !ids.2.is_empty()).then_some(ids) }
    })
    .await;
    // When two of them drop their connection repeatedly
    ws.command("flap on");
    http.command("flap on");
    // Then both are flagged as flapping, with their connect count, and the steady one is not
    let i = insights_until(&client, "two flapping agents", |i| {
        i.anomaly_counts.get(&AnomalyKind::FlappingConnection) == Some(&2)
    })
    .await;
    let mut flagged: Vec<(&str, &str)> = i
        .anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::FlappingConnection)
        .map(|a| (a.agent_id.as_str(), a.message.as_str()))
        .collect();
    flagged.sort();
    // A WebSocket agent that reconnects before the server has seen its old connection close
    // holds a uid a live connection still has, and the server renames it (a `new_uid` event):
    // the flagged agent is the one under its latest uid.
    let latest = |sim: &Sim, first: &str| -> String {
        sim.events("new_uid")
            .last()
            .and_then(|e| e["new_uid"].as_str().map(str::to_owned))
            .unwrap_or_else(|| first.to_owned())
    };
    let (ws_uid, http_uid) = (latest(&ws, &ws_uid), latest(&http, &http_uid));
    let mut want = [ws_uid.as_str(), http_uid.as_str()];
    want.sort();
    assert_eq!(flagged.iter().map(|(id, _)| *id).collect::<Vec<_>>(), want);
    for (_, message) in &flagged {
        assert!(
            message.starts_with("connected ") && message.ends_with(" times in the last 5 minutes"),
            "{message}"
        );
    }
    assert!(!i.anomalies.iter().any(|a| a.agent_id == steady_uid));
    // The simulator did reconnect them (its own account, not the server's)
    assert!(ws.events("disconnected").len() >= 3);
    assert!(http.events("disconnected").len() >= 3);
    // And Prometheus counts them
    wait_for("flapping on /metrics", || async {
        let n = prometheus(
            &server,
            "otaas_insights_anomalies{kind=\"flapping_connection\"}",
        )
        .await?;
        (n == 2.0).then_some(())
    })
    .await;
    ws.command("flap off");
    http.command("flap off");
    steady.stop();
    ws.stop();
    http.stop();
}

/// `google.rpc.Status`, the OTLP/HTTP error body.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).unwrap();
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_own_metrics_are_read_and_bad_bodies_get_otlp_errors() {
    use prost::Message as _;
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given an agent exporting its own metrics gzip-compressed (as collectors do by default)
    let sim = Sim::start(
        &server.ws_url(),
        &["--labels", "x=1", "--own-metrics-seconds", "1"],
    );
    // Then the server reads them
    let i = insights_until(&client, "gzip reports read", |i| {
        i.agents.len() == 1 && i.agents[0].reports >= 2
    })
    .await;
    assert!(close(i.agents[0].accepted_per_second, 100.0), "{i:?}");
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/metrics", server.opamp);
    let post = |encoding: Option<&'static str>, content_type: &'static str, body: Vec<u8>| {
        let mut req = http
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        req.send()
    };
    let status_of = |bytes: &[u8]| RpcStatus::decode(bytes).expect("a google.rpc.Status body");
    let valid =
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::default()
            .encode_to_vec();
    // A small gzip body is fine.
    let r = post(Some("gzip"), "application/x-protobuf", gzip(&valid))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A gzip bomb: 17 MiB of zeros in a few KiB, over the 16 MiB limit once inflated.
    let bomb = gzip(&vec![0u8; 17 << 20]);
    assert!(bomb.len() < 64 << 10);
    let r = post(Some("gzip"), "application/x-protobuf", bomb)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let st = status_of(&r.bytes().await.unwrap());
    assert!(
        st.message
            .contains("limit of 16777216 bytes (after decompression)"),
        "{st:?}"
    );
    // Not gzip at all.
    let r = post(Some("gzip"), "application/x-protobuf", b"not gzip".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let st = status_of(&r.bytes().await.unwrap());
    assert!(
        st.message.starts_with("the body is not valid gzip"),
        "{st:?}"
    );
    // An encoding we do not read.
    let r = post(Some("br"), "application/x-protobuf", valid.clone())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let st = status_of(&r.bytes().await.unwrap());
    assert_eq!(
        st.message,
        "Content-Encoding \"br\" is not supported (use gzip or none)"
    );
    // OTLP/JSON is not read; the error comes back as JSON, like the request.
    let r = post(None, "application/json", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], 12);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Content-Type must be application/x-protobuf"),
        "{body}"
    );
    // A body that is not an export request.
    let r = post(None, "application/x-protobuf", vec![0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let st = status_of(&r.bytes().await.unwrap());
    assert!(
        st.message.starts_with("not an OTLP metrics export request"),
        "{st:?}"
    );
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_spike_unhealthy_components_and_heartbeat_loss_are_flagged() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let mut spec = pipeline_spec("ops");
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    let mut binding = binding_spec("ops", pipeline.id);
    binding.destinations[0].kind = "debug".into();
    binding.destinations[0].endpoint = None;
    binding.destinations[0].headers.clear();
    client.create_exporter_binding(&binding).await.unwrap();
    let mut group = group_spec("ops", vec![pipeline.id]);
    group.selector = [("fleet".to_string(), "ops".to_string())].into();
    let group = client.create_agent_group(&group).await.unwrap();
    // Given two managed agents running the group's config (two collector pipelines)
    let args = ["--labels", "fleet=ops", "--own-metrics-seconds", "1"];
    let mut troubled = Sim::start(&server.ws_url(), &args);
    let lost = Sim::start(&server.ws_url(), &args);
    let query = AgentQuery {
        group_id: Some(group.id),
        ..Default::default()
    };
    let agents = wait_for("both agents applied the config", || {
        let (client, query) = (client.clone(), query.clone());
        async move {
            let list = client.list_agents(&query).await.ok()?;
            (list.len() == 2 && list.iter().all(|a| a.status == AgentStatus::Applied))
                .then_some(list)
        }
    })
    .await;
    let uid_of = |sim: &Sim| {
        sim.events("connected")[0]["uid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (troubled_id, lost_id) = (uid_of(&troubled), uid_of(&lost));
    let mut ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    ids.sort();
    let mut want = [troubled_id.as_str(), lost_id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let steady = insights_until(&client, "own metrics from both", |i| {
        i.agents.len() == 2 && i.agents.iter().all(|a| a.reports >= 2)
    })
    .await;
    assert_eq!(steady.anomalies, vec![], "a healthy start");

    // When one agent refuses a third of what it receives and reports its pipelines failing,
    // and the other one's process dies (no goodbye)
    troubled.command("refused 50");
    troubled.command("unhealthy on");
    drop(lost);
    // Then each is flagged for what happened to it
    let i = insights_until(&client, "the three kinds flagged", |i| {
        [
            AnomalyKind::RefusedSpike,
            AnomalyKind::UnhealthyComponent,
            AnomalyKind::HeartbeatLoss,
        ]
        .iter()
        .all(|k| i.anomaly_counts.contains_key(k))
    })
    .await;
    let of = |kind: AnomalyKind| -> Vec<(&str, &str)> {
        i.anomalies
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| (a.agent_id.as_str(), a.message.as_str()))
            .collect()
    };
    let refused = of(AnomalyKind::RefusedSpike);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, troubled_id);
    assert!(refused[0].1.contains("(33 %)"), "{refused:?}");
    let unhealthy = of(AnomalyKind::UnhealthyComponent);
    assert_eq!(
        unhealthy,
        [
            (
                troubled_id.as_str(),
                "pipeline:metrics/ops is unhealthy: simulated: sending queue is full"
            ),
            (
                troubled_id.as_str(),
                "pipeline:traces/ops is unhealthy: simulated: sending queue is full"
            ),
        ]
    );
    let lost_flag = of(AnomalyKind::HeartbeatLoss);
    assert_eq!(lost_flag.len(), 1, "{lost_flag:?}");
    assert_eq!(lost_flag[0].0, lost_id);
    assert!(
        lost_flag[0].1.starts_with("not heard from since "),
        "{lost_flag:?}"
    );
    assert!(
        i.anomalies.iter().all(|a| a.group_id == Some(group.id)),
        "{:?}",
        i.anomalies
    );
    // And the group status counts the unhealthy agent
    let st = client.group_status(group.id).await.unwrap();
    assert_eq!(st.unhealthy, 1, "{st:?}");
    troubled.stop();
}

/// An export of `receiver_accepted_log_records` for `agent`, one data point per pipeline
/// `logs/p0`..`logs/p{pipelines-1}`, counters at `value`, read at `at_ns`.
fn export_with_pipelines(agent: &str, pipelines: usize, value: i64, at_ns: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message as _;
    let kv = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    };
    let points = (0..pipelines)
        .map(|i| NumberDataPoint {
            attributes: vec![
                kv("receiver", "otlp".into()),
                kv("otelcol.pipeline.id", format!("logs/p{i}")),
            ],
            time_unix_nano: at_ns,
            value: Some(number_data_point::Value::AsInt(value)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.instance.id", agent.into())],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "otelcol_receiver_accepted_log_records".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: points,
                        is_monotonic: true,
                        aggregation_temporality: 2,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn own_metrics_need_an_agent_token_by_default_and_are_bounded_in_series_per_agent() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use prost::Message as _;
    // Given a server with the defaults a user gets, and one enrolled agent (no own metrics of
    // its own, so only this test's exports reach the ingest for it)
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start_default(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let token = client
        .create_token(&TokenCreate {
            description: "insights test".into(),
            scope: TokenScope::Agent,
            expires_in: None,
            expires_at: None,
        })
        .await
        .unwrap();
    let _sim = Sim::start(
        &server.ws_url(),
        &[
            "--labels",
            "x=1",
            "--token",
            &token.token,
            "--own-metrics-seconds",
            "0",
        ],
    );
    let deadline = std::time::Instant::now() + TIMEOUT;
    let agent = loop {
        let list = client.list_agents(&AgentQuery::default()).await.unwrap();
        if let Some(a) = list.into_iter().next() {
            break a.id;
        }
        assert!(std::time::Instant::now() < deadline, "the agent never came");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let url = format!("http://{}/v1/metrics", server.opamp);
    let post = |token: Option<&str>, body: Vec<u8>| {
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    const PIPELINES: usize = 1_000;
    const KEPT: usize = 256;
    let t0: u64 = 1_800_000_000_000_000_000;

    // When the agent's metrics come without a token: refused, nothing recorded
    let r = post(None, export_with_pipelines(&agent, PIPELINES, 1, t0))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(client.insights().await.unwrap().agents.is_empty());

    // When they come with the agent's token, naming 1,000 pipelines, twice (rates need two)
    for (n, at) in [(1, t0), (11, t0 + 1_000_000_000)] {
        let r = post(
            Some(&token.token),
            export_with_pipelines(&agent, PIPELINES, n, at),
        )
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        // Then each answer is an OTLP partial success saying what was left out and why
        let answer = ExportMetricsServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
        let partial = answer.partial_success.expect("a partial success");
        assert_eq!(partial.rejected_data_points, (PIPELINES - KEPT) as i64);
        assert!(
            partial.error_message.contains("more than 256 series"),
            "{partial:?}"
        );
    }
    // And the report and /metrics hold the first 256 series only
    let i = insights_until(&client, "the agent's two reports", |i| {
        i.agents.first().is_some_and(|a| a.reports == 2)
    })
    .await;
    assert_eq!(i.pipelines.len(), KEPT, "{:?}", i.pipelines.len());
    // (`/metrics` takes the report up every few seconds.)
    let deadline = std::time::Instant::now() + TIMEOUT;
    let gauges = loop {
        let text = reqwest::get(format!("http://{}/metrics", server.api))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let gauges = text
            .lines()
            .filter(|l| l.starts_with("otaas_pipeline_accepted_per_second{"))
            .count();
        if gauges > 0 || std::time::Instant::now() > deadline {
            break gauges;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(gauges, KEPT);
    assert!(
        close(i.agents[0].accepted_per_second, 10.0 * KEPT as f64),
        "{i:?}"
    );
}
