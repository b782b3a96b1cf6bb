//! The results of a run: one Markdown table (figure, measured, target, baseline from the same
//! run, verdict) for the terminal, and the same table with the machine's description and the
//! method for `--out` (bench/RESULTS.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::collector::CollectorResult;
use crate::console::{ConsoleResult, Latency, PageTimes};
use crate::fleet::{FleetResults, PushResult};
use crate::plan::{Backend, Plan};
use crate::terraform::{Requests, TfTimes};

/// The targets (2-core machine, both backends).
const RSS_PER_AGENT_MAX: f64 = 16.0 * 1024.0;
const IDLE_CPU_MAX: f64 = 2.0;
const PUSH_P99_MAX: Duration = Duration::from_secs(2);
const PUSH_P100_MAX: Duration = Duration::from_secs(3);
const HTTP_CPU_MAX: f64 = 5.0;
/// The null provider does no I/O at all: this is the floor, and ours may add 5 % to it.
const TF_RATIO_MAX: f64 = 1.05;
const TLS_RSS_PER_AGENT_MAX: f64 = 24.0 * 1024.0;
/// A console page's server time, at the 95th percentile (so the median too).
const CONSOLE_PAGE_MAX: Duration = Duration::from_millis(50);
/// What opening the console may add to the server's RSS, whatever the fleet's size: a constant
/// for the live streams' connections and buffers, nothing per agent (1 MiB is 105 B per agent
/// at 10,000 agents).
const CONSOLE_RSS_DELTA_MAX: f64 = 1024.0 * 1024.0;

/// What the machine was like (at the start, and the load at the end).
#[derive(Clone, Debug)]
struct Machine {
    cpu_model: String,
    cores: usize,
    memory: String,
    kernel: String,
    load_start: String,
    load_end: String,
    nofile: Option<u64>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn load_average() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    fn now(nofile: Option<u64>) -> Self {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let memory = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_start: load_average(),
            load_end: String::new(),
            nofile,
        }
    }
}

/// Everything measured in one run.
pub(crate) struct Report {
    plan: Plan,
    machine: Machine,
    started: DateTime<Utc>,
    finished: Option<DateTime<Utc>>,
    /// Median start-to-handshake of (our provider, the null provider).
    pub(crate) handshake: Option<(Duration, Duration)>,
    /// The null provider's times, measured right before ours on each backend and size.
    pub(crate) null_tf: BTreeMap<(Backend, usize), TfTimes>,
    pub(crate) otaas_tf: BTreeMap<(Backend, usize), TfTimes>,
    pub(crate) fleets: BTreeMap<Backend, FleetResults>,
    pub(crate) collector: BTreeMap<Backend, CollectorResult>,
    pub(crate) console: BTreeMap<Backend, ConsoleResult>,
    /// Benchmarks skipped, and why.
    pub(crate) notes: Vec<String>,
}

