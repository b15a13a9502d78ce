//! Request keys: the URL as the client addressed it, the request's headers as the key scheme
//! reads them, and a memo of recent keys so a hot URL is canonicalised once.

use std::sync::Arc;

use axum::http::{HeaderMap, Uri, header};
use surge_shared::key::{HeaderLookup, KeyConfig, KeyError};
use surge_shared::{CacheKey, CanonicalUrl, Route};

/// Request headers through the shared [`HeaderLookup`].
pub struct Headers<'a>(pub &'a HeaderMap);

impl HeaderLookup for Headers<'_> {
    fn header(&self, name: &str) -> Option<String> {
        let mut values = self.0.get_all(name).iter().filter_map(|v| v.to_str().ok());
        let first = values.next()?.to_string();
        Some(values.fold(first, |mut acc, v| {
            acc.push_str(", ");
            acc.push_str(v);
            acc
        }))
    }
}

/// The absolute URL of a request as the client addressed it.
pub fn request_url(uri: &Uri, headers: &HeaderMap) -> String {
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{scheme}://{host}{path}")
}

/// Remembers the canonical key of recent request URLs, so a hot URL is parsed and
/// canonicalised once rather than on every hit. The memo is keyed by everything the key
/// depends on: the URL as addressed and the raw values of the headers the key
/// configuration declares as variants.
pub struct KeyMemo {
    memo: moka::sync::Cache<String, Arc<CacheKey>>,
}

impl KeyMemo {
    /// A memo of at most `capacity` URLs.
    pub fn new(capacity: u64) -> Self {
        Self {
            memo: moka::sync::Cache::new(capacity),
        }
    }

    /// The request's key under `config`, for `route` (which keeps only its own query
    /// parameters).
    pub fn key_for(
        &self,
        config: &KeyConfig,
        route: &Route,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Arc<CacheKey>, KeyError> {
        let url = request_url(uri, headers);
        let mut memo_key = url.clone();
        for name in config.variant_headers() {
            memo_key.push('\n');
            for value in headers.get_all(name) {
                memo_key.push_str(value.to_str().unwrap_or("\u{fffd}"));
                memo_key.push(',');
            }
        }
        if let Some(key) = self.memo.get(&memo_key) {
            return Ok(key);
        }
        let canonical = route.keyed_url(&CanonicalUrl::parse(config, &url)?);
        let key = Arc::new(CacheKey::for_canonical_url(
            config,
            &canonical,
            &Headers(headers),
        ));
        self.memo.insert(memo_key, key.clone());
        Ok(key)
    }
}
