//! Throttling login attempts with the shared GCRA: every attempt takes a token, atomically,
//! from two buckets — the voter's from the client's network, and the client network's — and a
//! successful login gives them back. Without tokens the answer is 429 with `Retry-After`,
//! whatever the code.
//!
//! The voter's bucket is keyed by voter *and* network, so someone guessing a voter's code from
//! elsewhere never throttles that voter at home, and every bucket refills on its own: nobody
//! is locked out for good. Networks are IPv4 addresses and IPv6 /64s (one household or one
//! phone gets a /64).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use surge_shared::rate::{Decision, GcraState, LimitKey, Quota, client_network};

/// Attempts a voter may make from one network: 5 at once, then one a minute.
pub const VOTER_QUOTA: Quota = Quota {
    rate: 1,
    period: Duration::from_secs(60),
    burst: 5,
    key: LimitKey::Voter,
};

/// Attempts one network may make: 100 at once (a polling station behind one address), then
/// two a second.
pub const NETWORK_QUOTA: Quota = Quota {
    rate: 2,
    period: Duration::from_secs(1),
    burst: 100,
    key: LimitKey::Ip,
};

/// The two kinds of bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bucket {
    Voter(String, String),
    Network(String),
}

/// Failed-login buckets, bounded in memory.
pub struct LoginThrottle {
    buckets: moka::sync::Cache<Bucket, GcraState>,
    voter: Quota,
    network: Quota,
    epoch: Instant,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(VOTER_QUOTA, NETWORK_QUOTA)
    }
}

impl LoginThrottle {
    /// A throttle with these quotas.
    pub fn new(voter: Quota, network: Quota) -> Self {
        Self {
            buckets: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(voter.period.max(network.period) * voter.burst.max(network.burst))
                .build(),
            voter,
            network,
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes a token from `bucket` atomically; the wait when there is none.
    fn take(&self, bucket: Bucket, quota: Quota, now: u64) -> Result<(), Duration> {
        let mut outcome = Ok(());
        self.buckets.entry(bucket).and_compute_with(|entry| {
            let state = entry.map(|e| e.into_value()).unwrap_or_default();
            match quota.check(state, now, 1) {
                (Decision::Allowed { .. }, next) => Op::Put(next),
                (Decision::Limited { retry_after }, _) => {
                    outcome = Err(retry_after);
                    Op::Nop
                }
            }
        });
        outcome
    }

    /// Admits one attempt by `voter` from `ip`, or says how long to wait (whole seconds).
    pub fn attempt(&self, voter: &str, ip: IpAddr) -> Result<(), u64> {
        let net = client_network(ip);
        let now = self.now();
        let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        self.take(Bucket::Network(net.clone()), self.network, now)
            .map_err(secs)?;
        if let Err(wait) = self.take(
            Bucket::Voter(voter.to_string(), net.clone()),
            self.voter,
            now,
        ) {
            self.give_back(Bucket::Network(net), self.network);
            return Err(secs(wait).max(1));
        }
        Ok(())
    }

    /// A successful login: its tokens come back.
    pub fn succeeded(&self, voter: &str, ip: IpAddr) {
        let net = client_network(ip);
        self.buckets
            .invalidate(&Bucket::Voter(voter.to_string(), net.clone()));
        self.give_back(Bucket::Network(net), self.network);
    }

    fn give_back(&self, bucket: Bucket, quota: Quota) {
        self.buckets
            .entry(bucket)
            .and_compute_with(|entry| match entry {
                None => Op::Nop,
                Some(e) => Op::Put(GcraState {
                    tat: e.into_value().tat.saturating_sub(quota.emission_interval()),
                }),
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_voter_is_throttled_after_the_burst_and_only_from_that_network() {
        let t = LoginThrottle::default();
        for _ in 0..5 {
            assert_eq!(t.attempt("v1", ip("192.0.2.1")), Ok(()));
        }
        let wait = t.attempt("v1", ip("192.0.2.1")).expect_err("throttled");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(
            t.attempt("v1", ip("198.51.100.7")),
            Ok(()),
            "another network"
        );
        assert_eq!(t.attempt("v2", ip("192.0.2.1")), Ok(()), "another voter");
    }

    #[test]
    fn success_gives_the_tokens_back() {
        let t = LoginThrottle::default();
        for _ in 0..4 {
            t.attempt("v1", ip("192.0.2.1")).expect("within burst");
        }
        t.succeeded("v1", ip("192.0.2.1"));
        for _ in 0..5 {
            assert_eq!(t.attempt("v1", ip("192.0.2.1")), Ok(()));
        }
    }

    #[test]
    fn buckets_refill_so_nobody_is_locked_out_for_good() {
        let quick = Quota {
            period: Duration::from_millis(50),
            ..VOTER_QUOTA
        };
        let t = LoginThrottle::new(quick, NETWORK_QUOTA);
        for _ in 0..5 {
            t.attempt("v1", ip("192.0.2.1")).expect("within burst");
        }
        assert!(t.attempt("v1", ip("192.0.2.1")).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.attempt("v1", ip("192.0.2.1")), Ok(()));
    }

    #[test]
    fn ipv6_is_counted_per_64_and_parallel_guesses_never_exceed_the_burst() {
        let t = std::sync::Arc::new(LoginThrottle::default());
        let admitted: usize = (0..8)
            .map(|i| {
                let t = t.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .filter(|j| t.attempt("v1", ip(&format!("2001:db8::{i}:{j}"))).is_ok())
                        .count()
                })
            })
            .map(|h| h.join().expect("thread"))
            .sum();
        assert_eq!(admitted, 5, "one /64, one voter: exactly the burst");
        assert_eq!(
            t.attempt("v1", ip("2001:db8:0:1::1")),
            Ok(()),
            "another /64"
        );
    }
}
