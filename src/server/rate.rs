//! Rate limits per client IP and per user (the credentials a request presents), off by
//! default: a generic cell rate algorithm per key, `rate` requests a second with bursts of
//! as many, in a bounded table.
//!
//! Why not `governor` (whose keyed limiter is the same algorithm): its key store grows with
//! every new key until a periodic `retain_recent` sweep, so a flood of fresh addresses or
//! credentials is bounded only by how often the sweep runs; this table has a hard bound and,
//! when every key in it is busy, refuses a new key rather than admitting it unremembered. It
//! is also the piece a shared (Redis) limiter replaces for a deployment of many instances.
//!
//! With a cluster ([`crate::cluster`]) the budgets are the deployment's, kept in Redis; while
//! Redis is down, this instance's own table counts instead (each instance then admits the
//! whole rate: the documented price of an outage).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::cluster::rate::{self as shared, Budget};

/// Most keys remembered per limiter; past it, keys idle long enough to be back at a full
/// burst are forgotten, and while every key is busy a new one is refused (never admitted
/// unremembered, which would give it no limit at all).
const MAX_KEYS: usize = 100_000;

/// One limiter: `rate` requests a second per key.
#[derive(Debug)]
struct Cells {
    rate: u32,
    interval: Duration,
    burst: Duration,
    max_keys: usize,
    next: Mutex<Table>,
}

/// The limiter's state: each key's next free time, and the latest time seen (concurrent
/// requests read the clock before taking the lock, so their times arrive out of order).
#[derive(Debug, Default)]
struct Table {
    keys: HashMap<u64, Instant>,
    latest: Option<Instant>,
}

impl Cells {
    fn new(rate: u32) -> Cells {
        let interval = Duration::from_secs(1) / rate.max(1);
        Cells {
            rate: rate.max(1),
            interval,
            burst: interval * rate.max(1).saturating_sub(1),
            max_keys: MAX_KEYS,
            next: Mutex::default(),
        }
    }

    /// Admits a request of `key` now, or says how long until one would be.
    fn admit(&self, key: u64, now: Instant) -> Result<(), Duration> {
        let mut table = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let now = table.latest.map_or(now, |latest| latest.max(now));
        table.latest = Some(now);
        let next = &mut table.keys;
        if next.len() >= self.max_keys && !next.contains_key(&key) {
            next.retain(|_, at| *at > now);
            if next.len() >= self.max_keys {
                return Err(self.interval);
            }
        }
        let at = next.get(&key).copied().unwrap_or(now).max(now);
        if at > now + self.burst {
            return Err(at - self.burst - now);
        }
        next.insert(key, at + self.interval);
        Ok(())
    }
}

/// The limits: this instance's own, or the deployment's while a cluster is up.
#[derive(Debug)]
pub struct RateLimits {
    per_ip: Option<Cells>,
    per_user: Option<Cells>,
    hasher: RandomState,
    cluster: Option<Cluster>,
}

impl RateLimits {
    /// Limits of `per_ip` and `per_user` requests a second (0: none); `None` when both are off.
    pub fn new(per_ip: u32, per_user: u32) -> Option<RateLimits> {
        (per_ip > 0 || per_user > 0).then(|| RateLimits {
            per_ip: (per_ip > 0).then(|| Cells::new(per_ip)),
            per_user: (per_user > 0).then(|| Cells::new(per_user)),
            hasher: RandomState::new(),
            cluster: None,
        })
    }

    /// The same limits, shared through `cluster` while it is up.
    pub fn shared(mut self, cluster: Option<Cluster>) -> RateLimits {
        self.cluster = cluster;
        self
    }

    /// Admits a request from `ip` presenting `credentials` (the two auth headers, hashed:
    /// tokens are not kept), or says in how many seconds to retry.
    pub async fn admit(
        &self,
        ip: Option<IpAddr>,
        credentials: Option<(&str, Option<i64>)>,
    ) -> Result<(), u64> {
        if let Some(cluster) = self.cluster.as_ref().filter(|c| c.up()) {
            let mut budgets = Vec::with_capacity(2);
            if let (Some(cells), Some(ip)) = (&self.per_ip, ip) {
                budgets.push(Budget::ip(cluster, ip, cells.rate));
            }
            if let (Some(cells), Some((token, user))) = (&self.per_user, credentials) {
                budgets.push(Budget::user(cluster, token, user, cells.rate));
            }
            // Redis did not answer: it is marked down, and this request counts locally.
            if let Ok(answer) = shared::admit(cluster, &budgets).await {
                return answer;
            }
        }
        self.admit_local(ip, credentials)
    }

    fn admit_local(
        &self,
        ip: Option<IpAddr>,
        credentials: Option<(&str, Option<i64>)>,
    ) -> Result<(), u64> {
        let now = Instant::now();
        let wait = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if let (Some(cells), Some(ip)) = (&self.per_ip, ip) {
            cells.admit(self.hasher.hash_one(ip), now).map_err(wait)?;
        }
        if let (Some(cells), Some(c)) = (&self.per_user, credentials) {
            cells.admit(self.hasher.hash_one(c), now).map_err(wait)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_rate_then_one_per_interval() {
        let cells = Cells::new(5);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(cells.admit(1, t0).is_ok());
        }
        assert_eq!(
            cells.admit(1, t0),
            Err(Duration::from_millis(200)),
            "over the burst"
        );
        assert!(cells.admit(2, t0).is_ok(), "another key has its own budget");
        assert!(cells.admit(1, t0 + Duration::from_millis(200)).is_ok());
        assert!(cells.admit(1, t0 + Duration::from_millis(200)).is_err());
    }

    /// Found by the transport-parity test: three requests of a budget of three, sent at
    /// once, read the clock before taking the lock; the earliest reading, arriving last,
    /// was refused.
    #[test]
    fn times_that_arrive_out_of_order_do_not_shrink_the_burst() {
        let cells = Cells::new(3);
        let t0 = Instant::now();
        assert!(cells.admit(1, t0 + Duration::from_millis(2)).is_ok());
        assert!(cells.admit(1, t0 + Duration::from_millis(1)).is_ok());
        assert!(cells.admit(1, t0).is_ok(), "the third of a burst of three");
        assert!(cells.admit(1, t0).is_err());
    }

    #[test]
    fn a_full_table_of_busy_keys_refuses_new_keys_instead_of_forgetting_them() {
        let mut cells = Cells::new(1);
        cells.max_keys = 3;
        let t0 = Instant::now();
        for key in 0..3 {
            assert!(cells.admit(key, t0).is_ok());
        }
        assert!(
            cells.admit(99, t0).is_err(),
            "no room: refused, not unlimited"
        );
        assert!(cells.admit(99, t0).is_err());
        // Once the others are idle again, the new key has a budget (and a limit).
        let later = t0 + Duration::from_secs(2);
        assert!(cells.admit(99, later).is_ok());
        assert!(cells.admit(99, later).is_err());
    }
}
