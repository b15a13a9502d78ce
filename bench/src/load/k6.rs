//! A scenario as a k6 script (`surge-load export-k6`), for load one machine cannot generate:
//! the same steps and weights, placeholders, logins, expected statuses, think time, stages
//! and thresholds, with the credentials file read through k6's `SharedArray`. Run it with
//! `k6 run`, or from many pods with the k6-operator `TestRun` in `infrastructure/load/`.
//!
//! Where k6 and `surge-load` differ: k6 measures each request from when it is sent, where
//! the open model here measures from the arrival it was due at (so queueing in the load
//! generator shows); and k6 draws with its own `Math.random`, so `--seed` does not carry over.

use std::time::Duration;

use serde_json::{Value, json};

use super::scenario::{Load, Scenario, StepMethod};
use super::threshold::{Metric, Op, Threshold};

/// What the exported script needs besides the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// Default target (the script takes `SURGE_TARGET` over it).
    pub target: String,
    /// Default credentials file (the script takes `SURGE_CREDENTIALS` over it), as k6's
    /// `open()` resolves it: relative to the script.
    pub credentials: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Spread requests over this many `CF-Connecting-IP` addresses.
    pub client_ips: Option<u32>,
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A k6 threshold key and expression for `t`.
fn threshold(t: &Threshold) -> (String, String) {
    let op = match t.op {
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    };
    let (metric, stat, bound) = match t.metric {
        Metric::P50 => ("http_req_duration", "p(50)", t.bound),
        Metric::P95 => ("http_req_duration", "p(95)", t.bound),
        Metric::P99 => ("http_req_duration", "p(99)", t.bound),
        Metric::P999 => ("http_req_duration", "p(99.9)", t.bound),
        Metric::Max => ("http_req_duration", "max", t.bound),
        // Percent here, a rate there.
        Metric::Errors => ("http_req_failed", "rate", t.bound / 100.0),
        Metric::Rps => ("http_reqs", "rate", t.bound),
    };
    let key = match &t.step {
        Some(step) => format!("{metric}{{step:{step}}}"),
        None => metric.to_string(),
    };
    (key, format!("{stat}{op}{bound}"))
}

/// The k6 scenario (executor) for the load model.
fn executor(load: &Load) -> Value {
    match load {
        Load::Open {
            start_rate,
            stages,
            max_in_flight,
        } => {
            // Rates per minute, so fractional rates per second survive k6's integer rates.
            let per_minute = |r: f64| (r * 60.0).round() as u64;
            let peak = stages
                .iter()
                .map(|s| s.target)
                .fold(*start_rate, f64::max)
                .ceil() as usize;
            json!({
                "executor": "ramping-arrival-rate",
                "startRate": per_minute(*start_rate),
                "timeUnit": "1m",
                "preAllocatedVUs": peak.clamp(1, *max_in_flight),
                "maxVUs": max_in_flight,
                "stages": stages.iter().map(|s| json!({
                    "duration": ms(s.duration),
                    "target": per_minute(s.target),
                })).collect::<Vec<_>>(),
                "gracefulStop": "0s",
            })
        }
        Load::Closed {
            users,
            ramp_up,
            duration,
            ..
        } => {
            let mut stages = Vec::new();
            if !ramp_up.is_zero() {
                stages.push(json!({ "duration": ms(*ramp_up), "target": users }));
            }
            stages.push(json!({
                "duration": ms(duration.saturating_sub(*ramp_up)),
                "target": users,
            }));
            json!({
                "executor": "ramping-vus",
                "startVUs": if ramp_up.is_zero() { *users } else { 0 },
                "stages": stages,
                "gracefulRampDown": "0s",
                "gracefulStop": "0s",
            })
        }
    }
}

/// The script.
pub fn script(scenario: &Scenario, thresholds: &[Threshold], export: &Export) -> String {
    let (model, think) = match &scenario.load {
        Load::Open { .. } => ("open", 0.0),
        Load::Closed { think_time, .. } => ("closed", think_time.as_secs_f64()),
    };
    let steps: Vec<Value> = scenario
        .steps
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "weight": s.weight,
                "method": match s.method { StepMethod::Get => "GET", StepMethod::Post => "POST" },
                "path": s.path,
                "body": s.body,
                "auth": s.auth,
                "expect": s.expect,
            })
        })
        .collect();
    let data = json!({
        "name": scenario.name,
        "model": model,
        "think_s": think,
        "elections": scenario.elections,
        "options": scenario.options,
        "keys": scenario.keys,
        "steps": steps,
        "timeout": ms(export.timeout),
        "client_ips": export.client_ips,
    });
    let mut k6_thresholds = serde_json::Map::new();
    for t in thresholds {
        let (key, expression) = threshold(t);
        let list = k6_thresholds
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(Value::String(expression));
        }
    }
    let options = json!({
        "scenarios": { "surge": executor(&scenario.load) },
        "thresholds": k6_thresholds,
        "summaryTrendStats": ["avg", "min", "med", "p(95)", "p(99)", "p(99.9)", "max"],
        "discardResponseBodies": true,
    });
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into());
    let mut out = String::new();
    out.push_str(&format!(
        "// {name}: exported by `surge-load export-k6`; regenerate rather than edit.\n\
         // Run: k6 run script.js (SURGE_TARGET and SURGE_CREDENTIALS override the defaults).\n",
        name = scenario.name.replace('\n', " ")
    ));
    out.push_str(HEADER);
    out.push_str(&format!("const SCENARIO = {};\n", pretty(&data)));
    out.push_str(&format!(
        "const TARGET = (__ENV.SURGE_TARGET || {}).replace(/\\/+$/, '');\n",
        Value::String(export.target.clone())
    ));
    out.push_str(&format!(
        "const CREDENTIALS = __ENV.SURGE_CREDENTIALS || {};\n",
        Value::String(export.credentials.clone().unwrap_or_default())
    ));
    out.push_str(&format!("export const options = {};\n", pretty(&options)));
    out.push_str(BODY);
    out
}

