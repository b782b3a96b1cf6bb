//! Several `otaas serve` replicas on one PostgreSQL (a fresh schema per test), with
//! `otaas fleet-sim` agents split across them over real WebSockets:
//! - a change made through replica A is applied by the agents connected to replica B, and
//!   every replica lists the whole fleet, each agent saying which replica holds it;
//! - a second process with a live replica's id refuses to start;
//! - the replica driving a canary rollout is killed (SIGKILL) during the bake; the other takes
//!   the rollout over and finishes it, the dead replica's agents reconnecting through a load
//!   balancer to the survivor;
//! - pause and resume sent through the replica that does not drive the rollout take effect;
//! - a replica cut off from PostgreSQL misses the notifications sent meanwhile and catches up
//!   by resynchronising when its listener reconnects.
//!
//! The load balancer and the cut-able database link are TCP forwarders on loopback
//! (`common/proxy.rs`). Nothing is asserted on timing; every wait is bounded by `TIMEOUT`.

mod common;
use otaas_testkit::procs;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::future::Future;

use common::*;
use otaas_api::*;
use otaas_server::store::postgres::PgStore;
use procs::*;
use proxy::Proxy;
use serde_json::json;

/// Runs `body` with the URL of a fresh, migrated PostgreSQL schema, dropped afterwards even
/// when the body panics. The URL carries the schema as `search_path`, as a user would.
async fn with_schema<F, Fut>(body: F)
where
    F: FnOnce(String, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let schema = fresh_schema();
    drop(PgStore::open(&pg_url(), Some(&schema)).await.unwrap());
    let url = format!("{}?options[search_path]={schema}", pg_url());
    let result = tokio::spawn(body(url, schema.clone())).await;
    PgStore::drop_schema(&pg_url(), &schema).await.unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn replica(data: &tempfile::TempDir, url: &str, id: &str) -> Serve {
    Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--database", url, "--replica-id", id],
    )
}

fn selector(k: &str, v: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(k.to_owned(), v.to_owned())])
}

fn sim_args<'a>(n: &'a str, labels: &'a str) -> Vec<&'a str> {
    vec!["--agents", n, "--labels", labels, "--heartbeat", "2"]
}

/// A pipeline with an OTLP receiver and a debug exporter, and a group over `fleet=<name>`.
async fn make_group(
    client: &Client,
    name: &str,
    rollout: RolloutSpec,
) -> (PipelineId, PipelineSpec, AgentGroup) {
    let mut spec = pipeline_spec(name);
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    let mut binding = binding_spec(name, pipeline.id);
    binding.destinations[0].kind = "debug".into();
    binding.destinations[0].endpoint = None;
    binding.destinations[0].headers.clear();
    client.create_exporter_binding(&binding).await.unwrap();
    let mut group = group_spec(name, vec![pipeline.id]);
    group.selector = selector("fleet", name);
    group.rollout = rollout;
    let group = client.create_agent_group(&group).await.unwrap();
    (pipeline.id, spec, group)
}

/// A new revision (one more processor); returns its hash.
async fn change_config(
    client: &Client,
    id: PipelineId,
    spec: &PipelineSpec,
    group: AgentGroupId,
) -> String {
    let mut spec = spec.clone();
    spec.processors.push(ProcessorSpec {
        id: "memory_limiter".into(),
        config: json!({"limit_mib": 400, "check_interval": "1s"}),
    });
    client.update_pipeline(id, &spec, None).await.unwrap();
    client.get_agent_group(group).await.unwrap().config_hash
}

