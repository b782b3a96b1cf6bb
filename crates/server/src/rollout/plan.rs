//! The rollout state machine, without I/O: the persisted [`Rollout`] record, how a strategy
//! cuts a fleet into steps, and [`advance`], which looks at the group's agents and moves the
//! rollout on (next step, bake, failure, completion). The engine (`mod.rs`) stores the record
//! and turns it into registry decisions with [`Rollout::decision`].
//!
//! Step rules (documented in `crates/server/README.md`):
//! - a step moves the next `size` *connected* members not yet moved, in instance-uid order
//!   (deterministic, so a restarted server picks the same agents);
//! - the last step is the canary's "rest", the step after an explicit `batch_sizes` list, or
//!   any step that leaves no connected member unmoved; from the last step on, the new revision
//!   is the group's default, so every remaining, reconnecting and joining agent gets it;
//! - before the last step, agents that join get the last good revision until a step picks
//!   them;
//! - a step is healthy when each of its connected agents reported APPLIED with the new hash
//!   and healthy; it then bakes `bake_seconds` before the next step starts;
//! - an agent that reports FAILED for the new hash, or applies it and reports unhealthy, is a
//!   failure; more than `max_failures` stop the rollout (`failed`, or `rolled_back` with
//!   `auto_rollback`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use otaas_api::{RolloutSpec, RolloutState, RolloutStrategy};
use serde::{Deserialize, Serialize};

use crate::fleet::{AgentRecord, ConfigStatus};

/// One started step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Agents moved to the new revision by this step (instance uids, hex).
    pub agents: Vec<String>,
    pub last: bool,
    pub started_at: DateTime<Utc>,
    /// When every connected agent of the step was healthy on the new revision.
    #[serde(default)]
    pub healthy_at: Option<DateTime<Utc>>,
}

/// A group's rollout; persisted as JSON in the `rollouts` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The revision being rolled out (the group's latest).
    pub revision: i64,
    pub hash: String,
    /// The revision to fall back to; `None` for a group's first revision.
    pub last_good: Option<i64>,
    pub last_good_hash: Option<String>,
    pub state: RolloutState,
    pub steps: Vec<Step>,
    /// Failed agents and their messages.
    #[serde(default)]
    pub failures: BTreeMap<String, String>,
    #[serde(default)]
    pub message: String,
    pub updated_at: DateTime<Utc>,
    /// The replica that drives (wrote) this record; set by the driver on every write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// What the registry should do for a group: the default config revision, and which agents
/// are pinned to the new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub default_revision: i64,
    pub pinned: Vec<String>,
}

impl Rollout {
    /// A revision taken as good as it is (a group whose history predates the rollout engine).
    pub fn complete_at(revision: i64, hash: String, now: DateTime<Utc>) -> Self {
        Self {
            revision,
            hash,
            last_good: None,
            last_good_hash: None,
            state: RolloutState::Complete,
            steps: Vec::new(),
            failures: BTreeMap::new(),
            message: format!("revision {revision} taken as the last good one"),
            updated_at: now,
            driver: None,
        }
    }

    /// A group's first revision: there is nothing to fall back to, so it goes to every agent
    /// at once (one step), and the rollout completes when they applied it.
    pub fn first(revision: i64, hash: String, now: DateTime<Utc>) -> Self {
        Self {
            state: RolloutState::InProgress,
            message: format!("revision {revision} is the group's first; sending it to every agent"),
            ..Self::complete_at(revision, hash, now)
        }
    }

    /// A new rollout of `revision` from `previous` (the group's rollout before it).
    pub fn start(previous: &Rollout, revision: i64, hash: String, now: DateTime<Utc>) -> Self {
        // What agents fall back to: the previous revision if it completed, else what the
        // previous rollout itself would have fallen back to.
        let (last_good, last_good_hash) = if previous.state == RolloutState::Complete {
            (Some(previous.revision), Some(previous.hash.clone()))
        } else {
            (previous.last_good, previous.last_good_hash.clone())
        };
        if last_good.is_none() {
            return Self::first(revision, hash, now);
        }
        Self {
            revision,
            hash,
            last_good,
            last_good_hash,
            state: RolloutState::InProgress,
            steps: Vec::new(),
            failures: BTreeMap::new(),
            message: format!("rolling out revision {revision}"),
            updated_at: now,
            driver: None,
        }
    }

