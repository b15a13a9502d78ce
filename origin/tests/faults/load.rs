//! A steady mixed load for the fault tests: an open-model arrival rate (requests are sent on
//! schedule whether or not earlier ones answered, so an outage shows up as errors and
//! latency instead of as fewer requests), reads over the election's pages and API, and votes
//! by distinct logged-in voters. Every answer is kept, with when it was sent.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A GET of a public page or API read.
    Read,
    /// A vote by a voter who has not voted before.
    Vote,
}

/// One answered (or failed) request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was sent, from the start of the load.
    pub at: Duration,
    /// What it was.
    pub step: Step,
    /// HTTP status; 0 when no answer came (connection error or the client timeout).
    pub status: u16,
    /// Time to the full answer.
    pub latency: Duration,
    /// Whether a 503 carried `Retry-After`.
    pub retry_after: bool,
    /// The `error` field of a JSON error body.
    pub error: Option<String>,
    /// `x-surge-cache` of a read.
    pub cache: Option<String>,
    /// `x-surge-region` of a read through the edge.
    pub region: Option<String>,
    /// For votes: the voter and, on a 2xx, the receipt.
    pub vote: Option<(String, Option<String>)>,
    /// For reads of the ballot: whether the body was the expected one.
    pub body_ok: bool,
}

/// The load while it runs.
pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    ticker: tokio::task::JoinHandle<()>,
}

/// The reads cycled through.
const READS: [&str; 4] = [
    "/api/elections/1/ballot",
    "/api/elections/1/results",
    "/elections/1",
    "/api/elections",
];

/// The client timeout: a request without an answer by then counts as status 0.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(8);

impl Load {
    /// Sends `rate` requests per second to `base`, one in `vote_every` a vote (0: no votes)
    /// by the next voter from `voters` (`(voter id, cookie pair)`); `ballot` is the ballot
    /// body every read of it must return.
    pub fn start(
        base: String,
        rate: u32,
        vote_every: usize,
        voters: Vec<(String, String)>,
        ballot: Option<String>,
    ) -> Self {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        let voters = Arc::new(voters);
        let next_voter = Arc::new(AtomicUsize::new(0));
        let ballot = Arc::new(ballot);
        let ticker = {
            let stop = stop.clone();
            let samples = samples.clone();
            tokio::spawn(async move {
                let every = Duration::from_secs(1) / rate.max(1);
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    n += 1;
                    let vote = vote_every > 0 && n.is_multiple_of(vote_every);
                    let voter = if vote {
                        let i = next_voter.fetch_add(1, Ordering::Relaxed);
                        match voters.get(i) {
                            Some(v) => Some(v.clone()),
                            None => continue,
                        }
                    } else {
                        None
                    };
                    let path = READS[n % READS.len()];
                    let (client, base, samples, ballot) = (
                        client.clone(),
                        base.clone(),
                        samples.clone(),
                        ballot.clone(),
                    );
                    tokio::spawn(async move {
                        let at = started.elapsed();
                        let sample = match voter {
                            Some((id, cookie)) => vote_once(&client, &base, at, id, &cookie).await,
                            None => read_once(&client, &base, at, path, ballot.as_deref()).await,
                        };
                        samples.lock().expect("samples").push(sample);
                    });
                }
            })
        };
        Self {
            started,
            stop,
            samples,
            ticker,
        }
    }

    /// Time since the load started.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops sending, waits for the requests in flight, and returns every sample by send time.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.ticker.await.ok();
        tokio::time::sleep(CLIENT_TIMEOUT + Duration::from_millis(500)).await;
        let mut samples = std::mem::take(&mut *self.samples.lock().expect("samples"));
        samples.sort_by_key(|s| s.at);
        samples
    }
}

fn blank(at: Duration, step: Step) -> Sample {
    Sample {
        at,
        step,
        status: 0,
        latency: Duration::ZERO,
        retry_after: false,
        error: None,
        cache: None,
        region: None,
        vote: None,
        body_ok: true,
    }
}

