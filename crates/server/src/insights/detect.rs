//! Throughput series and anomaly rules, without I/O.
//!
//! Each own-metrics report is a [`Sample`] of cumulative counters. Rates are the difference
//! between two reports over their time difference (a counter that went down means the
//! collector restarted: the new value is the count since then). The baseline of the accepted
//! rate is an exponentially weighted mean of the *normal* rates only — a sample judged
//! anomalous does not move it — so a drop stays flagged until throughput recovers instead of
//! becoming the new normal.
//!
//! Rules (after [`WARMUP`] normal rates):
//! - throughput drop: accepted rate below [`DROP_RATIO`] x baseline;
//! - throughput spike: accepted rate above [`SPIKE_RATIO`] x baseline;
//! - refused spike: more than [`REFUSED_SHARE`] of the received items refused;
//! - flapping connection: at least [`FLAP_CONNECTS`] connections within [`FLAP_WINDOW`]
//!   (judged from the registry's connect times, see [`flapping`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use otaas_api::AgentGroupId;
use otaas_api::insights::{AgentInsight, AnomalyKind, ComponentThroughput, PipelineThroughput};

/// Normal rates needed before the baseline is trusted.
pub const WARMUP: usize = 3;
pub const DROP_RATIO: f64 = 0.5;
pub const SPIKE_RATIO: f64 = 3.0;
pub const REFUSED_SHARE: f64 = 0.1;
/// Weight of a new normal rate in the baseline.
const ALPHA: f64 = 0.3;
/// Connections within [`FLAP_WINDOW`] from which an agent is flapping. A healthy agent
/// connects once and stays; a restart or a network blip adds one or two.
pub const FLAP_CONNECTS: usize = 4;
pub use crate::fleet::FLAP_WINDOW;

/// The flapping-connection finding for an agent that connected at `connects` (any order):
/// the count within the window ending `now`, if it reaches [`FLAP_CONNECTS`].
pub fn flapping(connects: &[DateTime<Utc>], now: DateTime<Utc>) -> Option<(AnomalyKind, String)> {
    let recent = connects.iter().filter(|t| now - **t <= FLAP_WINDOW).count();
    (recent >= FLAP_CONNECTS).then(|| {
        (
            AnomalyKind::FlappingConnection,
            format!(
                "connected {recent} times in the last {} minutes",
                FLAP_WINDOW.num_minutes()
            ),
        )
    })
}

/// Cumulative counters of one component.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub accepted: f64,
    pub refused: f64,
    pub sent: f64,
}

/// One counter series of an agent: a component, in a pipeline when the data point names one.
/// Rates are taken per series, then summed, so a series that appears (a new pipeline) or
/// disappears (a removed one) does not look like a counter reset of the whole component.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    /// `receiver/<id>` or `exporter/<id>`.
    pub component: String,
    /// Collector pipeline id (`traces/<name>`).
    pub pipeline: Option<String>,
}

impl Series {
    pub fn new(component: impl Into<String>, pipeline: Option<&str>) -> Self {
        Self {
            component: component.into(),
            pipeline: pipeline.map(str::to_owned),
        }
    }
}

/// One own-metrics report of an agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub series: BTreeMap<Series, Counters>,
    pub cpu_seconds: Option<f64>,
    pub memory_rss: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Rates {
    accepted: f64,
    refused: f64,
    sent: f64,
}

/// One agent's history.
#[derive(Debug, Default)]
pub struct AgentSeries {
    last: Option<Sample>,
    /// Per component rates over the last interval.
    rates: BTreeMap<String, Rates>,
    /// Per pipeline rates over the last interval.
    pipeline_rates: BTreeMap<String, Rates>,
    total: Rates,
    baseline: Option<f64>,
    normal_samples: usize,
    anomalies: Vec<(AnomalyKind, String)>,
    reports: u64,
    /// The last [`RECENT_POINTS`] total rates, for the console's charts. Single precision and
    /// whole seconds: about 16 bytes a point, 500 bytes an agent.
    recent: std::collections::VecDeque<RecentPoint>,
}

/// How many rate points an agent keeps for charts.
pub const RECENT_POINTS: usize = 30;

/// One point of an agent's recent rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecentPoint {
    /// Unix seconds.
    pub at: i64,
    pub accepted: f32,
    pub sent: f32,
}

fn delta(now: f64, before: f64) -> f64 {
    // A counter that went down was reset (the collector restarted).
    if now >= before { now - before } else { now }
}

