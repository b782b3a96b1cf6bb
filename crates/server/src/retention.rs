//! Revision retention (`--revision-retention-count`, `--revision-retention-days`): a background
//! task that deletes old group revisions, never one that is still needed — the group's latest,
//! any revision an agent runs or is being sent (its hash is some agent's reported or desired
//! config), and the rollout's target and last good revision (what a rollback sends).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use otaas_api::AgentGroupId;
use tokio_util::sync::CancellationToken;

use crate::cluster::FleetView;
use crate::fleet::AgentFilter;
use crate::rollout::Rollouts;
use crate::store::{GroupRevision, Store, StoreError};

/// How often retention runs: revisions are small, so a late deletion costs little.
pub const TICK: Duration = Duration::from_secs(60);

/// How many revisions each group keeps and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The newest this many stay (at least 1: the latest always stays).
    pub count: usize,
    /// Older ones go (0: no age limit).
    pub days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            count: DEFAULT_COUNT,
            days: 0,
        }
    }
}

/// Default of `--revision-retention-count`.
pub const DEFAULT_COUNT: usize = 100;

/// What the retention task uses.
#[derive(Clone)]
pub struct Retention {
    pub store: Arc<dyn Store>,
    pub rollouts: Arc<Rollouts>,
    pub fleet: FleetView,
    pub policy: Policy,
    pub shutdown: CancellationToken,
}

/// Runs until the server shuts down.
pub async fn run(r: Retention) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = r.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match prune(&r, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "Old group revisions deleted"),
            // A database outage: the next tick tries again.
            Err(err) => tracing::warn!(error = %err, "Deleting old group revisions failed"),
        }
    }
}

/// One pass over every group as of `now`; how many revisions it deleted.
pub async fn prune(r: &Retention, now: DateTime<Utc>) -> Result<u64, StoreError> {
    // One walk over the fleet for every group: an agent that moved to another group may
    // still run its old group's config.
    let mut hashes = BTreeSet::new();
    r.fleet
        .visit_agents(&AgentFilter::default(), |a| {
            hashes.extend(a.remote_config_hash.clone());
            hashes.extend(a.desired_config_hash.clone());
        })
        .await?;
    let mut deleted = 0;
    for group in r.store.list_groups().await? {
        let id = group.record.id;
        deleted += prune_group(r, id, &hashes, now).await?;
    }
    Ok(deleted)
}

async fn prune_group(
    r: &Retention,
    id: AgentGroupId,
    hashes: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let revisions = r.store.group_revisions(id).await?;
    let Some(up_to) = revisions.last().map(|x| x.revision) else {
        return Ok(0);
    };
    let in_use = r.rollouts.revisions_in_use(id).await?;
    let keep = to_keep(&revisions, r.policy, &in_use, hashes, now);
    if keep.len() == revisions.len() {
        return Ok(0);
    }
    r.store.delete_revisions_except(id, up_to, &keep).await
}

/// Which of `revisions` (oldest first) stay: the newest `policy.count` that are not older than
/// `policy.days`, the latest, and every one in use (by number or by hash).
fn to_keep(
    revisions: &[GroupRevision],
    policy: Policy,
    in_use: &BTreeSet<i64>,
    hashes: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> BTreeSet<i64> {
    let cutoff = (policy.days > 0).then(|| now - chrono::Duration::days(i64::from(policy.days)));
    let newest = revisions.len().saturating_sub(policy.count.max(1));
    revisions
        .iter()
        .enumerate()
        .filter(|(i, rev)| {
            let recent = *i >= newest && cutoff.is_none_or(|c| rev.created_at >= c);
            let latest = *i + 1 == revisions.len();
            recent || latest || in_use.contains(&rev.revision) || hashes.contains(&rev.hash)
        })
        .map(|(_, rev)| rev.revision)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(n: i64, age_days: i64, now: DateTime<Utc>) -> GroupRevision {
        GroupRevision {
            group_id: AgentGroupId::new(),
            revision: n,
            yaml: String::new(),
            hash: format!("h{n}"),
            created_at: now - chrono::Duration::days(age_days),
            cause: Default::default(),
        }
    }

    /// Given ten revisions and a count of 3, when retention decides, then the newest three stay
    /// plus revision 2 (a rollout's last good one) and revision 4 (an agent runs its hash).
    #[test]
    fn count_keeps_newest_and_what_is_in_use() {
        let now = Utc::now();
        let revs: Vec<_> = (1..=10).map(|n| rev(n, 0, now)).collect();
        let policy = Policy { count: 3, days: 0 };
        let keep = to_keep(&revs, policy, &[2].into(), &["h4".to_string()].into(), now);
        assert_eq!(keep, [2, 4, 8, 9, 10].into());
    }

    /// Given revisions 1 to 5 aged 40 down to 0 days (10 days apart) and a 15-day limit, when
    /// retention decides, then only those at most 15 days old stay; and the latest stays even
    /// when it is older than the limit.
    #[test]
    fn age_limit_drops_old_ones_but_never_the_latest() {
        let now = Utc::now();
        let revs: Vec<_> = (1..=5).map(|n| rev(n, (5 - n) * 10, now)).collect();
        let policy = Policy {
            count: 100,
            days: 15,
        };
        let (none, no_hashes) = (BTreeSet::new(), BTreeSet::new());
        assert_eq!(
            to_keep(&revs, policy, &none, &no_hashes, now),
            [4, 5].into()
        );
        let old: Vec<_> = (1..=3).map(|n| rev(n, 100, now)).collect();
        assert_eq!(to_keep(&old, policy, &none, &no_hashes, now), [3].into());
    }
}
