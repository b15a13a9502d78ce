//! Counters per tier and operation, lock-free, read as a [`StatsSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Live counters.
        #[derive(Debug, Default)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A point-in-time copy of [`Stats`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct StatsSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl Stats {
            /// Copies every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl StatsSnapshot {
            /// Every counter as `(name, help, value)`, so each one is exported.
            pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $doc, self.$name),)*]
            }
        }
    };
}

counters! {
    l1_hits: "Fresh or stale answers from L1.",
    l1_misses: "L1 lookups that found nothing usable.",
    l1_evictions: "Entries L1 evicted for size.",
    l2_hits: "Answers from L2.",
    l2_misses: "L2 lookups that found nothing usable.",
    l2_errors: "L2 operations that failed or timed out.",
    l2_skipped: "L2 operations skipped while the circuit breaker was open.",
    l2_bytes_written: "Bytes written to L2.",
    l2_corrupt: "L2 values that did not decode (treated as misses).",
    stale_served: "Stale values served while refreshing.",
    fail_safe_served: "Stale values served because the factory failed or timed out.",
    factory_calls: "Factory invocations.",
    factory_errors: "Factory failures and timeouts.",
    early_refreshes: "Refreshes started before expiry (XFetch).",
    lock_acquired: "Distributed locks taken.",
    lock_waits: "Callers that waited for another process's factory.",
    backplane_sent: "Backplane messages published.",
    backplane_received: "Backplane messages applied from other processes.",
    tag_invalidations: "Tags invalidated (after cascades).",
    pattern_removed: "Entries removed by pattern invalidation.",
}

impl Stats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl StatsSnapshot {
    /// L1 hit ratio in 0..=1 (0 with no lookups).
    pub fn l1_hit_ratio(&self) -> f64 {
        ratio(self.l1_hits, self.l1_misses)
    }

    /// L2 hit ratio in 0..=1 (0 with no lookups).
    pub fn l2_hit_ratio(&self) -> f64 {
        ratio(self.l2_hits, self.l2_misses)
    }
}

fn ratio(hits: u64, misses: u64) -> f64 {
    let total = hits + misses;
    if total == 0 {
        0.0
    } else {
        hits as f64 / total as f64
    }
}