/// Polls the group's status through `client` until `done` holds; returns the last status.
async fn watch(
    client: &Client,
    id: AgentGroupId,
    what: &str,
    done: impl Fn(&GroupStatus) -> bool,
) -> GroupStatus {
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut last = None;
    loop {
        if let Ok(s) = client.group_status(id).await {
            if done(&s) {
                return s;
            }
            last = Some(s);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; last status: {last:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until the group's `n` agents, as `client`'s replica lists them, all run `hash`.
async fn all_on(client: &Client, group: AgentGroupId, n: usize, hash: &str) -> Vec<Agent> {
    let query = AgentQuery {
        group_id: Some(group),
        ..Default::default()
    };
    wait_for(&format!("{n} agents on {hash}"), || {
        let client = client.clone();
        let query = query.clone();
        async move {
            let list = client.list_agents(&query).await.ok()?;
            (list.len() == n
                && list.iter().all(|a| {
                    a.connected
                        && a.status == AgentStatus::Applied
                        && a.remote_config_hash.as_deref() == Some(hash)
                }))
            .then_some(list)
        }
    })
    .await
}

fn held_by(agents: &[Agent], replica: &str) -> usize {
    agents
        .iter()
        .filter(|a| a.replica_id.as_deref() == Some(replica))
        .count()
}

async fn metric(server: &Serve, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", server.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Given agents on replica A and on replica B, when the config changes through A, then B's
/// agents apply it too; both replicas list all eight agents with the replica holding each.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_through_a_reaches_agents_on_b() {
    with_schema(|url, _| async move {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = replica(&da, &url, "replica-a");
        let b = replica(&db, &url, "replica-b");
        let (ca, cb) = (a.client(), b.client());
        let (pid, spec, group) = make_group(&ca, "split", RolloutSpec::default()).await;
        let on_a = Sim::start(&a.ws_url(), &sim_args("4", "fleet=split,host=a{i}"));
        let on_b = Sim::start(&b.ws_url(), &sim_args("4", "fleet=split,host=b{i}"));
        let first = all_on(&cb, group.id, 8, &group.config_hash).await;
        assert_eq!(
            (held_by(&first, "replica-a"), held_by(&first, "replica-b")),
            (4, 4)
        );
        watch(&cb, group.id, "revision 1 complete", |s| {
            s.state == RolloutState::Complete
        })
        .await;

        // When the pipeline changes through A
        let hash2 = change_config(&ca, pid, &spec, group.id).await;
        // Then B's agents apply it (as B and as A list them)
        let seen_by_b = all_on(&cb, group.id, 8, &hash2).await;
        assert_eq!(held_by(&seen_by_b, "replica-b"), 4);
        let seen_by_a = all_on(&ca, group.id, 8, &hash2).await;
        let who = |list: &[Agent]| {
            list.iter()
                .map(|x| (x.id.clone(), x.replica_id.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(who(&seen_by_a), who(&seen_by_b));
        let done = watch(&ca, group.id, "revision 2 complete", |s| {
            s.state == RolloutState::Complete && s.config_hash == hash2
        })
        .await;
        assert_eq!((done.matched, done.applied), (8, 8));
        // One agent of B, read through A, says where it is.
        let one_of_b = seen_by_b
            .iter()
            .find(|x| x.labels["host"].starts_with('b'))
            .unwrap();
        let via_a = ca.get_agent(&one_of_b.id).await.unwrap();
        assert_eq!(via_a.replica_id.as_deref(), Some("replica-b"));
        assert_eq!(via_a.remote_config_hash.as_deref(), Some(hash2.as_str()));

        assert_eq!(on_b.stop()["hashes"], json!({ hash2.clone(): 4 }));
        assert_eq!(on_a.stop()["hashes"], json!({ hash2: 4 }));

        // A second process with a live replica's id refuses to start, saying why.
        let dup = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(otaas_testkit::bin::otaas())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--opamp-listen",
                "127.0.0.1:0",
            ])
            .args([
                "--admin-token",
                ADMIN,
                "--database",
                &url,
                "--replica-id",
                "replica-b",
            ])
            .arg("--data-dir")
            .arg(dup.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("replica id \"replica-b\" is in use by a live replica"),
            "{stderr}"
        );
        drop((a, b));
    })
    .await;
}

/// The replica driving a canary rollout is killed during the bake; the other one takes the
/// rollout over, keeps the canary step, and finishes it on every agent — including the dead
/// replica's, which reconnect through the load balancer to the survivor.
#[tokio::test(flavor = "multi_thread")]
async fn killing_the_driving_replica_lets_the_other_finish() {
    with_schema(|url, _| async move {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = replica(&da, &url, "kill-a");
        let b = replica(&db, &url, "kill-b");
        let lb = Proxy::start(vec![a.opamp.parse().unwrap(), b.opamp.parse().unwrap()]);
        let rollout = RolloutSpec {
            strategy: RolloutStrategy::Canary,
            canary_percent: Some(25),
            bake_seconds: 8,
            ..Default::default()
        };
        let (pid, spec, group) = make_group(&a.client(), "crash", rollout).await;
        let sim = Sim::start(
            &format!("ws://{}", lb.addr),
            &sim_args("6", "fleet=crash,host=h{i}"),
        );
        let first = all_on(&a.client(), group.id, 6, &group.config_hash).await;
        assert!(
            held_by(&first, "kill-a") > 0 && held_by(&first, "kill-b") > 0,
            "the load balancer split the agents: {first:?}"
        );
        watch(&a.client(), group.id, "revision 1 complete", |s| {
            s.state == RolloutState::Complete
        })
        .await;
        let hash2 = change_config(&a.client(), pid, &spec, group.id).await;
        let baking = watch(&a.client(), group.id, "canary baking", |s| {
            s.config_hash == hash2 && s.steps.first().is_some_and(|st| st.healthy_at.is_some())
        })
        .await;
        assert_eq!(baking.steps.len(), 1);
        assert_eq!(baking.steps[0].agents, 2);
        let driver = baking.driver.clone().expect("the status names its driver");

        // When the driver dies
        let (survivor, dead) = if driver == "kill-a" {
            (b, a)
        } else {
            assert_eq!(driver, "kill-b");
            (a, b)
        };
        dead.kill();
        let client = survivor.client();
        // Then the survivor takes over and finishes the same rollout
        let done = watch(&client, group.id, "rollout complete on the survivor", |s| {
            s.state == RolloutState::Complete
        })
        .await;
        assert_ne!(done.driver.as_deref(), Some(driver.as_str()));
        assert_eq!(done.revision, baking.revision);
        assert_eq!(done.steps[0].started_at, baking.steps[0].started_at);
        assert_eq!(
            done.steps.iter().map(|s| s.agents).collect::<Vec<_>>(),
            [2, 4]
        );
        // And every agent, those of the dead replica too, runs the new config on the survivor.
        let after = all_on(&client, group.id, 6, &hash2).await;
        assert_eq!(held_by(&after, &driver), 0);
        let summary = sim.stop();
        assert_eq!(summary["hashes"], json!({ hash2: 6 }), "{summary}");
    })
    .await;
}

/// Pause and resume sent through the replica that does not drive the rollout take effect:
/// the driver stops after the current step (well past its bake) and goes on when resumed.
#[tokio::test(flavor = "multi_thread")]
async fn pause_through_the_non_driving_replica() {
    with_schema(|url, _| async move {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = replica(&da, &url, "pause-a");
        let b = replica(&db, &url, "pause-b");
        let rollout = RolloutSpec {
            strategy: RolloutStrategy::Batched,
            batch_sizes: vec![1],
            bake_seconds: 8,
            ..Default::default()
        };
        let (pid, spec, group) = make_group(&a.client(), "pause", rollout).await;
        let on_a = Sim::start(&a.ws_url(), &sim_args("2", "fleet=pause,host=a{i}"));
        let on_b = Sim::start(&b.ws_url(), &sim_args("2", "fleet=pause,host=b{i}"));
        all_on(&a.client(), group.id, 4, &group.config_hash).await;
        let complete = watch(&a.client(), group.id, "revision 1 complete", |s| {
            s.state == RolloutState::Complete
        })
        .await;
        let driver = complete
            .driver
            .clone()
            .expect("the status names its driver");
        let (driving, other) = if driver == "pause-a" {
            (&a, &b)
        } else {
            (&b, &a)
        };

        let hash2 = change_config(&other.client(), pid, &spec, group.id).await;
        // The first batch (one agent) goes out and bakes for 8 s: pause it through the other.
        watch(&other.client(), group.id, "first batch started", |s| {
            s.config_hash == hash2 && s.steps.len() == 1
        })
        .await;
        let paused = other.client().pause_rollout(group.id).await.unwrap();
        assert_eq!(paused.state, RolloutState::Paused);
        assert_eq!(paused.steps.len(), 1);
        // The driver knows: its status says paused.
        watch(&driving.client(), group.id, "driver sees the pause", |s| {
            s.state == RolloutState::Paused
        })
        .await;
        watch(&driving.client(), group.id, "first agent applied", |s| {
            s.applied == 1
        })
        .await;
        // Well past the bake, the driver still has not started the next batch.
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        let still = driving.client().group_status(group.id).await.unwrap();
        assert_eq!(still.state, RolloutState::Paused);
        assert_eq!(still.steps.len(), 1);
        assert_eq!(still.driver.as_deref(), Some(driver.as_str()));

        // When resumed through the other replica, the driver finishes it.
        let resumed = other.client().resume_rollout(group.id).await.unwrap();
        assert_eq!(resumed.state, RolloutState::InProgress);
        let done = watch(&driving.client(), group.id, "complete", |s| {
            s.state == RolloutState::Complete
        })
        .await;
        assert_eq!(
            done.steps.iter().map(|s| s.agents).collect::<Vec<_>>(),
            [1, 3]
        );
        all_on(&other.client(), group.id, 4, &hash2).await;
        on_a.stop();
        on_b.stop();
    })
    .await;
}

/// Replica B is cut off from PostgreSQL while a change is made through A: B's listener
/// misses that notification. When the link is back, B's listener reconnects, resynchronises
/// from the database, and B's agents get the new config.
#[tokio::test(flavor = "multi_thread")]
async fn listener_resyncs_after_reconnect() {
    with_schema(|url, schema| async move {
        let pg: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let link = Proxy::start(vec![pg]);
        let b_url = format!(
            "postgres://postgres@{}/test?options[search_path]={schema}",
            link.addr
        );
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = replica(&da, &url, "link-a");
        let b = replica(&db, &b_url, "link-b");
        let (pid, spec, group) = make_group(&a.client(), "link", RolloutSpec::default()).await;
        let sim = Sim::start(&b.ws_url(), &sim_args("3", "fleet=link,host=b{i}"));
        all_on(&a.client(), group.id, 3, &group.config_hash).await;
        watch(&a.client(), group.id, "revision 1 complete", |s| {
            s.state == RolloutState::Complete
        })
        .await;
        let reconnects = metric(&b, "otaas_cluster_listener_reconnects_total").await;

        // When B loses PostgreSQL and the config changes through A meanwhile
        link.cut();
        let hash2 = change_config(&a.client(), pid, &spec, group.id).await;
        // A (driving now, whoever drove before) has started the rollout of revision 2.
        watch(&a.client(), group.id, "revision 2 started", |s| {
            s.config_hash == hash2 && s.driver.as_deref() == Some("link-a")
        })
        .await;
        // Then, once the link is back, B catches up and its agents apply revision 2.
        link.restore();
        all_on(&a.client(), group.id, 3, &hash2).await;
        watch(&a.client(), group.id, "revision 2 complete", |s| {
            s.state == RolloutState::Complete && s.config_hash == hash2
        })
        .await;
        assert!(
            metric(&b, "otaas_cluster_listener_reconnects_total").await > reconnects,
            "B's listener reconnected"
        );
        assert_eq!(sim.stop()["hashes"], json!({ hash2: 3 }));
    })
    .await;
}

/// Given an agent connected to replica B with an agent token, when the token is revoked
/// through replica A, then B closes the agent's session (`ServerErrorResponse`, close 1008):
/// the revocation travels as a cluster notice (and B's periodic token re-check is the net
/// for a lost one).
#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_token_through_a_closes_its_sessions_on_b() {
    use futures::{SinkExt, StreamExt};
    use otaas_opamp::framing;
    use otaas_opamp::proto::{AgentToServer, ServerErrorResponseType, ServerToAgent};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    with_schema(|url, _| async move {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = replica(&da, &url, "rev-a");
        let b = Serve::start(
            db.path(),
            "127.0.0.1:0",
            &[
                "--database",
                &url,
                "--replica-id",
                "rev-b",
                "--require-agent-token",
            ],
        );
        let token = a
            .client()
            .create_token(&TokenCreate {
                description: "replica test".into(),
                scope: TokenScope::Agent,
                expires_in: None,
                expires_at: None,
            })
            .await
            .unwrap();
        let mut request = format!("ws://{}/v1/opamp", b.opamp)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", token.token).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let hello = AgentToServer {
            instance_uid: bytes::Bytes::copy_from_slice(uuid::Uuid::now_v7().as_bytes()),
            capabilities: 1,
            ..Default::default()
        };
        ws.send(Message::Binary(framing::encode(&hello).into()))
            .await
            .unwrap();
        let mut next = async || loop {
            match tokio::time::timeout(TIMEOUT, ws.next())
                .await
                .expect("in time")
            {
                Some(Ok(Message::Binary(data))) => {
                    break Some(framing::decode::<ServerToAgent>(&data, 1 << 20).unwrap());
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
                    break None;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("unexpected {other:?}"),
            }
        };
        let first = next().await.expect("a first reply");
        assert!(first.error_response.is_none(), "{first:?}");

        let status = reqwest::Client::new()
            .delete(format!("http://{}/api/v1/tokens/{}", a.api, token.id))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204);
        let refusal = next().await.expect("a ServerErrorResponse");
        let err = refusal.error_response.expect("a ServerErrorResponse");
        assert_eq!(err.r#type, ServerErrorResponseType::Unknown as i32);
        assert!(err.error_message.contains("revoked"), "{err:?}");
        assert!(next().await.is_none(), "a close frame after the refusal");
    })
    .await;
}
