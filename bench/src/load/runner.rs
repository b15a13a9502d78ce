//! Runs a scenario against a target: the open model sends each request at its due time
//! whatever happened to earlier ones, and measures latency from that due time (so a stalled
//! server shows up as latency, not as fewer samples: no coordinated omission); the closed
//! model runs virtual users that wait for each answer and think. Samples go through a channel
//! to one recorder; progress is shown on the terminal while the run goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::load::credentials::{Credential, Credentials};
use crate::load::report::{Recorder, Report, Sample};
use crate::load::scenario::{Load, Scenario, StepMethod, arrivals};

/// Why a run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target does not answer.
    #[error("cannot reach {target}: {reason}; is it running, and is the URL right?")]
    Unreachable {
        /// The base URL.
        target: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The target URL is not usable.
    #[error("--target {0:?} is not an http(s) base URL like http://127.0.0.1:8080")]
    BadTarget(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// The scenario logs voters in and there are not enough credentials.
    #[error("{0}")]
    Credentials(String),
}

/// Run settings besides the scenario.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Base URL (`http://127.0.0.1:8080`).
    pub target: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Show live progress.
    pub progress: bool,
    /// Seed of the step and placeholder draws.
    pub seed: u64,
    /// Spread requests over this many client addresses with `CF-Connecting-IP` (for runs
    /// through `wrangler dev`, where the edge's per-IP quotas would otherwise see one client;
    /// Cloudflare itself overwrites the header).
    pub client_ips: Option<u32>,
    /// Voter credentials (`--credentials`): the closed model gives each virtual user its
    /// own; the open model takes them in turn.
    pub credentials: Arc<Credentials>,
}

enum Event {
    Sample(Sample),
    Dropped,
}

struct Shared {
    scenario: Scenario,
    client: reqwest::Client,
    target: String,
    counter: AtomicUsize,
    client_ips: Option<u32>,
    credentials: Arc<Credentials>,
}

/// A virtual user: its voter (if the run has credentials) and its session cookie.
#[derive(Default)]
struct User {
    voter: Option<Credential>,
    cookie: Option<String>,
}

impl Shared {
    fn fill(&self, text: &str, rng: &mut fastrand::Rng, user: &User) -> String {
        let election = self.scenario.elections[rng.usize(..self.scenario.elections.len())];
        let option = self.scenario.options[rng.usize(..self.scenario.options.len())];
        let (voter, code) = user
            .voter
            .as_ref()
            .map_or(("", ""), |c| (c.voter_id.as_str(), c.code.as_str()));
        text.replace("{election}", &election.to_string())
            .replace("{option}", &option.to_string())
            .replace("{voter}", voter)
            .replace("{code}", code)
            .replace("{key}", &rng.u64(..self.scenario.keys).to_string())
    }

    async fn send(
        &self,
        method: StepMethod,
        path: &str,
        body: Option<String>,
        cookie: Option<&str>,
        client_ip: Option<&str>,
    ) -> (Option<u16>, Option<String>, Option<String>) {
        let url = format!("{}{path}", self.target);
        let mut request = match method {
            StepMethod::Get => self.client.get(url),
            StepMethod::Post => self.client.post(url),
        };
        if let Some(ip) = client_ip {
            request = request.header("cf-connecting-ip", ip);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let header = |name: &str| {
                    r.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let cache = header("x-surge-cache");
                let cookie =
                    header("set-cookie").and_then(|c| c.split(';').next().map(str::to_string));
                // Read the body: the request is not over until it has arrived.
                let ok = r.bytes().await.is_ok();
                (ok.then_some(status), cache, cookie)
            }
            Err(_) => (None, None, None),
        }
    }

