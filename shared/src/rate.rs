//! GCRA rate limiting (the generic cell rate algorithm), pure: the caller passes the stored
//! state and the time in, and stores the state that comes out. The edge (Durable Object) and the
//! origin enforce the same quotas with it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;

/// Who a quota is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitKey {
    /// The client IP (`CF-Connecting-IP` at the edge, never `X-Forwarded-For`).
    Ip,
    /// The authenticated voter.
    Voter,
}

/// The network a client address is counted as: an IPv4 address itself, an IPv6 address's
/// /64 (one household or one phone gets a whole /64). IPv4-mapped IPv6 counts as IPv4.
pub fn client_network(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A quota: `rate` requests per `period`, with bursts of up to `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests allowed per period (sustained).
    pub rate: u32,
    /// The period `rate` is counted over.
    #[serde(with = "duration")]
    pub period: Duration,
    /// Requests that may arrive at once; at least 1.
    pub burst: u32,
    /// Who is counted.
    pub key: LimitKey,
}

/// What GCRA remembers per key: the theoretical arrival time, in nanoseconds on the caller's
/// clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GcraState {
    /// Theoretical arrival time of the next request (ns).
    pub tat: u64,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed.
    Allowed {
        /// Requests that could still be made right now.
        remaining: u32,
        /// Time until the bucket is full again.
        reset_after: Duration,
    },
    /// The request is over the limit.
    Limited {
        /// Time until this request would be allowed.
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// The `Retry-After` header value in whole seconds (at least 1), when limited.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Decision::Limited { retry_after } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
                    .map(|s| s.max(1))
            }
            Decision::Allowed { .. } => None,
        }
    }
}

/// Why a quota is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// `rate` is zero.
    #[error("rate must be at least 1 request per period")]
    ZeroRate,
    /// `period` is zero.
    #[error("period must be longer than zero, e.g. \"1s\" or \"1m\"")]
    ZeroPeriod,
    /// `burst` is zero.
    #[error("burst must be at least 1 (the number of requests allowed at once)")]
    ZeroBurst,
}

/// A quota as a fixed-window counter counts it: requests per window of `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The window's length in seconds.
    pub seconds: u64,
    /// Requests allowed in one window.
    pub requests: u64,
}

impl Quota {
    /// The quota over the shortest of `windows` (seconds, ascending) that covers its period
    /// (the longest when none does), the count scaled and rounded up, so a fixed-window
    /// limiter (a Workers binding, a CDN rule) never limits harder than this quota.
    pub fn over_window(&self, windows: &[u64]) -> Window {
        let period_ms = crate::freshness::millis(self.period).max(1);
        let seconds = windows
            .iter()
            .copied()
            .find(|w| w.saturating_mul(1000) >= period_ms)
            .or_else(|| windows.last().copied())
            .unwrap_or(60)
            .max(1);
        let requests = (u64::from(self.rate) * seconds * 1000).div_ceil(period_ms);
        Window {
            seconds,
            requests: requests.max(1),
        }
    }

    /// Checks that the quota can admit anything.
    pub fn validate(&self) -> Result<(), QuotaError> {
        if self.rate == 0 {
            return Err(QuotaError::ZeroRate);
        }
        if self.period.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        if self.burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        Ok(())
    }

    /// The emission interval: the spacing of requests at the sustained rate (ns, at least 1).
    pub fn emission_interval(&self) -> u64 {
        let period = u64::try_from(self.period.as_nanos()).unwrap_or(u64::MAX);
        (period / u64::from(self.rate.max(1))).max(1)
    }

    /// How far past the last request a stored state still matters: the burst window. After
    /// this long without requests, the state is as good as none (ns, at least 1).
    pub fn horizon(&self) -> u64 {
        self.emission_interval()
            .saturating_mul(u64::from(self.burst.max(1)))
    }

