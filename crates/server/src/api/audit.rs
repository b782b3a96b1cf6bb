//! The audit trail on the REST API: the `record` middleware around `/api/v1` (every write,
//! and every request whose token was refused, once its answer is known), what handlers add
//! to their answers for it ([`AuditNote`]), and `GET /api/v1/audit[/export]`.
//!
//! Recorded: every request with a method other than GET/HEAD/OPTIONS that reached the bearer
//! check, whatever its outcome (dry runs too, marked `dry_run`), and every 401/403 of that
//! check. Not recorded: reads that were answered, requests to no route (answered 404/405
//! before any token is looked at), and 429s of the per-address budget (no token judged).
//! Nothing of the request but its method and path is read: no body, no header value except
//! `If-Match`'s number.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, OriginalUri, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{Method, StatusCode};
use otaas_api::{AuditEntry, AuditInterface, AuditResult, ErrorCode, List};

use super::ApiError;
use super::paging::Page;
use crate::audit::{Actor, Audit, Event, entry};
use crate::state::AppState;
use crate::store::AuditFilter;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/export", get(export))
}

/// What a handler tells the trail about its answer (a response extension).
#[derive(Clone, Debug, Default)]
pub struct AuditNote {
    /// The object written, where the path does not name it (a create).
    pub object_id: Option<String>,
    pub revision_after: Option<i64>,
    pub dry_run: bool,
}

impl AuditNote {
    pub fn dry_run() -> Self {
        Self {
            dry_run: true,
            ..Self::default()
        }
    }
}

/// Marks every answer of a route as a dry run (`POST /component-check` writes nothing).
pub(super) async fn mark_dry_run(mut resp: Response) -> Response {
    resp.extensions_mut().insert(AuditNote::dry_run());
    resp
}

/// The middleware: lets the request through, then records it if it is a write or its token
/// was refused. The bearer check (inside it) leaves the [`Actor`] on the answer; an answer
/// without one never reached that check.
pub(super) async fn record(
    State(audit): State<Arc<Audit>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let source = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let if_match = request
        .headers()
        .get(http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(revision_of);
    let resp = next.run(request).await;
    let Some(actor) = resp.extensions().get::<Actor>().cloned() else {
        return resp;
    };
    let status = resp.status();
    let write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    if !write && !refused {
        return resp;
    }
    let note = resp
        .extensions()
        .get::<AuditNote>()
        .cloned()
        .unwrap_or_default();
    let (object_kind, path_id) = object_of(&path);
    let success = status.is_success();
    let error_code = (!success).then(|| {
        resp.extensions()
            .get::<ErrorCode>()
            .copied()
            .unwrap_or_else(|| super::error::code_for_status(status))
            .as_str()
            .to_owned()
    });
    // Before: what If-Match said it was, or (an update answers the new revision, one on)
    // the revision the update replaced.
    let revision_before = if !success {
        None
    } else if if_match.is_some() {
        if_match
    } else if method == Method::PUT {
        note.revision_after.filter(|r| *r > 1).map(|r| r - 1)
    } else {
        None
    };
    audit.record(Event {
        interface: AuditInterface::Rest,
        actor,
        source,
        method: method.as_str().to_owned(),
        path,
        object_kind,
        object_id: path_id.or(note.object_id),
        status: status.as_u16(),
        error_code,
        revision_before,
        revision_after: if success { note.revision_after } else { None },
        dry_run: note.dry_run,
    });
    resp
}

/// `If-Match: "<n>"` (a weak `W/` and quotes tolerated) as a number; anything else is none.
fn revision_of(v: &str) -> Option<i64> {
    let v = v.trim();
    v.strip_prefix("W/")
        .unwrap_or(v)
        .trim_matches('"')
        .parse()
        .ok()
}

/// The collection and object id a `/api/v1/<kind>[/<id>[/...]]` path names.
fn object_of(path: &str) -> (Option<String>, Option<String>) {
    let rest = path.strip_prefix("/api/v1").unwrap_or(path);
    let mut segs = rest.split('/').filter(|s| !s.is_empty());
    let kind = segs.next().map(short);
    let id = segs.next().map(short);
    (kind, id)
}

/// A path segment as kept: bounded, whatever the client sent.
fn short(s: &str) -> String {
    s.chars().take(128).collect()
}

/// The filters of both routes, out of the query (`limit`/`cursor` are the list's).
fn filter_of(q: &mut BTreeMap<String, String>) -> Result<AuditFilter, ApiError> {
    let time = |q: &mut BTreeMap<String, String>, k: &'static str| {
        q.remove(k)
            .map(|raw| {
                chrono::DateTime::parse_from_rfc3339(raw.trim())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| {
                        ApiError::bad_request(
                            format!(
                                "{k} must be an RFC 3339 time such as 2026-01-31T12:00:00Z, got \
                                 {:?}",
                                raw.chars().take(64).collect::<String>()
                            ),
                            Some(k),
                        )
                    })
            })
            .transpose()
    };
    let since = time(q, "since")?;
    let until = time(q, "until")?;
    let success = match q.remove("result") {
        None => None,
        Some(raw) => match AuditResult::parse(raw.trim()) {
            Some(r) => Some(r == AuditResult::Success),
            None => {
                return Err(ApiError::bad_request(
                    "result must be success or failure",
                    Some("result"),
                ));
            }
        },
    };
    let filter = AuditFilter {
        since,
        until,
        token_id: q.remove("token_id"),
        object_kind: q.remove("object"),
        object_id: q.remove("object_id"),
        success,
        method: q.remove("method").map(|m| m.trim().to_ascii_uppercase()),
        after: None,
        limit: None,
    };
    if let Some(k) = q.keys().next() {
        return Err(ApiError::bad_request(
            format!(
                "unknown query parameter {:?}; this route takes since, until, token_id, object, \
                 object_id, result, method, limit and cursor",
                k.chars().take(64).collect::<String>()
            ),
            Some(k.as_str()),
        ));
    }
    Ok(filter)
}