impl Rates {
    fn add(&mut self, r: &Rates) {
        self.accepted += r.accepted;
        self.refused += r.refused;
        self.sent += r.sent;
    }
}
impl AgentSeries {
    pub fn push(&mut self, sample: Sample) {
        self.reports += 1;
        let Some(prev) = self.last.replace(sample) else {
            return;
        };
        let cur = self.last.as_ref().expect("just set");
        // Nanoseconds: agents stamp their counters precisely, and milliseconds would skew a
        // one-second rate by up to 0.1 %.
        let secs = (cur.at - prev.at).num_nanoseconds().unwrap_or(i64::MAX) as f64 / 1e9;
        if secs <= 0.0 {
            // Out of order or duplicate: keep the newer counters, no rate.
            return;
        }
        self.rates.clear();
        self.pipeline_rates.clear();
        self.total = Rates::default();
        for (series, c) in &cur.series {
            let p = prev.series.get(series).cloned().unwrap_or_default();
            let r = Rates {
                accepted: delta(c.accepted, p.accepted) / secs,
                refused: delta(c.refused, p.refused) / secs,
                sent: delta(c.sent, p.sent) / secs,
            };
            self.total.add(&r);
            self.rates
                .entry(series.component.clone())
                .or_default()
                .add(&r);
            if let Some(pipeline) = &series.pipeline {
                self.pipeline_rates
                    .entry(pipeline.clone())
                    .or_default()
                    .add(&r);
            }
        }
        if self.recent.len() == RECENT_POINTS {
            self.recent.pop_front();
        }
        self.recent.push_back(RecentPoint {
            at: cur.at.timestamp(),
            accepted: self.total.accepted as f32,
            sent: self.total.sent as f32,
        });
        self.judge();
    }

    /// The agent's recent total rates, oldest first.
    pub fn recent(&self) -> Vec<RecentPoint> {
        self.recent.iter().copied().collect()
    }

    fn judge(&mut self) {
        self.anomalies.clear();
        let rate = self.total.accepted;
        let received = self.total.accepted + self.total.refused;
        if received > 0.0 && self.total.refused / received > REFUSED_SHARE {
            self.anomalies.push((
                AnomalyKind::RefusedSpike,
                format!(
                    "{:.1}/s refused of {:.1}/s received ({:.0} %)",
                    self.total.refused,
                    received,
                    100.0 * self.total.refused / received
                ),
            ));
        }
        let mut normal = true;
        if let Some(base) = self.baseline
            && self.normal_samples >= WARMUP
        {
            if rate < base * DROP_RATIO {
                normal = false;
                self.anomalies.push((
                    AnomalyKind::ThroughputDrop,
                    format!("accepted {rate:.1}/s, baseline {base:.1}/s"),
                ));
            } else if base > 0.0 && rate > base * SPIKE_RATIO {
                normal = false;
                self.anomalies.push((
                    AnomalyKind::ThroughputSpike,
                    format!("accepted {rate:.1}/s, baseline {base:.1}/s"),
                ));
            }
        }
        if normal {
            self.baseline = Some(match self.baseline {
                Some(b) => b + ALPHA * (rate - b),
                None => rate,
            });
            self.normal_samples += 1;
        }
    }

    /// The anomalies of the latest interval.
    pub fn anomalies(&self) -> Vec<(AnomalyKind, String)> {
        self.anomalies.clone()
    }

    /// What the API shows; `None` before the first report.
    pub fn view(&self, agent_id: &str, group_id: Option<AgentGroupId>) -> Option<AgentInsight> {
        let last = self.last.as_ref()?;
        Some(AgentInsight {
            agent_id: agent_id.to_owned(),
            group_id,
            accepted_per_second: self.total.accepted,
            refused_per_second: self.total.refused,
            sent_per_second: self.total.sent,
            baseline_accepted_per_second: self.baseline,
            cpu_seconds_total: last.cpu_seconds,
            memory_rss_bytes: last.memory_rss,
            components: components(&last.series)
                .into_iter()
                .map(|(name, c)| {
                    let r = self.rates.get(&name).cloned().unwrap_or_default();
                    ComponentThroughput {
                        component: name,
                        accepted_total: c.accepted,
                        refused_total: c.refused,
                        sent_total: c.sent,
                        accepted_per_second: r.accepted,
                        refused_per_second: r.refused,
                        sent_per_second: r.sent,
                    }
                })
                .collect(),
            pipelines: self
                .pipeline_rates
                .iter()
                .map(|(name, r)| PipelineThroughput {
                    pipeline: name.clone(),
                    agents: 1,
                    accepted_per_second: r.accepted,
                    refused_per_second: r.refused,
                    sent_per_second: r.sent,
                })
                .collect(),
            last_report_at: last.at,
            reports: self.reports,
        })
    }
}

