//! The live regions' server-sent event streams: each open page gets one stream that looks at
//! the fleet (or the group's rollout) once per [`TICK`], and at once when the rollout engine
//! stores a decision, and sends the region's HTML only when it changed. A stream holds one rendered fragment, whatever the fleet's size, and ends with the
//! server, with its session (a revoked token stops its streams), or when the page goes away.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use http::StatusCode;
use maud::Markup;
use otaas_api::AgentGroupId;

use super::context::{Console, Viewer};
use super::session;
use super::{fleet, group};

/// How often a stream looks for changes.
pub(crate) const TICK: Duration = Duration::from_secs(1);

/// How often a stream checks that its session's token is still valid.
const RECHECK: Duration = Duration::from_secs(15);

/// `GET /fleet/live`: the fleet page's counts and groups.
pub(crate) async fn fleet(
    State(c): State<Console>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    let _ = viewer;
    stream(c, headers, None, |c: Console, _viewer: Viewer| async move {
        let summary = fleet::summary(&c).await.ok()?;
        let groups = c.store.list_groups().await.ok()?;
        let names: HashMap<AgentGroupId, String> = groups
            .into_iter()
            .map(|g| (g.record.id, g.record.spec.name))
            .collect();
        Some(fleet::live_fragment(&summary, &names))
    })
}

/// `GET /groups/{id}/live`: the group page's rollout.
pub(crate) async fn group(
    State(c): State<Console>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = id.parse::<AgentGroupId>() else {
        return (StatusCode::NOT_FOUND, "no such group").into_response();
    };
    let _ = viewer;
    let decisions = c.rollouts.watch_decisions();
    stream(
        c,
        headers,
        Some(decisions),
        move |c: Console, viewer: Viewer| async move {
            let status = group::status(&c, id).await.ok()?;
            Some(group::rollout_fragment(id, status.as_ref(), &viewer))
        },
    )
}

/// A stream of `update` events carrying `render`'s HTML whenever it differs from the last sent,
/// looked at every [`TICK`] and at once when `wake` changes. `render` returning `None` (the
/// store is unavailable) skips a tick.
fn stream<F, Fut>(
    c: Console,
    headers: HeaderMap,
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
        viewer: Option<Viewer>,
        checked: tokio::time::Instant,
        last: String,
        render: F,
        first: bool,
        wake: Option<tokio::sync::watch::Receiver<u64>>,
    }
    let st = St {
        c,
        headers,
        viewer: None,
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
            if st.viewer.is_none() || st.checked.elapsed() >= RECHECK {
                st.viewer = Some(session::viewer(&st.c, &st.headers).await?);
                st.checked = tokio::time::Instant::now();
            }
            let viewer = st.viewer.clone()?;
            let Some(html) = (st.render)(st.c.clone(), viewer).await else {
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
