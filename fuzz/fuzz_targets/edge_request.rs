//! Any request (method, URL, headers — Cloudflare's `cf-*` among them) and any origin
//! `Cache-Control` through the edge pipeline on the in-memory platform: no panic, and a
//! request carrying the auth cookie or `Authorization` is never answered from, nor stored in,
//! the shared cache.
#![no_main]

use std::time::Duration;

use futures_executor::block_on;
use libfuzzer_sys::fuzz_target;
use surge_edge::config::EdgeConfig;
use surge_edge::http::{Client, EdgeRequest, EdgeResponse, Headers};
use surge_edge::pipeline::Pipeline;
use surge_edge::platform::memory::{ManualClock, MemoryLimiter, MemoryStore, TaskQueue};
use surge_edge::seams::{FetchError, Upstream};

struct Origin {
    cache_control: String,
}

impl Upstream for Origin {
    async fn fetch(
        &self,
        _request: &EdgeRequest,
        _timeout: Duration,
    ) -> Result<EdgeResponse, FetchError> {
        let mut headers = Headers::new();
        headers.set("cache-control", self.cache_control.clone());
        Ok(EdgeResponse {
            status: 200,
            headers,
            body: b"body".to_vec(),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let method = lines.next().unwrap_or("GET").to_string();
    let path = lines.next().unwrap_or("/");
    let cache_control = lines.next().unwrap_or("public, s-maxage=60").to_string();
    let mut headers = Headers::new();
    for line in lines.take(16) {
        if let Some((name, value)) = line.split_once(':') {
            headers.append(name.trim(), value.trim());
        }
    }
    let credentialed = headers.get("cookie").is_some_and(|c| {
        surge_shared::auth::cookie_value(c, "auth_token").is_some_and(|v| !v.is_empty())
    }) || headers.get("authorization").is_some_and(|v| !v.is_empty());
    let config = EdgeConfig::from_vars(|name| {
        (name == "SURGE_GEO").then(|| {
            r#"{"regions":{"eu":{"origin":"http://eu.test"}},"default":["eu"]}"#.to_string()
        })
    })
    .expect("config");
    let clock = ManualClock::at(1_700_000_000_000);
    let pipeline = Pipeline::new(
        config,
        MemoryStore::new(clock.clone(), 100),
        MemoryLimiter::new(clock.clone()),
        Origin { cache_control },
        clock,
        TaskQueue::new(),
    );
    let request = EdgeRequest {
        method,
        url: format!("https://vote.example{path}"),
        headers,
        body: Vec::new(),
        client: Client {
            ip: Some("198.51.100.7".into()),
            country: Some("DE".into()),
            continent: Some("EU".into()),
        },
    };
    for _ in 0..2 {
        let response = block_on(pipeline.handle(request.clone()));
        if credentialed {
            let status = response.headers.get("x-surge-cache").unwrap_or("");
            assert!(
                !matches!(status, "HIT" | "STALE"),
                "credentialed request served from cache"
            );
            assert_eq!(pipeline.store().len(), 0, "credentialed response stored");
        }
    }
});
