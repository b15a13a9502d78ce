//! The SLA tracker: every public request is counted per minute (answered, failed with a 5xx,
//! slower than the latency SLO), the minutes are added to a store shared by every process
//! and kept across restarts ([`store`]), and [`report`] turns them into what
//! `GET /performance/sla` shows: availability and latency compliance over 1 h, 24 h and
//! 30 d, the error budget left, the burn rate now, and the incidents — periods when the
//! fast-burn condition of the alert rules held.
//!
//! Targets, as in `infrastructure/monitoring/prometheus-rules.yaml`: 99.99 % of requests
//! answered without a 5xx, 99 % within 1 s; a fast burn spends the 30-day budget 14.4 times
//! too fast over both the last hour and the last 5 minutes.

pub mod store;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::striped::Striped;
use crate::db::StoreError;
use store::SlaStore;

/// Share of requests that must be answered without a 5xx.
pub const AVAILABILITY_TARGET: f64 = 0.9999;
/// Share of requests that must be answered within [`LATENCY_SLO`].
pub const LATENCY_TARGET: f64 = 0.99;
/// The latency objective.
pub const LATENCY_SLO: Duration = Duration::from_secs(1);
/// Burn rate (budget spent this many times too fast) that makes an incident.
pub const FAST_BURN: f64 = 14.4;
/// Minutes in the budget period (30 days).
pub const BUDGET_MINUTES: i64 = 30 * 24 * 60;

/// One minute of traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Minutes since the Unix epoch.
    pub at: i64,
    /// Requests answered.
    pub requests: u64,
    /// Of those, answered with a 5xx.
    pub errors: u64,
    /// Of those, slower than [`LATENCY_SLO`].
    pub slow: u64,
}

impl Minute {
    /// No requests at minute `at`.
    pub fn empty(at: i64) -> Self {
        Self {
            at,
            ..Self::default()
        }
    }

    /// Adds `other`'s counts to this minute's.
    pub fn add(&mut self, other: &Minute) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.slow += other.slow;
    }
}

/// Requests counted since the last flush, per minute; each thread counts into its own
/// stripe, so requests on different cores take different locks.
#[derive(Debug, Default)]
pub struct SlaCounter {
    pending: Striped<Mutex<BTreeMap<i64, Minute>>>,
}

impl SlaCounter {
    /// Counts one answered request at `now_ms`.
    pub fn record(&self, now_ms: u64, status: u16, took: Duration) {
        let at = i64::try_from(now_ms / 60_000).unwrap_or(i64::MAX);
        let mut pending = self
            .pending
            .mine()
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let minute = pending.entry(at).or_insert(Minute::empty(at));
        minute.requests += 1;
        minute.errors += u64::from(status >= 500);
        minute.slow += u64::from(took > LATENCY_SLO);
    }

    /// The counts since the last call (added to the store, which sums them per minute).
    pub fn take(&self) -> Vec<Minute> {
        let mut taken = BTreeMap::<i64, Minute>::new();
        for stripe in self.pending.all() {
            let mut pending = stripe.lock().unwrap_or_else(|p| p.into_inner());
            for (at, counts) in std::mem::take(&mut *pending) {
                taken.entry(at).or_insert(Minute::empty(at)).add(&counts);
            }
        }
        taken.into_values().collect()
    }

    /// Puts counts back after a failed flush, so the next flush carries them.
    pub fn restore(&self, minutes: Vec<Minute>) {
        let mut pending = self
            .pending
            .mine()
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for m in minutes {
            pending.entry(m.at).or_insert(Minute::empty(m.at)).add(&m);
        }
    }
}

/// The tracker: this process's counts and the store every process adds them to.
pub struct SlaTracker {
    counter: SlaCounter,
    store: Arc<dyn SlaStore>,
    region: String,
}

impl SlaTracker {
    /// A tracker adding `region`'s counts to `store`.
    pub fn new(store: Arc<dyn SlaStore>, region: String) -> Arc<Self> {
        Arc::new(Self {
            counter: SlaCounter::default(),
            store,
            region,
        })
    }

    /// Counts one answered public request.
    pub fn record(&self, now_ms: u64, status: u16, took: Duration) {
        self.counter.record(now_ms, status, took);
    }

    /// Adds the counts since the last flush to the store; on failure they wait for the next.
    pub async fn flush(&self) {
        let taken = self.counter.take();
        if taken.is_empty() {
            return;
        }
        if let Err(e) = self.store.add(self.region.clone(), taken.clone()).await {
            tracing::warn!(error = %e, "SLA minutes not stored yet; kept for the next flush");
            self.counter.restore(taken);
        }
    }

