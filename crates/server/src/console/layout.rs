//! The frame every console page shares (head, navigation, the signed-in viewer, sign-out), the
//! sign-in and error pages, and small formatting helpers the pages have in common.

use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::context::{CSRF_FIELD, Viewer};

/// The section of the console a page belongs to (marked in the navigation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Fleet,
    Pipelines,
    Insights,
    Other,
}

/// A whole page.
pub(crate) fn page(title: &str, nav: Nav, viewer: Option<&Viewer>, body: Markup) -> Markup {
    let current = |n: Nav| (nav == n).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · otaas" }
                link rel="stylesheet" href=(assets::CSS_PATH);
                script src=(assets::JS_PATH) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/fleet" { "otaas" }
                    @if let Some(v) = viewer {
                        nav aria-label="Main" {
                            ul {
                                li { a href="/fleet" aria-current=[current(Nav::Fleet)] { "Fleet" } }
                                li { a href="/pipelines" aria-current=[current(Nav::Pipelines)] { "Pipelines" } }
                                li { a href="/insights" aria-current=[current(Nav::Insights)] { "Insights" } }
                            }
                        }
                        div.who {
                            span.badge.role data-role=(v.role()) { (v.role()) }
                            form method="post" action="/sign-out" {
                                (csrf_input(v))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub(crate) fn csrf_input(v: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(v.csrf); }
}

/// A page as a response.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// The sign-in page (with what went wrong, if anything).
pub(crate) fn sign_in(status: StatusCode, problem: Option<&str>) -> Response {
    let body = html! {
        section.sign-in aria-labelledby="sign-in-title" {
            h1 #sign-in-title { "Sign in" }
            p { "Paste an admin or read-only API token. It is checked once and kept only as a \
                 session cookie this page cannot read; it never appears in a URL." }
            @if let Some(p) = problem {
                p.problem role="alert" #sign-in-problem { (p) }
            }
            form method="post" action="/sign-in" autocomplete="off" {
                label for="token" { "API token" }
                input #token type="password" name="token" required autocomplete="off"
                    spellcheck="false" aria-describedby=[problem.map(|_| "sign-in-problem")];
                button type="submit" { "Sign in" }
            }
        }
    };
    respond(status, page("Sign in", Nav::Other, None, body))
}

/// An error page that says what happened and where to go.
pub(crate) fn error_page(
    status: StatusCode,
    title: &str,
    message: &str,
    viewer: Option<&Viewer>,
) -> Response {
    let body = html! {
        section.error aria-labelledby="error-title" {
            h1 #error-title { (title) }
            p role="alert" { (message) }
            p { a href="/fleet" { "Back to the fleet" } }
        }
    };
    respond(status, page(title, Nav::Other, viewer, body))
}

/// "12 s ago", "3 min ago", ... with the exact time as the element's `datetime`.
pub(crate) fn ago(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    let Some(at) = at else {
        return html! { span.muted { "never" } };
    };
    let secs = (now - at).num_seconds().max(0);
    let text = match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    };
    html! { time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) title=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) { (text) } }
}

/// A time as text.
pub(crate) fn when(at: DateTime<Utc>) -> Markup {
    let text = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) { (text) } }
}

/// A state word as a coloured badge; the colour class is derived from the word, the word itself
/// is always shown (colour is never the only signal).
pub(crate) fn badge(word: &str) -> Markup {
    let tone = match word {
        "healthy" | "applied" | "complete" | "connected" | "admin" => "ok",
        "unhealthy" | "failed" | "rolled_back" | "disconnected" => "bad",
        "in_progress" | "applying" | "pending" | "paused" | "drifted" => "warn",
        _ => "neutral",
    };
    html! { span class={"badge " (tone)} { (word.replace('_', " ")) } }
}

/// A short form of a long hash or id, with the whole value as the title.
pub(crate) fn short(value: &str) -> Markup {
    let cut: String = value.chars().take(12).collect();
    html! { code title=(value) { (cut) } }
}

/// An agent id as people tell them apart: its first and last six digits (uids made at the same
/// moment share their first twelve), with the whole id as the title.
pub(crate) fn agent_id(id: &str) -> Markup {
    html! { code title=(id) { (agent_id_text(id)) } }
}

/// The text of [`agent_id`].
pub(crate) fn agent_id_text(id: &str) -> String {
    if id.len() <= 14 || !id.is_ascii() {
        return id.to_owned();
    }
    format!("{}…{}", &id[..6], &id[id.len() - 6..])
}

/// A unified diff as lines marked added, removed or context.
pub(crate) fn diff(text: &str, label: &str) -> Markup {
    html! {
        @if text.is_empty() {
            p.muted { "No difference." }
        } @else {
            pre.diff aria-label=(label) tabindex="0" {
                @for line in text.lines() {
                    @let class = if line.starts_with("+++") || line.starts_with("---") {
                        "head"
                    } else if line.starts_with('+') {
                        "add"
                    } else if line.starts_with('-') {
                        "del"
                    } else if line.starts_with("@@") {
                        "hunk"
                    } else {
                        "ctx"
                    };
                    span class=(class) { (line) "\n" }
                }
            }
        }
    }
}

/// The answer to a state-changing form without this session's CSRF token, or from another
/// origin.
pub(crate) fn forged() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form did not come from this console session (its CSRF token is missing or \
         wrong). Nothing was changed.",
        None,
    )
}

/// A store failure as a page: an unknown object is a 404, anything else means the database is
/// unavailable (503); never a 500 for what the client asked.
pub(crate) fn store_error(e: crate::store::StoreError, viewer: &Viewer) -> Response {
    match e {
        crate::store::StoreError::NotFound { .. } => error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            &e.to_string(),
            Some(viewer),
        ),
        e => {
            tracing::warn!(error = %e, "Console page: store unavailable");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The server cannot read its database right now; try again shortly.",
                Some(viewer),
            )
        }
    }
}
