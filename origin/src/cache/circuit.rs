//! A circuit breaker for L2: after `threshold` consecutive failures L2 is skipped for
//! `open_for`, then one trial operation decides whether to close again. While open, the
//! cache keeps answering from L1 and the factory without touching Redis.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// L2 is used.
    Closed,
    /// L2 is skipped until the instant passes.
    Open(Instant),
    /// One trial is in flight; others skip L2 until it reports.
    HalfOpen,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    inner: Mutex<(BreakerState, u32)>,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures, for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            inner: Mutex::new((BreakerState::Closed, 0)),
        }
    }

    /// Whether an operation may go to L2 now.
    pub fn allow(&self) -> bool {
        let Ok(mut guard) = self.inner.lock() else {
            return true;
        };
        match guard.0 {
            BreakerState::Closed => true,
            BreakerState::Open(until) if Instant::now() >= until => {
                guard.0 = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open(_) | BreakerState::HalfOpen => false,
        }
    }

    /// Reports a successful operation.
    pub fn success(&self) {
        if let Ok(mut guard) = self.inner.lock() {
            *guard = (BreakerState::Closed, 0);
        }
    }

    /// Reports a failed operation.
    pub fn failure(&self) {
        if let Ok(mut guard) = self.inner.lock() {
            let failures = guard.1.saturating_add(1);
            let reopen = matches!(guard.0, BreakerState::HalfOpen) || failures >= self.threshold;
            *guard = if reopen {
                (BreakerState::Open(Instant::now() + self.open_for), failures)
            } else {
                (guard.0, failures)
            };
        }
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        self.inner
            .lock()
            .map(|g| g.0)
            .unwrap_or(BreakerState::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers_through_half_open() {
        let b = Breaker::new(3, Duration::from_millis(30));
        b.failure();
        b.failure();
        assert!(b.allow());
        b.failure();
        assert!(!b.allow(), "open after three failures");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "one trial after the pause");
        assert!(!b.allow(), "only one trial at a time");
        b.failure();
        assert!(!b.allow(), "a failed trial reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }
}
