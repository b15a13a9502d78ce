//! A circuit breaker for L2: after `threshold` consecutive failures L2 is skipped for
//! `open_for`, then one trial operation decides whether to close again. While open, the
//! cache keeps answering from L1 and the factory without touching Redis. Every admitted
//! operation holds a [`Permit`]; a trial whose permit is dropped without a verdict (its
//! caller was cancelled) hands the trial to the next caller, so the breaker never stays
//! half-open.

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

    /// A permit when an operation may go to L2 now; report its outcome through it.
    pub fn allow(&self) -> Option<Permit<'_>> {
        let Ok(mut guard) = self.inner.lock() else {
            return Some(Permit::new(self, false));
        };
        match guard.0 {
            BreakerState::Closed => Some(Permit::new(self, false)),
            BreakerState::Open(until) if Instant::now() >= until => {
                guard.0 = BreakerState::HalfOpen;
                Some(Permit::new(self, true))
            }
            BreakerState::Open(_) | BreakerState::HalfOpen => None,
        }
    }

    /// A trial ended without a verdict: the next caller may try at once.
    fn abandon(&self) {
        if let Ok(mut guard) = self.inner.lock()
            && guard.0 == BreakerState::HalfOpen
        {
            guard.0 = BreakerState::Open(Instant::now());
        }
    }

    /// Reports a successful operation.
    fn success(&self) {
        if let Ok(mut guard) = self.inner.lock() {
            *guard = (BreakerState::Closed, 0);
        }
    }

    /// Reports a failed operation (through a permit, or one seen outside any, such as a
    /// direct node connection for a scan).
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

/// Leave to run one operation; its outcome goes back to the breaker through
/// [`Permit::success`] or [`Permit::failure`].
#[must_use = "report the operation's outcome through the permit"]
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    trial: bool,
    reported: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a Breaker, trial: bool) -> Self {
        Self {
            breaker,
            trial,
            reported: false,
        }
    }

    /// The operation succeeded.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.success();
    }

    /// The operation failed.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.failure();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.trial && !self.reported {
            self.breaker.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(b: &Breaker) {
        b.allow().expect("admitted").failure();
    }

    #[test]
    fn opens_after_threshold_and_recovers_through_half_open() {
        let b = Breaker::new(3, Duration::from_millis(30));
        fail(&b);
        fail(&b);
        assert!(b.allow().is_some());
        fail(&b);
        assert!(b.allow().is_none(), "open after three failures");
        std::thread::sleep(Duration::from_millis(40));
        let trial = b.allow().expect("one trial after the pause");
        assert!(b.allow().is_none(), "only one trial at a time");
        trial.failure();
        assert!(b.allow().is_none(), "a failed trial reopens");
        std::thread::sleep(Duration::from_millis(40));
        b.allow().expect("trial").success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow().is_some());
    }

    #[test]
    fn a_trial_dropped_without_a_verdict_never_leaves_the_breaker_half_open() {
        let b = Breaker::new(1, Duration::from_millis(30));
        fail(&b);
        std::thread::sleep(Duration::from_millis(40));
        let trial = b.allow().expect("trial");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        drop(trial); // the caller's future was cancelled mid-operation
        assert_ne!(b.state(), BreakerState::HalfOpen);
        b.allow().expect("the next caller gets the trial").success();
        assert_eq!(b.state(), BreakerState::Closed);
        // A closed breaker's permits change nothing when dropped.
        drop(b.allow());
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
