//! Discovery: the pipelines this replica's agents run, read from the effective configs they
//! report (redacted on arrival), grouped across agents by content ([`shape::Unit::hash`]), with
//! who runs them, whether otaas already renders the same thing, what otaas could not represent,
//! and their agents' health, throughput and anomalies. Serves `GET
//! /api/v1/discovered-pipelines`; `adopt.rs` turns one into otaas objects.
//!
//! Computed when asked, from the registry: the shape of each distinct effective config is kept
//! by the config's hash (10,000 agents on five configs are shaped five times), so a listing
//! costs one pass over the agents.

pub mod adopt;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use otaas_api::discovery::{
    DiscoveredComponent, DiscoveredHealth, DiscoveredPipeline, DiscoveredServicePipeline,
    DiscoveredThroughput, ManagedEquivalent, UnrepresentablePart,
};
use otaas_api::{AgentGroupId, Signal};
use otaas_collector::shape::{self, Shape, Unit};

use crate::fleet::{AgentFilter, AgentId};
use crate::insights::Insights;
use crate::registry::Registry;
use crate::revisions::ConfigWriter;
use crate::store::{Store, StoreError};

/// Most shapes kept per cache (distinct effective configs, distinct group configs); past it
/// the cache starts over. A fleet has a handful of configs; this bounds a fleet of snowflakes.
const MAX_CACHED: usize = 4096;
/// Most anomalies and sample agents listed per discovered pipeline.
const MAX_LISTED: usize = 20;

/// The discovery engine: the registry, store and insights it reads, and its shape caches.
pub struct Discovery {
    agents: Arc<Registry>,
    store: Arc<dyn Store>,
    insights: Arc<Insights>,
    writer: ConfigWriter,
    /// Effective config hash (or group config hash) → its shape (`None`: not a config).
    shapes: Mutex<HashMap<String, Arc<Option<Shape>>>>,
}

/// One agent as discovery needs it, copied out of the registry lock.
#[derive(Clone)]
pub(crate) struct Seen {
    pub id: AgentId,
    pub labels: BTreeMap<String, String>,
    pub group_id: Option<AgentGroupId>,
    pub healthy: Option<bool>,
    pub config_hash: String,
    pub config: Arc<str>,
}

/// A discovered pipeline as aggregated over the agents, before it is shown.
pub(crate) struct Found {
    /// The unit as the first agent running it has it.
    pub unit: Unit,
    /// The first agent's effective config (redacted).
    pub example: Arc<str>,
    pub agents: Vec<AgentId>,
    /// Per agent, the names of its service pipelines of this unit (names may differ).
    pub names: HashMap<AgentId, Vec<String>>,
    /// Per agent, its labels.
    pub labels: HashMap<AgentId, BTreeMap<String, String>>,
    pub common_labels: Option<BTreeMap<String, String>>,
    pub unmanaged: u64,
    pub health: DiscoveredHealth,
}

