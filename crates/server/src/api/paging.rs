//! Pagination of every `/api/v1` list: `limit` and an opaque `cursor` in the query, a
//! `next_cursor` in the answer (absent on the last page).
//!
//! Order is by id (UUIDv7: creation order; for agents the instance uid, for group revisions
//! the revision number), which never changes, so a walk from the first page to the last sees
//! every object that exists throughout the walk exactly once, each as of the moment its page
//! was read; objects created or deleted meanwhile may or may not be seen. The cursor is the
//! last id of the page, tagged with its list so it cannot be replayed on another, base64url.
//!
//! `limit` defaults to [`DEFAULT_LIMIT`] and is lowered to the server's maximum
//! (`--api-max-page-size`, default [`MAX_LIMIT`]) when above it: a client asking for big pages
//! gets the biggest this server serves and walks on with `next_cursor`.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ApiError;

/// Objects in a page when the client does not say: a screenful for people with curl.
pub const DEFAULT_LIMIT: usize = 100;
/// Default of `--api-max-page-size` (defined with the flags).
pub use crate::config::DEFAULT_MAX_PAGE_SIZE as MAX_LIMIT;

/// One page request of list `tag` (the route's collection name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    tag: &'static str,
    pub limit: usize,
    /// The last id of the previous page, as text.
    after: Option<String>,
}

impl Page {
    /// Reads `limit` and `cursor` (taking them out of `query`, so the caller can refuse what
    /// is left); `max` is the server's page maximum.
    pub fn take(
        tag: &'static str,
        query: &mut BTreeMap<String, String>,
        max: usize,
    ) -> Result<Self, ApiError> {
        Self::parse(tag, query.remove("limit"), query.remove("cursor"), max)
    }

    pub fn parse(
        tag: &'static str,
        limit: Option<String>,
        cursor: Option<String>,
        max: usize,
    ) -> Result<Self, ApiError> {
        let max = max.max(1);
        let limit = match limit {
            None => DEFAULT_LIMIT.min(max),
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX).min(max),
                _ => {
                    return Err(ApiError::bad_request(
                        format!(
                            "limit must be a whole number from 1 (at most {max} are returned \
                             per page), got {raw:?}"
                        ),
                        Some("limit"),
                    ));
                }
            },
        };
        let after = match cursor {
            None => None,
            Some(raw) => Some(decode(tag, &raw).ok_or_else(|| {
                ApiError::bad_request(
                    format!(
                        "cursor {:?} is not a cursor of this list; pass the next_cursor of \
                         the previous page unchanged",
                        raw.chars().take(64).collect::<String>()
                    ),
                    Some("cursor"),
                )
            })?),
        };
        Ok(Self { tag, limit, after })
    }

    /// The last id of the previous page, as the cursor gave it (for lists paged in the
    /// store, which read only what follows it).
    pub fn after(&self) -> Option<&str> {
        self.after.as_deref()
    }

    /// This page of `items` (in any order) and the cursor of the next page, if there is one.
    pub fn apply<T, K>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> K,
    ) -> Result<(Vec<T>, Option<String>), ApiError>
    where
        K: Ord + Display + FromStr,
    {
        let after = match &self.after {
            None => None,
            Some(text) => Some(text.parse::<K>().map_err(|_| {
                ApiError::bad_request(
                    "cursor is not a cursor of this list; pass the next_cursor of the previous \
                     page unchanged",
                    Some("cursor"),
                )
            })?),
        };
        let mut keyed: Vec<(K, T)> = items
            .into_iter()
            .map(|t| (key(&t), t))
            .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let more = keyed.len() > self.limit;
        keyed.truncate(self.limit);
        let next = if more {
            keyed.last().map(|(k, _)| encode(self.tag, &k.to_string()))
        } else {
            None
        };
        Ok((keyed.into_iter().map(|(_, t)| t).collect(), next))
    }
}

fn encode(tag: &str, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}:{key}"))
}

fn decode(tag: &str, cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let key = text.strip_prefix(tag)?.strip_prefix(':')?;
    (!key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: Option<&str>, cursor: Option<String>) -> Result<Page, ApiError> {
        Page::parse("things", limit.map(str::to_owned), cursor, 10)
    }

    #[test]
    fn walks_every_item_once_in_key_order() {
        // Given 25 items out of order
        let items: Vec<u32> = (0..25).rev().collect();
        // When walked in pages of 10
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let p = page(Some("10"), cursor.take()).unwrap();
            let (got, next) = p.apply(items.clone(), |i| *i).unwrap();
            pages += 1;
            seen.extend(got);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        // Then every item comes once, in order, in three pages
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        assert_eq!(pages, 3);
    }

    #[test]
    fn a_full_last_page_has_no_next_cursor() {
        let (got, next) = page(Some("5"), None)
            .unwrap()
            .apply((0..5).collect(), |i: &u32| *i)
            .unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(next, None);
    }

    #[test]
    fn limits_default_and_are_capped_at_the_maximum() {
        assert_eq!(page(None, None).unwrap().limit, 10);
        assert_eq!(page(Some("3"), None).unwrap().limit, 3);
        assert_eq!(page(Some("100000"), None).unwrap().limit, 10);
        assert_eq!(
            Page::parse("t", None, None, 5000).unwrap().limit,
            DEFAULT_LIMIT
        );
    }

    #[test]
    fn bad_limits_and_cursors_name_the_parameter() {
        for bad in ["0", "-1", "ten", "", "1.5"] {
            let err = page(Some(bad), None).unwrap_err();
            assert_eq!(err.body.error.field.as_deref(), Some("limit"), "{bad:?}");
        }
        let other_list = encode("others", "5");
        for bad in ["%%%", "bm9wZQ", other_list.as_str()] {
            let err = page(None, Some(bad.to_owned())).unwrap_err();
            assert_eq!(err.body.error.field.as_deref(), Some("cursor"), "{bad:?}");
        }
        // A well-formed cursor whose key is not this list's kind of id
        let err = page(None, Some(encode("things", "x")))
            .unwrap()
            .apply(vec![1u32], |i| *i)
            .unwrap_err();
        assert_eq!(err.body.error.field.as_deref(), Some("cursor"));
    }
}