    fn last_step_started(&self) -> bool {
        self.steps.last().is_some_and(|s| s.last)
    }

    /// Agents moved to the new revision so far.
    pub fn moved(&self) -> BTreeSet<&str> {
        self.steps
            .iter()
            .flat_map(|s| s.agents.iter().map(String::as_str))
            .collect()
    }

    /// The registry decision this record stands for.
    pub fn decision(&self) -> Decision {
        let fallback = self.last_good.unwrap_or(self.revision);
        match self.state {
            RolloutState::Complete => Decision {
                default_revision: self.revision,
                pinned: Vec::new(),
            },
            RolloutState::RolledBack => Decision {
                default_revision: fallback,
                pinned: Vec::new(),
            },
            RolloutState::InProgress | RolloutState::Paused | RolloutState::Failed => Decision {
                default_revision: if self.last_step_started() {
                    self.revision
                } else {
                    fallback
                },
                pinned: self.moved().into_iter().map(str::to_owned).collect(),
            },
        }
    }

    /// Sends every agent back to the last good revision.
    pub fn roll_back(&mut self, why: &str, now: DateTime<Utc>) {
        self.state = RolloutState::RolledBack;
        self.message = format!(
            "rolled back to revision {}: {why}",
            self.last_good.unwrap_or(self.revision)
        );
        self.updated_at = now;
    }
}

/// Size of step `index` for a group of `members` agents; `None` means "all the rest".
pub fn step_size(spec: &RolloutSpec, index: usize, members: usize) -> Option<usize> {
    match spec.strategy {
        RolloutStrategy::AllAtOnce => None,
        RolloutStrategy::Batched if spec.batch_sizes.is_empty() => {
            // 1, 10, 100, ...: saturate rather than overflow on absurd step counts.
            Some(10usize.checked_pow(index as u32).unwrap_or(usize::MAX))
        }
        RolloutStrategy::Batched => spec.batch_sizes.get(index).map(|&n| n.max(1) as usize),
        RolloutStrategy::Canary if index == 0 => {
            let percent = usize::from(spec.canary_percent.unwrap_or(10).clamp(1, 100));
            Some((members * percent).div_ceil(100).max(1))
        }
        RolloutStrategy::Canary => None,
    }
}

/// How one agent stands against the revision being rolled out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed(String),
    Waiting,
}

/// Why `agent` failed `hash`, if it did (FAILED, or unhealthy after applying it).
pub fn failure(agent: &AgentRecord, hash: &str) -> Option<String> {
    match outcome(agent, hash) {
        Outcome::Failed(message) => Some(message),
        Outcome::Done | Outcome::Waiting => None,
    }
}

fn outcome(agent: &AgentRecord, hash: &str) -> Outcome {
    if agent.remote_config_hash.as_deref() != Some(hash) {
        return Outcome::Waiting;
    }
    match agent.remote_config_status {
        ConfigStatus::Failed => Outcome::Failed(
            agent
                .remote_config_error
                .clone()
                .unwrap_or_else(|| "config reported FAILED without a message".to_owned()),
        ),
        ConfigStatus::Applied => match &agent.health {
            Some(h) if h.healthy => Outcome::Done,
            Some(h) => Outcome::Failed(if h.last_error.is_empty() {
                "unhealthy after applying the new config".to_owned()
            } else {
                format!("unhealthy after applying the new config: {}", h.last_error)
            }),
            // Agents that do not report health are judged by their config status alone.
            None => Outcome::Done,
        },
        ConfigStatus::Applying | ConfigStatus::Unset => Outcome::Waiting,
    }
}

/// What [`advance`] reads of a group member.
pub trait Member {
    /// The agent id as the record keeps it (hex).
    fn id(&self) -> Cow<'_, str>;
    fn connected(&self) -> bool;
    /// How the member stands against config `hash` (the rollout's).
    fn outcome(&self, hash: &str) -> Outcome;
}