impl Discovery {
    pub fn new(
        agents: Arc<Registry>,
        store: Arc<dyn Store>,
        insights: Arc<Insights>,
        writer: ConfigWriter,
    ) -> Self {
        Self {
            agents,
            store,
            insights,
            writer,
            shapes: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.agents
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub(crate) fn writer(&self) -> &ConfigWriter {
        &self.writer
    }

    /// The shape of the document of `hash`, computed once.
    pub(crate) fn shape_of(&self, hash: &str, yaml: &str) -> Arc<Option<Shape>> {
        let mut cache = self.shapes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cache.get(hash) {
            return s.clone();
        }
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let s = Arc::new(shape::shape(yaml).ok());
        cache.insert(hash.to_owned(), s.clone());
        s
    }

    /// This replica's agents that report an effective config.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        let mut out = Vec::new();
        self.agents.visit(&AgentFilter::default(), |r| {
            if let (Some(hash), Some(config)) = (&r.effective_config_hash, &r.effective_config) {
                out.push(Seen {
                    id: r.id,
                    labels: r.labels.clone(),
                    group_id: r.group_id,
                    healthy: r.health.as_ref().map(|h| h.healthy),
                    config_hash: hash.clone(),
                    config: config.clone(),
                });
            }
        });
        out.sort_by_key(|s| s.id);
        out
    }

    /// Every discovered pipeline, by id.
    pub(crate) fn found(&self) -> BTreeMap<String, Found> {
        let mut found: BTreeMap<String, Found> = BTreeMap::new();
        for agent in self.seen() {
            let shape = self.shape_of(&agent.config_hash, &agent.config);
            let Some(shape) = shape.as_ref() else {
                continue;
            };
            for unit in &shape.units {
                let f = found.entry(unit.hash.clone()).or_insert_with(|| Found {
                    unit: unit.clone(),
                    example: agent.config.clone(),
                    agents: Vec::new(),
                    names: HashMap::new(),
                    labels: HashMap::new(),
                    common_labels: None,
                    unmanaged: 0,
                    health: DiscoveredHealth::default(),
                });
                f.agents.push(agent.id);
                f.names.insert(
                    agent.id,
                    unit.pipelines.iter().map(|p| p.name.clone()).collect(),
                );
                f.labels.insert(agent.id, agent.labels.clone());
                f.common_labels = Some(match f.common_labels.take() {
                    None => agent.labels.clone(),
                    Some(mut common) => {
                        common.retain(|k, v| agent.labels.get(k) == Some(v));
                        common
                    }
                });
                if agent.group_id.is_none() {
                    f.unmanaged += 1;
                }
                match agent.healthy {
                    Some(true) => f.health.healthy += 1,
                    Some(false) => f.health.unhealthy += 1,
                    None => f.health.unknown += 1,
                }
            }
        }
        found
    }

    /// Discovered pipeline id → the otaas pipelines rendering the same content, per group.
    pub(crate) async fn managed(
        &self,
    ) -> Result<HashMap<String, Vec<ManagedEquivalent>>, StoreError> {
        let mut out: HashMap<String, Vec<ManagedEquivalent>> = HashMap::new();
        let groups = self.store.list_groups().await?;
        if groups.is_empty() {
            return Ok(out);
        }
        let pipelines = self.store.list_pipelines().await?;
        let endpoints = self.store.list_endpoints().await?;
        let bindings = self.store.list_bindings().await?;
        let known = crate::secrets::known(self.store.as_ref()).await?;
        for g in groups.iter().filter(|g| g.config_revision > 0) {
            let key = format!("group:{}", g.config_hash);
            let cached = self.shapes.lock().ok().and_then(|c| c.get(&key).cloned());
            let shape = match cached {
                Some(s) => s,
                None => {
                    let rev = self.store.group_revision(g.record.id, None).await?;
                    // Agents' configs are redacted on arrival: compare like with like.
                    let yaml = crate::render::redact_known(&rev.yaml, &known).unwrap_or_default();
                    self.shape_of(&key, &yaml)
                }
            };
            let Some(shape) = shape.as_ref() else {
                continue;
            };
            for unit in &shape.units {
                // Rendered service pipelines are `<signal>/<pipeline>`.
                let name = unit
                    .pipelines
                    .first()
                    .and_then(|p| p.name.split_once('/'))
                    .map(|(_, n)| n.to_owned())
                    .unwrap_or_default();
                let pipeline = pipelines.iter().find(|p| p.spec.name == name);
                let pid = pipeline.map(|p| p.id);
                out.entry(unit.hash.clone())
                    .or_default()
                    .push(ManagedEquivalent {
                        group_id: g.record.id,
                        group_name: g.record.spec.name.clone(),
                        pipeline_id: pid,
                        pipeline_name: name,
                        endpoint_ids: endpoints
                            .iter()
                            .filter(|e| Some(e.spec.pipeline_id) == pid)
                            .map(|e| e.id)
                            .collect(),
                        exporter_binding_ids: bindings
                            .iter()
                            .filter(|b| Some(b.spec.pipeline_id) == pid)
                            .map(|b| b.id)
                            .collect(),
                    });
            }
        }
        Ok(out)
    }

    /// Every discovered pipeline as the API shows it, ordered by id.
    pub async fn list(&self) -> Result<Vec<DiscoveredPipeline>, StoreError> {
        let found = self.found();
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let managed = self.managed().await?;
        let taken: Vec<String> = self
            .store
            .list_pipelines()
            .await?
            .into_iter()
            .map(|p| p.spec.name)
            .collect();
        let report = self.insights.report().await?;
        let by_agent: HashMap<&str, &otaas_api::insights::AgentInsight> = report
            .agents
            .iter()
            .map(|a| (a.agent_id.as_str(), a))
            .collect();
        Ok(found
            .into_iter()
            .map(|(id, f)| {
                let mut throughput = DiscoveredThroughput::default();
                for agent in &f.agents {
                    let key = agent.to_string();
                    let (Some(insight), Some(names)) =
                        (by_agent.get(key.as_str()), f.names.get(agent))
                    else {
                        continue;
                    };
                    let mut reported = false;
                    for p in insight
                        .pipelines
                        .iter()
                        .filter(|p| names.contains(&p.pipeline))
                    {
                        reported = true;
                        throughput.accepted_per_second += p.accepted_per_second;
                        throughput.refused_per_second += p.refused_per_second;
                        throughput.sent_per_second += p.sent_per_second;
                    }
                    throughput.agents_reporting += u64::from(reported);
                }
                let agent_ids: std::collections::HashSet<String> =
                    f.agents.iter().map(|a| a.to_string()).collect();
                let anomalies = report
                    .anomalies
                    .iter()
                    .filter(|a| agent_ids.contains(&a.agent_id))
                    .take(MAX_LISTED)
                    .cloned()
                    .collect();
                let managed = managed.get(&id).cloned().unwrap_or_default();
                let suggested = suggested_name(&f.unit, &id, &taken, &managed);
                view(id, f, suggested, managed, throughput, anomalies)
            })
            .collect())
    }

    /// One discovered pipeline, if some agent runs it.
    pub async fn get(&self, id: &str) -> Result<Option<DiscoveredPipeline>, StoreError> {
        // The listing is what computes the cross-agent parts; one pipeline is one of them.
        Ok(self.list().await?.into_iter().find(|p| p.id == id))
    }
}

/// The API view of an aggregated discovered pipeline.
fn view(
    id: String,
    f: Found,
    suggested_name: String,
    managed: Vec<ManagedEquivalent>,
    throughput: DiscoveredThroughput,
    anomalies: Vec<otaas_api::insights::Anomaly>,
) -> DiscoveredPipeline {
    let component = |c: &shape::Component| DiscoveredComponent {
        id: c.id.clone(),
        config: c.config.clone(),
    };
    let unrepresentable: Vec<UnrepresentablePart> = f
        .unit
        .problems
        .iter()
        .map(|p| UnrepresentablePart {
            part: p.part(),
            reason: p.to_string(),
        })
        .collect();
    let signals: Vec<Signal> = f.unit.signals();
    DiscoveredPipeline {
        id,
        suggested_name,
        signals,
        pipelines: f
            .unit
            .pipelines
            .iter()
            .map(|p| DiscoveredServicePipeline {
                name: p.name.clone(),
                receivers: p.receivers.iter().map(component).collect(),
                processors: p.processors.iter().map(component).collect(),
                exporters: p.exporters.iter().map(component).collect(),
            })
            .collect(),
        connectors: f.unit.connectors.clone(),
        agents: f.agents.len() as u64,
        unmanaged_agents: f.unmanaged,
        common_labels: f.common_labels.unwrap_or_default(),
        managed,
        adoptable: unrepresentable.is_empty(),
        unrepresentable,
        health: f.health,
        throughput,
        anomalies,
        sample_agents: f
            .agents
            .iter()
            .take(MAX_LISTED)
            .map(|a| a.to_string())
            .collect(),
    }
}

/// A pipeline name (`[a-z0-9_-]{1,63}`) from the agents' own: `logs/app` → `app`, a bare
/// `logs` → `logs`; made unique among `taken` (except the pipeline already managing it).
pub(crate) fn suggested_name(
    unit: &Unit,
    id: &str,
    taken: &[String],
    managed: &[ManagedEquivalent],
) -> String {
    let names: Vec<&str> = unit
        .pipelines
        .iter()
        .map(|p| p.name.split_once('/').map_or(p.name.as_str(), |(_, n)| n))
        .collect();
    let raw = names.first().copied().unwrap_or("pipeline");
    let mut base = sanitized(raw, 50);
    if base.is_empty() {
        base = "pipeline".into();
    }
    let own = |n: &str| managed.iter().any(|m| m.pipeline_name == n);
    if taken.contains(&base) && !own(&base) {
        base = format!("{base}-{}", &id[..id.len().min(8)]);
    }
    base
}

/// `s` lowercased with every character outside `[a-z0-9_-]` as `-`, without leading or
/// trailing `-`, at most `max` characters (possibly empty): names for otaas objects.
pub(crate) fn sanitized(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '-',
        })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(max)
        .collect()
}
