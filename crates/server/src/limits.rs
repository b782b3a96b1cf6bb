//! Request and connection limits: a token bucket per API token ([`RateLimiter`], 429 +
//! `Retry-After` when empty), a count of open connections per source address ([`ConnLimiter`],
//! used by the accept loop in [`crate::listener`] on both listeners), and the admission of new
//! OpAMP connections ([`Admission`]), which spreads a reconnect storm over time, and failed
//! authentications per source address ([`AuthFailures`], 429 + `Retry-After` once over budget).
//!
//! Both are in-memory and per process: with several replicas each enforces its own share, which
//! is what protects that process.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Token buckets keyed by token id: `rate` requests per second sustained, `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    /// `None`: unlimited (`--api-rate-limit 0`).
    params: Option<(f64, f64)>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Above this many keys, full (idle) buckets are dropped so the map stays bounded.
const PRUNE_ABOVE: usize = 10_000;

impl RateLimiter {
    /// `rate` per second (0 disables limiting) with a burst of `burst` (at least 1).
    pub fn new(rate: f64, burst: u32) -> Self {
        let params = (rate > 0.0).then(|| (rate, f64::from(burst.max(1))));
        Self {
            params,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket; `Err(wait)` says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Some((rate, burst)) = self.params else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
            });
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

/// Failed authentications per source address: a token bucket of `per_minute` failures
/// (refilling at that rate, holding at most that many). While an address's bucket is empty
/// its requests are refused before their token is even looked at, so guessing tokens from one
/// address goes no faster than the budget; a valid token from that address waits too (the
/// server cannot tell who is guessing).
#[derive(Debug)]
pub struct AuthFailures {
    /// Failures per second and bucket size; `None`: unlimited (`--auth-failure-limit 0`).
    params: Option<(f64, f64)>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AuthFailures {
    /// `per_minute` failures allowed per address (0 disables the limit).
    pub fn new(per_minute: u32) -> Self {
        let params =
            (per_minute > 0).then(|| (f64::from(per_minute) / 60.0, f64::from(per_minute)));
        Self {
            params,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `ip` has no failures left: how long until it has one again.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, Instant::now())
    }

    /// Counts one failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        self.failed_at(ip, Instant::now());
    }

    fn refill(b: &mut Bucket, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some((rate, burst)) = self.params else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = buckets.get_mut(&ip) else {
            return Ok(());
        };
        Self::refill(b, now, rate, burst);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) {
        let Some((rate, burst)) = self.params else {
            return;
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            // Addresses whose bucket has refilled are forgotten: the map stays bounded.
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
            });
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        Self::refill(b, now, rate, burst);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }
}

/// Open connections per source address, capped at `max` (0: unlimited).
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Held for the life of one admitted connection; releases its slot on drop.
#[derive(Debug)]
pub struct ConnSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnLimiter {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// The configured cap (0: unlimited).
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for a new connection from `ip`, or `None` when it already has `max` open.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            ip,
            open: self.open.clone(),
        })
    }

    /// Connections open from `ip` now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Admission of new OpAMP connections (WebSocket upgrades, and HTTP polls from agents not
/// connected yet): one token bucket for the whole listener, `rate` per second sustained and
/// `burst` at once.
///
/// A refused agent is told when to come back: its place in the queue of agents already told to
/// come back (`backlog / rate` seconds) plus up to [`Admission::JITTER`] of random jitter. The
/// queue drains at `rate`, as the bucket refills, so a storm of N agents after a restart is
/// admitted over about `(N - burst) / rate` seconds instead of all retrying at the same
/// instant (and being refused again together).
#[derive(Debug)]
pub struct Admission {
    /// `None`: unlimited (`--opamp-admit-rate 0`).
    params: Option<(f64, f64)>,
    state: Mutex<AdmissionState>,
}

#[derive(Debug)]
struct AdmissionState {
    tokens: f64,
    /// Agents told to come back that (by the queue's drain rate) have not come back yet.
    backlog: f64,
    last: Instant,
}

impl Admission {
    /// Random extra delay on top of the queue position, so agents given neighbouring places do
    /// not arrive in lockstep (and `Retry-After`'s whole seconds still spread).
    pub const JITTER: Duration = Duration::from_secs(2);
    /// The longest delay handed out, however long the queue.
    pub const MAX_DELAY: Duration = Duration::from_secs(300);

