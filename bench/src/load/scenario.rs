//! Load scenarios as TOML: weighted steps (an HTTP request each, optionally as a logged-in
//! voter, with the statuses it may answer), a load model (open: arrival rate in stages; closed: virtual users with
//! think time), and a duration. Every field is validated; errors name it.

use std::time::Duration;

use serde::Deserialize;

/// Most steps in one scenario.
pub const MAX_STEPS: usize = 64;

/// A scenario that cannot be used, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scenario field `{field}`: {message}")]
pub struct ScenarioError {
    /// Path of the bad field (`steps[2].weight`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn error(field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        field: field.into(),
        message: message.into(),
    }
}

/// HTTP methods a step may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StepMethod {
    /// GET.
    Get,
    /// POST.
    Post,
}

/// One kind of request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Name in reports (`view_ballot`).
    pub name: String,
    /// Relative share of requests.
    pub weight: u32,
    /// Method.
    #[serde(default = "get")]
    pub method: StepMethod,
    /// Path and query; `{election}`, `{option}`, `{key}`, and the virtual user's `{voter}`
    /// and `{code}` (from `--credentials`) are filled in per request.
    pub path: String,
    /// JSON body (POST), with the same placeholders.
    #[serde(default)]
    pub body: Option<String>,
    /// Send as the virtual user's logged-in voter, logging in first (`POST /api/login`) when
    /// it has no session yet.
    #[serde(default)]
    pub auth: bool,
    /// The statuses this step may answer (e.g. `[201, 200, 409]` for a vote, where a repeat
    /// is expected); any other is an error. Unset: no answer, a 5xx or a 429 is an error.
    #[serde(default)]
    pub expect: Option<Vec<u16>>,
}

impl Step {
    /// Whether `status` (none: no answer) is a failure of this step.
    pub fn failed(&self, status: Option<u16>) -> bool {
        match (&self.expect, status) {
            (_, None) => true,
            (Some(expected), Some(s)) => !expected.contains(&s),
            (None, s) => crate::load::report::is_error(s),
        }
    }

    /// Whether it needs a voter's credentials.
    pub fn uses_credentials(&self) -> bool {
        let mentions = |t: &str| t.contains("{voter}") || t.contains("{code}");
        self.auth || mentions(&self.path) || self.body.as_deref().is_some_and(mentions)
    }
}

fn get() -> StepMethod {
    StepMethod::Get
}

/// One stage of an open model: reach `target` requests/s linearly over `duration`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// How long the stage lasts (`"30s"`).
    #[serde(with = "surge_shared::duration")]
    pub duration: Duration,
    /// Arrival rate at its end.
    pub target: f64,
}

/// How load is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// Arrivals at a rate regardless of how fast answers come (no coordinated omission).
    Open {
        /// Starting rate (requests/s).
        start_rate: f64,
        /// Stages in order; a constant rate is one stage with `start_rate` = `target`.
        stages: Vec<Stage>,
        /// Most requests in flight; arrivals beyond it are counted as dropped.
        max_in_flight: usize,
    },
    /// A fixed number of virtual users, each sending its next request after the previous
    /// answer and a think time.
    Closed {
        /// Virtual users.
        users: u32,
        /// Pause between a user's requests.
        think_time: Duration,
        /// Users start evenly over this time.
        ramp_up: Duration,
        /// Total run time (ramp-up included).
        duration: Duration,
    },
}

/// The load model's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// Arrival rate.
    Open,
    /// Virtual users.
    Closed,
}

