//! Warming: fetch URLs through this origin's own public routes, so the cache fills exactly as
//! a reader's request would fill it. Used by `POST /performance/cache/warm` and by scheduled
//! scaling events that ask for a warm cache at their start.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::header;
use futures_util::stream::{self, StreamExt};
use surge_shared::admin::{WarmFailure, WarmReport};
use surge_shared::edge_auth::{self, EdgeKey};

/// This process's public listener as warming reaches it: signed like the edge's requests
/// when the listener checks them (`SURGE_EDGE_KEYS`).
#[derive(Debug, Clone)]
pub struct SelfTarget {
    /// The public listener.
    pub listen: SocketAddr,
    /// The key to sign with: the newest edge key, if the origin has any.
    pub key: Option<EdgeKey>,
}

/// Fetches `urls` (absolute URLs keep their host; paths use this origin's) through the origin
/// at `target`, `concurrency` at a time.
pub async fn warm(target: &SelfTarget, urls: Vec<String>, concurrency: usize) -> WarmReport {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return WarmReport {
                warmed: 0,
                failed: urls
                    .into_iter()
                    .map(|url| WarmFailure {
                        url,
                        error: format!("HTTP client: {e}"),
                    })
                    .collect(),
            };
        }
    };
    let fetches = urls.into_iter().map(|url| {
        let client = client.clone();
        async move {
            let (host, path) = match url.split_once("://") {
                Some((_, rest)) => match rest.find('/') {
                    Some(i) => (Some(rest[..i].to_string()), rest[i..].to_string()),
                    None => (Some(rest.to_string()), "/".to_string()),
                },
                None => (None, url.clone()),
            };
            let to = match reqwest::Url::parse(&format!("http://{}{path}", target.listen)) {
                Ok(to) => to,
                Err(e) => {
                    return Err(WarmFailure {
                        url,
                        error: format!("not a path: {e}"),
                    });
                }
            };
            let signed = target.key.as_ref().map(|key| {
                let mut sent = to.path().to_string();
                if let Some(query) = to.query() {
                    sent.push('?');
                    sent.push_str(query);
                }
                edge_auth::sign(key, crate::clock::now_ms() / 1000, "GET", &sent)
            });
            let mut req = client.get(to);
            if let Some(host) = host {
                req = req.header(header::HOST, host);
            }
            if let Some(signature) = signed {
                req = req.header(edge_auth::HEADER, signature);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(WarmFailure {
                    url,
                    error: format!("HTTP {}", r.status().as_u16()),
                }),
                Err(e) => Err(WarmFailure {
                    url,
                    error: e.to_string(),
                }),
            }
        }
    });
    let results: Vec<Result<(), WarmFailure>> = stream::iter(fetches)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let warmed = results.iter().filter(|r| r.is_ok()).count();
    WarmReport {
        warmed: u64::try_from(warmed).unwrap_or(u64::MAX),
        failed: results.into_iter().filter_map(Result::err).collect(),
    }
}