    /// Decides whether a request of weight `cost` at `now` (ns) is allowed. Returns the
    /// decision and the state to store (unchanged when limited). A request costing more than
    /// the burst is never allowed.
    pub fn check(&self, state: GcraState, now: u64, cost: u32) -> (Decision, GcraState) {
        let t = self.emission_interval();
        let burst_window = self.horizon();
        let tat = state.tat.max(now);
        let new_tat = tat.saturating_add(t.saturating_mul(u64::from(cost)));
        let allow_at = new_tat.saturating_sub(burst_window);
        if cost > self.burst.max(1) || now < allow_at {
            let retry_after = if cost > self.burst.max(1) {
                Duration::MAX
            } else {
                Duration::from_nanos(allow_at - now)
            };
            return (Decision::Limited { retry_after }, state);
        }
        let headroom = now.saturating_add(burst_window).saturating_sub(new_tat);
        let remaining = u32::try_from(headroom / t).unwrap_or(u32::MAX);
        (
            Decision::Allowed {
                remaining,
                reset_after: Duration::from_nanos(new_tat - now),
            },
            GcraState { tat: new_tat },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn quota(rate: u32, burst: u32) -> Quota {
        Quota {
            rate,
            period: Duration::from_secs(1),
            burst,
            key: LimitKey::Ip,
        }
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let net = |s: &str| client_network(s.parse().expect("ip"));
        assert_eq!(net("203.0.113.9"), "203.0.113.9");
        assert_eq!(net("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:bbbb::9"));
        assert_eq!(net("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
    }

    #[test]
    fn burst_is_allowed_then_limited_with_retry_after() {
        let q = quota(10, 5);
        let mut state = GcraState::default();
        let now = 100 * SEC;
        for expected_remaining in (0..5).rev() {
            let (d, s) = q.check(state, now, 1);
            assert_eq!(
                d,
                Decision::Allowed {
                    remaining: expected_remaining,
                    reset_after: Duration::from_millis(100 * (5 - u64::from(expected_remaining)))
                }
            );
            state = s;
        }
        let (d, s) = q.check(state, now, 1);
        assert_eq!(
            d,
            Decision::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        assert_eq!(s, state);
        assert_eq!(d.retry_after_secs(), Some(1));
        // One emission interval later exactly one more request fits.
        let (d, state) = q.check(state, now + SEC / 10, 1);
        assert!(d.is_allowed());
        assert!(!q.check(state, now + SEC / 10, 1).0.is_allowed());
    }

    #[test]
    fn sustained_rate_is_enforced_over_time() {
        let q = quota(10, 1);
        let mut state = GcraState::default();
        let mut allowed = 0;
        // 100 requests spread evenly over 1 s (every 10 ms): only 10 fit.
        for i in 0..100 {
            let (d, s) = q.check(state, 50 * SEC + i * SEC / 100, 1);
            if d.is_allowed() {
                allowed += 1;
            }
            state = s;
        }
        assert_eq!(allowed, 10);
    }

    #[test]
    fn after_the_horizon_a_state_is_as_good_as_none() {
        let q = quota(10, 3);
        assert_eq!(q.horizon(), 3 * SEC / 10);
        let mut state = GcraState::default();
        for _ in 0..3 {
            state = q.check(state, SEC, 1).1;
        }
        assert!(!q.check(state, SEC, 1).0.is_allowed());
        let later = SEC + q.horizon();
        assert_eq!(
            q.check(state, later, 1),
            q.check(GcraState::default(), later, 1)
        );
        assert!(
            state.tat <= later,
            "nothing stored reaches past the horizon"
        );
    }

    #[test]
    fn cost_above_burst_is_never_allowed() {
        let q = quota(10, 3);
        let (d, _) = q.check(GcraState::default(), SEC, 4);
        assert!(!d.is_allowed());
        assert!(q.check(GcraState::default(), SEC, 3).0.is_allowed());
    }

    #[test]
    fn invalid_quotas_are_reported() {
        assert_eq!(quota(0, 1).validate(), Err(QuotaError::ZeroRate));
        assert_eq!(quota(1, 0).validate(), Err(QuotaError::ZeroBurst));
        let mut q = quota(1, 1);
        q.period = Duration::ZERO;
        assert_eq!(q.validate(), Err(QuotaError::ZeroPeriod));
    }

    #[test]
    fn quotas_scale_to_fixed_windows_rounding_up() {
        let quota = |rate, secs| Quota {
            rate,
            period: Duration::from_secs(secs),
            burst: 1,
            key: LimitKey::Ip,
        };
        let window = |seconds, requests| Window { seconds, requests };
        let cdn = [10, 60, 120, 300, 600, 3600];
        assert_eq!(quota(100, 1).over_window(&cdn), window(10, 1000));
        assert_eq!(quota(10, 60).over_window(&cdn), window(60, 10));
        assert_eq!(quota(3, 90).over_window(&cdn), window(120, 4));
        assert_eq!(quota(1, 7200).over_window(&cdn), window(3600, 1));
        let binding = [10, 60];
        assert_eq!(quota(100, 1).over_window(&binding), window(10, 1000));
        assert_eq!(quota(5, 300).over_window(&binding), window(60, 1));
    }
}
