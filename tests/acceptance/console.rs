//! The web console in a real headless Chromium (Debian's `chromium` and `chromium-driver`, over
//! WebDriver) against a real `otaas serve` with 1,000 simulated agents: sign-in, the fleet, a bad
//! change followed live from canary to rollback, the failed agent's error, pause and resume as
//! admin, no controls for a read-only token, a forged action refused, reading without
//! JavaScript, keyboard navigation, and axe-core on every page (no serious or critical
//! violation).
//!
//! Screenshots of every page go to `target/console-screenshots/`; with
//! `OTAAS_UPDATE_SCREENSHOTS=1` they replace the committed ones in `docs/console/`.

use std::path::PathBuf;
use std::time::Duration;

use otaas_api::{AgentGroupId, AgentGroupSpec, ExporterBindingSpec, PipelineSpec, RolloutState};
use serde_json::{Value, json};

use crate::common::{api, block_on, wait_for_agents, wait_until};
use crate::harness::browser::{Browser, BrowserOptions, keys};
use crate::harness::{FleetSim, Server};

const AGENTS: usize = 1000;
/// Agents that send their own metrics (throughput for the insights page).
const REPORTING: usize = 20;

fn spec<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("spec")
}

fn pipeline(timeout: &str) -> PipelineSpec {
    spec(json!({
        "name": "web",
        "signals": ["logs"],
        "receivers": { "otlp": { "protocols": { "http": { "endpoint": "0.0.0.0:4318" } } } },
        "processors": [{ "id": "batch", "config": { "timeout": timeout } }],
    }))
}

fn binding(pipeline_id: &str, kafka: bool) -> ExporterBindingSpec {
    let mut destinations = vec![json!({ "name": "console", "type": "debug" })];
    if kafka {
        destinations.push(
            json!({ "name": "bus", "type": "kafka", "config": { "brokers": ["kafka:9092"] } }),
        );
    }
    spec(json!({ "name": "out", "pipeline_id": pipeline_id, "destinations": destinations }))
}

fn group(pipeline_id: &str, bake_seconds: u32) -> AgentGroupSpec {
    spec(json!({
        "name": "web",
        "selector": { "env": "web" },
        "pipeline_ids": [pipeline_id],
        "rollout": {
            "strategy": "canary",
            "canary_percent": 10,
            "bake_seconds": bake_seconds,
            "max_failures": 0,
            "auto_rollback": true,
        },
    }))
}

