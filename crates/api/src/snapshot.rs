//! Snapshots of whole collections for one client (and its clones): reading N objects of a kind
//! costs one list request, not N, until the client writes anything. Terraform refreshes every
//! resource of a plan through one provider process; with 500 pipelines that is one
//! `GET /pipelines` instead of 500 `GET /pipelines/{id}`, and one request against the token's
//! rate limit instead of 500.
//!
//! Freshness: a snapshot belongs to a *generation*; every write this client makes (create,
//! update, delete, rollout action) starts a new generation once its answer is in, so a read that
//! starts after a write never sees an object older than that write. Concurrent readers of a
//! kind wait for the one list request in flight instead of sending their own.
//!
//! Pages: a snapshot is one walk over all pages of the list (`Client::list_all`, one request
//! per 1,000 objects or the server's page maximum), filed under the generation current when the
//! walk started. A write of this client that completes during the walk starts a new
//! generation, so no read that starts after the write is served from that walk: it walks again.
//! A write of another client between two pages cannot tear an object: pages are in id order
//! and ids never change, so every object that exists throughout the walk is in it exactly once,
//! as of the moment its page was read, which is what one `GET` per object would have shown.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::ids::{AgentGroupId, EndpointId, ExporterBindingId, PipelineId};
use crate::types::{AgentGroup, Endpoint, ExporterBinding, Pipeline};

/// The snapshots of one client; shared by its clones.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    generation: AtomicU64,
    pub(crate) pipelines: Slot<PipelineId, Pipeline>,
    pub(crate) endpoints: Slot<EndpointId, Endpoint>,
    pub(crate) bindings: Slot<ExporterBindingId, ExporterBinding>,
    pub(crate) groups: Slot<AgentGroupId, AgentGroup>,
}

impl Snapshots {
    /// Called after every write: snapshots taken before it are not used again.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

/// One kind's snapshot, if one was taken.
#[derive(Debug)]
pub(crate) struct Slot<I, T> {
    taken: Mutex<Option<Taken<I, T>>>,
}

/// The objects of a kind by id, and the generation they were listed in.
#[derive(Debug)]
struct Taken<I, T> {
    generation: u64,
    items: Arc<HashMap<I, T>>,
}

impl<I, T> Default for Slot<I, T> {
    fn default() -> Self {
        Self {
            taken: Mutex::new(None),
        }
    }
}

impl<I: Eq + Hash + Copy, T: Clone> Slot<I, T> {
    /// The object with `id` as of a snapshot of this generation (`None`: it does not exist),
    /// listing the kind with `list` when the snapshot is missing or from an older generation.
    pub(crate) async fn get<E, F, Fut>(
        &self,
        generation: u64,
        id: I,
        key: impl Fn(&T) -> I,
        list: F,
    ) -> Result<Option<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, E>>,
    {
        // Held across the list request: concurrent readers wait for it rather than repeat it.
        let mut taken = self.taken.lock().await;
        if let Some(t) = taken.as_ref()
            && t.generation == generation
        {
            return Ok(t.items.get(&id).cloned());
        }
        let items: HashMap<I, T> = list().await?.into_iter().map(|t| (key(&t), t)).collect();
        let found = items.get(&id).cloned();
        *taken = Some(Taken {
            generation,
            items: Arc::new(items),
        });
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn one_list_serves_every_read_of_a_generation_and_a_write_starts_another() {
        let snapshots = Snapshots::default();
        let slot: Slot<u32, (u32, &str)> = Slot::default();
        let lists = AtomicUsize::new(0);
        let list = |items: Vec<(u32, &'static str)>| {
            lists.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, ()>(items) }
        };
        // Given two objects, read three times in one generation: one list
        for id in [1, 2, 3] {
            let got = slot
                .get(
                    snapshots.generation(),
                    id,
                    |t| t.0,
                    || list(vec![(1, "a"), (2, "b")]),
                )
                .await
                .unwrap();
            assert_eq!(
                got.map(|t| t.1),
                [None, Some("a"), Some("b")][id as usize % 3]
            );
        }
        assert_eq!(lists.load(Ordering::SeqCst), 1);
        // When the client writes, the next read lists again and sees the write
        snapshots.invalidate();
        let got = slot
            .get(snapshots.generation(), 1, |t| t.0, || list(vec![(1, "a2")]))
            .await
            .unwrap();
        assert_eq!(got, Some((1, "a2")));
        assert_eq!(lists.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_write_during_a_walk_makes_the_next_read_walk_again() {
        let snapshots = Snapshots::default();
        let slot: Slot<u32, (u32, &str)> = Slot::default();
        // Given a walk during which this client's write completes (between two pages)
        let got = slot
            .get(
                snapshots.generation(),
                1,
                |t| t.0,
                || async {
                    let mut items = vec![(1, "page1-old")];
                    snapshots.invalidate();
                    items.push((2, "page2"));
                    Ok::<_, ()>(items)
                },
            )
            .await
            .unwrap();
        // Then that read gets what the walk saw (it started before the write)
        assert_eq!(got, Some((1, "page1-old")));
        // And a read after the write does not reuse the walk: it lists again and sees the write
        let got = slot
            .get(
                snapshots.generation(),
                1,
                |t| t.0,
                || async { Ok::<_, ()>(vec![(1, "page1-new"), (2, "page2")]) },
            )
            .await
            .unwrap();
        assert_eq!(got, Some((1, "page1-new")));
    }
}