/// The `[load]` table as written (flat, so errors can name each field).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadSpec {
    model: Model,
    #[serde(default)]
    start_rate: Option<f64>,
    #[serde(default)]
    stages: Option<Vec<Stage>>,
    #[serde(default)]
    max_in_flight: Option<usize>,
    #[serde(default)]
    users: Option<u32>,
    #[serde(default, with = "optional_duration")]
    think_time: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    ramp_up: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    duration: Option<Duration>,
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| surge_shared::duration::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl LoadSpec {
    fn into_load(self) -> Result<Load, ScenarioError> {
        let needs = |field: &str, model: &str| {
            error(
                format!("load.{field}"),
                format!("the {model} model needs `{field}`"),
            )
        };
        let refuses = |field: &str, model: &str| {
            error(
                format!("load.{field}"),
                format!("the {model} model does not use `{field}`"),
            )
        };
        match self.model {
            Model::Open => {
                for (set, field) in [
                    (self.users.is_some(), "users"),
                    (self.think_time.is_some(), "think_time"),
                    (self.ramp_up.is_some(), "ramp_up"),
                    (self.duration.is_some(), "duration"),
                ] {
                    if set {
                        return Err(refuses(field, "open"));
                    }
                }
                Ok(Load::Open {
                    start_rate: self.start_rate.unwrap_or(0.0),
                    stages: self.stages.ok_or_else(|| needs("stages", "open"))?,
                    max_in_flight: self.max_in_flight.unwrap_or_else(max_in_flight),
                })
            }
            Model::Closed => {
                for (set, field) in [
                    (self.start_rate.is_some(), "start_rate"),
                    (self.stages.is_some(), "stages"),
                    (self.max_in_flight.is_some(), "max_in_flight"),
                ] {
                    if set {
                        return Err(refuses(field, "closed"));
                    }
                }
                Ok(Load::Closed {
                    users: self.users.ok_or_else(|| needs("users", "closed"))?,
                    think_time: self.think_time.unwrap_or_default(),
                    ramp_up: self.ramp_up.unwrap_or_default(),
                    duration: self.duration.ok_or_else(|| needs("duration", "closed"))?,
                })
            }
        }
    }
}

fn max_in_flight() -> usize {
    10_000
}

/// A scenario as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "one")]
    elections: Vec<i64>,
    #[serde(default = "options")]
    options: Vec<i32>,
    #[serde(default = "one_key")]
    keys: u64,
    load: LoadSpec,
    steps: Vec<Step>,
}

/// A whole scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Display name.
    pub name: String,
    /// What it models.
    pub description: String,
    /// Elections the placeholders choose from.
    pub elections: Vec<i64>,
    /// Ballot options the placeholders choose from.
    pub options: Vec<i32>,
    /// `{key}` is a number below this, drawn per request (a key space to spread requests over,
    /// e.g. `/api/elections/{key}/ballot` for more distinct cache keys than L1 holds).
    pub keys: u64,
    /// The load model.
    pub load: Load,
    /// The requests.
    pub steps: Vec<Step>,
}

fn one() -> Vec<i64> {
    vec![1]
}

fn one_key() -> u64 {
    1
}

fn options() -> Vec<i32> {
    vec![1, 2, 3]
}

/// Deserialises a TOML document, naming the field at fault (`steps[2].weight`, `.` for the
/// document itself) when it does not fit `T`.
pub fn from_toml_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ScenarioError> {
    let de = toml::Deserializer::parse(text).map_err(|e| error(".", e.to_string()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        error(
            if path.is_empty() || path == "?" {
                ".".into()
            } else {
                path
            },
            e.into_inner().to_string(),
        )
    })
}

