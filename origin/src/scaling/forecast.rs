//! Forecasting the request rate and the replica floor it implies.
//!
//! With at least two full seasons of history (daily seasonality: 1,440 one-minute points),
//! additive Holt-Winters; with less, Holt's linear trend; with under two points, the last
//! value. Smoothing parameters are chosen by a small grid search minimising one-step-ahead
//! squared error on the history. The floor is `⌈peak forecast ÷ capacity per pod⌉`, clamped
//! to the autoscaler's bounds; applied as HPA `minReplicas` it can only raise the replica
//! count, never lower it below the reactive HPA's own decision.

use serde::Serialize;

/// Which model produced a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Additive Holt-Winters (level, trend, season).
    HoltWinters,
    /// Holt's linear trend (level, trend).
    Holt,
    /// The last observation.
    Naive,
}

/// A forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// The model used.
    pub method: Method,
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

/// One-step-ahead SSE and the final state of Holt's method.
fn holt(series: &[f64], alpha: f64, beta: f64) -> (f64, f64, f64) {
    let mut level = series[0];
    let mut trend = series[1] - series[0];
    let mut sse = 0.0;
    for &y in &series[1..] {
        let predicted = level + trend;
        sse += (y - predicted).powi(2);
        let previous = level;
        level = alpha * y + (1.0 - alpha) * (level + trend);
        trend = beta * (level - previous) + (1.0 - beta) * trend;
    }
    (sse, level, trend)
}

/// One-step-ahead SSE and final state (level, trend, seasonal indices) of additive
/// Holt-Winters with period `m`.
fn holt_winters(series: &[f64], m: usize, a: f64, b: f64, g: f64) -> (f64, f64, f64, Vec<f64>) {
    let first: f64 = series[..m].iter().sum::<f64>() / m as f64;
    let second: f64 = series[m..2 * m].iter().sum::<f64>() / m as f64;
    let mut level = first;
    let mut trend = (second - first) / m as f64;
    let mut season: Vec<f64> = series[..m].iter().map(|y| y - first).collect();
    let mut sse = 0.0;
    for (t, &y) in series.iter().enumerate().skip(m) {
        let s = season[t % m];
        let predicted = level + trend + s;
        sse += (y - predicted).powi(2);
        let previous = level;
        level = a * (y - s) + (1.0 - a) * (level + trend);
        trend = b * (level - previous) + (1.0 - b) * trend;
        season[t % m] = g * (y - level) + (1.0 - g) * s;
    }
    (sse, level, trend, season)
}

/// Forecasts `horizon` points after `series` with seasonal period `season`.
pub fn forecast(series: &[f64], season: usize, horizon: usize) -> Forecast {
    let n = series.len();
    if n < 2 {
        return Forecast {
            method: Method::Naive,
            values: vec![series.last().copied().unwrap_or(0.0); horizon],
        };
    }
    if season >= 2 && n >= 2 * season {
        let mut best: Option<(f64, f64, f64, Vec<f64>)> = None;
        for a in GRID {
            for b in [0.01, 0.05, 0.2] {
                for g in GRID {
                    let (sse, level, trend, s) = holt_winters(series, season, a, b, g);
                    if best.as_ref().is_none_or(|(e, ..)| sse < *e) {
                        best = Some((sse, level, trend, s));
                    }
                }
            }
        }
        if let Some((_, level, trend, s)) = best {
            let values = (1..=horizon)
                .map(|h| (level + h as f64 * trend + s[(n + h - 1) % season]).max(0.0))
                .collect();
            return Forecast {
                method: Method::HoltWinters,
                values,
            };
        }
    }
    let mut best: Option<(f64, f64, f64)> = None;
    for a in GRID {
        for b in GRID {
            let fit = holt(series, a, b);
            if best.is_none_or(|(e, ..)| fit.0 < e) {
                best = Some(fit);
            }
        }
    }
    let (_, level, trend) = best.unwrap_or((0.0, series[n - 1], 0.0));
    Forecast {
        method: Method::Holt,
        values: (1..=horizon)
            .map(|h| (level + h as f64 * trend).max(0.0))
            .collect(),
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

    #[test]
    fn a_trend_is_extrapolated() {
        let series: Vec<f64> = (0..40).map(|t| 10.0 + 2.0 * f64::from(t)).collect();
        let f = forecast(&series, 1440, 5);
        assert_eq!(f.method, Method::Holt);
        for (h, v) in f.values.iter().enumerate() {
            let truth = 10.0 + 2.0 * (40.0 + h as f64);
            assert!((v - truth).abs() < 0.5, "h={h}: {v} vs {truth}");
        }
    }

    #[test]
    fn a_daily_shape_is_learned() {
        // Ten "days" of 24 points: a daily wave on a slow rise.
        let season = 24;
        let value = |t: usize| {
            let phase = 2.0 * std::f64::consts::PI * (t % season) as f64 / season as f64;
            1000.0 + 400.0 * phase.sin() + 2.0 * t as f64
        };
        let series: Vec<f64> = (0..season * 10).map(value).collect();
        let f = forecast(&series, season, season);
        assert_eq!(f.method, Method::HoltWinters);
        for (h, v) in f.values.iter().enumerate() {
            let truth = value(series.len() + h);
            assert!((v - truth).abs() / truth < 0.03, "h={h}: {v} vs {truth}");
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