    /// Flushes every `every` while the tracker lives.
    pub fn spawn_flush(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match weak.upgrade() {
                    Some(tracker) => tracker.flush().await,
                    None => return,
                }
            }
        });
    }

    /// `postgres` or `memory`.
    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// The report at `now_ms`, over every process's minutes (this one's flushed first).
    pub async fn report(&self, now_ms: u64) -> Result<SlaReport, StoreError> {
        self.flush().await;
        let now = i64::try_from(now_ms / 60_000).unwrap_or(i64::MAX);
        let minutes = self.store.since(now - BUDGET_MINUTES + 1).await?;
        let mut report = report(&minutes, now);
        report.store = self.store.kind().to_string();
        Ok(report)
    }
}

/// One window's figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Window {
    /// `1h`, `24h` or `30d`.
    pub window: String,
    /// Requests answered in it.
    pub requests: u64,
    /// Share answered without a 5xx (1 with no requests).
    pub availability: f64,
    /// Share answered within the latency objective (1 with no requests).
    pub latency_compliance: f64,
    /// Whether both targets are met.
    pub met: bool,
}

/// A period when the fast-burn condition held.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Incident {
    /// First minute it held (RFC 3339).
    pub start: String,
    /// First minute it no longer held (RFC 3339); absent while it still holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Share of the 30-day error budget spent during it.
    pub budget_spent: f64,
}

/// `GET /performance/sla`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlaReport {
    /// The availability target (0.9999).
    pub availability_target: f64,
    /// The latency target (0.99 within `latency_slo_seconds`).
    pub latency_target: f64,
    /// The latency objective (seconds).
    pub latency_slo_seconds: f64,
    /// 1 h, 24 h and 30 d.
    pub windows: Vec<Window>,
    /// Share of the 30-day error budget left (negative once overspent).
    pub error_budget_left: f64,
    /// How many times too fast the budget is being spent, over the last hour.
    pub burn_rate_1h: f64,
    /// The same over the last 5 minutes.
    pub burn_rate_5m: f64,
    /// Fast-burn periods in the last 30 days, oldest first.
    pub incidents: Vec<Incident>,
    /// Where the minutes are kept: `postgres` (shared, kept across restarts) or `memory`
    /// (this process only, without a database).
    pub store: String,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Errors over requests in the `minutes` ending at `end` (exclusive), as a burn rate.
fn burn(series: &BTreeMap<i64, Minute>, end: i64, minutes: i64) -> f64 {
    let (mut requests, mut errors) = (0, 0);
    for m in series.range(end - minutes..end).map(|(_, m)| m) {
        requests += m.requests;
        errors += m.errors;
    }
    ratio(errors, requests) / (1.0 - AVAILABILITY_TARGET)
}

