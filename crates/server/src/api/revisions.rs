//! A group's config history over REST: the current config (or any kept revision's, with
//! `?revision=`), the list of revisions with their causes, one revision, and a unified diff of
//! two. Every YAML shown is redacted the same way (`views::group_config`); the hashes stay those
//! of the documents agents receive. Also the [`CallerActor`] extractor the write handlers use to
//! record who caused a revision.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use http::request::Parts;
use otaas_api::{AgentGroupId, GroupConfig, GroupRevisionSummary, List, RevisionDiff};

use super::paging::Page;
use super::{ApiError, views};
use crate::auth::Principal;
use crate::revisions::Actor;
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent-groups/{id}/config", get(group_config))
        .route("/agent-groups/{id}/revisions", get(list))
        .route("/agent-groups/{id}/revisions/{rev}", get(one))
        .route("/agent-groups/{id}/revisions/{from}/diff/{to}", get(diff))
}

/// The [`Actor`] of the request: the principal the auth middleware verified.
pub(crate) struct CallerActor(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for CallerActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(p) => Ok(Self(Actor::of(p))),
            // Only a route mounted outside the auth middleware gets here: a bug, not input.
            None => {
                tracing::error!(path = %parts.uri.path(), "A write route ran without a verified principal");
                Err(ApiError::internal())
            }
        }
    }
}

/// Path ids: a malformed id names nothing, so it is a 404 like any unknown id.
fn group_id(raw: &str) -> ApiResult<AgentGroupId> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("agent group {raw} not found")))
}

/// A revision number in the path: anything but a positive number names no revision (404).
fn path_revision(id: AgentGroupId, raw: &str) -> ApiResult<i64> {
    match raw.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ApiError::not_found(format!(
            "agent group {id} has no revision {raw:?}"
        ))),
    }
}

/// `?revision=N` of the config route: a number from 1, or a 400 naming `revision`.
fn query_revision(raw: &str) -> ApiResult<i64> {
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ApiError::bad_request(
            format!(
                "revision must be a revision number (a whole number from 1), got {:?}",
                raw.chars().take(64).collect::<String>()
            ),
            Some("revision"),
        )),
    }
}

/// The group's revision `revision` (its latest when `None`), redacted. 404 for an unknown
/// group first, then for a revision it does not have (never written, or dropped by retention).
async fn redacted(
    store: &dyn crate::store::Store,
    id: AgentGroupId,
    revision: Option<i64>,
) -> ApiResult<GroupConfig> {
    let group = store.get_group(id).await?;
    let rev = match store.group_revision(id, revision).await {
        Ok(r) => r,
        Err(crate::store::StoreError::NotFound { .. }) => {
            return Err(ApiError::not_found(match revision {
                Some(r) => format!(
                    "agent group {:?} has no revision {r} (its latest is {}; older ones may \
                     have been dropped by revision retention)",
                    group.record.spec.name, group.config_revision
                ),
                None => format!(
                    "agent group {:?} has no config revision yet",
                    group.record.spec.name
                ),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    let known = crate::secrets::known(store).await?;
    views::group_config(rev, &known).map_err(|e| {
        tracing::error!(error = %e, group_id = %id, "Stored group config does not parse");
        ApiError::internal()
    })
}

/// `GET /agent-groups/{id}/config[?revision=N]`.
async fn group_config(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<GroupConfig>> {
    let id = group_id(&id)?;
    let Query(mut q) = q.map_err(|e| ApiError::bad_request(format!("query string: {e}"), None))?;
    let revision = q
        .remove("revision")
        .map(|r| query_revision(&r))
        .transpose()?;
    if let Some(k) = q.keys().next() {
        return Err(ApiError::bad_request(
            format!("unknown query parameter {k:?}; only revision is supported"),
            Some(k),
        ));
    }
    Ok(Json(redacted(s.store.as_ref(), id, revision).await?))
}

/// `GET /agent-groups/{id}/revisions`: oldest first, paginated, without YAML.
async fn list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<List<GroupRevisionSummary>>> {
    let id = group_id(&id)?;
    let Query(mut q) = q.map_err(|e| ApiError::bad_request(format!("query string: {e}"), None))?;
    let page = Page::take("revisions", &mut q, s.config.api_max_page_size)?;
    if let Some(k) = q.keys().next() {
        return Err(ApiError::bad_request(
            format!("unknown query parameter {k:?}; only limit and cursor are supported"),
            Some(k),
        ));
    }
    s.store.get_group(id).await?;
    let items = s.store.group_revisions(id).await?;
    let (items, next_cursor) = page.apply(items, |r| r.revision)?;
    Ok(Json(List {
        items: items.into_iter().map(views::revision_summary).collect(),
        next_cursor,
    }))
}

/// `GET /agent-groups/{id}/revisions/{rev}`.
async fn one(
    State(s): State<AppState>,
    Path((id, rev)): Path<(String, String)>,
) -> ApiResult<Json<GroupConfig>> {
    let id = group_id(&id)?;
    let rev = path_revision(id, &rev)?;
    Ok(Json(redacted(s.store.as_ref(), id, Some(rev)).await?))
}

/// `GET /agent-groups/{id}/revisions/{from}/diff/{to}`: how `to` differs from `from`.
async fn diff(
    State(s): State<AppState>,
    Path((id, from, to)): Path<(String, String, String)>,
) -> ApiResult<Json<RevisionDiff>> {
    let id = group_id(&id)?;
    let (from, to) = (path_revision(id, &from)?, path_revision(id, &to)?);
    let a = redacted(s.store.as_ref(), id, Some(from)).await?;
    let b = redacted(s.store.as_ref(), id, Some(to)).await?;
    Ok(Json(RevisionDiff {
        from,
        to,
        diff: unified(&a.yaml, &b.yaml, from, to),
    }))
}

/// A unified diff (3 lines of context) labelled with the revision numbers; empty when equal.
pub(crate) fn unified(a: &str, b: &str, from: i64, to: i64) -> String {
    if a == b {
        return String::new();
    }
    similar::TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("revision {from}"), &format!("revision {to}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given two YAML texts differing in one line, when diffed, then the diff names both
    /// revisions and shows the line removed and added; equal texts give an empty diff.
    #[test]
    fn unified_shows_the_changed_line() {
        let d = unified("a: 1\nb: 2\n", "a: 1\nb: 3\n", 1, 2);
        assert!(d.contains("--- revision 1"), "{d}");
        assert!(d.contains("+++ revision 2"), "{d}");
        assert!(d.contains("-b: 2") && d.contains("+b: 3"), "{d}");
        assert_eq!(unified("a: 1\n", "a: 1\n", 1, 1), "");
    }

    /// Given `?revision=` values, when parsed, then only whole numbers from 1 pass and the
    /// error names the `revision` field.
    #[test]
    fn query_revision_takes_positive_numbers_only() {
        assert_eq!(query_revision("3").ok(), Some(3));
        for bad in ["x", "0", "-1", "1.5", ""] {
            let e = query_revision(bad).err().map(|e| e.body.error.field);
            assert_eq!(e, Some(Some("revision".into())), "{bad}");
        }
    }
}