/// Counters summed per component over its series.
fn components(series: &BTreeMap<Series, Counters>) -> BTreeMap<String, Counters> {
    let mut out: BTreeMap<String, Counters> = BTreeMap::new();
    for (s, c) in series {
        let sum = out.entry(s.component.clone()).or_default();
        sum.accepted += c.accepted;
        sum.refused += c.refused;
        sum.sent += c.sent;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: i64, accepted: f64, refused: f64) -> Sample {
        Sample {
            at: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
            series: BTreeMap::from([(
                Series::new("receiver/otlp", None),
                Counters {
                    accepted,
                    refused,
                    sent: 0.0,
                },
            )]),
            cpu_seconds: None,
            memory_rss: None,
        }
    }

    fn kinds(s: &AgentSeries) -> Vec<AnomalyKind> {
        s.anomalies().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn a_drop_is_flagged_until_throughput_recovers() {
        let mut s = AgentSeries::default();
        // Given 100/s for a while
        for t in 0..6 {
            s.push(sample(t, 100.0 * t as f64, 0.0));
        }
        let mut total = 500.0;
        assert_eq!(kinds(&s), []);
        assert_eq!(s.baseline, Some(100.0));
        // When it falls to 10/s
        for t in 6..9 {
            total += 10.0;
            s.push(sample(t, total, 0.0));
            // Then the drop is flagged, and stays flagged (the baseline does not follow)
            assert_eq!(kinds(&s), [AnomalyKind::ThroughputDrop]);
        }
        assert_eq!(s.baseline, Some(100.0));
        // When it recovers, the flag clears
        total += 100.0;
        s.push(sample(9, total, 0.0));
        assert_eq!(kinds(&s), []);
    }

    #[test]
    fn spikes_refusals_and_counter_resets() {
        let mut s = AgentSeries::default();
        for t in 0..5 {
            s.push(sample(t, 10.0 * t as f64, 0.0));
        }
        s.push(sample(5, 40.0 + 100.0, 0.0));
        assert_eq!(kinds(&s), [AnomalyKind::ThroughputSpike]);
        // A restarted collector starts its counters again: not a negative rate.
        s.push(sample(6, 10.0, 5.0));
        assert_eq!(kinds(&s), [AnomalyKind::RefusedSpike]);
        let view = s.view("a", None).unwrap();
        assert_eq!(view.accepted_per_second, 10.0);
        assert_eq!(view.refused_per_second, 5.0);
    }

    #[test]
    fn pipelines_get_their_own_rates_and_new_series_are_not_resets() {
        let mut s = AgentSeries::default();
        let point = |t: i64, per_second: f64| Counters {
            accepted: per_second * t as f64,
            refused: 0.0,
            sent: per_second * t as f64 / 2.0,
        };
        for t in 1..3 {
            let mut sample = sample(t, 0.0, 0.0);
            sample.series.clear();
            for (name, per_second) in [("logs/a", 10.0), ("traces/b", 20.0)] {
                sample.series.insert(
                    Series::new("receiver/otlp", Some(name)),
                    point(t, per_second),
                );
            }
            // A pipeline that appears later starts its own counter at 0.
            if t == 2 {
                sample.series.insert(
                    Series::new("receiver/otlp", Some("metrics/c")),
                    point(1, 5.0),
                );
            }
            s.push(sample);
        }
        let view = s.view("a", None).unwrap();
        let got: Vec<(&str, f64, f64)> = view
            .pipelines
            .iter()
            .map(|p| {
                (
                    p.pipeline.as_str(),
                    p.accepted_per_second,
                    p.sent_per_second,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("logs/a", 10.0, 5.0),
                ("metrics/c", 5.0, 2.5),
                ("traces/b", 20.0, 10.0)
            ]
        );
        // The component sums its series: totals and rates.
        assert_eq!(view.accepted_per_second, 35.0);
        assert_eq!(view.components.len(), 1);
        assert_eq!(view.components[0].accepted_total, 20.0 + 40.0 + 5.0);
        assert_eq!(view.components[0].accepted_per_second, 35.0);
    }

    #[test]
    fn four_connects_within_five_minutes_are_flapping() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |secs_ago: i64| now - chrono::TimeDelta::seconds(secs_ago);
        // Three recent connects and an old one: not yet.
        assert_eq!(flapping(&[at(400), at(200), at(100), at(1)], now), None);
        // A fourth within the window: flagged, with the count.
        let (kind, message) = flapping(&[at(400), at(299), at(200), at(100), at(1)], now).unwrap();
        assert_eq!(kind, AnomalyKind::FlappingConnection);
        assert_eq!(message, "connected 4 times in the last 5 minutes");
    }
}