async fn read_once(
    client: &reqwest::Client,
    base: &str,
    at: Duration,
    path: &str,
    ballot: Option<&str>,
) -> Sample {
    let sent = Instant::now();
    let mut sample = blank(at, Step::Read);
    if let Ok(r) = client.get(format!("{base}{path}")).send().await {
        sample.status = r.status().as_u16();
        sample.cache = r
            .headers()
            .get("x-surge-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        sample.region = r
            .headers()
            .get("x-surge-region")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = r.text().await.unwrap_or_default();
        if path.ends_with("/ballot") && sample.status == 200 {
            sample.body_ok = ballot.is_none_or(|b| b == body);
        }
    }
    sample.latency = sent.elapsed();
    sample
}

async fn vote_once(
    client: &reqwest::Client,
    base: &str,
    at: Duration,
    voter: String,
    cookie: &str,
) -> Sample {
    let sent = Instant::now();
    let mut sample = blank(at, Step::Vote);
    let mut receipt = None;
    if let Ok(r) = client
        .post(format!("{base}/api/elections/1/votes"))
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .body(r#"{"option_id":1}"#)
        .send()
        .await
    {
        sample.status = r.status().as_u16();
        sample.retry_after = r.headers().contains_key("retry-after");
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        sample.error = body["error"].as_str().map(str::to_string);
        receipt = body["receipt"].as_str().map(str::to_string);
    }
    sample.latency = sent.elapsed();
    sample.vote = Some((voter, receipt));
    sample
}

/// p99 latency (ms) of `samples`.
pub fn p99_ms(samples: &[&Sample]) -> f64 {
    let mut ms: Vec<f64> = samples
        .iter()
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    if ms.is_empty() {
        return 0.0;
    }
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 * 0.99).ceil() as usize).clamp(1, ms.len()) - 1]
}

/// Time from `from` to the start of the first second-long run of samples that all succeeded
/// (2xx) for `step`; `None` if none came.
pub fn recovery(samples: &[Sample], step: Step, from: Duration) -> Option<Duration> {
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.step == step && s.at >= from)
        .collect();
    (0..after.len()).find_map(|i| {
        let window: Vec<&&Sample> = after[i..]
            .iter()
            .take_while(|s| s.at < after[i].at + Duration::from_secs(1))
            .collect();
        let full = after
            .last()
            .is_some_and(|l| l.at >= after[i].at + Duration::from_secs(1));
        (full && window.iter().all(|s| (200..300).contains(&s.status))).then(|| after[i].at - from)
    })
}

/// One line of the fault summary: requests, errors by status, p99 during the fault, recovery.
pub fn summary(
    fault: &str,
    samples: &[Sample],
    during: (Duration, Duration),
    recovered: Option<Duration>,
) -> String {
    let mut errors: std::collections::BTreeMap<u16, usize> = Default::default();
    for s in samples.iter().filter(|s| !(200..300).contains(&s.status)) {
        *errors.entry(s.status).or_default() += 1;
    }
    let errors = if errors.is_empty() {
        "none".to_string()
    } else {
        errors
            .iter()
            .map(|(status, n)| {
                format!(
                    "{n}×{}",
                    if *status == 0 {
                        "no answer".to_string()
                    } else {
                        status.to_string()
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let in_fault: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= during.0 && s.at < during.1)
        .collect();
    let line = format!(
        "| {fault} | {} | {errors} | {:.1} | {} |",
        samples.len(),
        p99_ms(&in_fault),
        recovered.map_or("—".to_string(), |d| format!("{:.1} s", d.as_secs_f64())),
    );
    println!(
        "fault summary\n| fault | requests | errors by status | p99 during fault (ms) | recovery |\n| --- | ---: | --- | ---: | ---: |\n{line}"
    );
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-summary.md");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(&line);
    text.push('\n');
    std::fs::write(&path, text).ok();
    line
}
