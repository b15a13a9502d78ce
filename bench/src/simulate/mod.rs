//! Replays a traffic curve through the HPA v2 algorithm ([`hpa`]) second by second, with pods
//! that take time to become ready and serve a measured rate each, under three strategies:
//!
//! - **reactive**: the HPA alone, on CPU utilisation;
//! - **scheduled**: plus the scheduled events' floors, applied at their start as the
//!   origin's scaling controller does;
//! - **predictive**: plus the forecast floor, computed by the origin's own
//!   [`predicted_floor`] on the per-minute history the controller would read.
//!
//! For each it reports the minutes over capacity (requests beyond what the ready pods
//! serve with p99 under 1 s), the peak pods and the pod-hours.

pub mod chart;
pub mod hpa;
pub mod surge;

use std::fmt::Write as _;

use surge_origin::scaling::config::PredictiveConfig;
use surge_origin::scaling::controller::{complete_until, predicted_floor};
use surge_origin::scaling::history::{HAND_IN, KEEP_MINUTES};

use hpa::{Hpa, Observation};
use surge::Surge;

/// Which floors the scaling hooks set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// The HPA alone.
    Reactive,
    /// Scheduled event floors.
    Scheduled,
    /// Forecast floors.
    Predictive,
}

impl Strategy {
    /// Every strategy, in report order.
    pub const ALL: [Strategy; 3] = [Self::Reactive, Self::Scheduled, Self::Predictive];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reactive => "reactive",
            Self::Scheduled => "scheduled",
            Self::Predictive => "predictive",
        }
    }
}

/// One sample of a run (every `SAMPLE` seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds from the start.
    pub t: u64,
    /// Requests/s offered.
    pub load: f64,
    /// Pods (ready or starting).
    pub pods: u32,
    /// Requests/s the ready pods serve.
    pub capacity: f64,
}

/// What a strategy did through the surge.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The strategy.
    pub strategy: Strategy,
    /// Minutes in which the offered rate exceeded what the ready pods serve.
    pub minutes_over: f64,
    /// The most pods at once.
    pub peak_pods: u32,
    /// Pods × hours.
    pub pod_hours: f64,
    /// The samples, for the chart.
    pub samples: Vec<Sample>,
}

/// Seconds between samples.
pub const SAMPLE: u64 = 30;

/// Per-minute request counts of the history and the replay, for the forecast.
struct Counts {
    minutes: Vec<f64>,
    history: usize,
}

impl Counts {
    fn new(surge: &Surge) -> Self {
        let days = surge.history.as_ref().map_or(0, |h| h.days as usize);
        let history = days * 24 * 60;
        let length = surge.duration().as_secs_f64();
        let minutes = (0..history)
            .map(|m| {
                let h = surge.history.as_ref();
                match (h.and_then(|h| h.rps), h.and_then(|h| h.scale)) {
                    (Some(rps), _) => rps * 60.0,
                    (None, Some(scale)) => {
                        // The curve's rhythm, repeated, ending where the replay starts.
                        let back = (history - m) as f64 * 60.0;
                        let t = (length - back % length) % length;
                        surge.rps_at(t) * scale * 60.0
                    }
                    (None, None) => 0.0,
                }
            })
            .collect();
        Self { minutes, history }
    }

    fn add(&mut self, t: u64, requests: f64) {
        let m = self.history + (t / 60) as usize;
        if self.minutes.len() <= m {
            self.minutes.resize(m + 1, 0.0);
        }
        self.minutes[m] += requests;
    }

    /// The series the controller reads at `t`: minutes every pod has handed in, at most two
    /// weeks.
    fn series(&self, t: u64) -> &[f64] {
        let now_ms = (self.history as u64 * 60 + t) * 1000;
        let until = (complete_until(now_ms, HAND_IN) as usize).min(self.minutes.len());
        let start = until.saturating_sub(KEEP_MINUTES as usize);
        &self.minutes[start..until]
    }
}