impl Scenario {
    /// Parses and validates TOML.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let spec: ScenarioSpec = from_toml_text(text)?;
        let scenario = Scenario {
            name: spec.name,
            description: spec.description,
            elections: spec.elections,
            options: spec.options,
            keys: spec.keys,
            load: spec.load.into_load()?,
            steps: spec.steps,
        };
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks steps, weights and the load model.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(error("steps", format!("give 1 to {MAX_STEPS} steps")));
        }
        if self.keys == 0 || self.keys > 1_000_000_000 {
            return Err(error("keys", "a key space of 1 to 1,000,000,000"));
        }
        if self.elections.is_empty() || self.options.is_empty() {
            return Err(error(
                "elections",
                "list at least one election and one option",
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("steps[{i}].{f}");
            let name_ok = !step.name.is_empty()
                && step
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_ok {
                return Err(error(at("name"), "letters, digits, '_' or '-'"));
            }
            if self.steps[..i].iter().any(|s| s.name == step.name) {
                return Err(error(at("name"), format!("{:?} is used twice", step.name)));
            }
            if step.weight == 0 {
                return Err(error(at("weight"), "must be at least 1"));
            }
            if !step.path.starts_with('/') || step.path.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err(error(at("path"), "a path starting with '/', no spaces"));
            }
            if let Some(expect) = &step.expect
                && (expect.is_empty() || expect.iter().any(|s| !(100..=599).contains(s)))
            {
                return Err(error(
                    at("expect"),
                    "list the HTTP statuses (100–599) this step may answer, e.g. [200]",
                ));
            }
            if step.body.is_some() && step.method == StepMethod::Get {
                return Err(error(
                    at("body"),
                    "a GET step has no body; use method = \"POST\"",
                ));
            }
        }
        match &self.load {
            Load::Open {
                start_rate,
                stages,
                max_in_flight,
            } => {
                if !(start_rate.is_finite() && *start_rate >= 0.0) {
                    return Err(error("load.start_rate", "a rate of 0 or more requests/s"));
                }
                if stages.is_empty() {
                    return Err(error("load.stages", "give at least one stage"));
                }
                for (i, s) in stages.iter().enumerate() {
                    if s.duration.is_zero() {
                        return Err(error(
                            format!("load.stages[{i}].duration"),
                            "must be above zero",
                        ));
                    }
                    if !(s.target.is_finite() && s.target >= 0.0) {
                        return Err(error(
                            format!("load.stages[{i}].target"),
                            "a rate of 0 or more requests/s",
                        ));
                    }
                }
                if *max_in_flight == 0 {
                    return Err(error("load.max_in_flight", "must be at least 1"));
                }
            }
            Load::Closed {
                users,
                ramp_up,
                duration,
                ..
            } => {
                if *users == 0 {
                    return Err(error("load.users", "must be at least 1"));
                }
                if duration.is_zero() || ramp_up > duration {
                    return Err(error(
                        "load.duration",
                        "must be above zero and at least ramp_up",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The run's length.
    pub fn duration(&self) -> Duration {
        match &self.load {
            Load::Open { stages, .. } => stages.iter().map(|s| s.duration).sum(),
            Load::Closed { duration, .. } => *duration,
        }
    }

    /// Multiplies rates (open) or users (closed) by `factor`, for running a big scenario on
    /// one machine.
    pub fn scaled(mut self, factor: f64) -> Result<Self, ScenarioError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(error("--scale", "a factor above zero, e.g. 0.01"));
        }
        match &mut self.load {
            Load::Open {
                start_rate, stages, ..
            } => {
                *start_rate *= factor;
                for s in stages {
                    s.target *= factor;
                }
            }
            Load::Closed { users, .. } => {
                *users = ((f64::from(*users) * factor).round() as u32).max(1);
            }
        }
        Ok(self)
    }

    /// Multiplies every duration (stages, ramp-up, think time, run time) by `factor`, for a
    /// short version of a long scenario.
    pub fn time_scaled(mut self, factor: f64) -> Result<Self, ScenarioError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(error("--time-scale", "a factor above zero, e.g. 0.01"));
        }
        match &mut self.load {
            Load::Open { stages, .. } => {
                for s in stages {
                    s.duration = s.duration.mul_f64(factor);
                }
            }
            Load::Closed {
                think_time,
                ramp_up,
                duration,
                ..
            } => {
                *think_time = think_time.mul_f64(factor);
                *ramp_up = ramp_up.mul_f64(factor);
                *duration = duration.mul_f64(factor);
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Sets any of a closed model's users, think time, ramp-up and duration (after scaling),
    /// e.g. 2,000 users with the reference 5 s think time for three minutes.
    pub fn closed_overrides(
        mut self,
        users_set: Option<u32>,
        think_set: Option<Duration>,
        ramp_set: Option<Duration>,
        duration_set: Option<Duration>,
    ) -> Result<Self, ScenarioError> {
        let any = users_set.is_some()
            || think_set.is_some()
            || ramp_set.is_some()
            || duration_set.is_some();
        match &mut self.load {
            Load::Closed {
                users,
                think_time,
                ramp_up,
                duration,
            } => {
                *users = users_set.unwrap_or(*users);
                *think_time = think_set.unwrap_or(*think_time);
                *ramp_up = ramp_set.unwrap_or(*ramp_up);
                *duration = duration_set.unwrap_or(*duration);
            }
            Load::Open { .. } if any => {
                return Err(error(
                    "load.model",
                    "--users, --think-time, --ramp-up and --duration apply to closed models",
                ));
            }
            Load::Open { .. } => {}
        }
        self.validate()?;
        Ok(self)
    }

    /// Replaces the whole load by one constant-rate stage (for capacity steps).
    pub fn at_constant_rate(&self, rate: f64, duration: Duration) -> Self {
        let mut s = self.clone();
        s.load = Load::Open {
            start_rate: rate,
            stages: vec![Stage {
                duration,
                target: rate,
            }],
            max_in_flight: max_in_flight(),
        };
        s
    }

    /// Picks a step for a uniform draw `u` in `[0, 1)`, by weight.
    pub fn pick(&self, u: f64) -> usize {
        let total: u64 = self.steps.iter().map(|s| u64::from(s.weight)).sum();
        let mut draw = (u * total as f64) as u64;
        for (i, s) in self.steps.iter().enumerate() {
            if draw < u64::from(s.weight) {
                return i;
            }
            draw -= u64::from(s.weight);
        }
        self.steps.len() - 1
    }
}

/// The instants (seconds from the start) at which an open model's requests are due: the
/// rate ramps linearly within each stage from the previous stage's target.
pub fn arrivals(start_rate: f64, stages: &[Stage]) -> Vec<f64> {
    let mut out = Vec::new();
    let (mut begin, mut from) = (0.0f64, start_rate);
    // Arrival n is due when the integral of the rate reaches n (+ 0.5 to centre it).
    let mut due = 0.5f64;
    let mut done = 0.0f64;
    for stage in stages {
        let len = stage.duration.as_secs_f64();
        let to = stage.target;
        let area = (from + to) / 2.0 * len;
        while due <= done + area {
            let need = due - done;
            // Solve from*t + (to-from)/(2 len) * t^2 = need for t in [0, len].
            let a = (to - from) / (2.0 * len);
            let t = if a.abs() < 1e-12 {
                need / from.max(1e-12)
            } else {
                (-from + (from * from + 4.0 * a * need).max(0.0).sqrt()) / (2.0 * a)
            };
            out.push(begin + t.clamp(0.0, len));
            due += 1.0;
        }
        done += area;
        begin += len;
        from = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_scenarios_parse_and_the_reference_is_as_written() {
        let reference =
            Scenario::from_toml(include_str!("../../scenarios/election-day.toml")).expect("valid");
        assert_eq!(reference.name, "Election Day Peak");
        assert_eq!(
            reference.load,
            Load::Closed {
                users: 100_000,
                think_time: Duration::from_secs(5),
                ramp_up: Duration::from_secs(300),
                duration: Duration::from_secs(3600),
            }
        );
        let weights: Vec<(&str, u32)> = reference
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.weight))
            .collect();
        assert_eq!(
            weights,
            [
                ("login", 10),
                ("view_ballot", 30),
                ("cast_vote", 40),
                ("view_results", 20)
            ]
        );
        let vote = &reference.steps[2];
        assert!(vote.auth && !vote.failed(Some(409)) && vote.failed(Some(401)));
        assert!(reference.steps[0].uses_credentials());
        let small = reference.scaled(0.02).and_then(|s| s.time_scaled(0.05));
        assert!(matches!(
            small.expect("scaled").load,
            Load::Closed { users: 2000, .. }
        ));
        let open = Scenario::from_toml(include_str!("../../scenarios/election-day-open.toml"))
            .expect("the open-model peak parses");
        assert!(open.closed_overrides(Some(5), None, None, None).is_err());
        let run = Scenario::from_toml(include_str!("../../scenarios/election-day.toml"))
            .and_then(|s| {
                s.closed_overrides(
                    Some(2000),
                    None,
                    Some(Duration::from_secs(30)),
                    Some(Duration::from_secs(180)),
                )
            })
            .expect("overrides");
        assert_eq!(
            run.load,
            Load::Closed {
                users: 2000,
                think_time: Duration::from_secs(5),
                ramp_up: Duration::from_secs(30),
                duration: Duration::from_secs(180),
            }
        );
    }

    const MINIMAL: &str = r#"
name = "t"
[load]
model = "open"
start_rate = 10
stages = [{ duration = "2s", target = 10 }]
[[steps]]
name = "ballot"
weight = 3
path = "/api/elections/{election}/ballot"
[[steps]]
name = "vote"
weight = 1
method = "POST"
path = "/api/elections/{election}/votes"
body = '{"option_id": {option}}'
auth = true
"#;

    #[test]
    fn a_scenario_parses_and_picks_by_weight() {
        let s = Scenario::from_toml(MINIMAL).expect("valid");
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.duration(), Duration::from_secs(2));
        let picks: Vec<usize> = (0..4).map(|i| s.pick(f64::from(i) / 4.0)).collect();
        assert_eq!(picks, vec![0, 0, 0, 1]);
    }

    #[test]
    fn bad_scenarios_name_the_field() {
        let field = |text: &str| Scenario::from_toml(text).err().map(|e| e.field);
        assert_eq!(
            field(&MINIMAL.replace("weight = 3", "weight = 0")).as_deref(),
            Some("steps[0].weight")
        );
        assert_eq!(
            field(&MINIMAL.replace("weight = 3", "weight = \"lots\"")).as_deref(),
            Some("steps[0].weight")
        );
        assert_eq!(
            field(&MINIMAL.replace("name = \"ballot\"", "name = \"vote\"")).as_deref(),
            Some("steps[1].name")
        );
        assert_eq!(
            field(&MINIMAL.replace(
                "path = \"/api/elections/{election}/ballot\"",
                "path = \"api\""
            ))
            .as_deref(),
            Some("steps[0].path")
        );
        assert_eq!(
            field(&MINIMAL.replace("model = \"open\"", "model = \"burst\"")).as_deref(),
            Some("load.model")
        );
        assert_eq!(
            field(&MINIMAL.replace("duration = \"2s\"", "duration = \"soon\"")).as_deref(),
            Some("load.stages[0].duration")
        );
        assert_eq!(
            field(&MINIMAL.replace("auth = true", "auth = true\nretries = 3")).as_deref(),
            Some("steps[1].retries")
        );
    }

    #[test]
    fn closed_models_need_their_own_fields() {
        let closed = MINIMAL.replace(
            "model = \"open\"\nstart_rate = 10\nstages = [{ duration = \"2s\", target = 10 }]",
            "model = \"closed\"\nusers = 4\nthink_time = \"100ms\"\nramp_up = \"1s\"\nduration = \"3s\"",
        );
        let s = Scenario::from_toml(&closed).expect("valid closed model");
        assert_eq!(s.duration(), Duration::from_secs(3));
        let field = |text: &str| Scenario::from_toml(text).err().map(|e| e.field);
        assert_eq!(
            field(&closed.replace("users = 4\n", "")).as_deref(),
            Some("load.users")
        );
        assert_eq!(
            field(&closed.replace("users = 4", "users = 4\nstart_rate = 3")).as_deref(),
            Some("load.start_rate")
        );
        assert_eq!(
            field(&MINIMAL.replace("start_rate = 10", "start_rate = 10\nusers = 3")).as_deref(),
            Some("load.users")
        );
    }

    #[test]
    fn arrivals_follow_the_rate() {
        let constant = arrivals(
            10.0,
            &[Stage {
                duration: Duration::from_secs(2),
                target: 10.0,
            }],
        );
        assert_eq!(constant.len(), 20);
        assert!((constant[0] - 0.05).abs() < 1e-9);
        assert!((constant[19] - 1.95).abs() < 1e-9);
        // 0 → 100/s over 10 s: 500 arrivals, a quarter of them in the first ~7.07 s.
        let ramp = arrivals(
            0.0,
            &[Stage {
                duration: Duration::from_secs(10),
                target: 100.0,
            }],
        );
        assert_eq!(ramp.len(), 500);
        assert!(ramp.windows(2).all(|w| w[0] <= w[1]));
        let half_time = ramp[249];
        assert!((half_time - 10.0 / 2f64.sqrt()).abs() < 0.05, "{half_time}");
    }

    #[test]
    fn scaling_multiplies_the_rate() {
        let s = Scenario::from_toml(MINIMAL)
            .expect("valid")
            .scaled(0.5)
            .expect("factor");
        let Load::Open {
            start_rate, stages, ..
        } = s.load
        else {
            panic!("open model")
        };
        assert_eq!((start_rate, stages[0].target), (5.0, 5.0));
        assert!(
            Scenario::from_toml(MINIMAL)
                .expect("valid")
                .scaled(0.0)
                .is_err()
        );
    }
}
