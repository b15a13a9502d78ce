//! Surge files (TOML): a traffic curve to replay, the days of history before it, the
//! scheduled events an operator would enter, the pods and the autoscaler. Every field is
//! validated; errors name it.

use std::time::Duration;

use serde::Deserialize;

use super::hpa::{HpaSpec, Policy, PolicyKind, Rules, Select};
use crate::load::scenario::{ScenarioError, from_toml_text};

fn error(field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        field: field.into(),
        message: message.into(),
    }
}

mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        surge_shared::duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A point of the curve: `rps` requests/s at `at` after the start; linear in between.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// Offset from the start (`"19h55m"`).
    #[serde(with = "duration_text")]
    pub at: Duration,
    /// Requests/s there.
    pub rps: f64,
}

/// Traffic before the replay, for the forecast.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Days of history.
    pub days: u32,
    /// A flat rate, or …
    #[serde(default)]
    pub rps: Option<f64>,
    /// … the curve itself scaled by this (an ordinary day with the same rhythm).
    #[serde(default)]
    pub scale: Option<f64>,
}

/// A scheduled scaling event (`POST /performance/scaling/event`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Its name.
    pub name: String,
    /// Start, from the replay's start.
    #[serde(with = "duration_text")]
    pub start: Duration,
    /// End.
    #[serde(with = "duration_text")]
    pub end: Duration,
    /// The floor while it runs.
    pub replicas: u32,
}

/// The pods.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pods {
    /// From creation to ready (scheduling, image, start, readiness probe).
    #[serde(with = "duration_text", default = "pod_start")]
    pub start: Duration,
    /// Requests/s one pod serves with p99 under 1 s (`surge-load capacity`).
    #[serde(default = "pod_rps")]
    pub rps: f64,
    /// CPU request and limit (cores): a pod at capacity uses its limit, and utilisation is
    /// measured against the request, so it saturates at limit ÷ request.
    #[serde(default = "request_cores")]
    pub request_cores: f64,
    /// See `request_cores`.
    #[serde(default = "limit_cores")]
    pub limit_cores: f64,
}

fn pod_start() -> Duration {
    Duration::from_secs(30)
}
fn pod_rps() -> f64 {
    9000.0
}
fn request_cores() -> f64 {
    0.5
}
fn limit_cores() -> f64 {
    2.0
}

/// A policy as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    #[serde(rename = "type")]
    kind: String,
    value: u32,
    #[serde(with = "duration_text")]
    period: Duration,
}

/// One direction's rules as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesSpec {
    #[serde(with = "duration_text")]
    stabilization: Duration,
    select: String,
    policies: Vec<PolicySpec>,
}

/// The autoscaler as written; defaults are the api-gateway HPA in `infrastructure/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct HpaText {
    #[serde(default = "hpa_min")]
    min: u32,
    #[serde(default = "hpa_max")]
    max: u32,
    #[serde(default = "hpa_target")]
    target: f64,
    #[serde(default = "hpa_tolerance")]
    tolerance: f64,
    #[serde(with = "duration_text", default = "fifteen")]
    sync: Duration,
    #[serde(with = "duration_text", default = "fifteen")]
    metrics_lag: Duration,
    #[serde(default = "up_rules")]
    up: RulesSpec,
    #[serde(default = "down_rules")]
    down: RulesSpec,
}

fn hpa_min() -> u32 {
    3
}
fn hpa_max() -> u32 {
    200
}
fn hpa_target() -> f64 {
    0.6
}
fn hpa_tolerance() -> f64 {
    0.1
}
fn fifteen() -> Duration {
    Duration::from_secs(15)
}
fn up_rules() -> RulesSpec {
    RulesSpec {
        stabilization: Duration::ZERO,
        select: "Max".into(),
        policies: vec![
            PolicySpec {
                kind: "Percent".into(),
                value: 100,
                period: fifteen(),
            },
            PolicySpec {
                kind: "Pods".into(),
                value: 10,
                period: fifteen(),
            },
        ],
    }
}
fn down_rules() -> RulesSpec {
    RulesSpec {
        stabilization: Duration::from_secs(600),
        select: "Min".into(),
        policies: vec![PolicySpec {
            kind: "Percent".into(),
            value: 10,
            period: Duration::from_secs(60),
        }],
    }
}
fn default_hpa() -> HpaText {
    HpaText {
        min: hpa_min(),
        max: hpa_max(),
        target: hpa_target(),
        tolerance: hpa_tolerance(),
        sync: fifteen(),
        metrics_lag: fifteen(),
        up: up_rules(),
        down: down_rules(),
    }
}

