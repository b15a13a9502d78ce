//! Measurements and the run report: latency histograms (HdrHistogram, µs, measured from each
//! request's intended start), status and cache-status counts per step, a per-second timeline,
//! and the renderings (JSON, a table, an HTML page with inline SVG charts).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One finished request.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Step index, or `None` for the login a step needed first.
    pub step: Option<usize>,
    /// Seconds from the run's start to the intended start.
    pub at: f64,
    /// From intended start to the end of the response (µs).
    pub latency_us: u64,
    /// HTTP status; `None` when no response came (connection error, timeout).
    pub status: Option<u16>,
    /// Whether the step failed (no answer, or a status the step does not expect).
    pub error: bool,
    /// `x-surge-cache` of the response.
    pub cache: Option<String>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One step's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step name.
    pub name: String,
    /// Requests finished.
    pub requests: u64,
    /// Requests that failed (no response, or 5xx, or a 4xx other than the expected ones).
    pub errors: u64,
    /// Latency.
    pub latency: Latency,
    /// Responses by status (`"200"`, `"503"`, `"error"` for no response).
    pub statuses: BTreeMap<String, u64>,
    /// Responses by `x-surge-cache` (`HIT`, `MISS`, …; `none` when absent).
    pub cache: BTreeMap<String, u64>,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds from the start.
    pub t: u64,
    /// Requests finished whose intended start fell in this second.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median latency (ms).
    pub p50: f64,
    /// 99th percentile (ms).
    pub p99: f64,
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Target base URL.
    pub target: String,
    /// When the run started (RFC 3339).
    pub started: String,
    /// Wall time (s).
    pub duration_s: f64,
    /// Requests finished.
    pub requests: u64,
    /// Requests not sent because `max_in_flight` was reached (open model).
    pub dropped: u64,
    /// Failed requests.
    pub errors: u64,
    /// `(errors + dropped) / (requests + dropped)`: dropped arrivals are failures.
    pub error_rate: f64,
    /// Finished requests per second.
    pub rps: f64,
    /// All steps together.
    pub latency: Latency,
    /// Per step (the logins that `auth` steps need come as `login`).
    pub steps: Vec<StepReport>,
    /// Per second.
    pub timeline: Vec<Second>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        p50: ms(h.value_at_quantile(0.50)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

/// Whether a response counts as an error: none at all, a 5xx, or a 429 (the platform shed
/// it). Other 4xx are the workload's own answers (a repeated vote is a 409 by design).
pub fn is_error(status: Option<u16>) -> bool {
    status.is_none_or(|s| s >= 500 || s == 429)
}

/// Gathers samples into a report.
pub struct Recorder {
    names: Vec<String>,
    all: Histogram<u64>,
    steps: Vec<(Histogram<u64>, StepReport)>,
    seconds: Vec<(Histogram<u64>, Second)>,
    dropped: u64,
}

impl Recorder {
    /// A recorder for steps named `names` (plus `login`, for the logins steps need first,
    /// unless a step has that name).
    pub fn new(names: &[String]) -> Self {
        let mut all_names: Vec<String> = names.to_vec();
        if !all_names.iter().any(|n| n == "login") {
            all_names.push("login".into());
        }
        Self {
            steps: all_names
                .iter()
                .map(|n| {
                    (
                        histogram(),
                        StepReport {
                            name: n.clone(),
                            ..StepReport::default()
                        },
                    )
                })
                .collect(),
            names: all_names,
            all: histogram(),
            seconds: Vec::new(),
            dropped: 0,
        }
    }

    /// Counts an arrival that could not be sent.
    pub fn drop_one(&mut self) {
        self.dropped += 1;
    }

    /// Requests, errors, p50 and p99 (ms) so far, for live progress.
    pub fn so_far(&self) -> (u64, u64, f64, f64) {
        let (n, e) = self
            .steps
            .iter()
            .fold((0, 0), |(n, e), (_, r)| (n + r.requests, e + r.errors));
        let l = latency(&self.all);
        (n, e, l.p50, l.p99)
    }

    /// Adds one sample.
    pub fn record(&mut self, s: &Sample) {
        let index = s.step.unwrap_or_else(|| {
            self.names
                .iter()
                .position(|n| n == "login")
                .unwrap_or(self.names.len() - 1)
        });
        let error = s.error;
        let value = s.latency_us.max(1);
        self.all.saturating_record(value);
        if let Some((h, r)) = self.steps.get_mut(index) {
            h.saturating_record(value);
            r.requests += 1;
            r.errors += u64::from(error);
            let status = s
                .status
                .map_or_else(|| "error".to_string(), |c| c.to_string());
            *r.statuses.entry(status).or_default() += 1;
            let cache = s.cache.clone().unwrap_or_else(|| "none".into());
            *r.cache.entry(cache).or_default() += 1;
        }
        let second = s.at.max(0.0) as usize;
        while self.seconds.len() <= second {
            let t = self.seconds.len() as u64;
            self.seconds.push((
                histogram(),
                Second {
                    t,
                    ..Second::default()
                },
            ));
        }
        let (h, sec) = &mut self.seconds[second];
        h.saturating_record(value);
        sec.requests += 1;
        sec.errors += u64::from(error);
    }

    /// The report of everything recorded.
    pub fn finish(self, scenario: &str, target: &str, started: &str, duration_s: f64) -> Report {
        let steps: Vec<StepReport> = self
            .steps
            .into_iter()
            .filter(|(_, r)| r.requests > 0)
            .map(|(h, mut r)| {
                r.latency = latency(&h);
                r
            })
            .collect();
        let requests: u64 = steps.iter().map(|s| s.requests).sum();
        let errors: u64 = steps.iter().map(|s| s.errors).sum();
        Report {
            scenario: scenario.into(),
            target: target.into(),
            started: started.into(),
            duration_s,
            requests,
            dropped: self.dropped,
            errors,
            // Arrivals that could not be sent count as failures, as k6 counts
            // dropped_iterations.
            error_rate: if requests + self.dropped == 0 {
                0.0
            } else {
                (errors + self.dropped) as f64 / (requests + self.dropped) as f64
            },
            rps: if duration_s > 0.0 {
                requests as f64 / duration_s
            } else {
                0.0
            },
            latency: latency(&self.all),
            steps,
            timeline: self
                .seconds
                .into_iter()
                .map(|(h, mut s)| {
                    let l = latency(&h);
                    s.p50 = l.p50;
                    s.p99 = l.p99;
                    s
                })
                .collect(),
        }
    }
}

impl Report {
    /// The readable table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} → {}: {} requests in {:.1} s ({:.0}/s), {} errors, {} dropped ({:.3} % failed)",
            self.scenario,
            self.target,
            self.requests,
            self.duration_s,
            self.rps,
            self.errors,
            self.dropped,
            self.error_rate * 100.0
        );
        let _ = writeln!(
            out,
            "{:<16} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}  statuses / cache",
            "step", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        let row = |out: &mut String, name: &str, n: u64, e: u64, l: &Latency, extra: String| {
            let _ = writeln!(
                out,
                "{name:<16} {n:>8} {e:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {extra}",
                l.p50, l.p95, l.p99, l.p999, l.max
            );
        };
        for s in &self.steps {
            let statuses: Vec<String> =
                s.statuses.iter().map(|(k, v)| format!("{k}×{v}")).collect();
            let cache: Vec<String> = s.cache.iter().map(|(k, v)| format!("{k}×{v}")).collect();
            row(
                &mut out,
                &s.name,
                s.requests,
                s.errors,
                &s.latency,
                format!("{} / {}", statuses.join(" "), cache.join(" ")),
            );
        }
        row(
            &mut out,
            "all",
            self.requests,
            self.errors,
            &self.latency,
            String::new(),
        );
        out
    }

    /// A self-contained HTML page: the summary table and charts of latency and throughput over
    /// time.
    pub fn html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let p99: Vec<f64> = self.timeline.iter().map(|s| s.p99).collect();
        let p50: Vec<f64> = self.timeline.iter().map(|s| s.p50).collect();
        let rps: Vec<f64> = self.timeline.iter().map(|s| s.requests as f64).collect();
        let errors: Vec<f64> = self.timeline.iter().map(|s| s.errors as f64).collect();
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <style>body{{font-family:system-ui,sans-serif;margin:2rem}}pre{{background:#f4f4f4;padding:1rem;overflow:auto}}\
             svg{{background:#fff;border:1px solid #ccc;margin:.5rem 0}}</style></head><body>\
             <h1>{title}</h1><pre>{table}</pre>\
             <h2>Latency over time (ms; p50 blue, p99 red)</h2>{lat}\
             <h2>Throughput (requests/s; errors red)</h2>{thr}</body></html>\n",
            title = esc(&format!("surge-load: {}", self.scenario)),
            table = esc(&self.table()),
            lat = chart(&[(&p50, "#005ea2"), (&p99, "#d83933")]),
            thr = chart(&[(&rps, "#005ea2"), (&errors, "#d83933")]),
        )
    }
}

/// An SVG line chart of series sharing one y axis.
fn chart(series: &[(&[f64], &str)]) -> String {
    let (w, h, pad) = (800.0, 240.0, 40.0);
    let n = series
        .iter()
        .map(|(s, _)| s.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let top = series
        .iter()
        .flat_map(|(s, _)| s.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
         <text x=\"4\" y=\"14\" font-size=\"11\">{top:.1}</text><text x=\"4\" y=\"{}\" font-size=\"11\">0</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\">{} s</text>",
        h - pad + 4.0,
        w - pad,
        h - 8.0,
        n - 1
    );
    for (values, colour) in series {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = pad + (w - 2.0 * pad) * i as f64 / (n - 1) as f64;
                let y = h - pad - (h - 2.0 * pad) * v / top;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(step: usize, at: f64, ms: u64, status: Option<u16>, cache: &str) -> Sample {
        Sample {
            step: Some(step),
            at,
            latency_us: ms * 1000,
            status,
            error: is_error(status),
            cache: Some(cache.into()),
        }
    }

    #[test]
    fn the_report_counts_statuses_errors_and_percentiles() {
        let mut r = Recorder::new(&["ballot".into(), "vote".into()]);
        for i in 0..100u64 {
            r.record(&sample(
                0,
                i as f64 / 50.0,
                i + 1,
                Some(200),
                if i < 95 { "HIT" } else { "MISS" },
            ));
        }
        r.record(&sample(1, 0.5, 5, Some(201), "BYPASS"));
        r.record(&sample(1, 0.6, 5, Some(409), "BYPASS"));
        r.record(&sample(1, 1.5, 5000, None, "BYPASS"));
        r.drop_one();
        let report = r.finish("t", "http://x", "now", 2.0);
        assert_eq!(
            (report.requests, report.errors, report.dropped),
            (103, 1, 1)
        );
        let ballot = &report.steps[0];
        assert_eq!(ballot.cache["HIT"], 95);
        assert!(
            (ballot.latency.p50 - 50.0).abs() < 0.5,
            "{:?}",
            ballot.latency
        );
        assert!(
            (ballot.latency.p99 - 99.0).abs() < 0.5,
            "{:?}",
            ballot.latency
        );
        let vote = &report.steps[1];
        assert_eq!(vote.statuses["409"], 1, "a 409 is an answer, not an error");
        assert_eq!(vote.statuses["error"], 1);
        assert_eq!(vote.errors, 1);
        assert!(
            (report.error_rate - 2.0 / 104.0).abs() < 1e-9,
            "the dropped arrival counts as a failure: {}",
            report.error_rate
        );
        assert_eq!(report.timeline.len(), 2);
        assert_eq!(report.timeline[0].requests, 52);
        assert!(report.table().contains("ballot"));
        let html = report.html();
        assert!(html.contains("<svg") && html.contains("polyline"));
    }
}
