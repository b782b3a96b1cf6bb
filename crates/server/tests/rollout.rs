//! Rollout scenarios against the real `otaas serve` with `otaas fleet-sim` agents over real
//! WebSockets: every strategy on a healthy fleet, a bad config stopping at the first batch or
//! the canary (with and without automatic rollback; the status names each failed agent),
//! pause/resume with an agent joining mid-rollout, and a server killed during a bake that
//! resumes the rollout after restart.
//!
//! Step order is asserted from status snapshots and the recorded steps, never from timing.

mod common;
use otaas_testkit::procs;

use std::collections::BTreeMap;

use common::*;
use otaas_api::*;
use procs::*;
use serde_json::json;

fn selector(k: &str, v: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(k.to_owned(), v.to_owned())])
}

/// A pipeline with an OTLP receiver and a debug exporter, and a group over `fleet=<name>`
/// with `rollout`; returns the pipeline spec (to change it later) and the group.
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

/// Revision 2: adds a `memory_limiter` processor (which `--reject-components memory_limiter`
/// builds cannot run). Returns the new config hash.
async fn change_config(
    client: &Client,
    id: PipelineId,
    spec: &PipelineSpec,
    group: &AgentGroup,
) -> String {
    // Revision 1 must have completed, so it is the last good one to fall back to.
    watch(client, group.id, "revision 1 complete", |s| {
        s.state == RolloutState::Complete && s.revision == group.config_revision
    })
    .await;
    let mut spec = spec.clone();
    spec.processors.push(ProcessorSpec {
        id: "memory_limiter".into(),
        config: json!({"limit_mib": 400, "check_interval": "1s"}),
    });
    client.update_pipeline(id, &spec, None).await.unwrap();
    let g = client.get_agent_group(group.id).await.unwrap();
    assert_eq!(g.config_revision, group.config_revision + 1);
    g.config_hash
}

/// Polls the group's status, keeping every snapshot, until `done` holds.
async fn watch(
    client: &Client,
    id: AgentGroupId,
    what: &str,
    done: impl Fn(&GroupStatus) -> bool,
) -> Vec<GroupStatus> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Ok(s) = client.group_status(id).await {
            let finished = done(&s);
            seen.push(s);
            if finished {
                return seen;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; last status: {:?}",
            seen.last()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until the group's `n` agents all run `hash` (APPLIED, effective config the same).
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
                    a.status == AgentStatus::Applied
                        && a.remote_config_hash.as_deref() == Some(hash)
                        && a.effective_config_hash.as_deref() == Some(hash)
                }))
            .then_some(list)
        }
    })
    .await
}

fn sim_args<'a>(n: &'a str, labels: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--agents", n, "--labels", labels, "--heartbeat", "2"];
    v.extend_from_slice(extra);
    v
}