    /// One arrival: picks a step, logs `user` in first if it needs to, sends it, reports
    /// samples, and keeps any session cookie the answer sets.
    async fn one(
        &self,
        user: &mut User,
        due: Instant,
        start: Instant,
        rng: &mut fastrand::Rng,
        tx: &mpsc::UnboundedSender<Event>,
    ) {
        let index = self.scenario.pick(rng.f64());
        let step = &self.scenario.steps[index];
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let at = due.duration_since(start).as_secs_f64();
        let client_ip = self.client_ips.map(|ips| {
            let i = u64::try_from(n).unwrap_or(0) % u64::from(ips.max(1));
            format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
        });
        if step.auth && user.cookie.is_none() {
            let Some(voter) = &user.voter else { return };
            let body = serde_json::json!({ "voter_id": voter.voter_id, "code": voter.code });
            let (status, cache, set) = self
                .send(
                    StepMethod::Post,
                    "/api/login",
                    Some(body.to_string()),
                    None,
                    client_ip.as_deref(),
                )
                .await;
            tx.send(Event::Sample(Sample {
                step: None,
                at,
                latency_us: micros(due.elapsed()),
                error: status != Some(200),
                status,
                cache,
            }))
            .ok();
            match set {
                Some(c) => user.cookie = Some(c),
                None => return,
            }
        }
        let path = self.fill(&step.path, rng, user);
        let body = step.body.as_ref().map(|b| self.fill(b, rng, user));
        let cookie = if step.auth {
            user.cookie.as_deref()
        } else {
            None
        };
        let (status, cache, set) = self
            .send(step.method, &path, body, cookie, client_ip.as_deref())
            .await;
        if let Some(c) = set {
            user.cookie = Some(c);
        } else if step.auth && status == Some(401) {
            user.cookie = None;
        }
        tx.send(Event::Sample(Sample {
            step: Some(index),
            at,
            latency_us: micros(due.elapsed()),
            error: step.failed(status),
            status,
            cache,
        }))
        .ok();
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Checks the target answers at all before load starts.
async fn preflight(client: &reqwest::Client, target: &str, path: &str) -> Result<(), LoadError> {
    client
        .get(format!(
            "{target}{}",
            path.replace("{election}", "1").replace("{option}", "1")
        ))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| LoadError::Unreachable {
            target: target.to_string(),
            reason: e.to_string(),
        })
}

/// Runs `scenario` with `settings` and returns the report.
pub async fn run(scenario: &Scenario, settings: &RunSettings) -> Result<Report, LoadError> {
    let target = settings.target.trim_end_matches('/').to_string();
    let parsed = url::Url::parse(&target).map_err(|_| LoadError::BadTarget(target.clone()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(LoadError::BadTarget(target));
    }
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| LoadError::Client(e.to_string()))?;
    let users = match &scenario.load {
        Load::Closed { users, .. } => usize::try_from(*users).unwrap_or(usize::MAX),
        Load::Open { .. } => 1,
    };
    if scenario.steps.iter().any(|s| s.uses_credentials()) {
        let have = settings.credentials.len();
        if have == 0 {
            return Err(LoadError::Credentials(
                "this scenario logs voters in: give --credentials FILE (write one with `surge-origin voters issue --election 1 --count N --out FILE`)".into(),
            ));
        }
        if have < users {
            return Err(LoadError::Credentials(format!(
                "{users} virtual users need their own credentials but the file has {have}: issue more, or lower --scale"
            )));
        }
    }
    preflight(&client, &target, &scenario.steps[0].path).await?;
    let started = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        scenario: scenario.clone(),
        client,
        target: target.clone(),
        counter: AtomicUsize::new(0),
        client_ips: settings.client_ips,
        credentials: settings.credentials.clone(),
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let names: Vec<String> = scenario.steps.iter().map(|s| s.name.clone()).collect();
    let total = scenario.duration();
    let progress = settings.progress;
    let recorder = tokio::spawn(async move {
        let mut recorder = Recorder::new(&names);
        let bar = progress.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let begun = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Event::Sample(s)) => recorder.record(&s),
                    Some(Event::Dropped) => recorder.drop_one(),
                    None => break,
                },
                _ = tick.tick() => {
                    if let Some(bar) = &bar {
                        let (n, errors, p50, p99) = recorder.so_far();
                        let secs = begun.elapsed().as_secs_f64();
                        bar.set_message(format!(
                            "{secs:>5.1}/{:.0} s  {:>7.0} req/s  {n} requests  {errors} errors  p50 {p50:.2} ms  p99 {p99:.2} ms",
                            total.as_secs_f64(),
                            n as f64 / secs.max(1e-3),
                        ));
                    }
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        recorder
    });

    let start = Instant::now();
    match &scenario.load {
        Load::Open {
            start_rate,
            stages,
            max_in_flight,
        } => {
            let in_flight = Arc::new(AtomicUsize::new(0));
            let mut rng = fastrand::Rng::with_seed(settings.seed);
            let mut arrival = 0usize;
            for offset in arrivals(*start_rate, stages) {
                let due = start + Duration::from_secs_f64(offset);
                tokio::time::sleep_until(due.into()).await;
                if in_flight.load(Ordering::Relaxed) >= *max_in_flight {
                    tx.send(Event::Dropped).ok();
                    continue;
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (shared, tx, in_flight) = (shared.clone(), tx.clone(), in_flight.clone());
                let mut task_rng = fastrand::Rng::with_seed(rng.u64(..));
                let mut user = User {
                    voter: shared.credentials.nth(arrival).cloned(),
                    cookie: None,
                };
                arrival += 1;
                tokio::spawn(async move {
                    shared.one(&mut user, due, start, &mut task_rng, &tx).await;
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Let the stragglers finish (bounded by the request timeout).
            let deadline = Instant::now() + settings.timeout;
            while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Load::Closed {
            users,
            think_time,
            ramp_up,
            duration,
        } => {
            let end = start + *duration;
            let mut handles = Vec::new();
            for u in 0..*users {
                let delay = ramp_up.mul_f64(f64::from(u) / f64::from(*users));
                let (shared, tx, think) = (shared.clone(), tx.clone(), *think_time);
                let mut rng = fastrand::Rng::with_seed(settings.seed.wrapping_add(u64::from(u)));
                let mut user = User {
                    voter: shared
                        .credentials
                        .nth(usize::try_from(u).unwrap_or(usize::MAX))
                        .cloned(),
                    cookie: None,
                };
                handles.push(tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    while Instant::now() < end {
                        shared
                            .one(&mut user, Instant::now(), start, &mut rng, &tx)
                            .await;
                        tokio::time::sleep(think).await;
                    }
                }));
            }
            for h in handles {
                h.await.ok();
            }
        }
    }
    drop(tx);
    let elapsed = start.elapsed().as_secs_f64();
    let recorder = recorder
        .await
        .map_err(|e| LoadError::Client(e.to_string()))?;
    Ok(recorder.finish(
        &scenario.name,
        &target,
        &started,
        elapsed.max(total.as_secs_f64()),
    ))
}
