//! The request rate per minute. Each pod counts its own requests and hands every closed minute
//! to the scaling store ([`hand_in`], every [`HAND_IN`], whether or not it runs the scaling
//! controller: in the manifests the controller runs in its own pod, which serves no traffic),
//! where all pods' counts add up to the deployment's rate: shared, bounded to
//! [`KEEP_MINUTES`], and kept across restarts when the store is Postgres. The pod also keeps
//! its own last [`LOCAL_MINUTES`] for `/performance/health`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::store::ScalingStore;
use std::sync::atomic::{AtomicU64, Ordering};

/// Minutes the store keeps (two weeks: enough for daily seasonality with room to fit).
pub const KEEP_MINUTES: u64 = 14 * 24 * 60;
/// Minutes a pod keeps of its own counts.
pub const LOCAL_MINUTES: usize = 120;

/// How often a pod hands its closed minutes to the store.
pub const HAND_IN: Duration = Duration::from_secs(15);

/// One minute's count: (minute since the epoch, requests).
pub type MinuteCount = (u64, u64);

/// Requests per minute of this process.
#[derive(Debug, Default)]
pub struct RateHistory {
    /// The minute being counted and its count, kept apart so a request costs two atomic
    /// operations; the lock is taken once a minute.
    minute: AtomicU64,
    count: AtomicU64,
    closed: Mutex<Closed>,
}

#[derive(Debug, Default)]
struct Closed {
    /// The last [`LOCAL_MINUTES`] closed minutes with requests.
    recent: VecDeque<MinuteCount>,
    /// Closed minutes not yet in the store (bounded: a store that is down for two weeks
    /// loses the oldest).
    unsent: VecDeque<MinuteCount>,
}

impl Closed {
    fn push(&mut self, minute: MinuteCount) {
        self.recent.push_back(minute);
        while self.recent.len() > LOCAL_MINUTES {
            self.recent.pop_front();
        }
        self.unsent.push_back(minute);
        while self.unsent.len() as u64 > KEEP_MINUTES {
            self.unsent.pop_front();
        }
    }
}

impl RateHistory {
    fn closed(&self) -> std::sync::MutexGuard<'_, Closed> {
        self.closed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request at `now_ms` (ms since the epoch).
    pub fn record(&self, now_ms: u64) {
        let minute = now_ms / 60_000;
        if self.minute.load(Ordering::Relaxed) == minute {
            self.count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut closed = self.closed();
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
            closed.push((open, count));
        }
        self.minute.store(minute, Ordering::Relaxed);
    }

    /// Closes the open minute when `now_ms` is past it (a quiet pod's last busy minute would
    /// otherwise wait for its next request).
    fn close(&self, closed: &mut Closed, now_ms: u64) {
        let current = now_ms / 60_000;
        let open = self.minute.load(Ordering::Relaxed);
        if open == 0 || open >= current {
            return;
        }
        let count = self.count.swap(0, Ordering::Relaxed);
        if count > 0 {
            closed.push((open, count));
        }
        self.minute.store(current, Ordering::Relaxed);
    }

    /// The closed minutes the store has not had yet, oldest first; hand them back with
    /// [`unsent`](Self::unsent) when the store fails.
    pub fn take_unsent(&self, now_ms: u64) -> Vec<MinuteCount> {
        let mut closed = self.closed();
        self.close(&mut closed, now_ms);
        closed.unsent.drain(..).collect()
    }

    /// Every minute the store has not had, the open one included: what a stopping pod hands
    /// in last. The store sums every pod's counts per minute, so a part of a minute adds up
    /// as a whole one does (a new process in the same minute adds its own).
    pub fn take_all(&self, now_ms: u64) -> Vec<MinuteCount> {
        let mut closed = self.closed();
        self.close(&mut closed, now_ms);
        let open = self.minute.load(Ordering::Relaxed);
        let count = self.count.swap(0, Ordering::Relaxed);
        if open > 0 && count > 0 {
            closed.push((open, count));
        }
        closed.unsent.drain(..).collect()
    }

    /// Puts minutes the store did not take back in front of any closed since.
    pub fn unsent(&self, minutes: Vec<MinuteCount>) {
        let mut closed = self.closed();
        for m in minutes.into_iter().rev() {
            closed.unsent.push_front(m);
        }
        while closed.unsent.len() as u64 > KEEP_MINUTES {
            closed.unsent.pop_front();
        }
    }

    /// This process's requests per minute over its last [`LOCAL_MINUTES`], up to (not
    /// including) the minute of `now_ms`.
    pub fn series(&self, now_ms: u64) -> Vec<f64> {
        let mut closed = self.closed();
        self.close(&mut closed, now_ms);
        let minutes: Vec<MinuteCount> = closed.recent.iter().copied().collect();
        drop(closed);
        series_of(&minutes, now_ms / 60_000, LOCAL_MINUTES as u64)
    }
}