impl Member for AgentRecord {
    fn id(&self) -> Cow<'_, str> {
        Cow::Owned(self.id.to_string())
    }
    fn connected(&self) -> bool {
        self.connected
    }
    fn outcome(&self, hash: &str) -> Outcome {
        outcome(self, hash)
    }
}

/// A member as the rollout driver samples it on each tick: its standing against the
/// rollout's hash taken on the spot, so the driver keeps an id and a flag per agent instead of
/// copying every member's whole record four times a second.
#[derive(Clone, Debug)]
pub struct Sampled {
    id: String,
    connected: bool,
    hash: std::sync::Arc<str>,
    outcome: Outcome,
}

impl Sampled {
    pub fn new(agent: &AgentRecord, hash: &std::sync::Arc<str>) -> Self {
        Self {
            id: agent.id.to_string(),
            connected: agent.connected,
            hash: hash.clone(),
            outcome: outcome(agent, hash),
        }
    }
}

impl Member for Sampled {
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.id)
    }
    fn connected(&self) -> bool {
        self.connected
    }
    fn outcome(&self, hash: &str) -> Outcome {
        if *self.hash == *hash {
            self.outcome.clone()
        } else {
            // Sampled against another revision: nothing is known about this one yet.
            Outcome::Waiting
        }
    }
}

