//! `surge-load capacity`: steps a constant arrival rate up until a threshold breaks, and
//! reports the highest rate that held (the maximum sustainable throughput) and the knee (the
//! first rate whose p99 is more than twice the p99 at the lowest rate).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::load::report::Report;
use crate::load::runner::{LoadError, RunSettings, run};
use crate::load::scenario::Scenario;
use crate::load::threshold::{Threshold, broken};

/// The search.
#[derive(Debug, Clone)]
pub struct CapacitySettings {
    /// First rate (requests/s).
    pub start: f64,
    /// Added each step.
    pub step: f64,
    /// Highest rate tried.
    pub max: f64,
    /// How long each rate runs.
    pub stage: Duration,
}

/// One rate tried.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    /// Offered rate.
    pub offered: f64,
    /// Achieved rate.
    pub rps: f64,
    /// p50 ms.
    pub p50: f64,
    /// p99 ms.
    pub p99: f64,
    /// Error rate %.
    pub errors: f64,
    /// Thresholds broken at this rate.
    pub broken: Vec<String>,
}

/// The outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    /// Every rate tried, in order.
    pub levels: Vec<Level>,
    /// The highest offered rate at which every threshold held.
    pub max_sustainable: Option<f64>,
    /// The first offered rate whose p99 exceeded twice the first level's.
    pub knee: Option<f64>,
}

fn level(offered: f64, report: &Report, broken: Vec<String>) -> Level {
    Level {
        offered,
        rps: report.rps,
        p50: report.latency.p50,
        p99: report.latency.p99,
        errors: report.error_rate * 100.0,
        broken,
    }
}

/// Runs the search.
pub async fn capacity(
    scenario: &Scenario,
    run_settings: &RunSettings,
    search: &CapacitySettings,
    thresholds: &[Threshold],
) -> Result<Capacity, String> {
    if !(search.start > 0.0 && search.step > 0.0 && search.max >= search.start) {
        return Err("capacity: need 0 < --start <= --max and --step > 0".into());
    }
    let mut levels: Vec<Level> = Vec::new();
    let mut rate = search.start;
    while rate <= search.max + 1e-9 {
        let stage = scenario.at_constant_rate(rate, search.stage);
        let report = run(&stage, run_settings)
            .await
            .map_err(|e: LoadError| e.to_string())?;
        let failed = broken(thresholds, &report)?;
        let stop = !failed.is_empty();
        levels.push(level(rate, &report, failed));
        if stop {
            break;
        }
        rate += search.step;
    }
    let max_sustainable = levels
        .iter()
        .take_while(|l| l.broken.is_empty())
        .last()
        .map(|l| l.offered);
    let base = levels.first().map_or(0.0, |l| l.p99);
    let knee = levels
        .iter()
        .find(|l| base > 0.0 && l.p99 > 2.0 * base)
        .map(|l| l.offered);
    Ok(Capacity {
        levels,
        max_sustainable,
        knee,
    })
}

impl Capacity {
    /// A readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:>10} {:>10} {:>9} {:>9} {:>8}  broken\n",
            "offered/s", "achieved/s", "p50 ms", "p99 ms", "errors%"
        );
        for l in &self.levels {
            let _ = writeln!(
                out,
                "{:>10.0} {:>10.0} {:>9.2} {:>9.2} {:>8.3}  {}",
                l.offered,
                l.rps,
                l.p50,
                l.p99,
                l.errors,
                l.broken.join("; ")
            );
        }
        let _ = writeln!(
            out,
            "max sustainable: {}; knee: {}",
            self.max_sustainable.map_or(
                "none (the first rate already broke a threshold)".into(),
                |r| format!("{r:.0}/s")
            ),
            self.knee
                .map_or("not reached".into(), |r| format!("{r:.0}/s"))
        );
        out
    }
}
