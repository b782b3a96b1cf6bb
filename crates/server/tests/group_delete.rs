//! Deleting an agent group with agents on it, against the real `otaas serve` and `otaas
//! fleet-sim`: the agents keep running their last config, are listed as unmanaged, stay
//! connected, and the server logs no error on the way.

mod common;
use otaas_testkit::procs;

use std::collections::BTreeMap;

use common::*;
use otaas_api::*;
use procs::*;
use serde_json::json;

const AGENTS: usize = 3;

/// The group's agents (or every agent when `group` is `None`), once `ok` holds for all `n`.
async fn agents_where(
    client: &Client,
    group: Option<AgentGroupId>,
    what: &str,
    ok: impl Fn(&Agent) -> bool,
) -> Vec<Agent> {
    let query = AgentQuery {
        group_id: group,
        ..Default::default()
    };
    let ok = &ok;
    wait_for(what, || {
        let (client, query) = (client.clone(), query.clone());
        async move {
            let list = client.list_agents(&query).await.ok()?;
            (list.len() == AGENTS && list.iter().all(ok)).then_some(list)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_group_leaves_its_agents_running_unmanaged_without_a_server_error() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();

    // Given a group (a pipeline with a receiver and a binding) whose agents applied two
    // revisions, so the rollout engine holds history for it
    let mut spec = pipeline_spec("gone");
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    let mut binding = binding_spec("gone", pipeline.id);
    binding.destinations[0].kind = "debug".into();
    binding.destinations[0].endpoint = None;
    binding.destinations[0].headers.clear();
    let binding = client.create_exporter_binding(&binding).await.unwrap();
    let mut group = group_spec("gone", vec![pipeline.id]);
    group.selector = BTreeMap::from([("fleet".to_owned(), "gone".to_owned())]);
    let group = client.create_agent_group(&group).await.unwrap();
    let n = AGENTS.to_string();
    let _sim = Sim::start(
        &server.ws_url(),
        &[
            "--agents",
            &n,
            "--labels",
            "fleet=gone,host=h{i}",
            "--heartbeat",
            "2",
        ],
    );
    let on = |hash: String| {
        move |a: &Agent| {
            a.status == AgentStatus::Applied && a.effective_config_hash.as_deref() == Some(&hash)
        }
    };
    agents_where(
        &client,
        Some(group.id),
        "revision 1 applied",
        on(group.config_hash.clone()),
    )
    .await;
    spec.processors.push(ProcessorSpec {
        id: "memory_limiter".into(),
        config: json!({"limit_mib": 400, "check_interval": "1s"}),
    });
    client
        .update_pipeline(pipeline.id, &spec, None)
        .await
        .unwrap();
    let group = client.get_agent_group(group.id).await.unwrap();
    assert_eq!(group.config_revision, 2);
    let before = agents_where(
        &client,
        Some(group.id),
        "revision 2 applied",
        on(group.config_hash.clone()),
    )
    .await;

    // When the group is deleted, then its binding and pipeline (the order `terraform destroy`
    // takes)
    client.delete_agent_group(group.id).await.unwrap();
    client.delete_exporter_binding(binding.id).await.unwrap();
    client.delete_pipeline(pipeline.id).await.unwrap();

    // Then the agents are listed as unmanaged, connected, still running the last config
    let after = agents_where(&client, None, "the agents unmanaged", |a| {
        a.status == AgentStatus::Unmanaged
    })
    .await;
    for (was, now) in before.iter().zip(&after) {
        assert_eq!(now.id, was.id);
        assert_eq!(now.group_id, None);
        assert_eq!(now.config_hash, None);
        assert!(now.connected, "{now:?}");
        assert_eq!(now.effective_config_hash, Some(group.config_hash.clone()));
        assert_eq!(now.remote_config_hash, Some(group.config_hash.clone()));
    }
    // And they stay so over a few heartbeats, with no error in the server's log
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let later = client.list_agents(&AgentQuery::default()).await.unwrap();
    assert_eq!(
        later
            .iter()
            .map(|a| (a.group_id, a.connected, a.effective_config_hash.clone()))
            .collect::<Vec<_>>(),
        vec![(None, true, Some(group.config_hash.clone())); AGENTS]
    );
    let log = server.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors, Vec::<&str>::new(), "server log:\n{log}");
}

/// A pipeline (with a receiver) and a debug binding for it.
async fn pipeline_and_binding(client: &Client, name: &str) -> (PipelineId, ExporterBindingId) {
    let mut spec = pipeline_spec(name);
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    let mut binding = binding_spec(name, pipeline.id);
    binding.destinations[0].kind = "debug".into();
    binding.destinations[0].endpoint = None;
    binding.destinations[0].headers.clear();
    let binding = client.create_exporter_binding(&binding).await.unwrap();
    (pipeline.id, binding.id)
}

/// `terraform destroy` of a group that does not `depends_on` its bindings deletes the group
/// and the bindings at the same time: a binding's deletion re-renders the group (a new
/// revision, picked up by the rollout engine) while the group goes away.
#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_group_and_its_binding_at_once_logs_no_error() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given groups with two bindings each (one stays, so every group keeps an exporter)
    let mut made = Vec::new();
    for i in 0..GROUPS {
        let name = format!("race-{i}");
        let (pipeline, binding) = pipeline_and_binding(&client, &name).await;
        let mut extra = binding_spec(&format!("{name}-b"), pipeline);
        extra.destinations[0].kind = "debug".into();
        extra.destinations[0].endpoint = None;
        extra.destinations[0].headers.clear();
        client.create_exporter_binding(&extra).await.unwrap();
        let mut group = group_spec(&name, vec![pipeline]);
        group.selector = BTreeMap::from([("fleet".to_owned(), name.clone())]);
        let group = client.create_agent_group(&group).await.unwrap();
        made.push((group.id, binding));
    }
    // When each group's binding and then the group are deleted, all groups at once
    let deletions = made.iter().map(|&(group, binding)| {
        let client = client.clone();
        async move {
            // The binding first: its new revision is on its way to the engine when the group
            // goes.
            client.delete_exporter_binding(binding).await.unwrap();
            client.delete_agent_group(group).await.unwrap();
        }
    });
    futures::future::join_all(deletions).await;
    // Then the groups are gone and, once the engine caught up, the log has no error
    assert_eq!(client.list_agent_groups().await.unwrap().len(), 0);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let log = server.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors, Vec::<&str>::new(), "server log:\n{log}");
}

const GROUPS: usize = 20;