const HEADER: &str = "import http from 'k6/http';
import { sleep } from 'k6';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
";

const BODY: &str = r#"
const voters = new SharedArray('voters', function () {
  if (!CREDENTIALS) return [];
  const lines = open(CREDENTIALS).split('\n');
  if ((lines[0] || '').trim() !== 'voter_id,code') {
    throw new Error(`${CREDENTIALS}: the first line must be voter_id,code (the file surge-origin voters issue --out writes)`);
  }
  return lines.slice(1).filter((l) => l.trim() !== '').map((l) => {
    const [voter_id, code] = l.trim().split(',');
    return { voter_id, code };
  });
});

if (SCENARIO.steps.some((s) => s.auth || /\{voter\}|\{code\}/.test(s.path + (s.body || ''))) && voters.length === 0) {
  throw new Error('this scenario logs voters in: set SURGE_CREDENTIALS to a voter_id,code file (surge-origin voters issue --out)');
}

const TOTAL = SCENARIO.steps.reduce((sum, s) => sum + s.weight, 0);
// What each step may answer: its own list, or (unset) anything but no answer, a 5xx or a 429.
const EXPECTED = Object.fromEntries(SCENARIO.steps.map((s) => [
  s.name,
  s.expect ? http.expectedStatuses(...s.expect) : http.expectedStatuses({ min: 100, max: 428 }, { min: 430, max: 499 }),
]));
const LOGIN_OK = http.expectedStatuses(200);

function pick() {
  let draw = Math.floor(Math.random() * TOTAL);
  for (const s of SCENARIO.steps) {
    if (draw < s.weight) return s;
    draw -= s.weight;
  }
  return SCENARIO.steps[SCENARIO.steps.length - 1];
}