/// One line of the table.
struct Row {
    bench: &'static str,
    figure: String,
    backend: String,
    measured: String,
    target: String,
    baseline: String,
    /// `None`: no target applies.
    met: Option<bool>,
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn requests_text(r: &Requests) -> String {
    format!(
        "{} request{}, {} throttled",
        thousands(r.total as usize),
        if r.total == 1 { "" } else { "s" },
        thousands(r.throttled as usize)
    )
}

fn latency_text(l: Latency) -> String {
    format!("{} / {}", ms(l.p50), ms(l.p95))
}

fn page_text(p: &PageTimes) -> String {
    format!(
        "{} (client side {})",
        latency_text(p.server),
        latency_text(p.client)
    )
}

/// Signed bytes as KiB.
fn kib_signed(bytes: f64) -> String {
    format!(
        "{}{:.1} KiB",
        if bytes >= 0.0 { "+" } else { "" },
        bytes / 1024.0
    )
}

fn push_text(p: &PushResult) -> String {
    format!("{} / {} / {}", secs(p.p50), secs(p.p99), secs(p.p100))
}

impl Report {
    pub(crate) fn new(plan: &Plan, nofile: Option<u64>) -> Self {
        Self {
            plan: plan.clone(),
            machine: Machine::now(nofile),
            started: Utc::now(),
            finished: None,
            handshake: None,
            null_tf: BTreeMap::new(),
            otaas_tf: BTreeMap::new(),
            fleets: BTreeMap::new(),
            collector: BTreeMap::new(),
            console: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn finish(&mut self) {
        self.machine.load_end = load_average();
        self.finished = Some(Utc::now());
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (backend, f) in &self.fleets {
            let backend = backend.name().to_owned();
            if let Some(idle) = &f.idle {
                let n = thousands(idle.agents);
                rows.push(Row {
                    bench: "idle",
                    figure: format!("server RSS per idle WebSocket agent ({n} agents)"),
                    backend: backend.clone(),
                    measured: kib(idle.bytes_per_agent()),
                    target: "≤ 16 KiB".to_owned(),
                    baseline: format!(
                        "RSS with 0 agents {}, with {n} {}",
                        mib(idle.rss_0),
                        mib(idle.rss_n)
                    ),
                    met: Some(idle.bytes_per_agent() <= RSS_PER_AGENT_MAX),
                });
                rows.push(Row {
                    bench: "idle",
                    figure: format!("server CPU, {n} idle WebSocket agents"),
                    backend: backend.clone(),
                    measured: format!("{:.2} % of a core", idle.cpu_n),
                    target: "< 2 % of a core".to_owned(),
                    baseline: format!("0 agents: {:.2} %", idle.cpu_0),
                    met: Some(idle.cpu_n < IDLE_CPU_MAX),
                });
            }
            for p in &f.pushes {
                rows.push(Row {
                    bench: "push",
                    figure: format!(
                        "new revision → APPLIED on the server, 50 / 99 / 100 % of {} WebSocket agents (all_at_once, {} B config)",
                        thousands(p.agents),
                        p.config_bytes
                    ),
                    backend: backend.clone(),
                    measured: push_text(p),
                    target: "99 % ≤ 2 s, 100 % ≤ 3 s".to_owned(),
                    baseline: f
                        .push_one
                        .as_ref()
                        .map(|one| format!("1 agent: {}", secs(one.p100)))
                        .unwrap_or_else(|| "—".to_owned()),
                    met: Some(p.p99 <= PUSH_P99_MAX && p.p100 <= PUSH_P100_MAX),
                });
            }
            if let Some(h) = &f.http {
                rows.push(Row {
                    bench: "http",
                    figure: format!(
                        "server CPU, {} HTTP agents polling every {} s",
                        thousands(h.agents),
                        self.plan.heartbeat_seconds
                    ),
                    backend: backend.clone(),
                    measured: format!("{:.2} % of a core", h.cpu_n),
                    target: "< 5 % of a core".to_owned(),
                    baseline: format!("0 agents: {:.2} %", h.cpu_0),
                    met: Some(h.cpu_n < HTTP_CPU_MAX),
                });
            }
        }
        for (backend, f) in &self.fleets {
            if let Some(tls) = &f.tls_idle {
                let n = thousands(tls.agents);
                rows.push(Row {
                    bench: "tls",
                    figure: format!(
                        "server RSS per idle WebSocket agent over TLS, wss:// ({n} agents)"
                    ),
                    backend: backend.name().to_owned(),
                    measured: kib(tls.bytes_per_agent()),
                    target: "≤ 24 KiB".to_owned(),
                    baseline: format!(
                        "RSS with 0 agents {}, with {n} {}",
                        mib(tls.rss_0),
                        mib(tls.rss_n)
                    ),
                    met: Some(tls.bytes_per_agent() <= TLS_RSS_PER_AGENT_MAX),
                });
            }
        }
        for (backend, c) in &self.collector {
            rows.push(Row {
                bench: "collector",
                figure: format!(
                    "new revision → APPLIED, a real collector under `otaas agent` (filelog → batch → otlphttp, {} B config; median of {})",
                    c.config_bytes, c.pushes
                ),
                backend: backend.name().to_owned(),
                measured: secs(c.collector),
                target: "—".to_owned(),
                baseline: format!("1 simulated agent, same pipeline: {}", secs(c.simulated)),
                met: None,
            });
        }
        for (backend, c) in &self.console {
            let n = thousands(c.agents);
            let api = format!(
                "`GET /api/v1/agents?limit=50`, client side: {}",
                latency_text(c.api)
            );
            for (what, times) in [
                (
                    format!("fleet page `GET /fleet` ({n} agents, first page of 50)"),
                    &c.fleet,
                ),
                (
                    format!("fleet page `GET /fleet?after=<middle agent>` ({n} agents)"),
                    &c.fleet_after,
                ),
                (
                    format!(
                        "group page `GET /groups/ID` (group of {n} agents, {} revisions and their diff)",
                        c.revisions
                    ),
                    &c.group,
                ),
            ] {
                rows.push(Row {
                    bench: "console",
                    figure: format!(
                        "{what}: server time (`Server-Timing`) p50 / p95 of {}",
                        c.requests
                    ),
                    backend: backend.name().to_owned(),
                    measured: page_text(times),
                    target: "≤ 50 ms".to_owned(),
                    baseline: api.clone(),
                    met: Some(times.server.p95 <= CONSOLE_PAGE_MAX),
                });
            }
            rows.push(Row {
                bench: "console",
                figure: format!(
                    "server RSS with the console open: {} live streams (half /fleet/live, half /groups/ID/live) after {} loads of each page, per agent ({n} agents)",
                    c.streams, c.loads
                ),
                backend: backend.name().to_owned(),
                measured: format!(
                    "{}{} B per agent ({} in all)",
                    if c.bytes_per_agent() < 0.0 { "-" } else { "" },
                    thousands(c.bytes_per_agent().abs().round() as usize),
                    kib_signed(c.rss_delta())
                ),
                target: "≈ 0 per agent: ≤ 1 MiB in all, whatever N".to_owned(),
                baseline: format!(
                    "RSS with the console never opened {}, with it open {}",
                    mib(c.rss_0),
                    mib(c.rss_open)
                ),
                met: Some(c.rss_delta() <= CONSOLE_RSS_DELTA_MAX),
            });
            rows.push(Row {
                bench: "console",
                figure: format!(
                    "server CPU with {} live streams open ({n} agents, over {:?})",
                    c.streams, c.window
                ),
                backend: backend.name().to_owned(),
                measured: format!("{:.2} % of a core", c.cpu_open),
                target: "—".to_owned(),
                baseline: format!("no console open: {:.2} %", c.cpu_0),
                met: None,
            });
        }
        for (&(backend, n), ours) in &self.otaas_tf {
            if let Some(null) = self.null_tf.get(&(backend, n)) {
                let counts = ours.requests.map(|(a, p)| [a, p]);
                for (i, (what, o, b, o_cpu, b_cpu)) in [
                    (
                        "apply (create)",
                        ours.apply,
                        null.apply,
                        ours.apply_cpu,
                        null.apply_cpu,
                    ),
                    (
                        "plan (refresh, no changes)",
                        ours.plan,
                        null.plan,
                        ours.plan_cpu,
                        null.plan_cpu,
                    ),
                ]
                .into_iter()
                .enumerate()
                {
                    let ratio = o.as_secs_f64() / b.as_secs_f64().max(1e-9);
                    let reqs = counts.map(|c| c[i]);
                    let throttled = reqs.is_some_and(|r| r.throttled > 0);
                    rows.push(Row {
                        bench: "terraform",
                        figure: format!(
                            "terraform {what}: {n} otaas_pipeline vs {n} null_resource",
                            n = thousands(n)
                        ),
                        backend: backend.name().to_owned(),
                        measured: format!(
                            "{} = {ratio:.2}× null{}; CPU: Terraform + provider {:.2} s \
                             (provider {:.2} s){}",
                            secs(o),
                            reqs.map(|r| format!("; {}", requests_text(&r)))
                                .unwrap_or_default(),
                            o_cpu.terraform,
                            o_cpu.provider,
                            o_cpu
                                .server
                                .map(|c| format!(", server {c:.2} s"))
                                .unwrap_or_default()
                        ),
                        target: "≤ 1.05× null, nothing throttled".to_owned(),
                        baseline: format!(
                            "null_resource {}; CPU: Terraform + provider {:.2} s (provider \
                             {:.2} s)",
                            secs(b),
                            b_cpu.terraform,
                            b_cpu.provider
                        ),
                        met: Some(ratio <= TF_RATIO_MAX && !throttled),
                    });
                }
            }
        }
        if let Some((ours, null)) = self.handshake {
            rows.push(Row {
                bench: "handshake",
                figure: format!(
                    "provider start → handshake line (median of {})",
                    self.plan.handshake_reps
                ),
                backend: "—".to_owned(),
                measured: ms(ours),
                target: "≤ null provider".to_owned(),
                baseline: format!("null provider {}", ms(null)),
                met: Some(ours <= null),
            });
        }
        rows
    }

    /// The Markdown table.
    pub(crate) fn table(&self) -> String {
        let mut out = String::from(
            "| benchmark | figure | backend | measured | target | baseline (same run) | verdict |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for r in self.rows() {
            let verdict = match (self.plan.quick, r.met) {
                (_, None) => "—".to_owned(),
                (true, _) => "— (quick run)".to_owned(),
                (false, Some(true)) => "met".to_owned(),
                (false, Some(false)) => "**missed**".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.bench, r.figure, r.backend, r.measured, r.target, r.baseline, verdict
            );
        }
        out
    }

    /// The results file: when, where, how, and the table.
    pub(crate) fn markdown(&self) -> String {
        let m = &self.machine;
        let p = &self.plan;
        let mut out = String::from("# otaas bench results\n\n");
        let _ = writeln!(
            out,
            "Written by `otaas bench{}` (otaas {}, {} build), {} → {} UTC.\n",
            if p.quick { " --quick" } else { "" },
            env!("CARGO_PKG_VERSION"),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            self.started.format("%Y-%m-%d %H:%M:%S"),
            self.finished.unwrap_or_else(Utc::now).format("%H:%M:%S")
        );
        out.push_str("## Machine\n\n");
        let _ = writeln!(out, "- CPU: {} ({} cores)", m.cpu_model, m.cores);
        let _ = writeln!(out, "- memory: {}", m.memory);
        let _ = writeln!(out, "- kernel: Linux {}", m.kernel);
        let _ = writeln!(
            out,
            "- load average (1/5/15 min): {} at the start, {} at the end",
            m.load_start, m.load_end
        );
        let _ = writeln!(
            out,
            "- open files per process: {} (so a fleet-sim process holds at most {} agents)",
            m.nofile
                .map(|n| n.to_string())
                .unwrap_or_else(|| "unknown".to_owned()),
            p.agents_per_process
        );
        out.push_str("\n## Results\n\n");
        out.push_str(&self.table());
        for note in &self.notes {
            let _ = writeln!(out, "\nNote: {note}");
        }
        out.push_str("\n## Method\n\n");
        let _ = writeln!(
            out,
            "- Everything on loopback, started and stopped by the command: one `otaas serve` per \
             figure group and backend (SQLite file, or a fresh PostgreSQL database), \
             `otaas fleet-sim` processes (heartbeat {hb} s, no own-metrics export; strict, not \
             `--lenient`: each distinct config is checked once per process as a collector \
             would), the \
             Terraform engine with the release provider and the null provider in a filesystem \
             mirror. The servers run with the defaults a user gets (API rate limit 200 requests \
             per second per token with a burst of 1,000, OpAMP admission 500 new agents per \
             second after a burst of 2,000, agents authenticated by an enrollment token), but \
             one: the OpAMP per-address cap (1,024 \
             connections per source address) is off, because every simulated agent comes from \
             127.0.0.1. The fleets connect at {rate} new agents per second in all, under the \
             admission rate.",
            rate = crate::procs::FLEET_CONNECT_RATE,
            hb = p.heartbeat_seconds
        );
        let _ = writeln!(
            out,
            "- idle: RSS is `VmRSS` of the server (/proc/PID/status) after {settle:?} of rest \
             and a {w:?} CPU window, with no agent and with all agents connected and on their \
             config; per agent = difference / agents. CPU is utime+stime (/proc/PID/stat) over \
             the window (one heartbeat period), in % of one core.",
            settle = p.settle,
            w = p.window
        );
        let _ = writeln!(
            out,
            "- push: a pipeline update makes a new revision of an all_at_once group; t0 is the \
             revision's `created_at` (server clock); the group status \
             (`GET /api/v1/agent-groups/ID/status`, the server's in-memory record of each \
             agent's reported APPLIED) is polled every 25 ms (40 requests per second, under the \
             default rate limit). Baseline: the same with one agent."
        );
        let _ = writeln!(
            out,
            "- http: the agents poll every {} s (the heartbeat the server offers); CPU over one \
             polling period after all applied their config.",
            p.heartbeat_seconds
        );
        let _ = writeln!(
            out,
            "- terraform: `init`, then timed `apply -auto-approve` (create) and \
             `plan -detailed-exitcode` (refresh, must show no changes), default parallelism, \
             {} resources each; the null provider's run comes right before ours on each \
             backend and size, and ours runs on a fresh server; {reps} such pairs per size, each \
             figure the median of its runs (request counts: the run with the most throttled). The requests are the server's \
             `otaas_http_requests_total` (all API routes) counted around each command; \
             throttled = answered 429. CPU: user + system seconds of the Terraform command \
             with the provider processes it started (the bench's children's `cutime` + \
             `cstime`), of the provider processes alone (read from `/proc` every 50 ms while \
             the command runs, each process at its last reading: a lower bound) and of \
             `otaas serve` (`/proc/PID/stat`) during the command; each the median of its runs.",
            p.resources
                .iter()
                .map(|n| thousands(*n))
                .collect::<Vec<_>>()
                .join(" and "),
            reps = p.terraform_reps
        );
        let _ = writeln!(
            out,
            "- tls: as idle (RSS only), with the server's OpAMP listener on TLS (a self-signed \
             certificate the agents trust through `--ca-cert`), the agents on `wss://`."
        );
        let _ = writeln!(
            out,
            "- collector: the Collector binary of scripts/setup.sh under `otaas agent` (WebSocket), \
             and one simulated agent in a second group with the same pipeline on the same \
             server; revisions pushed alternately to each, {} times; t0 and APPLIED as in push \
             (APPLIED: the collector restarted on the new config and said it is ready).",
            p.collector_reps
        );
        let _ = writeln!(
            out,
            "- console: one server with {n} WebSocket agents (labels `bench=console`, \
             `region`, `tier`, `host`) in one all_at_once group over all of them (OTLP → batch → \
             debug exporter), two revisions, rollout complete. Memory first: `VmRSS` (the \
             median of readings every 100 ms) and CPU over {open:?} with the fleet idle and the \
             console never opened; then a sign-in with the admin token (`POST /sign-in`, the \
             session cookie), {streams} event streams opened and read (`/fleet/live` and \
             `/groups/ID/live`, {half} each; each sends its region at once, then when it \
             changes, looking once a second), {loads} loads each of `GET /fleet` and \
             `GET /groups/ID`, and `VmRSS` and CPU over {open:?} with the streams still open. \
             Per agent = the difference / agents: the console keeps nothing per agent, so this \
             is a constant (the streams' connections and buffers, what the allocator keeps of \
             the pages' and streams' passing allocations, and its noise) spread over the fleet; \
             one fleet size cannot tell the two apart, so the target is on the total. Then, \
             the streams closed, after {w} untimed rounds, {r} rounds of `GET /fleet`, \
             `GET /fleet?after=<the middle agent's id>`, `GET /groups/ID` and \
             `GET /api/v1/agents?limit=50` (bearer token), one after the other on one \
             keep-alive client. Server time: the `app;dur=` of the page's `Server-Timing` \
             (its handler and the console's middleware); client side: request sent → body \
             read. The API sends no `Server-Timing`, so its baseline is its client-side time, \
             to compare with the pages' client-side times; p50 / p95 are nearest-rank. SQLite \
             only.",
            n = thousands(p.agents),
            w = crate::console::WARM_UP,
            r = p.console_reps,
            open = p.console_open,
            streams = 2 * crate::console::STREAMS_EACH,
            half = crate::console::STREAMS_EACH,
            loads = p.console_loads
        );
        let _ = writeln!(
            out,
            "- handshake: the provider binary started as Terraform starts it (magic cookie, \
             protocol versions 5,6, AutoMTLS client certificate) until its handshake line on \
             stdout; median of {} alternating starts after one warm-up each.",
            p.handshake_reps
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