/// Given a healthy fleet on revision 1, when revision 2 is made, then the rollout goes through
/// the strategy's steps in order, each step only after the previous one's agents applied it,
/// and completes with every agent on revision 2.
async fn healthy_scenario(name: &str, agents: usize, rollout: RolloutSpec, expect_steps: &[u32]) {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let (pid, spec, group) = make_group(&client, name, rollout).await;
    let n = agents.to_string();
    let labels = format!("fleet={name},host=h{{i}}");
    let sim = Sim::start(&server.ws_url(), &sim_args(&n, &labels, &[]));
    all_on(&client, group.id, agents, &group.config_hash).await;
    // The first revision went to everyone in one step, completed once they applied it.
    let first = watch(&client, group.id, "first revision complete", |s| {
        s.state == RolloutState::Complete
    })
    .await
    .pop()
    .unwrap();
    assert_eq!(first.steps.len(), 1);
    assert_eq!(first.last_good_revision, None);
    assert_eq!(first.revision, group.config_revision);
    assert_eq!(first.applied, agents as u64);

    let hash2 = change_config(&client, pid, &spec, &group).await;
    let snaps = watch(&client, group.id, "rollout complete", |s| {
        s.state == RolloutState::Complete && s.config_hash == hash2
    })
    .await;
    let last = snaps.last().unwrap();
    // The steps, in order, with their sizes; only the last sends to the rest.
    assert_eq!(
        last.steps.iter().map(|s| s.agents).collect::<Vec<_>>(),
        expect_steps
    );
    assert_eq!(
        last.steps.iter().map(|s| s.last).collect::<Vec<_>>(),
        (0..expect_steps.len())
            .map(|i| i + 1 == expect_steps.len())
            .collect::<Vec<_>>()
    );
    // Each step started after the previous one was healthy.
    for w in last.steps.windows(2) {
        let healthy = w[0].healthy_at.expect("earlier step healthy");
        assert!(w[1].started_at >= healthy);
    }
    // No snapshot ever showed more agents on revision 2 than the steps started so far allow.
    for s in snaps.iter().filter(|s| s.config_hash == hash2) {
        if let Some(step) = s.current_step {
            let allowed: u32 = expect_steps[..=step as usize].iter().sum();
            assert!(
                s.applied + s.applying + s.failed <= u64::from(allowed),
                "step {step} allowed {allowed}: {s:?}"
            );
        }
    }
    assert_eq!(last.last_good_revision, Some(group.config_revision));
    assert_eq!(last.applied, agents as u64);
    assert_eq!(last.failures, vec![]);
    all_on(&client, group.id, agents, &hash2).await;
    let summary = sim.stop();
    assert_eq!(summary["hashes"], json!({ hash2: agents }));
}

