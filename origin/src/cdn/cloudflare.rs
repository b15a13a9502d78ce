//! Cloudflare's purge API: `POST {api}/zones/{zone}/purge_cache` with a bearer token and one
//! of `{"files": […]}`, `{"tags": […]}`, `{"hosts": […]}`, `{"prefixes": […]}` or
//! `{"purge_everything": true}`. At most [`MAX_PER_REQUEST`] targets go in one request;
//! failures are retried with exponential backoff and jitter, a 429's `Retry-After` is
//! honoured, and a 4xx other than 429 is not retried (it will not get better).

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::CloudflareConfig;
use super::{Cdn, CdnOutcome, CdnPurge};

/// Most targets per purge request (Cloudflare's limit on every plan).
pub const MAX_PER_REQUEST: usize = 100;

/// Retry and pacing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Backoff before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Longest wait between attempts, `Retry-After` included.
    pub max_delay: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The Cloudflare purge client.
pub struct Cloudflare {
    config: CloudflareConfig,
    retry: RetryPolicy,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ApiResponse {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
}

enum Attempt {
    Done,
    Retry {
        after: Option<Duration>,
        why: String,
    },
    Fatal(String),
}

impl Cloudflare {
    /// A client for `config`.
    pub fn new(config: CloudflareConfig, retry: RetryPolicy) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(retry.timeout)
            .user_agent(concat!("surge-origin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            config,
            retry,
            http,
        })
    }

    fn endpoint(&self) -> String {
        format!(
            "{}/zones/{}/purge_cache",
            self.config.api_base, self.config.zone_id
        )
    }

    #[tracing::instrument(
        name = "cdn.cloudflare",
        skip_all,
        fields(otel.kind = "client", http.request.method = "POST", server.address, http.response.status_code)
    )]
    async fn send(&self, body: &Value) -> Attempt {
        let span = tracing::Span::current();
        if let Ok(url) = url::Url::parse(&self.config.api_base)
            && let Some(host) = url.host_str()
        {
            span.record("server.address", host);
        }
        let response = self
            .http
            .post(self.endpoint())
            .bearer_auth(&self.config.api_token)
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    after: None,
                    why: format!("request failed: {e}"),
                };
            }
        };
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let parsed: Option<ApiResponse> = serde_json::from_str(&text).ok();
        let detail = parsed
            .as_ref()
            .map(|p| {
                p.errors
                    .iter()
                    .map(|e| format!("{} {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| text.chars().take(200).collect());
        if status.is_success() && parsed.as_ref().is_some_and(|p| p.success) {
            return Attempt::Done;
        }
        let why = format!("HTTP {}: {detail}", status.as_u16());
        if status.as_u16() == 429 || status.is_server_error() {
            Attempt::Retry {
                after: retry_after,
                why,
            }
        } else if status.is_success() {
            Attempt::Fatal(format!("Cloudflare answered success=false: {detail}"))
        } else {
            Attempt::Fatal(why)
        }
    }

    /// Sends one batch with retries; returns attempts used and the error, if it failed.
    async fn send_with_retries(&self, body: &Value) -> (u32, Option<String>) {
        let mut delay = self.retry.base_delay;
        let mut last = String::new();
        for attempt in 1..=self.retry.attempts.max(1) {
            match self.send(body).await {
                Attempt::Done => return (attempt, None),
                Attempt::Fatal(why) => return (attempt, Some(why)),
                Attempt::Retry { after, why } => {
                    last = why;
                    if attempt == self.retry.attempts {
                        break;
                    }
                    let jitter = Duration::from_millis(fastrand::u64(
                        0..=u64::try_from(delay.as_millis() / 2).unwrap_or(0),
                    ));
                    let wait = after.unwrap_or(delay + jitter).min(self.retry.max_delay);
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(self.retry.max_delay);
                }
            }
        }
        (
            self.retry.attempts,
            Some(format!(
                "gave up after {} attempts: {last}",
                self.retry.attempts
            )),
        )
    }
}

/// The request bodies for `what`, each with the number of targets it carries.
pub fn batches(what: &CdnPurge) -> Vec<(Value, u64)> {
    if what.everything {
        return vec![(json!({ "purge_everything": true }), 1)];
    }
    let mut out = Vec::new();
    for (field, items) in [
        ("files", &what.files),
        ("tags", &what.tags),
        ("hosts", &what.hosts),
        ("prefixes", &what.prefixes),
    ] {
        for chunk in items.chunks(MAX_PER_REQUEST) {
            let n = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            out.push((json!({ field: chunk }), n));
        }
    }
    out
}

impl Cdn for Cloudflare {
    fn describe(&self) -> String {
        format!("cloudflare zone {}", self.config.zone_id)
    }

    fn purge(&self, what: CdnPurge) -> BoxFuture<'_, CdnOutcome> {
        Box::pin(async move {
            let mut outcome = CdnOutcome::default();
            for (body, n) in batches(&what) {
                let (attempts, error) = self.send_with_retries(&body).await;
                outcome.attempts += attempts;
                match error {
                    None => outcome.purged += n,
                    Some(e) => {
                        outcome.failed += n;
                        outcome.errors.push(e);
                    }
                }
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_batched_to_the_api_limit_one_kind_per_request() {
        let what = CdnPurge {
            files: (0..250).map(|i| format!("https://a.example/{i}")).collect(),
            tags: vec!["election:1".into()],
            ..CdnPurge::default()
        };
        let b = batches(&what);
        let sizes: Vec<u64> = b.iter().map(|(_, n)| *n).collect();
        assert_eq!(sizes, vec![100, 100, 50, 1]);
        assert_eq!(b[0].0["files"].as_array().map(Vec::len), Some(100));
        assert_eq!(b[3].0, json!({ "tags": ["election:1"] }));
        let all = batches(&CdnPurge {
            everything: true,
            ..CdnPurge::default()
        });
        assert_eq!(all, vec![(json!({ "purge_everything": true }), 1)]);
    }
}
