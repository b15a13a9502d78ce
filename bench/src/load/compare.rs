//! `surge-load compare`: the current report against a baseline, metric by metric, with a
//! tolerance; a regression beyond it fails.

use std::fmt::Write as _;

use crate::load::report::Report;

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What (`rps`, `p99 ms`, `ballot p99 ms`, …).
    pub metric: String,
    /// Baseline value.
    pub baseline: f64,
    /// Current value.
    pub current: f64,
    /// Change in % (positive = worse).
    pub worse_by: f64,
    /// Whether the change is beyond the tolerance.
    pub regression: bool,
}

fn row(metric: String, baseline: f64, current: f64, higher_is_better: bool, tolerance: f64) -> Row {
    let change = if baseline.abs() < 1e-12 {
        if current.abs() < 1e-12 { 0.0 } else { 100.0 }
    } else {
        (current - baseline) / baseline * 100.0
    };
    let worse_by = if higher_is_better { -change } else { change };
    Row {
        metric,
        baseline,
        current,
        worse_by,
        regression: worse_by > tolerance,
    }
}

/// Compares `current` with `baseline`; `tolerance` in %.
pub fn compare(baseline: &Report, current: &Report, tolerance: f64) -> Vec<Row> {
    let mut rows = vec![
        row("rps".into(), baseline.rps, current.rps, true, tolerance),
        row(
            "p50 ms".into(),
            baseline.latency.p50,
            current.latency.p50,
            false,
            tolerance,
        ),
        row(
            "p95 ms".into(),
            baseline.latency.p95,
            current.latency.p95,
            false,
            tolerance,
        ),
        row(
            "p99 ms".into(),
            baseline.latency.p99,
            current.latency.p99,
            false,
            tolerance,
        ),
    ];
    // Error rates are compared in absolute percentage points: 0 → 0.01 % is not "infinitely
    // worse".
    let (b, c) = (baseline.error_rate * 100.0, current.error_rate * 100.0);
    rows.push(Row {
        metric: "errors %".into(),
        baseline: b,
        current: c,
        worse_by: c - b,
        regression: c - b > tolerance / 100.0,
    });
    for step in &current.steps {
        if let Some(old) = baseline.steps.iter().find(|s| s.name == step.name) {
            rows.push(row(
                format!("{} p99 ms", step.name),
                old.latency.p99,
                step.latency.p99,
                false,
                tolerance,
            ));
        }
    }
    rows
}

/// The comparison as a table.
pub fn table(rows: &[Row], tolerance: f64) -> String {
    let mut out = format!(
        "{:<22} {:>12} {:>12} {:>9}  (tolerance {tolerance}%)\n",
        "metric", "baseline", "current", "worse by"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<22} {:>12.2} {:>12.2} {:>8.1}%  {}",
            r.metric,
            r.baseline,
            r.current,
            r.worse_by,
            if r.regression { "REGRESSION" } else { "ok" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::Latency;

    #[test]
    fn regressions_beyond_the_tolerance_are_flagged() {
        let base = Report {
            rps: 1000.0,
            latency: Latency {
                p50: 2.0,
                p95: 5.0,
                p99: 10.0,
                ..Latency::default()
            },
            ..Report::default()
        };
        let mut now = base.clone();
        now.rps = 950.0; // 5 % worse: within 10 %
        now.latency.p99 = 12.0; // 20 % worse
        let rows = compare(&base, &now, 10.0);
        let flagged: Vec<&str> = rows
            .iter()
            .filter(|r| r.regression)
            .map(|r| r.metric.as_str())
            .collect();
        assert_eq!(flagged, vec!["p99 ms"]);
        assert!(table(&rows, 10.0).contains("REGRESSION"));
    }
}
