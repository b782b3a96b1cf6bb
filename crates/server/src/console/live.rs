//! The live regions' server-sent event streams: each open page gets one stream that looks at
//! the fleet (or the group's rollout) once per [`TICK`], and at once when the rollout engine
//! stores a decision, and sends the region's HTML only when it changed. A stream holds one rendered fragment, whatever the fleet's size, and ends with the
//! server, with its session (a revoked token stops its streams), or when the page goes away.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use http::StatusCode;
use maud::Markup;
use otaas_api::{AgentGroupId, GroupStatus};

use super::context::{Console, Viewer};
use super::session;
use super::{fleet, group};

/// How often a stream looks for changes.
pub(crate) const TICK: Duration = Duration::from_secs(1);

/// How long a computed fleet summary or rollout status serves every stream.
const FRESH: Duration = Duration::from_millis(900);

/// Group statuses not asked for this long are dropped from the cache.
const FORGET: Duration = Duration::from_secs(60);

type Names = HashMap<AgentGroupId, String>;
type FleetSlot = Option<(tokio::time::Instant, Arc<(fleet::Summary, Names)>)>;
type GroupSlots = HashMap<AgentGroupId, (tokio::time::Instant, u64, Arc<Option<GroupStatus>>)>;

/// The fleet summary and the rollout statuses the open pages' streams share (one per
/// [`FRESH`] interval; a rollout status also anew after every rollout decision).
#[derive(Default)]
pub(crate) struct LiveCache {
    fleet: tokio::sync::Mutex<FleetSlot>,
    groups: tokio::sync::Mutex<GroupSlots>,
}

impl LiveCache {
    /// The fleet's counts and group names, at most [`FRESH`] old. The lock is held while
    /// computing, so streams waking together wait for one walk instead of each making their own.
    async fn fleet(&self, c: &Console) -> Option<Arc<(fleet::Summary, Names)>> {
        let mut slot = self.fleet.lock().await;
        if let Some((at, v)) = slot.as_ref()
            && at.elapsed() < FRESH
        {
            return Some(v.clone());
        }
        let summary = fleet::summary(c).await.ok()?;
        let names: Names = c
            .store
            .list_groups()
            .await
            .ok()?
            .into_iter()
            .map(|g| (g.record.id, g.record.spec.name))
            .collect();
        let v = Arc::new((summary, names));
        *slot = Some((tokio::time::Instant::now(), v.clone()));
        Some(v)
    }

    /// A group's rollout status, at most [`FRESH`] old and never older than the last rollout
    /// decision `decision` (the engine's counter when the stream woke).
    async fn group(
        &self,
        c: &Console,
        id: AgentGroupId,
        decision: u64,
    ) -> Option<Arc<Option<GroupStatus>>> {
        let mut groups = self.groups.lock().await;
        if let Some((at, seen, v)) = groups.get(&id)
            && at.elapsed() < FRESH
            && *seen == decision
        {
            return Some(v.clone());
        }
        let status = Arc::new(group::status(c, id).await.ok()?);
        groups.retain(|_, (at, _, _)| at.elapsed() < FORGET);
        groups.insert(id, (tokio::time::Instant::now(), decision, status.clone()));
        Some(status)
    }
}

/// How often a stream checks that its session's token is still valid.
const RECHECK: Duration = Duration::from_secs(15);

/// `GET /fleet/live`: the fleet page's counts and groups.
pub(crate) async fn fleet(
    State(c): State<Console>,
    axum::Extension(cache): axum::Extension<Arc<LiveCache>>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    stream(
        c,
        headers,
        viewer,
        None,
        move |c: Console, _viewer: Viewer| {
            let cache = cache.clone();
            async move {
                let shared = cache.fleet(&c).await?;
                Some(fleet::live_fragment(&shared.0, &shared.1))
            }
        },
    )
}

/// `GET /groups/{id}/live`: the group page's rollout.
pub(crate) async fn group(
    State(c): State<Console>,
    axum::Extension(cache): axum::Extension<Arc<LiveCache>>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = id.parse::<AgentGroupId>() else {
        return (StatusCode::NOT_FOUND, "no such group").into_response();
    };
    let decisions = c.rollouts.watch_decisions();
    stream(
        c,
        headers,
        viewer,
        Some(decisions),
        move |c: Console, viewer: Viewer| {
            let cache = cache.clone();
            async move {
                let decision = c.rollouts.decisions();
                let status = cache.group(&c, id, decision).await?;
                Some(group::rollout_fragment(
                    id,
                    status.as_ref().as_ref(),
                    &viewer,
                ))
            }
        },
    )
}

/// A stream of `update` events carrying `render`'s HTML whenever it differs from the last sent,
/// looked at every [`TICK`] and at once when `wake` changes. `viewer` is who the request was
/// admitted as; the session is checked again every [`RECHECK`]. `render` returning `None` (the
/// store is unavailable) skips a tick.
fn stream<F, Fut>(
    c: Console,
    headers: HeaderMap,
    viewer: Viewer,
    wake: Option<tokio::sync::watch::Receiver<u64>>,
    render: F,
) -> Response
where
    F: Fn(Console, Viewer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<Markup>> + Send,
{
    struct St<F> {
        c: Console,
        headers: HeaderMap,
        viewer: Viewer,
        checked: tokio::time::Instant,
        last: String,
        render: F,
        first: bool,
        wake: Option<tokio::sync::watch::Receiver<u64>>,
    }
    let st = St {
        c,
        headers,
        viewer,
        checked: tokio::time::Instant::now(),
        last: String::new(),
        render,
        first: true,
        wake,
    };
    let events = futures::stream::unfold(st, |mut st| async move {
        loop {
            if !st.first {
                let woken = async {
                    match st.wake.as_mut() {
                        Some(w) => {
                            if w.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = woken => {}
                    _ = st.c.shutdown.cancelled() => return None,
                }
            }
            st.first = false;
            if st.checked.elapsed() >= RECHECK {
                st.viewer = session::viewer(&st.c, &st.headers).await?;
                st.checked = tokio::time::Instant::now();
            }
            let Some(html) = (st.render)(st.c.clone(), st.viewer.clone()).await else {
                continue;
            };
            let html = html.into_string();
            if html != st.last {
                st.last.clone_from(&html);
                return Some((
                    Ok::<Event, Infallible>(Event::default().event("update").data(html)),
                    st,
                ));
            }
        }
    });
    sse(events)
}

fn sse<S>(events: S) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
