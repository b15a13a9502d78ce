//! Forecasting the request rate and the replica floor it implies.
//!
//! With at least two full seasons of history (daily seasonality: 1,440 one-minute points),
//! additive Holt-Winters; with less, Holt's linear trend; with under two points, the last
//! value. The trend is damped (Gardner and McKenzie): `h` steps ahead it adds
//! `(φ + φ² + … + φʰ) × trend`, which levels off at `φ ÷ (1 − φ) × trend` however far ahead
//! the forecast looks, where an undamped trend would be extrapolated `h` times — a climbing
//! morning taken as a climb that never ends. Smoothing parameters and φ (0.8 to 0.98, the
//! range Hyndman and Athanasopoulos recommend) are chosen by a small grid search minimising
//! one-step-ahead squared error on the history. The floor is `⌈peak forecast ÷ capacity per
//! pod⌉`, clamped to the autoscaler's bounds; applied as HPA `minReplicas` it can only raise
//! the replica count, never lower it below the reactive HPA's own decision.

use serde::Serialize;

/// Which model produced a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Additive Holt-Winters (level, damped trend, season).
    HoltWinters,
    /// Holt's linear trend, damped (level, trend).
    Holt,
    /// The last observation.
    Naive,
}

/// A forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// The model used.
    pub method: Method,
    /// The damping factor chosen (1 for the naive forecast).
    pub damping: f64,
    /// Predicted values for the next `horizon` points.
    pub values: Vec<f64>,
}

impl Forecast {
    /// The highest predicted value (0 for an empty forecast).
    pub fn peak(&self) -> f64 {
        self.values.iter().copied().fold(0.0, f64::max)
    }
}

const GRID: [f64; 5] = [0.05, 0.2, 0.4, 0.6, 0.8];
/// Damping factors tried.
pub const DAMPING: [f64; 4] = [0.8, 0.9, 0.95, 0.98];

/// A fitted model's one-step-ahead SSE and final state.
struct Fit {
    sse: f64,
    level: f64,
    trend: f64,
    phi: f64,
    season: Vec<f64>,
}

impl Fit {
    /// `horizon` values ahead of a series of `n` points (season indices continue from `n`).
    fn ahead(&self, n: usize, horizon: usize) -> Vec<f64> {
        let m = self.season.len();
        let mut damped = 0.0;
        let mut power = 1.0;
        (1..=horizon)
            .map(|h| {
                power *= self.phi;
                damped += power;
                let s = if m > 0 {
                    self.season[(n + h - 1) % m]
                } else {
                    0.0
                };
                (self.level + damped * self.trend + s).max(0.0)
            })
            .collect()
    }
}

/// Damped Holt's method, starting from the state the first two points give.
fn holt(series: &[f64], alpha: f64, beta: f64, phi: f64) -> Fit {
    let mut level = series[1];
    let mut trend = series[1] - series[0];
    let mut sse = 0.0;
    for &y in &series[2..] {
        sse += (y - (level + phi * trend)).powi(2);
        let previous = level;
        level = alpha * y + (1.0 - alpha) * (level + phi * trend);
        trend = beta * (level - previous) + (1.0 - beta) * phi * trend;
    }
    Fit {
        sse,
        level,
        trend,
        phi,
        season: Vec::new(),
    }
}

/// Additive Holt-Winters with a damped trend and period `m`.
fn holt_winters(series: &[f64], m: usize, a: f64, b: f64, g: f64, phi: f64) -> Fit {
    let first: f64 = series[..m].iter().sum::<f64>() / m as f64;
    let second: f64 = series[m..2 * m].iter().sum::<f64>() / m as f64;
    let mut level = first;
    let mut trend = (second - first) / m as f64;
    let mut season: Vec<f64> = series[..m].iter().map(|y| y - first).collect();
    let mut sse = 0.0;
    for (t, &y) in series.iter().enumerate().skip(m) {
        let s = season[t % m];
        sse += (y - (level + phi * trend + s)).powi(2);
        let previous = level;
        level = a * (y - s) + (1.0 - a) * (level + phi * trend);
        trend = b * (level - previous) + (1.0 - b) * phi * trend;
        season[t % m] = g * (y - level) + (1.0 - g) * s;
    }
    Fit {
        sse,
        level,
        trend,
        phi,
        season,
    }
}

fn better(best: Option<Fit>, fit: Fit) -> Option<Fit> {
    match best {
        Some(b) if b.sse <= fit.sse => Some(b),
        _ => Some(fit),
    }
}