/// Moves an in-progress rollout on, given the group's members (from the registry) and the
/// time. Returns true when the record changed (and must be stored and applied).
pub fn advance<M: Member>(
    r: &mut Rollout,
    spec: &RolloutSpec,
    members: &[M],
    now: DateTime<Utc>,
) -> bool {
    if r.state != RolloutState::InProgress {
        return false;
    }
    let mut changed = false;

    // Failures among the agents moved so far (the whole group once the last step started).
    let last = r.last_step_started();
    let moved: BTreeSet<String> = r.moved().into_iter().map(str::to_owned).collect();
    let mut waiting = 0usize;
    for agent in members {
        if !(last || moved.contains(agent.id().as_ref())) {
            continue;
        }
        match agent.outcome(&r.hash) {
            Outcome::Failed(message) => {
                let id = agent.id();
                if r.failures.get(id.as_ref()) != Some(&message) {
                    r.failures.insert(id.into_owned(), message);
                    changed = true;
                }
            }
            Outcome::Waiting if agent.connected() => waiting += 1,
            Outcome::Done | Outcome::Waiting => {}
        }
    }
    if r.failures.len() > spec.max_failures as usize {
        let why = format!(
            "{} agent(s) failed (max_failures {})",
            r.failures.len(),
            spec.max_failures
        );
        if spec.auto_rollback && r.last_good.is_some() {
            r.roll_back(&why, now);
        } else {
            r.state = RolloutState::Failed;
            r.message = format!("stopped at step {}: {why}", r.steps.len().saturating_sub(1));
            r.updated_at = now;
        }
        return true;
    }

    // The current step: healthy yet? baked yet?
    if let Some(step) = r.steps.last_mut() {
        if waiting > 0 {
            if changed {
                r.updated_at = now;
            }
            return changed;
        }
        let healthy_at = *step.healthy_at.get_or_insert_with(|| {
            changed = true;
            now
        });
        if step.last {
            r.state = RolloutState::Complete;
            r.message = format!("revision {} rolled out", r.revision);
            r.updated_at = now;
            return true;
        }
        let bake = chrono::Duration::seconds(i64::from(spec.bake_seconds));
        if now - healthy_at < bake {
            if changed {
                r.updated_at = now;
            }
            return changed;
        }
    }

    // Next step: the next connected members not moved yet, in id order.
    let index = r.steps.len();
    let mut candidates: Vec<&M> = members
        .iter()
        .filter(|a| a.connected() && !moved.contains(a.id().as_ref()))
        .collect();
    candidates.sort_by(|a, b| a.id().cmp(&b.id()));
    // Without a last good revision every agent already gets this one: one step.
    let size = if r.last_good.is_some() {
        step_size(spec, index, members.len())
    } else {
        None
    };
    let take = size.unwrap_or(candidates.len()).min(candidates.len());
    let last = size.is_none() || take == candidates.len();
    r.steps.push(Step {
        agents: candidates[..take]
            .iter()
            .map(|a| a.id().into_owned())
            .collect(),
        last,
        started_at: now,
        healthy_at: None,
    });
    r.message = format!(
        "rolling out revision {}: step {index} ({take} agent(s){})",
        r.revision,
        if last { ", last" } else { "" }
    );
    r.updated_at = now;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::HealthNode;

    /// The agent id of a short test name (a hex digit): agent ids are instance uids, and
    /// zero-padded names sort as the names do.
    fn uid(name: &str) -> String {
        format!("{name:0>32}")
    }

    fn agent(name: &str, hash: Option<&str>, status: ConfigStatus) -> AgentRecord {
        let mut rec: AgentRecord =
            serde_json::from_value(serde_json::json!({ "id": uid(name) })).unwrap();
        rec.connected = true;
        rec.remote_config_hash = hash.map(str::to_owned);
        rec.remote_config_status = status;
        rec.health = Some(HealthNode {
            healthy: true,
            ..Default::default()
        });
        rec
    }

    fn spec(strategy: RolloutStrategy) -> RolloutSpec {
        RolloutSpec {
            strategy,
            ..Default::default()
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn started(revision: i64) -> Rollout {
        let first = Rollout::complete_at(1, "h1".into(), t(0));
        Rollout::start(&first, revision, "h2".into(), t(0))
    }

    #[test]
    fn exponential_and_explicit_batches_and_canary_sizes() {
        let exp = spec(RolloutStrategy::Batched);
        let sizes: Vec<_> = (0..4).map(|i| step_size(&exp, i, 500)).collect();
        assert_eq!(sizes, [Some(1), Some(10), Some(100), Some(1000)]);
        let explicit = RolloutSpec {
            batch_sizes: vec![2, 5],
            ..spec(RolloutStrategy::Batched)
        };
        let sizes: Vec<_> = (0..3).map(|i| step_size(&explicit, i, 50)).collect();
        assert_eq!(sizes, [Some(2), Some(5), None]);
        let canary = RolloutSpec {
            canary_percent: Some(25),
            ..spec(RolloutStrategy::Canary)
        };
        assert_eq!(step_size(&canary, 0, 10), Some(3));
        assert_eq!(step_size(&canary, 0, 1), Some(1));
        assert_eq!(step_size(&canary, 1, 10), None);
    }

    #[test]
    fn first_revision_is_complete_and_later_ones_fall_back_to_it() {
        let r = started(2);
        assert_eq!(r.state, RolloutState::InProgress);
        assert_eq!(r.last_good, Some(1));
        assert_eq!(
            r.decision(),
            Decision {
                default_revision: 1,
                pinned: vec![]
            }
        );
    }

    #[test]
    fn batched_rollout_moves_step_by_step_and_completes() {
        // Given three connected agents on revision 1 and batches of 1, then the rest
        let s = RolloutSpec {
            batch_sizes: vec![1],
            ..spec(RolloutStrategy::Batched)
        };
        let mut fleet = vec![
            agent("c", Some("h1"), ConfigStatus::Applied),
            agent("a", Some("h1"), ConfigStatus::Applied),
            agent("b", Some("h1"), ConfigStatus::Applied),
        ];
        let mut r = started(2);
        // When the rollout starts, the first agent by id is pinned to revision 2
        assert!(advance(&mut r, &s, &fleet, t(1)));
        assert_eq!(r.decision().pinned, [uid("a")]);
        assert_eq!(r.decision().default_revision, 1);
        // It waits while that agent has not applied
        assert!(!advance(&mut r, &s, &fleet, t(2)));
        // When it applied healthy, the step is healthy and (no bake) the rest starts
        fleet[1] = agent("a", Some("h2"), ConfigStatus::Applied);
        assert!(advance(&mut r, &s, &fleet, t(3)));
        assert_eq!(r.steps.len(), 2);
        assert!(r.steps[1].last);
        assert_eq!(r.steps[1].agents, [uid("b"), uid("c")]);
        assert_eq!(r.decision().default_revision, 2);
        // Then when everyone applied it completes
        fleet[0] = agent("c", Some("h2"), ConfigStatus::Applied);
        fleet[2] = agent("b", Some("h2"), ConfigStatus::Applied);
        assert!(advance(&mut r, &s, &fleet, t(4)));
        assert_eq!(r.state, RolloutState::Complete);
        assert_eq!(
            r.decision(),
            Decision {
                default_revision: 2,
                pinned: vec![]
            }
        );
    }

    #[test]
    fn canary_bakes_before_the_rest() {
        let s = RolloutSpec {
            canary_percent: Some(50),
            bake_seconds: 30,
            ..spec(RolloutStrategy::Canary)
        };
        let mut fleet = vec![
            agent("a", Some("h2"), ConfigStatus::Applied),
            agent("b", Some("h1"), ConfigStatus::Applied),
            agent("c", Some("h1"), ConfigStatus::Applied),
            agent("d", Some("h1"), ConfigStatus::Applied),
        ];
        let mut r = started(2);
        assert!(advance(&mut r, &s, &fleet, t(0)));
        assert_eq!(r.steps[0].agents, [uid("a"), uid("b")]);
        fleet[1] = agent("b", Some("h2"), ConfigStatus::Applied);
        // Healthy at t=10: baking until t=40
        assert!(advance(&mut r, &s, &fleet, t(10)));
        assert_eq!(r.steps[0].healthy_at, Some(t(10)));
        assert!(!advance(&mut r, &s, &fleet, t(39)));
        assert_eq!(r.steps.len(), 1);
        assert!(advance(&mut r, &s, &fleet, t(40)));
        assert_eq!(r.steps[1].agents, [uid("c"), uid("d")]);
    }

    #[test]
    fn failure_beyond_max_stops_and_auto_rollback_unpins_everyone() {
        let s = RolloutSpec {
            batch_sizes: vec![2],
            max_failures: 0,
            auto_rollback: true,
            ..spec(RolloutStrategy::Batched)
        };
        let mut fleet = vec![
            agent("a", Some("h1"), ConfigStatus::Applied),
            agent("b", Some("h1"), ConfigStatus::Applied),
            agent("c", Some("h1"), ConfigStatus::Applied),
        ];
        let mut r = started(2);
        advance(&mut r, &s, &fleet, t(0));
        let mut failed = agent("a", Some("h2"), ConfigStatus::Failed);
        failed.remote_config_error = Some("no kafka".into());
        fleet[0] = failed;
        assert!(advance(&mut r, &s, &fleet, t(1)));
        assert_eq!(r.state, RolloutState::RolledBack);
        assert_eq!(r.failures, BTreeMap::from([(uid("a"), "no kafka".into())]));
        assert_eq!(
            r.decision(),
            Decision {
                default_revision: 1,
                pinned: vec![]
            }
        );
        assert_eq!(r.steps.len(), 1, "stopped at the first batch");
    }

    /// The driver samples the members (`Sampled`) instead of copying their records: the same
    /// fleet history gives the same rollout record either way, step by step.
    #[test]
    fn sampled_members_move_a_rollout_exactly_as_their_records_do() {
        let s = RolloutSpec {
            batch_sizes: vec![1, 2],
            max_failures: 1,
            ..spec(RolloutStrategy::Batched)
        };
        let mut fleet: Vec<AgentRecord> = ["d", "a", "c", "b"]
            .iter()
            .map(|id| agent(id, Some("h1"), ConfigStatus::Applied))
            .collect();
        let sample = |fleet: &[AgentRecord], r: &Rollout| -> Vec<Sampled> {
            let hash: std::sync::Arc<str> = r.hash.as_str().into();
            fleet.iter().map(|a| Sampled::new(a, &hash)).collect()
        };
        let (mut by_record, mut by_sample) = (started(2), started(2));
        let mut history = Vec::new();
        for (tick, change) in [
            None,
            Some(("a", ConfigStatus::Applied)),
            None,
            Some(("b", ConfigStatus::Failed)),
            Some(("c", ConfigStatus::Applied)),
            Some(("d", ConfigStatus::Applied)),
            None,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some((id, status)) = change {
                let i = fleet.iter().position(|a| Member::id(a) == uid(id)).unwrap();
                fleet[i] = agent(id, Some("h2"), status);
            }
            let now = t(tick as i64);
            let a = advance(&mut by_record, &s, &fleet, now);
            let members = sample(&fleet, &by_sample);
            let b = advance(&mut by_sample, &s, &members, now);
            assert_eq!(a, b, "tick {tick}");
            assert_eq!(by_record, by_sample, "tick {tick}");
            history.push(by_sample.state);
        }
        assert_eq!(by_sample.state, RolloutState::Complete, "{history:?}");
        assert_eq!(by_sample.failures.len(), 1);
        // A member sampled against another revision counts as not there yet
        let other: std::sync::Arc<str> = "h9".into();
        let stale = Sampled::new(&agent("a", Some("h9"), ConfigStatus::Failed), &other);
        assert_eq!(stale.outcome("h2"), Outcome::Waiting);
        assert!(matches!(stale.outcome("h9"), Outcome::Failed(_)));
    }

    #[test]
    fn failure_without_rollback_keeps_moved_agents_pinned() {
        let s = RolloutSpec {
            batch_sizes: vec![1],
            ..spec(RolloutStrategy::Batched)
        };
        let mut fleet = vec![agent("a", Some("h1"), ConfigStatus::Applied)];
        fleet.push(agent("b", Some("h1"), ConfigStatus::Applied));
        let mut r = started(2);
        advance(&mut r, &s, &fleet, t(0));
        let mut sick = agent("a", Some("h2"), ConfigStatus::Applied);
        sick.health = Some(HealthNode {
            healthy: false,
            last_error: "exporter down".into(),
            ..Default::default()
        });
        fleet[0] = sick;
        assert!(advance(&mut r, &s, &fleet, t(1)));
        assert_eq!(r.state, RolloutState::Failed);
        assert_eq!(
            r.failures[&uid("a")],
            "unhealthy after applying the new config: exporter down"
        );
        assert_eq!(
            r.decision(),
            Decision {
                default_revision: 1,
                pinned: vec![uid("a")]
            }
        );
    }

    #[test]
    fn next_rollout_after_a_failed_one_falls_back_to_the_same_last_good() {
        let mut r = started(2);
        r.state = RolloutState::Failed;
        let next = Rollout::start(&r, 3, "h3".into(), t(5));
        assert_eq!(next.last_good, Some(1));
        assert_eq!(next.last_good_hash.as_deref(), Some("h1"));
    }

    #[test]
    fn a_first_revision_goes_to_everyone_and_completes_when_applied() {
        let s = RolloutSpec {
            batch_sizes: vec![1],
            ..spec(RolloutStrategy::Batched)
        };
        let mut fleet = vec![
            agent("a", None, ConfigStatus::Unset),
            agent("b", None, ConfigStatus::Unset),
        ];
        let mut r = Rollout::first(1, "h1".into(), t(0));
        assert!(advance(&mut r, &s, &fleet, t(0)));
        assert_eq!(r.steps.len(), 1);
        assert!(r.steps[0].last);
        assert_eq!(r.decision().default_revision, 1);
        assert!(!advance(&mut r, &s, &fleet, t(1)));
        fleet[0] = agent("a", Some("h1"), ConfigStatus::Applied);
        fleet[1] = agent("b", Some("h1"), ConfigStatus::Applied);
        assert!(advance(&mut r, &s, &fleet, t(2)));
        assert_eq!(r.state, RolloutState::Complete);
        // It then is the last good revision of the next one.
        assert_eq!(Rollout::start(&r, 2, "h2".into(), t(3)).last_good, Some(1));
    }

    #[test]
    fn paused_rollouts_do_not_move() {
        let mut r = started(2);
        r.state = RolloutState::Paused;
        let fleet = vec![agent("a", Some("h1"), ConfigStatus::Applied)];
        assert!(!advance(
            &mut r,
            &spec(RolloutStrategy::AllAtOnce),
            &fleet,
            t(1)
        ));
        assert!(r.steps.is_empty());
    }
}
