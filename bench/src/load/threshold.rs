//! Pass/fail criteria, k6 style: `p99<1000ms`, `p95<=500ms`, `errors<0.1%`, `rps>=100`,
//! optionally for one step: `p99{step=cast_vote}<800ms`. A broken threshold makes the run
//! exit non-zero.

use std::fmt;

use crate::load::report::{Latency, Report};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A latency percentile or the maximum (ms).
    P50,
    /// 95th.
    P95,
    /// 99th.
    P99,
    /// 99.9th.
    P999,
    /// Slowest.
    Max,
    /// Error rate (%).
    Errors,
    /// Throughput (requests/s).
    Rps,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// One criterion.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written.
    pub text: String,
    /// What.
    pub metric: Metric,
    /// For one step, or all.
    pub step: Option<String>,
    /// How.
    pub op: Op,
    /// The bound (ms, %, or requests/s).
    pub bound: f64,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const HELP: &str =
    "write it like p99<1000ms, p95<=500ms, errors<0.1%, rps>=100 or p99{step=cast_vote}<800ms";

impl Threshold {
    /// Parses one threshold.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("threshold {text:?}: {why}; {HELP}");
        let t = text.trim();
        let at = t.find(['<', '>']).ok_or_else(|| bad("no comparison"))?;
        let (left, right) = t.split_at(at);
        let (op, value) = if let Some(v) = right.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = right.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = right.strip_prefix('<') {
            (Op::Lt, v)
        } else if let Some(v) = right.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            return Err(bad("no comparison"));
        };
        let (name, step) = match left.split_once('{') {
            Some((name, rest)) => {
                let step = rest
                    .strip_suffix('}')
                    .and_then(|s| s.strip_prefix("step="))
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("the filter must be {step=<name>}"))?;
                (name, Some(step.to_string()))
            }
            None => (left, None),
        };
        let metric = match name.trim() {
            "p50" => Metric::P50,
            "p95" => Metric::P95,
            "p99" => Metric::P99,
            "p99.9" | "p999" => Metric::P999,
            "max" => Metric::Max,
            "errors" => Metric::Errors,
            "rps" => Metric::Rps,
            other => return Err(bad(&format!("unknown metric {other:?}"))),
        };
        let value = value.trim();
        let (number, unit) = match metric {
            Metric::Errors => (
                value
                    .strip_suffix('%')
                    .ok_or_else(|| bad("an error rate ends in %"))?,
                1.0,
            ),
            Metric::Rps => (value, 1.0),
            _ => {
                if let Some(v) = value.strip_suffix("ms") {
                    (v, 1.0)
                } else if let Some(v) = value.strip_suffix('s') {
                    (v, 1000.0)
                } else {
                    return Err(bad("a latency needs a unit, ms or s"));
                }
            }
        };
        let bound = number
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|b| b.is_finite() && *b >= 0.0)
            .ok_or_else(|| bad("the bound is not a number"))?
            * unit;
        Ok(Self {
            text: t.to_string(),
            metric,
            step,
            op,
            bound,
        })
    }

    /// The measured value, or an error naming an unknown step.
    pub fn measure(&self, report: &Report) -> Result<f64, String> {
        let (latency, errors, rps): (&Latency, f64, f64) = match &self.step {
            None => (&report.latency, report.error_rate, report.rps),
            Some(name) => {
                let step = report
                    .steps
                    .iter()
                    .find(|s| &s.name == name)
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            report.steps.iter().map(|s| s.name.as_str()).collect();
                        format!(
                            "threshold {:?}: no step {name:?} in this run (steps: {})",
                            self.text,
                            known.join(", ")
                        )
                    })?;
                let rate = if step.requests == 0 {
                    0.0
                } else {
                    step.errors as f64 / step.requests as f64
                };
                (
                    &step.latency,
                    rate,
                    step.requests as f64 / report.duration_s.max(1e-9),
                )
            }
        };
        Ok(match self.metric {
            Metric::P50 => latency.p50,
            Metric::P95 => latency.p95,
            Metric::P99 => latency.p99,
            Metric::P999 => latency.p999,
            Metric::Max => latency.max,
            Metric::Errors => errors * 100.0,
            Metric::Rps => rps,
        })
    }

    /// Whether `value` satisfies the threshold.
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            Op::Lt => value < self.bound,
            Op::Le => value <= self.bound,
            Op::Gt => value > self.bound,
            Op::Ge => value >= self.bound,
        }
    }
}

/// The thresholds `report` breaks, as readable lines.
pub fn broken(thresholds: &[Threshold], report: &Report) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for t in thresholds {
        let value = t.measure(report)?;
        if !t.holds(value) {
            out.push(format!("{t}: measured {value:.3}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::StepReport;

    #[test]
    fn thresholds_parse_and_judge() {
        let t = Threshold::parse("p99<1000ms").expect("valid");
        assert_eq!((t.metric, t.op, t.bound), (Metric::P99, Op::Lt, 1000.0));
        assert_eq!(Threshold::parse("p95<=0.5s").expect("valid").bound, 500.0);
        let e = Threshold::parse("errors<0.1%").expect("valid");
        assert_eq!((e.metric, e.bound), (Metric::Errors, 0.1));
        let s = Threshold::parse("p99{step=cast_vote}<800ms").expect("valid");
        assert_eq!(s.step.as_deref(), Some("cast_vote"));
        for bad in [
            "p99",
            "p98<1ms",
            "p99<1000",
            "errors<0.1",
            "p99{cast_vote}<1ms",
            "rps>lots",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad}");
        }
        let report = Report {
            duration_s: 10.0,
            requests: 1000,
            errors: 2,
            error_rate: 0.002,
            rps: 100.0,
            latency: Latency {
                p99: 900.0,
                ..Latency::default()
            },
            steps: vec![StepReport {
                name: "ballot".into(),
                requests: 1000,
                ..StepReport::default()
            }],
            ..Report::default()
        };
        let ts: Vec<Threshold> = ["p99<1000ms", "errors<0.1%", "rps>=100"]
            .iter()
            .map(|t| Threshold::parse(t).expect("valid"))
            .collect();
        let broken_ones = broken(&ts, &report).expect("known steps");
        assert_eq!(broken_ones.len(), 1);
        assert!(broken_ones[0].starts_with("errors<0.1%"));
        let unknown = Threshold::parse("p99{step=nope}<1ms").expect("valid");
        assert!(
            broken(&[unknown], &report)
                .unwrap_err()
                .contains("no step \"nope\"")
        );
    }
}