    /// `rate` admissions per second (0 disables the limit) with a bucket of `burst` (at least 1).
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            params: (rate > 0.0).then_some((rate, burst)),
            state: Mutex::new(AdmissionState {
                tokens: burst,
                backlog: 0.0,
                last: Instant::now(),
            }),
        }
    }

    /// Admits one new connection, or says how long the agent should wait before retrying.
    pub fn admit(&self) -> Result<(), Duration> {
        use rand::Rng;
        self.admit_at(Instant::now(), rand::rng().random_range(0.0..1.0))
    }

    /// [`Admission::admit`] at `now` with `jitter` in `[0, 1)` (the share of [`Self::JITTER`]).
    fn admit_at(&self, now: Instant, jitter: f64) -> Result<(), Duration> {
        let Some((rate, burst)) = self.params else {
            return Ok(());
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(st.last).as_secs_f64();
        st.last = now;
        st.tokens = (st.tokens + elapsed * rate).min(burst);
        st.backlog = (st.backlog - elapsed * rate).max(0.0);
        if st.tokens >= 1.0 {
            st.tokens -= 1.0;
            return Ok(());
        }
        st.backlog += 1.0;
        let wait = st.backlog / rate + Self::JITTER.as_secs_f64() * jitter;
        Err(Duration::from_secs_f64(wait).min(Self::MAX_DELAY))
    }
}

/// A retry delay as a `Retry-After` header value: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let l = RateLimiter::new(2.0, 3);
        let t0 = Instant::now();
        assert_eq!(l.check_at("a", t0), Ok(()));
        assert_eq!(l.check_at("a", t0), Ok(()));
        assert_eq!(l.check_at("a", t0), Ok(()));
        // Empty: one token comes back after 1/rate = 0.5 s.
        assert_eq!(l.check_at("a", t0), Err(Duration::from_millis(500)));
        // Other keys have their own bucket.
        assert_eq!(l.check_at("b", t0), Ok(()));
        assert_eq!(l.check_at("a", t0 + Duration::from_millis(500)), Ok(()));
        assert!(l.check_at("a", t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let l = RateLimiter::new(0.0, 1);
        for _ in 0..1000 {
            assert_eq!(l.check("a"), Ok(()));
        }
    }

    #[test]
    fn connection_slots_are_counted_and_released() {
        let l = ConnLimiter::new(2);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let a = l.admit(ip).unwrap();
        let _b = l.admit(ip).unwrap();
        assert!(l.admit(ip).is_none());
        assert_eq!(l.open_from(ip), 2);
        assert!(l.admit([10, 0, 0, 1].into()).is_some());
        drop(a);
        assert_eq!(l.open_from(ip), 1);
        assert!(l.admit(ip).is_some());
    }

    /// A delay in whole milliseconds (the bucket arithmetic is floating point).
    fn ms(wait: Result<(), Duration>) -> Result<(), u64> {
        wait.map_err(|d| (d.as_secs_f64() * 1000.0).round() as u64)
    }

    #[test]
    fn admission_spreads_refused_agents_over_the_queue() {
        let a = Admission::new(10.0, 2);
        let t0 = Instant::now();
        assert_eq!(a.admit_at(t0, 0.0), Ok(()));
        assert_eq!(a.admit_at(t0, 0.0), Ok(()));
        // The bucket is empty: the k-th refused agent waits k / rate, plus its jitter.
        let waits: Vec<_> = (0..5).map(|_| ms(a.admit_at(t0, 0.0))).collect();
        assert_eq!(waits, [Err(100), Err(200), Err(300), Err(400), Err(500)]);
        let half_jitter = Admission::JITTER.as_millis() as u64 / 2;
        assert_eq!(ms(a.admit_at(t0, 0.5)), Err(600 + half_jitter));
        // 0.2 s later two tokens came back (the bucket holds two), and the queue moved on by
        // two places: the next refused agent is fifth in line.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(a.admit_at(t1, 0.0), Ok(()));
        assert_eq!(a.admit_at(t1, 0.0), Ok(()));
        assert_eq!(ms(a.admit_at(t1, 0.0)), Err(500));
    }

    #[test]
    fn admission_delay_is_capped_and_zero_rate_is_unlimited() {
        let a = Admission::new(0.001, 1);
        let t0 = Instant::now();
        assert_eq!(a.admit_at(t0, 0.0), Ok(()));
        assert_eq!(a.admit_at(t0, 0.9), Err(Admission::MAX_DELAY));
        let open = Admission::new(0.0, 1);
        for _ in 0..1000 {
            assert_eq!(open.admit(), Ok(()));
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn auth_failures_are_budgeted_per_address() {
        let f = AuthFailures::new(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(f.check_at(a, t0), Ok(()));
            f.failed_at(a, t0);
        }
        // Three per minute: the next one is 20 s away; another address is not affected.
        assert_eq!(f.check_at(a, t0), Err(Duration::from_secs(20)));
        assert_eq!(f.check_at(b, t0), Ok(()));
        assert_eq!(f.check_at(a, t0 + Duration::from_secs(20)), Ok(()));
        let off = AuthFailures::new(0);
        for _ in 0..100 {
            off.failed_at(a, t0);
        }
        assert_eq!(off.check_at(a, t0), Ok(()));
    }
}