fn rfc3339(minute: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(minute * 60)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The report for `minutes` (any order, any span) at `now_minute` (minutes since the epoch;
/// the current, unfinished minute counts).
pub fn report(minutes: &[Minute], now_minute: i64) -> SlaReport {
    let end = now_minute + 1;
    let mut series: BTreeMap<i64, Minute> = BTreeMap::new();
    for m in minutes
        .iter()
        .filter(|m| m.at < end && m.at >= end - BUDGET_MINUTES)
    {
        series.entry(m.at).or_insert(Minute::empty(m.at)).add(m);
    }
    let windows: Vec<Window> = [("1h", 60), ("24h", 24 * 60), ("30d", BUDGET_MINUTES)]
        .into_iter()
        .map(|(name, span)| {
            let (mut requests, mut errors, mut slow) = (0, 0, 0);
            for m in series.range(end - span..end).map(|(_, m)| m) {
                requests += m.requests;
                errors += m.errors;
                slow += m.slow;
            }
            let availability = 1.0 - ratio(errors, requests);
            let latency_compliance = 1.0 - ratio(slow, requests);
            Window {
                window: name.to_string(),
                requests,
                availability,
                latency_compliance,
                met: availability >= AVAILABILITY_TARGET && latency_compliance >= LATENCY_TARGET,
            }
        })
        .collect();
    let month = &windows[2];
    let allowed = month.requests as f64 * (1.0 - AVAILABILITY_TARGET);
    let spent_errors: u64 = series.values().map(|m| m.errors).sum();
    let error_budget_left = if allowed > 0.0 {
        1.0 - spent_errors as f64 / allowed
    } else {
        1.0
    };
    // Incidents: each minute, the fast-burn condition over the hour and the 5 minutes that
    // end with it; consecutive minutes where it holds are one incident.
    let mut incidents = Vec::new();
    let first = series.keys().next().copied().unwrap_or(end);
    let mut open: Option<(i64, u64)> = None;
    for minute in first..end {
        let at = minute + 1;
        let burning = burn(&series, at, 60) > FAST_BURN && burn(&series, at, 5) > FAST_BURN;
        let errors = series.get(&minute).map_or(0, |m| m.errors);
        open = match (open, burning) {
            (None, true) => Some((minute, errors)),
            (Some((start, spent)), true) => Some((start, spent + errors)),
            (Some((start, spent)), false) => {
                incidents.push(Incident {
                    start: rfc3339(start),
                    end: Some(rfc3339(minute)),
                    budget_spent: if allowed > 0.0 {
                        spent as f64 / allowed
                    } else {
                        0.0
                    },
                });
                None
            }
            (None, false) => None,
        };
    }
    if let Some((start, spent)) = open {
        incidents.push(Incident {
            start: rfc3339(start),
            end: None,
            budget_spent: if allowed > 0.0 {
                spent as f64 / allowed
            } else {
                0.0
            },
        });
    }
    SlaReport {
        availability_target: AVAILABILITY_TARGET,
        latency_target: LATENCY_TARGET,
        latency_slo_seconds: LATENCY_SLO.as_secs_f64(),
        burn_rate_1h: burn(&series, end, 60),
        burn_rate_5m: burn(&series, end, 5),
        windows,
        error_budget_left,
        incidents,
        store: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 29_000_000;

    fn steady(from: i64, to: i64, requests: u64, errors: u64, slow: u64) -> Vec<Minute> {
        (from..to)
            .map(|at| Minute {
                at,
                requests,
                errors,
                slow,
            })
            .collect()
    }

    #[test]
    fn a_clean_month_meets_both_targets_with_the_whole_budget_left() {
        let r = report(&steady(NOW - BUDGET_MINUTES + 1, NOW + 1, 100, 0, 0), NOW);
        assert_eq!(
            r.windows.iter().map(|w| w.requests).collect::<Vec<_>>(),
            [6_000, 144_000, 4_320_000]
        );
        assert!(r.windows.iter().all(|w| w.met && w.availability == 1.0));
        assert_eq!(r.error_budget_left, 1.0);
        assert_eq!(r.burn_rate_1h, 0.0);
        assert!(r.incidents.is_empty());
    }

    #[test]
    fn budget_burn_and_windows_follow_the_errors() {
        // 100 requests a minute for 30 days; 1 error a minute in the last hour only.
        let mut minutes = steady(NOW - BUDGET_MINUTES + 1, NOW + 1, 100, 0, 0);
        for m in minutes.iter_mut().filter(|m| m.at > NOW - 60) {
            m.errors = 1;
            m.slow = 2;
        }
        let r = report(&minutes, NOW);
        // Hour: 1 % errors, 2 % slow.
        assert!((r.windows[0].availability - 0.99).abs() < 1e-12);
        assert!((r.windows[0].latency_compliance - 0.98).abs() < 1e-12);
        assert!(!r.windows[0].met);
        // Budget: 0.01 % of 4,320,000 = 432 errors allowed; 60 spent.
        assert!((r.error_budget_left - (1.0 - 60.0 / 432.0)).abs() < 1e-9);
        // Burn: 1 % over the hour is 100 times the 0.01 % target.
        assert!((r.burn_rate_1h - 100.0).abs() < 1e-9);
        assert!((r.burn_rate_5m - 100.0).abs() < 1e-9);
        // Burning once the hour holds more than 14.4 × 0.01 % of 6,000 requests in errors
        // (the ninth failing minute), and still burning.
        assert_eq!(r.incidents.len(), 1);
        assert_eq!(r.incidents[0].start, rfc3339(NOW - 51));
        assert_eq!(r.incidents[0].end, None);
        assert!((r.incidents[0].budget_spent - 52.0 / 432.0).abs() < 1e-9);
    }

    #[test]
    fn an_incident_ends_when_the_five_minute_burn_stops() {
        // Errors for 10 minutes, two hours ago; clean since.
        let mut minutes = steady(NOW - 600, NOW + 1, 100, 0, 0);
        for m in minutes
            .iter_mut()
            .filter(|m| (NOW - 120..NOW - 110).contains(&m.at))
        {
            m.errors = 50;
        }
        let r = report(&minutes, NOW);
        assert_eq!(r.incidents.len(), 1, "{:?}", r.incidents);
        assert_eq!(r.incidents[0].start, rfc3339(NOW - 120));
        // The 5-minute window clears once it no longer holds the last failing minute.
        assert_eq!(r.incidents[0].end, Some(rfc3339(NOW - 106)));
        assert_eq!(r.burn_rate_5m, 0.0);
        assert_eq!(r.windows[0].availability, 1.0);
    }

    #[test]
    fn counts_taken_and_restored_are_not_lost() {
        let counter = SlaCounter::default();
        counter.record(60_000 * 7, 200, Duration::from_millis(5));
        counter.record(60_000 * 7 + 5, 503, Duration::from_secs(2));
        counter.record(60_000 * 8, 200, Duration::from_millis(5));
        let taken = counter.take();
        assert_eq!(
            taken,
            [
                Minute {
                    at: 7,
                    requests: 2,
                    errors: 1,
                    slow: 1
                },
                Minute {
                    at: 8,
                    requests: 1,
                    errors: 0,
                    slow: 0
                }
            ]
        );
        assert!(counter.take().is_empty());
        counter.restore(taken.clone());
        counter.record(60_000 * 8, 200, Duration::from_millis(5));
        assert_eq!(counter.take()[1].requests, 2);
    }
}
