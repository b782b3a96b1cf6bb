//! The web console benchmark, on one server with N agents in one group: how long the fleet page
//! (first page, and the page after the middle agent) and the group page take on the server (the
//! `Server-Timing` they carry) against `GET /api/v1/agents?limit=50` on the same server, and what
//! opening the console costs: server RSS and CPU with live streams open against the same server
//! with none.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use otaas_api::{AgentQuery, GroupStatus, RolloutState};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::BenchError;
use crate::fleet::{self, BenchGroup};
use crate::plan::Plan;
use crate::procs::{self, Database, Fleet, Server, Transport};

/// Live streams of each kind held open at once (`/fleet/live`, `/groups/{id}/live`).
pub(crate) const STREAMS_EACH: usize = 10;
/// Untimed requests of each page before the timed ones.
pub(crate) const WARM_UP: usize = 5;
/// Labels of the simulated agents besides `bench=console` (the fleet page shows them).
const LABELS: &str = "region=r{i%4},tier=t{i%3},host=h{i}";
/// Longest a page request may take before the run gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The session cookie `POST /sign-in` sets.
const SESSION_COOKIE: &str = "otaas_session";

/// The 50th and 95th percentiles (nearest rank) of one request's times.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Latency {
    pub(crate) p50: Duration,
    pub(crate) p95: Duration,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let rank = |p: f64| {
            let i = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len().max(1));
            samples.get(i - 1).copied().unwrap_or_default()
        };
        Self {
            p50: rank(0.50),
            p95: rank(0.95),
        }
    }
}

/// One console page's times.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PageTimes {
    /// The handler's time, from the answer's `Server-Timing: app;dur=`.
    pub(crate) server: Latency,
    /// Request sent → whole body read, on the bench's side of loopback.
    pub(crate) client: Latency,
}

/// The console's figures.
#[derive(Clone, Debug)]
pub(crate) struct ConsoleResult {
    pub(crate) agents: usize,
    /// Timed requests of each page.
    pub(crate) requests: usize,
    /// `GET /fleet`.
    pub(crate) fleet: PageTimes,
    /// `GET /fleet?after=<the middle agent's id>`.
    pub(crate) fleet_after: PageTimes,
    /// `GET /groups/{id}`.
    pub(crate) group: PageTimes,
    /// Revisions of the group (the page shows the diff of the last two).
    pub(crate) revisions: i64,
    /// `GET /api/v1/agents?limit=50`, client side (the API sends no `Server-Timing`).
    pub(crate) api: Latency,
    /// Server RSS (median over the window) and CPU with the fleet idle and no console ever
    /// opened.
    pub(crate) rss_0: u64,
    pub(crate) cpu_0: f64,
    /// The same with the live streams open, after more page loads.
    pub(crate) rss_open: u64,
    pub(crate) cpu_open: f64,
    pub(crate) streams: usize,
    /// Loads of each page while the streams were open.
    pub(crate) loads: usize,
    /// The window RSS and CPU were read over.
    pub(crate) window: Duration,
}

impl ConsoleResult {
    /// RSS with the console open minus RSS without (may be negative).
    pub(crate) fn rss_delta(&self) -> f64 {
        self.rss_open as f64 - self.rss_0 as f64
    }

    /// The delta spread over the fleet: not a cost each agent has (the console keeps nothing per
    /// agent), but what it would be if it were.
    pub(crate) fn bytes_per_agent(&self) -> f64 {
        self.rss_delta() / self.agents.max(1) as f64
    }
}

/// Starts a server and N agents, makes the group, and measures.
pub(crate) async fn run(plan: &Plan, database: &Database) -> Result<ConsoleResult, BenchError> {
    let exe = &plan.exe;
    let mut server = Server::start(exe, database, &plan.server_options(None)).await?;
    let n = plan.agents;
    let mut group = fleet::make_group(&server.client, "console").await?;
    eprintln!("otaas bench: {n} WebSocket agents connecting (console) ...");
    let mut spec = plan.fleet_spec("console", n, Transport::Ws);
    spec.extra_labels = LABELS;
    let mut fleet = Fleet::start(exe, &server, &spec)?;
    let result = measure(plan, &mut server, &mut fleet, &mut group).await;
    fleet.stop().await;
    server.child.stop().await;
    result
}

