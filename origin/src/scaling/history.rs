//! The origin's own request rate, counted per minute, for the forecaster. Bounded: the last
//! [`KEEP_MINUTES`] minutes; minutes without requests count as zero.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Minutes kept (two weeks: enough for daily seasonality with room to fit).
pub const KEEP_MINUTES: usize = 14 * 24 * 60;

/// Requests per minute.
#[derive(Debug, Default)]
pub struct RateHistory {
    /// The minute being counted and its count, kept apart so a request costs two atomic
    /// operations; the lock is taken once a minute.
    minute: AtomicU64,
    count: AtomicU64,
    minutes: Mutex<VecDeque<(u64, u64)>>,
}

impl RateHistory {
    /// Counts one request at `now_ms` (ms since the epoch).
    pub fn record(&self, now_ms: u64) {
        let minute = now_ms / 60_000;
        if self.minute.load(Ordering::Relaxed) == minute {
            self.count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut m = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        let open = self.minute.load(Ordering::Relaxed);
        if open == minute {
            self.count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if open > minute {
            return;
        }
        let count = self.count.swap(1, Ordering::Relaxed);
        if open > 0 && count > 0 {
            m.push_back((open, count));
            while m.len() > KEEP_MINUTES {
                m.pop_front();
            }
        }
        self.minute.store(minute, Ordering::Relaxed);
    }

    /// Requests per minute up to (not including) the minute of `now_ms`, oldest first, with
    /// empty minutes as zero; at most [`KEEP_MINUTES`] values.
    pub fn series(&self, now_ms: u64) -> Vec<f64> {
        let current = now_ms / 60_000;
        let mut m: Vec<(u64, u64)> = self
            .minutes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        let open = self.minute.load(Ordering::Relaxed);
        if open > 0 && open < current {
            m.push((open, self.count.load(Ordering::Relaxed)));
        }
        let Some(&(first, _)) = m.first() else {
            return Vec::new();
        };
        let start = first.max(current.saturating_sub(KEEP_MINUTES as u64));
        let mut out = vec![0.0; usize::try_from(current.saturating_sub(start)).unwrap_or(0)];
        for &(minute, count) in m.iter() {
            if minute >= start && minute < current {
                out[usize::try_from(minute - start).unwrap_or(0)] = count as f64;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_counted_and_gaps_are_zero() {
        let h = RateHistory::default();
        let minute = 60_000;
        for _ in 0..3 {
            h.record(10 * minute + 5);
        }
        h.record(12 * minute);
        h.record(12 * minute + 59_999);
        assert_eq!(h.series(13 * minute), vec![3.0, 0.0, 2.0]);
        // The current minute is still filling: not part of the series.
        h.record(13 * minute + 1);
        assert_eq!(h.series(13 * minute + 2), vec![3.0, 0.0, 2.0]);
    }
}