/// The forecast's settings (the origin's `SURGE_LOOK_AHEAD_MINUTES`, `SURGE_SCALING_TICK`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predictive {
    /// Minutes ahead.
    #[serde(default = "look_ahead")]
    pub look_ahead_minutes: usize,
    /// The controller's tick.
    #[serde(with = "duration_text", default = "fifteen")]
    pub tick: Duration,
}

fn look_ahead() -> usize {
    15
}
fn default_predictive() -> Predictive {
    Predictive {
        look_ahead_minutes: look_ahead(),
        tick: fifteen(),
    }
}
fn default_pods() -> Pods {
    Pods {
        start: pod_start(),
        rps: pod_rps(),
        request_cores: request_cores(),
        limit_cores: limit_cores(),
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SurgeText {
    name: String,
    #[serde(default)]
    description: String,
    traffic: Vec<Point>,
    #[serde(default)]
    history: Option<History>,
    #[serde(default)]
    events: Vec<Event>,
    #[serde(default = "default_pods")]
    pods: Pods,
    #[serde(default = "default_hpa")]
    hpa: HpaText,
    #[serde(default = "default_predictive")]
    predictive: Predictive,
}

/// A validated surge.
#[derive(Debug, Clone, PartialEq)]
pub struct Surge {
    /// Display name.
    pub name: String,
    /// What it models.
    pub description: String,
    /// The curve, points in time order, starting at 0.
    pub traffic: Vec<Point>,
    /// History for the forecast.
    pub history: Option<History>,
    /// Scheduled events.
    pub events: Vec<Event>,
    /// The pods.
    pub pods: Pods,
    /// The autoscaler.
    pub hpa: HpaSpec,
    /// The HPA's sync period.
    pub sync: Duration,
    /// How old the metrics the HPA reads are.
    pub metrics_lag: Duration,
    /// The forecast's settings.
    pub predictive: Predictive,
}

fn positive(v: f64, field: &str) -> Result<f64, ScenarioError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(error(field, format!("{v} must be a positive number")))
    }
}

fn rules(spec: RulesSpec, field: &str) -> Result<Rules, ScenarioError> {
    let select = match spec.select.as_str() {
        "Max" => Select::Max,
        "Min" => Select::Min,
        "Disabled" => Select::Disabled,
        other => {
            return Err(error(
                format!("{field}.select"),
                format!("{other:?}: use Max, Min or Disabled"),
            ));
        }
    };
    let mut policies = Vec::new();
    for (i, p) in spec.policies.into_iter().enumerate() {
        let kind = match p.kind.as_str() {
            "Pods" => PolicyKind::Pods,
            "Percent" => PolicyKind::Percent,
            other => {
                return Err(error(
                    format!("{field}.policies[{i}].type"),
                    format!("{other:?}: use Pods or Percent"),
                ));
            }
        };
        let period = p.period.as_secs();
        if !(1..=1800).contains(&period) || p.value == 0 {
            return Err(error(
                format!("{field}.policies[{i}]"),
                "value must be at least 1 and period 1s to 30m (as the API allows)",
            ));
        }
        policies.push(Policy {
            kind,
            value: p.value,
            period,
        });
    }
    if policies.is_empty() && select != Select::Disabled {
        return Err(error(
            format!("{field}.policies"),
            "name at least one policy, or select Disabled",
        ));
    }
    Ok(Rules {
        stabilization: spec.stabilization.as_secs(),
        select,
        policies,
    })
}