/// Hands `rates`' closed minutes to `store` every [`HAND_IN`] until the process ends; minutes
/// the store refuses are kept for the next round.
pub async fn hand_in(rates: Arc<RateHistory>, store: Arc<dyn ScalingStore>) {
    let mut every = tokio::time::interval(HAND_IN);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let minutes = rates.take_unsent(crate::clock::now_ms());
        if minutes.is_empty() {
            continue;
        }
        if let Err(e) = store.add_rates(minutes.clone()).await {
            tracing::warn!("request rate history: {e}");
            rates.unsent(minutes);
        }
    }
}

/// Hands everything `rates` has not handed in yet, the open minute included, to `store`: the
/// last step of a stopping pod, so its final partial minute is not lost to the forecast.
pub async fn hand_in_last(rates: &RateHistory, store: &dyn ScalingStore) {
    let minutes = rates.take_all(crate::clock::now_ms());
    if minutes.is_empty() {
        return;
    }
    if let Err(e) = store.add_rates(minutes).await {
        tracing::warn!("request rate history, last minutes not stored: {e}");
    }
}

/// Per-minute counts (ascending minutes) as a series of the minutes before `until`, from the
/// first counted minute but at most `keep` long, with minutes without requests as zero.
pub fn series_of(minutes: &[MinuteCount], until: u64, keep: u64) -> Vec<f64> {
    let Some(&(first, _)) = minutes.first() else {
        return Vec::new();
    };
    let start = first.max(until.saturating_sub(keep));
    let mut out = vec![0.0; usize::try_from(until.saturating_sub(start)).unwrap_or(0)];
    for &(minute, count) in minutes {
        if minute >= start && minute < until {
            out[usize::try_from(minute - start).unwrap_or(0)] += count as f64;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    #[test]
    fn minutes_are_counted_and_gaps_are_zero() {
        let h = RateHistory::default();
        for _ in 0..3 {
            h.record(10 * MINUTE + 5);
        }
        h.record(12 * MINUTE);
        h.record(12 * MINUTE + 59_999);
        // The current minute is still filling: not part of the series.
        h.record(13 * MINUTE + 1);
        assert_eq!(h.series(13 * MINUTE + 2), vec![3.0, 0.0, 2.0]);
        // A quiet pod's last minute closes when time passes it.
        assert_eq!(h.series(15 * MINUTE), vec![3.0, 0.0, 2.0, 1.0, 0.0]);
    }

    #[test]
    fn closed_minutes_go_to_the_store_once_and_come_back_on_failure() {
        let h = RateHistory::default();
        h.record(10 * MINUTE);
        h.record(10 * MINUTE + 1);
        h.record(11 * MINUTE);
        assert_eq!(h.take_unsent(11 * MINUTE + 5), vec![(10, 2)]);
        assert_eq!(h.take_unsent(11 * MINUTE + 6), vec![]);
        // The store failed: minute 10 comes back ahead of minute 11, closed since.
        h.unsent(vec![(10, 2)]);
        assert_eq!(h.take_unsent(12 * MINUTE), vec![(10, 2), (11, 1)]);
    }

    #[test]
    fn a_stopping_pod_hands_in_its_open_minute_too() {
        let h = RateHistory::default();
        h.record(10 * MINUTE);
        h.record(11 * MINUTE + 1);
        h.record(11 * MINUTE + 2);
        assert_eq!(h.take_unsent(11 * MINUTE + 3), vec![(10, 1)]);
        assert_eq!(h.take_all(11 * MINUTE + 4), vec![(11, 2)]);
        assert_eq!(h.take_all(11 * MINUTE + 5), vec![], "handed in once");
        // Counting goes on in the same minute (the last requests of a drain): only the new.
        h.record(11 * MINUTE + 6);
        assert_eq!(h.take_all(11 * MINUTE + 7), vec![(11, 1)]);
        // Requests after the close count in their own minute.
        h.record(12 * MINUTE + 1);
        assert_eq!(h.take_unsent(13 * MINUTE), vec![(12, 1)]);
    }

    #[test]
    fn a_series_is_bounded_and_sums_counts_of_one_minute() {
        let rows = [(5, 1), (7, 2), (7, 3), (9, 4)];
        assert_eq!(series_of(&rows, 10, 100), vec![1.0, 0.0, 5.0, 0.0, 4.0]);
        assert_eq!(series_of(&rows, 10, 3), vec![5.0, 0.0, 4.0]);
        assert_eq!(series_of(&rows, 9, 100), vec![1.0, 0.0, 5.0, 0.0]);
        assert!(series_of(&[], 10, 3).is_empty());
    }
}
