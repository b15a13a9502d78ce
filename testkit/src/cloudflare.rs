//! A local stand-in for Cloudflare's cache purge API (which cannot be reached from tests):
//! `POST /client/v4/zones/{zone_id}/purge_cache`. It checks every request against the
//! documented contract — method, path and zone, `Authorization: Bearer <token>`, a JSON body
//! with exactly one of `files`, `tags`, `hosts`, `prefixes` (1–100 strings each) or
//! `purge_everything: true`, absolute URLs in `files` and scheme-less `hosts`/`prefixes` —
//! and answers in the documented envelope (`success`, `errors`, `messages`, `result`).
//! Scripted failures (429 with `Retry-After`, 5xx) can be queued ahead of normal answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::Result;
use crate::origin::{Reply, Seen, TestOrigin};

/// Most targets Cloudflare accepts in one purge request.
pub const MAX_PER_REQUEST: usize = 100;

/// The stand-in server.
pub struct CloudflareStandin {
    server: TestOrigin,
    token: String,
    zone_id: String,
    accepted: Arc<Mutex<Vec<Value>>>,
    rejected: Arc<Mutex<Vec<String>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

fn envelope(status: u16, code: i64, message: &str) -> Reply {
    let body = json!({
        "success": false,
        "errors": [{ "code": code, "message": message }],
        "messages": [],
        "result": null,
    });
    let mut reply = Reply::ok(body.to_string()).header("content-type", "application/json");
    reply.status = status;
    reply
}

/// Checks one request; `Err` is the client error Cloudflare would answer.
fn check(seen: &Seen, token: &str, zone_id: &str) -> std::result::Result<Value, Reply> {
    let path = format!("/client/v4/zones/{zone_id}/purge_cache");
    if seen.path != path {
        return Err(envelope(
            404,
            7003,
            &format!("no route for {} (expected {path})", seen.path),
        ));
    }
    if seen.method != "POST" {
        return Err(envelope(
            405,
            10405,
            "method not allowed: purge_cache takes POST",
        ));
    }
    if seen.header("authorization") != Some(format!("Bearer {token}").as_str()) {
        return Err(envelope(403, 10000, "Authentication error"));
    }
    let json_type = seen
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !json_type {
        return Err(envelope(
            400,
            6003,
            "Invalid request headers: Content-Type must be application/json",
        ));
    }
    let body: Value = serde_json::from_slice(&seen.body)
        .map_err(|e| envelope(400, 1012, &format!("request body is not JSON: {e}")))?;
    let object = body
        .as_object()
        .ok_or_else(|| envelope(400, 1012, "request body must be a JSON object"))?;
    if object.len() != 1 {
        return Err(envelope(
            400,
            1012,
            "send exactly one of files, tags, hosts, prefixes or purge_everything per request",
        ));
    }
    let (field, value) = object
        .iter()
        .next()
        .ok_or_else(|| envelope(400, 1012, "empty body"))?;
    if field == "purge_everything" {
        return if value == &json!(true) {
            Ok(body.clone())
        } else {
            Err(envelope(400, 1012, "purge_everything must be true"))
        };
    }
    if !matches!(field.as_str(), "files" | "tags" | "hosts" | "prefixes") {
        return Err(envelope(400, 1012, &format!("unknown field {field:?}")));
    }
    let items = value
        .as_array()
        .ok_or_else(|| envelope(400, 1012, &format!("{field} must be an array")))?;
    if items.is_empty() || items.len() > MAX_PER_REQUEST {
        return Err(envelope(
            400,
            1012,
            &format!(
                "{field}: between 1 and {MAX_PER_REQUEST} entries per request, got {}",
                items.len()
            ),
        ));
    }
    for item in items {
        let Some(text) = item.as_str() else {
            return Err(envelope(
                400,
                1012,
                &format!("{field} entries must be strings"),
            ));
        };
        let has_scheme = text.starts_with("http://") || text.starts_with("https://");
        let ok = match field.as_str() {
            "files" => has_scheme,
            "hosts" => !text.contains('/') && !text.is_empty(),
            "prefixes" => !has_scheme && !text.is_empty(),
            _ => !text.is_empty() && !text.contains(','),
        };
        if !ok {
            return Err(envelope(
                400,
                1012,
                &format!("{field}: {text:?} is not valid there"),
            ));
        }
    }
    Ok(body.clone())
}

impl CloudflareStandin {
    /// Starts on a free port with a fresh token and zone id.
    pub fn start() -> Result<Self> {
        let token = format!("standin-token-{:016x}", std::process::id() as u64 * 7919);
        let zone_id = format!("{:032x}", u128::from(std::process::id()) * 104_729);
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let rejected = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::new(Mutex::new(VecDeque::new()));
        let (t, z, a, r, s) = (
            token.clone(),
            zone_id.clone(),
            accepted.clone(),
            rejected.clone(),
            script.clone(),
        );
        let server = TestOrigin::start(move |seen| {
            if let Some(reply) = s.lock().ok().and_then(|mut q| q.pop_front()) {
                return reply;
            }
            match check(seen, &t, &z) {
                Ok(body) => {
                    if let Ok(mut a) = a.lock() {
                        a.push(body);
                    }
                    let id = format!("{:032x}", a.lock().map(|a| a.len()).unwrap_or(0));
                    Reply::ok(
                        json!({ "success": true, "errors": [], "messages": [], "result": { "id": id } })
                            .to_string(),
                    )
                    .header("content-type", "application/json")
                }
                Err(reply) => {
                    if let Ok(mut r) = r.lock() {
                        r.push(String::from_utf8_lossy(&reply.body).into_owned());
                    }
                    reply
                }
            }
        })?;
        Ok(Self {
            server,
            token,
            zone_id,
            accepted,
            rejected,
            script,
        })
    }

    /// The API base to configure (`CLOUDFLARE_API_BASE`).
    pub fn api_base(&self) -> String {
        format!("{}/client/v4", self.server.url())
    }

    /// The token it accepts (`CLOUDFLARE_API_TOKEN`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Its zone (`CLOUDFLARE_ZONE_ID`).
    pub fn zone_id(&self) -> &str {
        &self.zone_id
    }

    /// Bodies of the purges it accepted, in order.
    pub fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Error bodies of requests it refused as malformed or unauthorised.
    pub fn rejected(&self) -> Vec<String> {
        self.rejected.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Every request seen, scripted ones included.
    pub fn requests(&self) -> Vec<Seen> {
        self.server.requests()
    }

    /// Answers the next request with `reply` instead of checking it (for 429s and 5xx).
    pub fn queue(&self, reply: Reply) {
        if let Ok(mut q) = self.script.lock() {
            q.push_back(reply);
        }
    }

    /// A 429 as Cloudflare sends it when the purge rate limit is hit.
    pub fn rate_limited(retry_after_secs: u64) -> Reply {
        envelope(
            429,
            971,
            "Please wait and consider throttling your request speed",
        )
        .header("retry-after", &retry_after_secs.to_string())
    }
}