async fn measure(
    plan: &Plan,
    server: &mut Server,
    fleet: &mut Fleet,
    group: &mut BenchGroup,
) -> Result<ConsoleResult, BenchError> {
    let n = plan.agents;
    fleet::wait_applied(server, fleet, group, n).await?;
    // A second revision, so the group page has a history and shows a diff.
    fleet::push(server, group, n).await?;
    let status = wait_complete(server, fleet, group, n).await?;
    let group_id = group.group.id;
    let pid = server.pid();

    // No redirects followed (the sign-in's 303 carries the cookie; a page answering 303 means
    // the session was not accepted), no proxy from the environment.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| BenchError::new("building the HTTP client", e))?;
    let base = &server.api_url;
    let fleet_url = format!("{base}/fleet");
    let group_url = format!("{base}/groups/{group_id}");

    // Memory and CPU first: the fleet idle with no console ever opened (nor the agents listed
    // through the API, whose copy of the fleet would move the allocator), then with the live
    // streams open after page loads.
    tokio::time::sleep(plan.settle).await;
    let (cpu_0, rss_0) = at_rest(pid, plan.console_open).await?;
    let cookie = sign_in(&http, base, &server.admin_token).await?;
    let session = Auth::Cookie(&cookie);
    eprintln!(
        "otaas bench: console, {} live streams open and {} loads of each page ...",
        2 * STREAMS_EACH,
        plan.console_loads
    );
    let mut streams = Vec::with_capacity(2 * STREAMS_EACH);
    for url in [
        format!("{base}/fleet/live"),
        format!("{base}/groups/{group_id}/live"),
    ] {
        for _ in 0..STREAMS_EACH {
            streams.push(LiveStream::open(&http, &url, &cookie).await?);
        }
    }
    let measured = async {
        // Each stream sends the region at once; all of them running is what is measured.
        let deadline = Instant::now() + Duration::from_secs(60);
        while streams.iter().any(|s| s.updates() == 0) {
            server.child.check_alive()?;
            for s in &mut streams {
                s.check().await?;
            }
            if Instant::now() > deadline {
                return Err(BenchError::msg(
                    "a console live stream sent no update within 60 s",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..plan.console_loads {
            get(&http, &fleet_url, session).await?;
            get(&http, &group_url, session).await?;
        }
        let open = at_rest(pid, plan.console_open).await?;
        for s in &mut streams {
            s.check().await?;
        }
        Ok(open)
    }
    .await;
    for s in streams {
        s.close();
    }
    let (cpu_open, rss_open) = measured?;

    // Page times, the streams closed. Any agent in the middle of the id order: the page after
    // it is a full one from the middle of the walk.
    let mut ids: Vec<String> = server
        .client
        .list_agents(&AgentQuery::default())
        .await
        .map_err(|e| BenchError::new("listing the agents", e))?
        .into_iter()
        .map(|a| a.id)
        .collect();
    ids.sort_unstable();
    let middle = ids
        .get(ids.len() / 2)
        .cloned()
        .ok_or_else(|| BenchError::msg("the server lists no agent"))?;
    let after_url = format!("{base}/fleet?after={middle}");
    let api_url = format!("{base}/api/v1/agents?limit=50");
    let bearer = Auth::Bearer(&server.admin_token);
    eprintln!(
        "otaas bench: console pages, {} timed requests each ...",
        plan.console_reps
    );
    // Interleaved, so that each request sees the same machine.
    let pages = [&fleet_url, &after_url, &group_url];
    for _ in 0..WARM_UP {
        for url in pages {
            get(&http, url, session).await?;
        }
        get(&http, &api_url, bearer).await?;
    }
    let mut server_times: [Vec<Duration>; 3] = Default::default();
    let mut client_times: [Vec<Duration>; 3] = Default::default();
    let mut api_times = Vec::with_capacity(plan.console_reps);
    for _ in 0..plan.console_reps {
        server.child.check_alive()?;
        for (i, url) in pages.iter().enumerate() {
            let t = get(&http, url, session).await?;
            let app = t.server.ok_or_else(|| {
                BenchError::msg(format!(
                    "GET {url}: no Server-Timing app;dur= in the answer"
                ))
            })?;
            server_times[i].push(app);
            client_times[i].push(t.client);
        }
        api_times.push(get(&http, &api_url, bearer).await?.client);
    }
    let [s_fleet, s_after, s_group] = server_times.map(Latency::of);
    let [c_fleet, c_after, c_group] = client_times.map(Latency::of);

    Ok(ConsoleResult {
        agents: n,
        requests: plan.console_reps,
        fleet: PageTimes {
            server: s_fleet,
            client: c_fleet,
        },
        fleet_after: PageTimes {
            server: s_after,
            client: c_after,
        },
        group: PageTimes {
            server: s_group,
            client: c_group,
        },
        revisions: status.revision,
        api: Latency::of(api_times),
        rss_0,
        cpu_0,
        rss_open,
        cpu_open,
        streams: 2 * STREAMS_EACH,
        loads: plan.console_loads,
        window: plan.console_open,
    })
}

/// CPU use over `window` (% of a core) and the median of the RSS read every 100 ms during it:
/// one reading may land on a moment's allocation.
async fn at_rest(pid: u32, window: Duration) -> Result<(f64, u64), BenchError> {
    let cpu_start = procs::cpu_seconds(pid)?;
    let start = Instant::now();
    let mut rss = Vec::new();
    while start.elapsed() < window {
        rss.push(procs::rss_bytes(pid)?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rss.push(procs::rss_bytes(pid)?);
    let cpu = 100.0 * (procs::cpu_seconds(pid)? - cpu_start) / start.elapsed().as_secs_f64();
    rss.sort_unstable();
    Ok((cpu, rss[rss.len() / 2]))
}

/// Polls the group's status until its rollout is complete with all `n` agents matched and
/// applied.
async fn wait_complete(
    server: &mut Server,
    fleet: &mut Fleet,
    group: &BenchGroup,
    n: usize,
) -> Result<GroupStatus, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(120 + n as u64 / 50);
    let mut last = None;
    loop {
        server.child.check_alive()?;
        fleet.check_alive()?;
        if let Ok(s) = server.client.group_status(group.group.id).await {
            if s.state == RolloutState::Complete
                && s.matched as usize == n
                && s.applied as usize == n
            {
                return Ok(s);
            }
            last = Some(s);
        }
        if Instant::now() > deadline {
            return Err(BenchError::msg(format!(
                "timed out waiting for the rollout of group {:?} to complete; last status: {}",
                group.label,
                last.map(|s| format!(
                    "{} matched {} applied {} failed {}: {}",
                    s.state.as_str(),
                    s.matched,
                    s.applied,
                    s.failed,
                    s.message
                ))
                .unwrap_or_else(|| "none".to_owned())
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `POST /sign-in` with the admin token, as the sign-in form sends it; the session cookie's
/// `name=value`.
async fn sign_in(http: &reqwest::Client, base: &str, token: &str) -> Result<String, BenchError> {
    let resp = http
        .post(format!("{base}/sign-in"))
        .form(&[("token", token)])
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| BenchError::new("POST /sign-in", e))?;
    if resp.status() != StatusCode::SEE_OTHER {
        return Err(BenchError::msg(format!(
            "POST /sign-in answered {} (expected 303 with the session cookie)",
            resp.status()
        )));
    }
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .find(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, v)| k == SESSION_COOKIE && !v.is_empty())
        })
        .map(str::to_owned)
        .ok_or_else(|| BenchError::msg("POST /sign-in set no otaas_session cookie"))
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    /// `name=value` of the session cookie.
    Cookie(&'a str),
    /// An API token.
    Bearer(&'a str),
}

/// One request's times.
struct Timed {
    server: Option<Duration>,
    client: Duration,
}

/// `GET url`, which must answer 200; its body is read whole.
async fn get(http: &reqwest::Client, url: &str, auth: Auth<'_>) -> Result<Timed, BenchError> {
    let req = match auth {
        Auth::Cookie(c) => http.get(url).header(COOKIE, c),
        Auth::Bearer(t) => http.get(url).bearer_auth(t),
    };
    let started = Instant::now();
    let resp = req
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| BenchError::new(format!("GET {url}"), e))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let server = resp
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(app_duration);
    let body = resp
        .bytes()
        .await
        .map_err(|e| BenchError::new(format!("GET {url}: reading the body"), e))?;
    let client = started.elapsed();
    if status != StatusCode::OK {
        return Err(BenchError::msg(format!(
            "GET {url} answered {status}{}: {}",
            location.map(|l| format!(" (to {l})")).unwrap_or_default(),
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )));
    }
    Ok(Timed { server, client })
}

/// The `dur` of the `app` metric of a `Server-Timing` header, in milliseconds.
fn app_duration(header: &str) -> Option<Duration> {
    header.split(',').find_map(|metric| {
        let mut parts = metric.split(';').map(str::trim);
        if parts.next()? != "app" {
            return None;
        }
        let ms: f64 = parts.find_map(|p| p.strip_prefix("dur="))?.parse().ok()?;
        (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
    })
}

/// An open server-sent event stream, read as it comes by a task that counts its `update`
/// events.
struct LiveStream {
    url: String,
    updates: Arc<AtomicUsize>,
    task: JoinHandle<Result<(), BenchError>>,
}

impl LiveStream {
    async fn open(http: &reqwest::Client, url: &str, cookie: &str) -> Result<Self, BenchError> {
        let mut resp = http
            .get(url)
            .header(COOKIE, cookie)
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| BenchError::new(format!("GET {url}"), e))?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if resp.status() != StatusCode::OK || !content_type.starts_with("text/event-stream") {
            return Err(BenchError::msg(format!(
                "GET {url} answered {} with {content_type:?}, not an event stream",
                resp.status()
            )));
        }
        let updates = Arc::new(AtomicUsize::new(0));
        let counted = updates.clone();
        let what = format!("GET {url}");
        let task = tokio::spawn(async move {
            let mut events = EventCounter::default();
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        counted.fetch_add(events.feed(&chunk), Ordering::Relaxed);
                    }
                    Ok(None) => return Err(BenchError::msg(format!("{what}: the stream ended"))),
                    Err(e) => return Err(BenchError::new(&what, e)),
                }
            }
        });
        Ok(Self {
            url: url.to_owned(),
            updates,
            task,
        })
    }

    fn updates(&self) -> usize {
        self.updates.load(Ordering::Relaxed)
    }

    /// An error if the stream has ended (the reading task only ends on one).
    async fn check(&mut self) -> Result<(), BenchError> {
        if !self.task.is_finished() {
            return Ok(());
        }
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(BenchError::msg(format!("GET {}: ended", self.url))),
            Err(e) => Err(BenchError::new(format!("GET {}", self.url), e)),
        }
    }

    /// Drops the response, which closes the connection.
    fn close(self) {
        self.task.abort();
    }
}

/// Counts `event: update` lines in a byte stream split anywhere.
#[derive(Default)]
struct EventCounter {
    /// The end of the previous chunk: a marker may start in it.
    carry: Vec<u8>,
}

impl EventCounter {
    const MARK: &'static [u8] = b"event: update\n";

    fn feed(&mut self, chunk: &[u8]) -> usize {
        self.carry.extend_from_slice(chunk);
        let found = self
            .carry
            .windows(Self::MARK.len())
            .filter(|w| *w == Self::MARK)
            .count();
        // Fewer bytes than a marker cannot hold a whole one, so none is counted twice.
        let keep = self.carry.len().min(Self::MARK.len() - 1);
        self.carry.drain(..self.carry.len() - keep);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_app_duration_is_read() {
        assert_eq!(
            app_duration("app;dur=12.5"),
            Some(Duration::from_micros(12_500))
        );
        assert_eq!(
            app_duration("db;dur=1, app; desc=\"x\"; dur=0.250"),
            Some(Duration::from_micros(250))
        );
        assert_eq!(app_duration("db;dur=1"), None);
        assert_eq!(app_duration("app;dur=-1"), None);
        assert_eq!(app_duration("app"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let l = Latency::of((1..=100).rev().map(ms).collect());
        assert_eq!((l.p50, l.p95), (ms(50), ms(95)));
        let l = Latency::of(vec![ms(7)]);
        assert_eq!((l.p50, l.p95), (ms(7), ms(7)));
        let l = Latency::of(Vec::new());
        assert_eq!((l.p50, l.p95), (ms(0), ms(0)));
    }

    #[test]
    fn update_events_are_counted_across_chunks() {
        let mut c = EventCounter::default();
        let stream = b"event: update\ndata: <p>1</p>\n\n: keep-alive\n\nevent: update\ndata: x\n\n";
        for split in 0..stream.len() {
            let mut c2 = EventCounter::default();
            let (a, b) = stream.split_at(split);
            assert_eq!(c2.feed(a) + c2.feed(b), 2, "split at {split}");
        }
        let mut total = 0;
        for byte in stream {
            total += c.feed(&[*byte]);
        }
        assert_eq!(total, 2);
    }
}