function any(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function fill(text, voter) {
  return text
    .split('{election}').join(String(any(SCENARIO.elections)))
    .split('{option}').join(String(any(SCENARIO.options)))
    .split('{voter}').join(voter ? voter.voter_id : '')
    .split('{code}').join(voter ? voter.code : '')
    .split('{key}').join(String(Math.floor(Math.random() * SCENARIO.keys)));
}

function send(method, path, body, cookie, step, expected) {
  const headers = {};
  if (body !== null) headers['content-type'] = 'application/json';
  if (cookie) headers['cookie'] = cookie;
  if (SCENARIO.client_ips) {
    const i = exec.scenario.iterationInTest % SCENARIO.client_ips;
    headers['cf-connecting-ip'] = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  }
  return http.request(method, TARGET + path, body, {
    headers,
    tags: { step, name: step },
    responseCallback: expected,
    timeout: SCENARIO.timeout,
    // The session travels in the cookie header above, over http as over https.
    jar: new http.CookieJar(),
  });
}

function sessionOf(res) {
  const set = res.headers['Set-Cookie'];
  return set ? set.split(';')[0] : null;
}

// Per virtual user: its session. A closed-model user keeps its voter and session; each
// open-model arrival is a new visitor with the next voter.
let session = null;

export default function () {
  const closed = SCENARIO.model === 'closed';
  const n = closed ? exec.vu.idInTest - 1 : exec.scenario.iterationInTest;
  const voter = voters.length ? voters[n % voters.length] : null;
  if (!closed) session = null;
  const step = pick();
  let go = true;
  if (step.auth && session === null) {
    if (voter === null) {
      go = false;
    } else {
      const login = send('POST', '/api/login', JSON.stringify({ voter_id: voter.voter_id, code: voter.code }), null, 'login', LOGIN_OK);
      session = sessionOf(login);
      go = session !== null;
    }
  }
  if (go) {
    const body = step.body === null ? null : fill(step.body, voter);
    const res = send(step.method, fill(step.path, voter), body, step.auth ? session : null, step.name, EXPECTED[step.name]);
    const set = sessionOf(res);
    if (set) session = set;
    else if (step.auth && res.status === 401) session = null;
  }
  if (closed && SCENARIO.think_s > 0) sleep(SCENARIO.think_s);
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        Scenario::from_toml(text).expect("scenario")
    }

    #[test]
    fn thresholds_translate_to_k6_expressions() {
        let cases = [
            ("p99<1000ms", "http_req_duration", "p(99)<1000"),
            ("p99.9<=2s", "http_req_duration", "p(99.9)<=2000"),
            ("errors<0.1%", "http_req_failed", "rate<0.001"),
            ("rps>=100", "http_reqs", "rate>=100"),
            (
                "p95{step=cast_vote}<800ms",
                "http_req_duration{step:cast_vote}",
                "p(95)<800",
            ),
        ];
        for (text, key, expression) in cases {
            let t = Threshold::parse(text).expect(text);
            assert_eq!(
                threshold(&t),
                (key.to_string(), expression.to_string()),
                "{text}"
            );
        }
    }

    /// The JSON the script embeds after `const NAME = `.
    fn embedded(js: &str, name: &str) -> Value {
        let start = js.find(&format!("const {name} = ")).expect(name) + name.len() + 9;
        let end = start + js[start..].find(";\n").expect("end");
        serde_json::from_str(&js[start..end]).expect("JSON")
    }

    #[test]
    fn the_reference_scenario_keeps_its_shape() {
        let s = scenario(include_str!("../../scenarios/election-day.toml"));
        let js = script(
            &s,
            &[Threshold::parse("p99<1000ms").expect("threshold")],
            &Export {
                target: "http://127.0.0.1:8080".into(),
                credentials: Some("codes.csv".into()),
                timeout: Duration::from_secs(30),
                client_ips: None,
            },
        );
        // Closed model: 100,000 users ramped over 300 s, held to 3,600 s, thinking 5 s.
        let options = embedded(&js, "options");
        let surge = &options["scenarios"]["surge"];
        assert_eq!(surge["executor"], "ramping-vus");
        assert_eq!(
            surge["stages"],
            json!([
                { "duration": "300000ms", "target": 100000 },
                { "duration": "3300000ms", "target": 100000 },
            ])
        );
        assert_eq!(
            options["thresholds"],
            json!({ "http_req_duration": ["p(99)<1000"] })
        );
        let data = embedded(&js, "SCENARIO");
        assert_eq!(data["think_s"], 5.0);
        let weights: Vec<(String, u64)> = data["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or("").to_string(),
                    s["weight"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(
            weights,
            [
                ("login", 10),
                ("view_ballot", 30),
                ("cast_vote", 40),
                ("view_results", 20)
            ]
            .map(|(n, w)| (n.to_string(), w))
        );
        assert_eq!(data["steps"][2]["expect"], json!([201, 200, 409]));
        assert!(js.contains(r#"__ENV.SURGE_CREDENTIALS || "codes.csv""#));
    }

    #[test]
    fn the_k6_operator_script_is_a_fresh_export() {
        // infrastructure/load/election-day.js is regenerated with
        // `surge-load export-k6 --scenario bench/scenarios/election-day.toml --target
        // https://vote.example --threshold 'p99<1000ms' --threshold 'p50<100ms'
        // --threshold 'errors<0.1%' --out infrastructure/load/election-day.js`.
        let s = scenario(include_str!("../../scenarios/election-day.toml"));
        let thresholds =
            ["p99<1000ms", "p50<100ms", "errors<0.1%"].map(|t| Threshold::parse(t).expect(t));
        let fresh = script(
            &s,
            &thresholds,
            &Export {
                target: "https://vote.example".into(),
                credentials: None,
                timeout: Duration::from_secs(30),
                client_ips: None,
            },
        );
        assert!(
            fresh == include_str!("../../../infrastructure/load/election-day.js"),
            "infrastructure/load/election-day.js is out of date: regenerate it (command above)"
        );
    }

    #[test]
    fn an_open_model_becomes_an_arrival_rate() {
        let s = scenario(include_str!("../../scenarios/election-day-open.toml"));
        let Load::Open { stages, .. } = &s.load else {
            panic!("open")
        };
        let js = script(
            &s,
            &[],
            &Export {
                target: "http://x".into(),
                credentials: None,
                timeout: Duration::from_secs(5),
                client_ips: Some(100),
            },
        );
        let surge = &embedded(&js, "options")["scenarios"]["surge"];
        assert_eq!(surge["executor"], "ramping-arrival-rate");
        assert_eq!(surge["timeUnit"], "1m");
        assert_eq!(
            surge["stages"][0]["target"],
            (stages[0].target * 60.0).round() as u64
        );
        assert_eq!(embedded(&js, "SCENARIO")["client_ips"], 100);
    }
}