fn query_of(
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<BTreeMap<String, String>, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("query string: {e}"), None))
}

/// `GET /api/v1/audit`: a page of the matching entries, oldest first.
async fn list(
    State(s): State<AppState>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<List<AuditEntry>>, ApiError> {
    let mut q = query_of(q)?;
    let page = Page::take("audit", &mut q, s.config.api_max_page_size)?;
    let mut filter = filter_of(&mut q)?;
    filter.after = page
        .after()
        .map(|a| {
            a.parse().map_err(|_| {
                ApiError::bad_request(
                    "cursor is not a cursor of this list; pass the next_cursor of the previous \
                     page unchanged",
                    Some("cursor"),
                )
            })
        })
        .transpose()?;
    // One more than the page: whether there is a next page, without counting.
    filter.limit = Some(page.limit + 1);
    let items = s.store.list_audit(&filter).await?;
    let (items, next_cursor) = page.apply(items, |e| e.id)?;
    Ok(Json(List {
        items: items.into_iter().map(entry).collect(),
        next_cursor,
    }))
}

/// Entries read from the store per query of an export.
const EXPORT_CHUNK: usize = 1000;

/// `GET /api/v1/audit/export`: every matching entry as JSON Lines, streamed in chunks read
/// one after the other (a million entries are never in memory at once). A store error
/// mid-stream ends the body early: the client sees a truncated download, not a wrong one.
async fn export(
    State(s): State<AppState>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut q = query_of(q)?;
    let filter = filter_of(&mut q)?;
    let store = s.store.clone();
    let chunks = futures::stream::unfold(Some(filter), move |state| {
        let store = store.clone();
        async move {
            let mut filter = state?;
            filter.limit = Some(EXPORT_CHUNK);
            let rows = match store.list_audit(&filter).await {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::warn!(error = %err, "Audit export failed mid-stream");
                    return Some((Err(std::io::Error::other("audit export failed")), None));
                }
            };
            if rows.is_empty() {
                return None;
            }
            let next = (rows.len() == EXPORT_CHUNK).then(|| AuditFilter {
                after: rows.last().map(|r| r.id),
                ..filter
            });
            let mut out = Vec::with_capacity(rows.len() * 256);
            for r in rows {
                if serde_json::to_writer(&mut out, &entry(r)).is_err() {
                    return Some((Err(std::io::Error::other("audit export failed")), None));
                }
                out.push(b'\n');
            }
            Some((Ok(bytes::Bytes::from(out)), next))
        }
    });
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(chunks),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given request paths, when their object is read, then it is the collection and the id
    /// (none for a collection, a bounded one for a long segment).
    #[test]
    fn objects_come_from_the_path() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(object_of("/api/v1/pipelines"), (some("pipelines"), None));
        assert_eq!(
            object_of("/api/v1/agent-groups/g1/rollout/pause"),
            (some("agent-groups"), some("g1"))
        );
        let long = format!("/api/v1/tokens/{}", "x".repeat(500));
        assert_eq!(object_of(&long).1.unwrap().len(), 128);
    }

    /// Given If-Match values, when read as a revision, then numbers (quoted, weak) are taken
    /// and anything else is none.
    #[test]
    fn if_match_is_read_as_a_number_only() {
        assert_eq!(revision_of("3"), Some(3));
        assert_eq!(revision_of("\"4\""), Some(4));
        assert_eq!(revision_of("W/\"5\""), Some(5));
        assert_eq!(revision_of("*"), None);
        assert_eq!(revision_of("secret-value"), None);
    }
}