impl Surge {
    /// Parses and validates a surge file.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let spec: SurgeText = from_toml_text(text)?;
        if spec.traffic.len() < 2 {
            return Err(error("traffic", "give at least two points"));
        }
        if spec.traffic[0].at != Duration::ZERO {
            return Err(error("traffic[0].at", "the curve starts at \"0s\""));
        }
        for (i, p) in spec.traffic.iter().enumerate() {
            if !(p.rps.is_finite() && p.rps >= 0.0) {
                return Err(error(format!("traffic[{i}].rps"), "a rate of 0 or more"));
            }
            if i > 0 && p.at <= spec.traffic[i - 1].at {
                return Err(error(
                    format!("traffic[{i}].at"),
                    "points go forward in time",
                ));
            }
        }
        let end = spec.traffic[spec.traffic.len() - 1].at;
        if end > Duration::from_secs(7 * 86_400) {
            return Err(error("traffic", "replay at most seven days"));
        }
        if let Some(h) = &spec.history {
            if h.days > 14 {
                return Err(error("history.days", "at most 14 (what the store keeps)"));
            }
            match (h.rps, h.scale) {
                (Some(r), None) if r.is_finite() && r >= 0.0 => {}
                (None, Some(s)) if s.is_finite() && s >= 0.0 => {}
                _ => {
                    return Err(error(
                        "history",
                        "give exactly one of `rps` (a flat rate) or `scale` (the curve scaled)",
                    ));
                }
            }
        }
        for (i, e) in spec.events.iter().enumerate() {
            if e.end <= e.start {
                return Err(error(format!("events[{i}].end"), "after its start"));
            }
        }
        positive(spec.pods.rps, "pods.rps")?;
        positive(spec.pods.request_cores, "pods.request_cores")?;
        positive(spec.pods.limit_cores, "pods.limit_cores")?;
        let h = spec.hpa;
        if h.min == 0 || h.max < h.min {
            return Err(error("hpa", "1 ≤ min ≤ max"));
        }
        positive(h.target, "hpa.target")?;
        if !(0.0..1.0).contains(&h.tolerance) {
            return Err(error("hpa.tolerance", "between 0 and 1"));
        }
        if h.sync.is_zero() || spec.predictive.tick.is_zero() {
            return Err(error("hpa.sync", "periods of at least 1s"));
        }
        Ok(Self {
            name: spec.name,
            description: spec.description,
            traffic: spec.traffic,
            history: spec.history,
            events: spec.events,
            pods: spec.pods,
            hpa: HpaSpec {
                min: h.min,
                max: h.max,
                target: h.target,
                tolerance: h.tolerance,
                up: rules(h.up, "hpa.up")?,
                down: rules(h.down, "hpa.down")?,
            },
            sync: h.sync,
            metrics_lag: h.metrics_lag,
            predictive: spec.predictive,
        })
    }

    /// How long the replay runs.
    pub fn duration(&self) -> Duration {
        self.traffic[self.traffic.len() - 1].at
    }

    /// Requests/s at `t` seconds after the start (linear between points).
    pub fn rps_at(&self, t: f64) -> f64 {
        let p = &self.traffic;
        let i = p.partition_point(|q| q.at.as_secs_f64() <= t);
        if i == 0 {
            return p[0].rps;
        }
        if i >= p.len() {
            return p[p.len() - 1].rps;
        }
        let (a, b) = (&p[i - 1], &p[i]);
        let (ta, tb) = (a.at.as_secs_f64(), b.at.as_secs_f64());
        a.rps + (b.rps - a.rps) * (t - ta) / (tb - ta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_surges_parse() {
        for text in [
            include_str!("../../surges/election-day.toml"),
            include_str!("../../surges/step-100x.toml"),
        ] {
            let s = Surge::from_toml(text).expect("parses");
            assert!(s.duration() >= Duration::from_secs(3600), "{}", s.name);
        }
    }

    #[test]
    fn the_curve_is_linear_between_points() {
        let s = Surge::from_toml(
            "name = 'x'\ntraffic = [{ at = '0s', rps = 100.0 }, { at = '100s', rps = 300.0 }]",
        )
        .expect("parses");
        assert_eq!(s.rps_at(0.0), 100.0);
        assert_eq!(s.rps_at(50.0), 200.0);
        assert_eq!(s.rps_at(500.0), 300.0);
        assert_eq!(s.hpa.min, 3, "the api-gateway HPA by default");
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                "name = 'x'\ntraffic = [{ at = '0s', rps = 1.0 }]",
                "traffic",
            ),
            (
                "name = 'x'\ntraffic = [{ at = '1s', rps = 1.0 }, { at = '2s', rps = 1.0 }]",
                "traffic[0].at",
            ),
            (
                "name = 'x'\ntraffic = [{ at = '0s', rps = 1.0 }, { at = '0s', rps = 1.0 }]",
                "traffic[1].at",
            ),
            (
                "name = 'x'\ntraffic = [{ at = '0s', rps = 1.0 }, { at = '9s', rps = 1.0 }]\nhistory = { days = 2 }",
                "history",
            ),
            (
                "name = 'x'\ntraffic = [{ at = '0s', rps = 1.0 }, { at = '9s', rps = 1.0 }]\n[hpa.up]\nstabilization = '0s'\nselect = 'Most'\npolicies = []",
                "hpa.up.select",
            ),
            (
                "name = 'x'\ntraffic = [{ at = '0s', rps = 1.0 }, { at = '9s', rps = 1.0 }]\n[pods]\nstart = 'soon'",
                "pods.start",
            ),
        ];
        for (text, field) in cases {
            let e = Surge::from_toml(text).expect_err(text);
            assert_eq!(e.field, field, "{e}");
        }
    }
}
