//! Request and connection limits of the REST API: a token bucket per API token
//! ([`RateLimiter`], 429 + `Retry-After` when empty) and a count of open connections per source
//! address ([`ConnLimiter`], used by the accept loop in [`crate::listener`]).
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
}