/// Forecasts `horizon` points after `series` with seasonal period `season`.
pub fn forecast(series: &[f64], season: usize, horizon: usize) -> Forecast {
    let n = series.len();
    if n < 2 {
        return Forecast {
            method: Method::Naive,
            damping: 1.0,
            values: vec![series.last().copied().unwrap_or(0.0); horizon],
        };
    }
    let (method, best) = if season >= 2 && n >= 2 * season {
        let mut best = None;
        for phi in DAMPING {
            for a in GRID {
                for b in [0.01, 0.05, 0.2] {
                    for g in GRID {
                        best = better(best, holt_winters(series, season, a, b, g, phi));
                    }
                }
            }
        }
        (Method::HoltWinters, best)
    } else {
        let mut best = None;
        for phi in DAMPING {
            for a in GRID {
                for b in GRID {
                    best = better(best, holt(series, a, b, phi));
                }
            }
        }
        (Method::Holt, best)
    };
    match best {
        Some(fit) => Forecast {
            method,
            damping: fit.phi,
            values: fit.ahead(n, horizon),
        },
        None => Forecast {
            method: Method::Naive,
            damping: 1.0,
            values: vec![series[n - 1]; horizon],
        },
    }
}

/// The replica floor for a predicted peak of `peak` requests/s with `per_pod` requests/s per
/// pod, within the autoscaler's `min..=max`.
pub fn replica_floor(peak: f64, per_pod: f64, min: u32, max: u32) -> u32 {
    let wanted = if per_pod > 0.0 && peak.is_finite() && peak > 0.0 {
        (peak / per_pod).ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    };
    wanted.clamp(min, max.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_series_forecasts_itself() {
        let f = forecast(&[50.0; 30], 1440, 10);
        assert_eq!(f.method, Method::Holt);
        assert!(f.values.iter().all(|v| (v - 50.0).abs() < 1e-6), "{f:?}");
    }

    /// A series whose increments shrink by `phi` each step: `y(t) = y(t−1) + b·φᵗ`. Damped
    /// Holt fits it exactly, so the forecast is its own continuation, known in closed form.
    fn damped_series(phi: f64, b: f64, n: usize) -> Vec<f64> {
        let mut y = vec![100.0];
        for t in 1..n {
            y.push(y[t - 1] + b * phi.powi(t as i32));
        }
        y
    }

    #[test]
    fn a_damped_climb_is_continued_exactly() {
        let (phi, b, n) = (0.9, 50.0, 40);
        let series = damped_series(phi, b, n);
        let f = forecast(&series, 1440, 30);
        assert_eq!(f.method, Method::Holt);
        assert_eq!(f.damping, phi);
        let mut truth = series[n - 1];
        for (h, v) in f.values.iter().enumerate() {
            truth += b * phi.powi((n + h) as i32);
            assert!((v - truth).abs() < 1e-6, "h={h}: {v} vs {truth}");
        }
    }

    #[test]
    fn a_straight_climb_levels_off_instead_of_running_away() {
        // 2 more per minute for 40 minutes, forecast a day ahead: undamped, the last point
        // would be 88 + 2 × 1,440 = 2,968. Damped with the largest φ, the trend adds at most
        // 2 × 0.98 ÷ 0.02 = 98.
        let series: Vec<f64> = (0..40).map(|t| 10.0 + 2.0 * f64::from(t)).collect();
        let f = forecast(&series, 1440, 1440);
        assert_eq!(f.method, Method::Holt);
        let last = series[39];
        let bound = last + 2.0 * 0.98 / 0.02 + 1.0;
        assert!(f.peak() <= bound, "{} > {bound}", f.peak());
        // The next few minutes still follow the climb.
        assert!(
            f.values[0] > last && f.values[4] > f.values[0] + 5.0,
            "{:?}",
            &f.values[..5]
        );
    }

    #[test]
    fn a_daily_shape_is_learned() {
        // Ten "days" of 24 points: a daily wave (the trend's handling is the damped tests'
        // subject; a damped trend deliberately undershoots a rise a day ahead).
        let season = 24;
        let value = |t: usize| {
            let phase = 2.0 * std::f64::consts::PI * (t % season) as f64 / season as f64;
            1000.0 + 400.0 * phase.sin()
        };
        let series: Vec<f64> = (0..season * 10).map(value).collect();
        let f = forecast(&series, season, season);
        assert_eq!(f.method, Method::HoltWinters);
        for (h, v) in f.values.iter().enumerate() {
            let truth = value(series.len() + h);
            assert!((v - truth).abs() / truth < 0.01, "h={h}: {v} vs {truth}");
        }
        // The peak of the next day is found where it truly is.
        let peak_at = f
            .values
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        assert_eq!(peak_at, Some(6));
    }

    #[test]
    fn short_or_empty_history_still_answers() {
        assert_eq!(forecast(&[], 1440, 3).values, vec![0.0; 3]);
        assert_eq!(forecast(&[7.0], 1440, 2).values, vec![7.0; 2]);
    }

    #[test]
    fn the_floor_is_clamped_to_the_autoscaler_bounds() {
        assert_eq!(replica_floor(10_000.0, 1_000.0, 2, 50), 10);
        assert_eq!(replica_floor(10_001.0, 1_000.0, 2, 50), 11);
        assert_eq!(replica_floor(100.0, 1_000.0, 2, 50), 2);
        assert_eq!(replica_floor(1e9, 1_000.0, 2, 50), 50);
        assert_eq!(replica_floor(f64::NAN, 1_000.0, 3, 50), 3);
    }
}