/// Replays `surge` under `strategy`.
pub fn simulate(surge: &Surge, strategy: Strategy) -> Outcome {
    let end = surge.duration().as_secs();
    let sync = surge.sync.as_secs().max(1);
    let tick = surge.predictive.tick.as_secs().max(1);
    let lag = surge.metrics_lag.as_secs();
    let start_delay = surge.pods.start.as_secs();
    let saturation = surge.pods.limit_cores / surge.pods.request_cores;
    let predictive = PredictiveConfig {
        workload: "api-gateway".into(),
        per_pod_rps: surge.pods.rps,
        look_ahead_minutes: surge.predictive.look_ahead_minutes,
    };
    let mut hpa = Hpa::new(surge.hpa.clone());
    // Ready times of the pods, oldest first.
    let mut pods: Vec<u64> = vec![0; surge.hpa.min as usize];
    let mut counts = Counts::new(surge);
    let mut utilisation_seen: Vec<f64> = Vec::with_capacity(end as usize + 1);
    let mut floor = 0u32;
    let mut forecast_at: Option<(usize, u32)> = None;
    let (mut over, mut pod_seconds, mut peak) = (0u64, 0u64, 0u32);
    let mut samples = Vec::new();
    for t in 0..end {
        let load = surge.rps_at(t as f64);
        counts.add(t, load);
        let ready = pods.iter().filter(|&&r| r <= t).count() as u32;
        let capacity = f64::from(ready) * surge.pods.rps;
        let per_pod = if ready > 0 {
            (load / capacity).min(1.0) * saturation
        } else {
            0.0
        };
        utilisation_seen.push(per_pod);
        // The scaling controller's floor: at its tick, and at an event's start or end.
        let boundary = surge
            .events
            .iter()
            .any(|e| e.start.as_secs() == t || e.end.as_secs() == t);
        if t % tick == 0 || boundary {
            floor = match strategy {
                Strategy::Reactive => 0,
                Strategy::Scheduled => surge
                    .events
                    .iter()
                    .filter(|e| e.start.as_secs() <= t && t < e.end.as_secs())
                    .map(|e| e.replicas)
                    .max()
                    .unwrap_or(0),
                Strategy::Predictive => {
                    let series = counts.series(t);
                    // The forecast changes only when a minute completes.
                    match forecast_at {
                        Some((n, f)) if n == series.len() => f,
                        _ => {
                            let f = if series.len() < 10 {
                                0
                            } else {
                                predicted_floor(&predictive, series, surge.hpa.max).floor
                            };
                            forecast_at = Some((series.len(), f));
                            f
                        }
                    }
                }
            };
        }
        if t % sync == 0 {
            let seen_at = t.saturating_sub(lag) as usize;
            let desired = hpa.sync(
                t,
                Observation {
                    current: pods.len() as u32,
                    ready,
                    utilisation: utilisation_seen[seen_at],
                    min: surge.hpa.min.max(floor),
                },
            ) as usize;
            if desired > pods.len() {
                pods.resize(desired, t + start_delay);
            } else {
                // Starting pods go first, then the newest.
                pods.truncate(desired);
            }
        }
        if load > capacity {
            over += 1;
        }
        pod_seconds += pods.len() as u64;
        peak = peak.max(pods.len() as u32);
        if t % SAMPLE == 0 {
            samples.push(Sample {
                t,
                load,
                pods: pods.len() as u32,
                capacity,
            });
        }
    }
    Outcome {
        strategy,
        minutes_over: over as f64 / 60.0,
        peak_pods: peak,
        pod_hours: pod_seconds as f64 / 3600.0,
        samples,
    }
}

/// The outcomes as a table.
pub fn table(surge: &Surge, outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — pods ready {} s after creation, {:.0} req/s each; HPA min {}, max {}, target {:.0} %",
        surge.name,
        surge.pods.start.as_secs(),
        surge.pods.rps,
        surge.hpa.min,
        surge.hpa.max,
        surge.hpa.target * 100.0
    );
    let _ = writeln!(
        out,
        "{:<12} {:>18} {:>10} {:>10}",
        "strategy", "minutes over cap.", "peak pods", "pod-hours"
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "{:<12} {:>18.1} {:>10} {:>10.1}",
            o.strategy.name(),
            o.minutes_over,
            o.peak_pods,
            o.pod_hours
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surge(text: &str) -> Surge {
        Surge::from_toml(text).expect("surge")
    }

    #[test]
    fn a_steady_load_within_the_floor_costs_the_floor() {
        // 3 pods (the default minimum), 1,000 req/s for an hour: never over capacity, 3 pods
        // for one hour.
        let s = surge(
            "name = 'flat'\ntraffic = [{ at = '0s', rps = 1000.0 }, { at = '1h', rps = 1000.0 }]",
        );
        let o = simulate(&s, Strategy::Reactive);
        assert_eq!(o.minutes_over, 0.0);
        assert_eq!(o.peak_pods, 3);
        assert!((o.pod_hours - 3.0).abs() < 1e-9, "{}", o.pod_hours);
    }

    #[test]
    fn a_step_beyond_capacity_is_over_until_new_pods_are_ready() {
        // One pod serving 100 req/s, the load steps to 1,000 at 10 min; no pod may start:
        // over capacity from the step to the end.
        let s = surge(
            "name = 'capped'\ntraffic = [{ at = '0s', rps = 50.0 }, { at = '10m', rps = 50.0 }, { at = '10m1s', rps = 1000.0 }, { at = '20m', rps = 1000.0 }]\n\
             [pods]\nrps = 100.0\n[hpa]\nmin = 1\nmax = 1",
        );
        let o = simulate(&s, Strategy::Reactive);
        assert!(
            (o.minutes_over - (20.0 * 60.0 - 601.0) / 60.0).abs() < 1e-9,
            "{}",
            o.minutes_over
        );
        assert_eq!(o.peak_pods, 1);
    }

    #[test]
    fn the_shipped_step_surge_orders_the_strategies() {
        let s = surge(include_str!("../../surges/step-100x.toml"));
        let [reactive, scheduled, predictive] = Strategy::ALL.map(|st| simulate(&s, st));
        // Pods take time: the HPA alone is over capacity after the step.
        assert!(reactive.minutes_over > 0.0, "{reactive:?}");
        // A floor in place before a known moment keeps it under.
        assert_eq!(scheduled.minutes_over, 0.0);
        // The forecast cannot see a step coming: no better than the HPA alone.
        assert!(predictive.minutes_over > 0.0);
        assert!(predictive.minutes_over <= reactive.minutes_over);
    }
}