/// Where screenshots go: the committed `docs/console/` when asked to update them.
fn screenshot_dir() -> PathBuf {
    let dir = if std::env::var_os("OTAAS_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Opens `path`, checks it with axe-core and keeps a screenshot named `name`.
fn check_page(b: &Browser, server: &Server, path: &str, name: &str) {
    b.goto(&format!("{}{path}", server.api_url()));
    b.find("main h1");
    let minor = b.axe(name);
    if !minor.is_empty() {
        eprintln!("axe: {name}: minor or moderate: {minor:?}");
    }
    b.save_screenshot(screenshot_dir().join(format!("{name}.png")));
}

fn sign_in(b: &Browser, server: &Server, token: &str) {
    b.goto(&format!("{}/sign-in", server.api_url()));
    b.find("#token").send_keys(token);
    b.find("form[action='/sign-in'] button[type=submit]")
        .click();
    b.wait_until(
        "the fleet page after sign-in",
        Duration::from_secs(20),
        || b.current_url().ends_with("/fleet"),
    );
}

/// Clicks a control inside a live region. The region may be re-rendered between a WebDriver
/// find and its click (a stale element), so the lookup and the click happen in one script.
fn click_live(b: &Browser, css: &str) {
    b.find(css);
    b.execute(
        "document.querySelector(arguments[0]).click();",
        &[json!(css)],
    );
}

fn rollout_state(server: &Server, id: AgentGroupId) -> RolloutState {
    block_on(api(server).group_status(id))
        .expect("status")
        .state
}

#[test]
fn the_console_follows_a_bad_rollout_live_and_guards_its_controls() {
    let server = Server::start();
    // Every agent holds its OpAMP connection and, while it sends own metrics, a second one to
    // the same listener: all from 127.0.0.1, under the default cap of 1,024 connections per
    // address, only the few that draw the charts send them.
    let _fleet = FleetSim::builder(&server)
        .agents(AGENTS - REPORTING)
        .label("env", "web")
        .reject_components(&["kafka"])
        .own_metrics(0, 0)
        .start();
    let _reporting = FleetSim::builder(&server)
        .agents(REPORTING)
        .label("env", "web")
        .reject_components(&["kafka"])
        .own_metrics(40, 2)
        .start();
    wait_for_agents(&server, ("env", "web"), AGENTS);
    let client = api(&server);

    // Given a group of every agent whose first revision reached all of them
    let p = block_on(client.create_pipeline(&pipeline("1s"))).unwrap();
    let out = binding(&p.id.to_string(), false);
    let b = block_on(client.create_exporter_binding(&out)).unwrap();
    let g = block_on(client.create_agent_group(&group(&p.id.to_string(), 0))).unwrap();
    wait_until(120, "revision 1 on every agent", || {
        rollout_state(&server, g.id) == RolloutState::Complete
    });

    // When an admin signs in, then the fleet shows all 1,000 agents
    let browser = Browser::start(BrowserOptions::default());
    sign_in(&browser, &server, server.admin_token());
    browser.wait_text(
        "[data-count=total]",
        &AGENTS.to_string(),
        Duration::from_secs(20),
    );
    assert!(!browser.page_source().contains(server.admin_token()));
    check_page(&browser, &server, "/fleet", "fleet");
    assert_eq!(
        browser.find_all("#agents tbody tr").len(),
        50,
        "one page of 50"
    );

    // Keyboard: the first Tab reaches the skip link, Enter moves to the content
    browser.goto(&format!("{}/fleet", server.api_url()));
    browser.find("main h1");
    browser.send_keys_active(keys::TAB);
    assert_eq!(browser.active_element().text(), "Skip to content");
    browser.send_keys_active(keys::ENTER);
    assert!(browser.current_url().ends_with("#main"));

    // When a bad change (an exporter the agents lack) is made while the group page is open
    check_page(&browser, &server, &format!("/groups/{}", g.id), "group");
    browser.execute(
        "window.__notReloaded = true; window.__states = [];
         const region = document.getElementById('rollout');
         new MutationObserver(() => {
           const s = document.getElementById('rollout-state');
           const r = document.getElementById('rollout-revision');
           if (s) window.__states.push(s.dataset.state + '@' + (r ? r.textContent : ''));
         }).observe(region, { childList: true, subtree: true });",
        &[],
    );
    let bad = binding(&p.id.to_string(), true);
    block_on(client.update_exporter_binding(b.id, &bad, None)).unwrap();

    // Then the page follows it without a reload: the canary fails and the group rolls back
    browser.wait_until(
        "the rollout to be rolled back on the open page",
        Duration::from_secs(90),
        || {
            browser
                .try_find("#rollout-state[data-state=rolled_back]")
                .is_some()
        },
    );
    assert_eq!(
        browser.execute("return window.__notReloaded === true;", &[]),
        json!(true),
        "the page was reloaded"
    );
    let states = browser.execute("return window.__states;", &[]);
    eprintln!("rollout states seen live: {states}");
    assert!(
        states.as_array().is_some_and(|s| s
            .iter()
            .any(|v| v.as_str().is_some_and(|v| v.ends_with("@2")))),
        "revision 2 never appeared live: {states}"
    );
    let steps = browser.find("#rollout-steps").text();
    assert!(steps.contains("100 agents"), "canary step: {steps}");
    let failures = browser.find_all("#rollout-failures li");
    assert!(!failures.is_empty(), "failed agents listed");
    browser.save_screenshot(screenshot_dir().join("group-rolled-back.png"));
    browser.axe("group (rolled back)");

    // When the first failed agent is opened, then its error names the missing component
    // (by its address: the live region may be re-rendered between finding the link and a click)
    let href = failures[0].find("a").attr("href").expect("agent link");
    browser.goto(&format!("{}{href}", server.api_url()));
    // (the agent runs the last good revision again, so the error is in its history)
    let history = browser
        .wait_text("#config-history", "kafka", Duration::from_secs(20))
        .text();
    assert!(history.contains("failed"), "status history: {history}");
    check_page(
        &browser,
        &server,
        &browser.current_url().replace(&server.api_url(), ""),
        "agent",
    );

    // Given a good change that bakes on its canary, when the admin pauses and resumes it
    let slow = group(&p.id.to_string(), 300);
    block_on(client.update_agent_group(g.id, &slow, None)).unwrap();
    block_on(client.update_exporter_binding(b.id, &out, None)).unwrap();
    block_on(client.update_pipeline(p.id, &pipeline("2s"), None)).unwrap();
    browser.goto(&format!("{}/groups/{}", server.api_url(), g.id));
    browser.wait_until(
        "the new rollout to be in progress",
        Duration::from_secs(60),
        || browser.try_find("#rollout-pause").is_some(),
    );
    click_live(&browser, "#rollout-pause");
    browser.wait_text("[role=status]", "Rollout paused", Duration::from_secs(20));
    assert_eq!(rollout_state(&server, g.id), RolloutState::Paused);
    click_live(&browser, "#rollout-resume");
    browser.wait_text("[role=status]", "Rollout resumed", Duration::from_secs(20));
    assert_eq!(rollout_state(&server, g.id), RolloutState::InProgress);

    // When a form is forged (posted from the page without the session's CSRF token), then it
    // is refused and the rollout goes on
    let forged = browser.execute_async(
        "const done = arguments[arguments.length - 1];
         fetch(arguments[0], { method: 'POST', body: '_csrf=forged',
           headers: { 'content-type': 'application/x-www-form-urlencoded' } })
           .then(r => done(r.status), e => done(String(e)));",
        &[json!(format!("/groups/{}/rollout/rollback", g.id))],
    );
    assert_eq!(forged, json!(403));
    assert_eq!(rollout_state(&server, g.id), RolloutState::InProgress);

    check_page(&browser, &server, "/pipelines", "pipelines");
    assert!(browser.find(".flow").text().contains("batch"));
    // The insights charts draw the reporting agents' throughput once two reports are in
    browser.wait_until(
        "a line in the pipeline throughput chart",
        Duration::from_secs(60),
        || {
            browser.goto(&format!("{}/insights", server.api_url()));
            browser
                .try_find("#chart-pipelines polyline")
                .and_then(|l| l.attr("points"))
                .is_some_and(|p| p.contains(' '))
        },
    );
    assert!(
        browser
            .find("#chart-agents polyline")
            .attr("points")
            .is_some()
    );
    check_page(&browser, &server, "/insights", "insights");

    // When a read-only token signs in, then there are no controls and its own session's
    // token does not make an action pass
    browser.find("form[action='/sign-out'] button").click();
    browser.wait_until(
        "the sign-in page after sign-out",
        Duration::from_secs(20),
        || browser.current_url().ends_with("/sign-in"),
    );
    let ro = block_on(client.create_token(&spec(json!({
        "scope": "read_only", "description": "console viewer"
    }))))
    .unwrap();
    sign_in(&browser, &server, &ro.token);
    browser.goto(&format!("{}/groups/{}", server.api_url(), g.id));
    browser.find("#rollout-state");
    assert!(
        browser.try_find("#rollout-controls").is_none(),
        "controls shown to read-only"
    );
    assert!(browser.find_all("form[action*='/rollout/']").is_empty());
    let refused = browser.execute_async(
        "const done = arguments[arguments.length - 1];
         const csrf = document.querySelector('input[name=_csrf]').value;
         fetch(arguments[0], { method: 'POST', body: '_csrf=' + encodeURIComponent(csrf),
           headers: { 'content-type': 'application/x-www-form-urlencoded' } })
           .then(r => done(r.status), e => done(String(e)));",
        &[json!(format!("/groups/{}/rollout/pause", g.id))],
    );
    assert_eq!(refused, json!(403));
    assert_eq!(rollout_state(&server, g.id), RolloutState::InProgress);
    assert!(
        !server.log().contains(&ro.token),
        "the token is in the server log"
    );
    assert!(!server.log().contains(server.admin_token()));

    // Reading works without JavaScript; the dark scheme and a phone-sized window render
    let no_js = Browser::start(BrowserOptions::default().no_javascript());
    sign_in(&no_js, &server, server.admin_token());
    no_js.wait_text(
        "[data-count=total]",
        &AGENTS.to_string(),
        Duration::from_secs(10),
    );
    assert_eq!(no_js.find_all("#agents tbody tr").len(), 50);
    let dark = Browser::start(BrowserOptions::default().viewport(390, 844).dark());
    sign_in(&dark, &server, server.admin_token());
    check_page(
        &dark,
        &server,
        &format!("/groups/{}", g.id),
        "group-dark-phone",
    );
}