#[tokio::test(flavor = "multi_thread")]
async fn all_at_once_completes_in_one_step() {
    healthy_scenario("once", 4, RolloutSpec::default(), &[4]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_explicit_sizes_then_the_rest() {
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Batched,
        batch_sizes: vec![1, 2],
        ..Default::default()
    };
    healthy_scenario("batch", 6, rollout, &[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_exponential_1_10_100() {
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Batched,
        ..Default::default()
    };
    healthy_scenario("expo", 15, rollout, &[1, 10, 4]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_bakes_then_the_rest() {
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Canary,
        canary_percent: Some(25),
        bake_seconds: 2,
        ..Default::default()
    };
    healthy_scenario("canary", 8, rollout.clone(), &[2, 6]).await;
}

/// Given a fleet whose build lacks `memory_limiter`, when a config using it rolls out, then
/// the rollout stops at its first step, names the failing agent(s) and, with auto_rollback,
/// every agent ends on the previous hash; without it, untouched agents stay on it.
async fn bad_config_scenario(name: &str, rollout: RolloutSpec, first_step: u32) {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let auto = rollout.auto_rollback;
    let (pid, spec, group) = make_group(&client, name, rollout).await;
    let labels = format!("fleet={name},host=h{{i}}");
    let sim = Sim::start(
        &server.ws_url(),
        &sim_args("4", &labels, &["--reject-components", "memory_limiter"]),
    );
    all_on(&client, group.id, 4, &group.config_hash).await;

    let hash2 = change_config(&client, pid, &spec, &group).await;
    let want = if auto {
        RolloutState::RolledBack
    } else {
        RolloutState::Failed
    };
    let snaps = watch(&client, group.id, "rollout stopped", |s| {
        s.config_hash == hash2 && s.state == want
    })
    .await;
    let st = snaps.last().unwrap();
    // Stopped at the first step: no other step started.
    assert_eq!(st.steps.len(), 1, "{st:?}");
    assert_eq!(st.steps[0].agents, first_step);
    assert_eq!(st.current_step, Some(0));
    assert_eq!(st.last_good_revision, Some(group.config_revision));
    assert_eq!(st.failures.len(), first_step as usize);
    // Each failed agent is named once: exactly the agents that reported FAILED for revision 2.
    let named: std::collections::BTreeSet<&str> =
        st.failures.iter().map(|f| f.agent_id.as_str()).collect();
    let rejected: std::collections::BTreeSet<String> = sim
        .events("config")
        .iter()
        .filter(|e| e["hash"] == hash2.as_str() && e["status"] == "FAILED")
        .filter_map(|e| e["uid"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        named,
        rejected.iter().map(String::as_str).collect(),
        "{st:?}"
    );
    for f in &st.failures {
        assert_eq!(
            f.message,
            format!(
                "unknown processor type \"memory_limiter\" for \"memory_limiter/{name}\": component \"memory_limiter\" is not available in this collector build"
            )
        );
    }
    if auto {
        assert!(
            st.message.starts_with(&format!(
                "rolled back to revision {}",
                group.config_revision
            )),
            "{}",
            st.message
        );
        // Every agent ends on the previous hash, the failed ones included.
        all_on(&client, group.id, 4, &group.config_hash).await;
        let st = watch(&client, group.id, "counts on the last good hash", |s| {
            s.applied == 4
        })
        .await;
        assert_eq!(st.last().unwrap().failed, 0);
        let summary = sim.stop();
        assert_eq!(summary["hashes"], json!({ group.config_hash.clone(): 4 }));
        assert_eq!(summary["status"], json!({"APPLIED": 4}));
    } else {
        // The failed agent(s) keep the running config; the rest never got revision 2.
        let st = watch(&client, group.id, "counts", |s| {
            s.failed == u64::from(first_step) && s.pending == 4 - u64::from(first_step)
        })
        .await;
        assert_eq!(st.last().unwrap().applied, 0);
        let summary = sim.stop();
        assert_eq!(
            summary["status"],
            json!({"APPLIED": 4 - first_step, "FAILED": first_step})
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_config_stops_at_the_first_batch_and_rolls_back() {
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Batched,
        batch_sizes: vec![1, 1],
        max_failures: 0,
        auto_rollback: true,
        ..Default::default()
    };
    bad_config_scenario("badbatch", rollout, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_config_stops_at_the_canary_without_rollback() {
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Canary,
        canary_percent: Some(50),
        max_failures: 1,
        ..Default::default()
    };
    bad_config_scenario("badcanary", rollout, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_config_stops_at_the_canary_and_rolls_back() {
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Canary,
        canary_percent: Some(25),
        bake_seconds: 1,
        max_failures: 0,
        auto_rollback: true,
        ..Default::default()
    };
    bad_config_scenario("badcanaryrb", rollout, 1).await;
}

/// Pause holds the rollout at its step; an agent joining meanwhile gets the last good revision;
/// resume finishes it and the joiner gets the new one.
#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_and_an_agent_joining_mid_rollout() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Batched,
        batch_sizes: vec![1],
        ..Default::default()
    };
    let (pid, spec, group) = make_group(&client, "pause", rollout).await;
    let sim = Sim::start(
        &server.ws_url(),
        &sim_args("3", "fleet=pause,host=h{i}", &["--uid-seed", "7"]),
    );
    all_on(&client, group.id, 3, &group.config_hash).await;
    watch(&client, group.id, "revision 1 complete", |s| {
        s.state == RolloutState::Complete
    })
    .await;
    // Nothing to pause or roll back once complete.
    let err = client.pause_rollout(group.id).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 409, ref error } if error.code == ErrorCode::StateConflict),
        "{err:?}"
    );

    let hash2 = change_config(&client, pid, &spec, &group).await;
    let paused = client.pause_rollout(group.id).await.unwrap();
    assert_eq!(paused.state, RolloutState::Paused);
    assert_eq!(paused.config_hash, hash2);
    assert_eq!(paused.steps.len(), 1);
    // The first step's agent applies it; the rollout does not move on while paused.
    watch(&client, group.id, "first agent applied", |s| s.applied == 1).await;
    // An agent joining now gets the last good revision (its step has not come).
    let joiner = Sim::start(
        &server.ws_url(),
        &sim_args("1", "fleet=pause,host=late", &[]),
    );
    let late = AgentQuery {
        selector: selector("host", "late"),
        ..Default::default()
    };
    wait_for("the joiner on the last good revision", || {
        let client = client.clone();
        let late = late.clone();
        let good = group.config_hash.clone();
        async move {
            let list = client.list_agents(&late).await.ok()?;
            (list.len() == 1
                && list[0].status == AgentStatus::Applied
                && list[0].remote_config_hash.as_deref() == Some(good.as_str()))
            .then_some(())
        }
    })
    .await;
    // Step 0 was healthy long ago (the joiner connected and applied since), yet still paused.
    let still = client.group_status(group.id).await.unwrap();
    assert_eq!(still.state, RolloutState::Paused);
    assert_eq!(still.steps.len(), 1);
    assert_eq!((still.matched, still.applied, still.pending), (4, 1, 3));

    // When resumed, it completes and every agent, the joiner too, runs revision 2.
    let resumed = client.resume_rollout(group.id).await.unwrap();
    assert_eq!(resumed.state, RolloutState::InProgress);
    let snaps = watch(&client, group.id, "complete", |s| {
        s.state == RolloutState::Complete
    })
    .await;
    let last = snaps.last().unwrap();
    assert_eq!(
        last.steps.iter().map(|s| s.agents).collect::<Vec<_>>(),
        [1, 3]
    );
    all_on(&client, group.id, 4, &hash2).await;
    joiner.stop();
    sim.stop();
}

/// Rollback by request from a paused rollout sends everyone back; a group's first revision
/// cannot be rolled back.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_by_request() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Batched,
        batch_sizes: vec![2],
        ..Default::default()
    };
    let (pid, spec, group) = make_group(&client, "rb", rollout).await;
    let sim = Sim::start(&server.ws_url(), &sim_args("3", "fleet=rb,host=h{i}", &[]));
    all_on(&client, group.id, 3, &group.config_hash).await;
    let hash2 = change_config(&client, pid, &spec, &group).await;
    client.pause_rollout(group.id).await.unwrap();
    // The pause may land before or after the first step finished (then the second step has
    // started too): either way the rollout is paused with the first batch on the new hash.
    watch(
        &client,
        group.id,
        "paused with the first batch applied",
        |s| s.state == RolloutState::Paused && s.applied >= 2,
    )
    .await;
    let back = client.rollback(group.id).await.unwrap();
    assert_eq!(back.state, RolloutState::RolledBack);
    assert_eq!(back.config_hash, hash2);
    assert_eq!(
        back.message,
        format!(
            "rolled back to revision {}: requested",
            group.config_revision
        )
    );
    all_on(&client, group.id, 3, &group.config_hash).await;
    // Resume makes no sense any more.
    let err = client.resume_rollout(group.id).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 409, .. }),
        "{err:?}"
    );
    // Unknown group: 404.
    let err = client.group_status(AgentGroupId::new()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 404, .. }),
        "{err:?}"
    );
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_mid_rollout_resumes_it() {
    restart_scenario(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_mid_rollout_on_postgres_resumes_it() {
    // A fresh schema, created (and migrated) here, used by the server through search_path.
    let schema = fresh_schema();
    drop(
        otaas_server::store::postgres::PgStore::open(&pg_url(), Some(&schema))
            .await
            .unwrap(),
    );
    let url = format!("{}?options[search_path]={schema}", pg_url());
    let result = tokio::spawn(async move { restart_scenario(&["--database", &url]).await }).await;
    otaas_server::store::postgres::PgStore::drop_schema(&pg_url(), &schema)
        .await
        .unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Killed (SIGKILL) during the canary's bake, the server comes back on the same data and
/// address and finishes the same rollout: same steps, no agent re-sent a config it runs.
async fn restart_scenario(extra: &[&str]) {
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let server = Serve::start(data.path(), &addr, extra);
    let client = server.client();
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Canary,
        canary_percent: Some(25),
        bake_seconds: 6,
        ..Default::default()
    };
    let (pid, spec, group) = make_group(&client, "crash", rollout).await;
    let sim = Sim::start(
        &server.ws_url(),
        &sim_args("4", "fleet=crash,host=h{i}", &["--uid-seed", "42"]),
    );
    all_on(&client, group.id, 4, &group.config_hash).await;
    let hash2 = change_config(&client, pid, &spec, &group).await;
    let baking = watch(&client, group.id, "canary baking", |s| {
        s.config_hash == hash2 && s.steps.first().is_some_and(|st| st.healthy_at.is_some())
    })
    .await;
    let before = baking.last().unwrap().clone();
    assert_eq!(before.state, RolloutState::InProgress);
    assert_eq!(before.steps.len(), 1);
    // Give the agent flusher (1 s) time to store the canary's APPLIED report, then crash.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.kill();

    let server = Serve::start(data.path(), &addr, extra);
    let client = server.client();
    let snaps = watch(&client, group.id, "rollout complete after restart", |s| {
        s.state == RolloutState::Complete
    })
    .await;
    let after = snaps.last().unwrap();
    assert_eq!(after.revision, before.revision);
    // The same canary step (not restarted), then the rest.
    assert_eq!(after.steps[0], before.steps[0]);
    assert_eq!(
        after.steps.iter().map(|s| s.agents).collect::<Vec<_>>(),
        [1, 3]
    );
    all_on(&client, group.id, 4, &hash2).await;
    let summary = sim.stop();
    // 4 agents x (revision 1 + revision 2): the canary was not sent revision 2 again.
    assert_eq!(summary["configs_received"], 8, "{summary}");
    assert_eq!(summary["hashes"], json!({ hash2: 4 }));
}

/// An agent whose running config is edited by hand (same APPLIED hash, other content) is
/// flagged drifted in the agents API, the group status and the insights; and not once it runs
/// the sent config again. The sent config carries a secret (a header), so the stored copy is
/// redacted: a naive comparison with it would flag every agent.
#[tokio::test(flavor = "multi_thread")]
async fn hand_edited_agents_are_flagged_drifted() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let mut spec = pipeline_spec("drift");
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    // binding_spec has a secret header: the agents get it, the store keeps a redacted copy.
    client
        .create_exporter_binding(&binding_spec("drift", pipeline.id))
        .await
        .unwrap();
    let mut g = group_spec("drift", vec![pipeline.id]);
    g.selector = selector("fleet", "drift");
    let group = client.create_agent_group(&g).await.unwrap();
    let mut sim = Sim::start(
        &server.ws_url(),
        &sim_args("2", "fleet=drift,host=h{i}", &[]),
    );
    all_on(&client, group.id, 2, &group.config_hash).await;
    let clean = watch(&client, group.id, "complete", |s| {
        s.state == RolloutState::Complete
    })
    .await
    .pop()
    .unwrap();
    assert_eq!((clean.applied, clean.drifted), (2, 0));
    let agent = client.list_agents(&AgentQuery::default()).await.unwrap();
    let one = client.get_agent(&agent[0].id).await.unwrap();
    assert!(
        one.effective_config
            .as_deref()
            .unwrap()
            .contains("<redacted>")
    );

    // When the agents' configs are edited by hand
    sim.command("drift on");
    let st = watch(&client, group.id, "drift counted", |s| s.drifted == 2).await;
    // Then they are drifted (and still count as applied: they did apply it)
    assert_eq!(st.last().unwrap().applied, 2);
    let agents = client.list_agents(&AgentQuery::default()).await.unwrap();
    assert!(
        agents.iter().all(|a| a.status == AgentStatus::Drifted),
        "{agents:?}"
    );
    let insights = client.insights().await.unwrap();
    let drifted = insights
        .anomalies
        .iter()
        .filter(|a| a.kind == otaas_api::insights::AnomalyKind::Drift)
        .count();
    assert_eq!(drifted, 2);
    // When they run the sent config again, the flag clears
    sim.command("drift off");
    watch(&client, group.id, "drift cleared", |s| {
        s.drifted == 0 && s.applied == 2
    })
    .await;
    sim.stop();
}
