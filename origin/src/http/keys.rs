//! Request keys: the URL as the client addressed it, the request's headers as the key scheme
//! reads them, and a memo of recent keys so a hot URL is canonicalised once.

use std::cell::RefCell;
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

/// Appends the absolute URL of a request as the client addressed it to `out`.
fn push_request_url(uri: &Uri, headers: &HeaderMap, out: &mut String) {
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
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    out.push_str(uri.path_and_query().map_or("/", |p| p.as_str()));
}

thread_local! {
    /// The memo key of the request being keyed: written here, so a memo hit allocates nothing.
    static MEMO_KEY: RefCell<String> = const { RefCell::new(String::new()) };
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
        MEMO_KEY.with_borrow_mut(|memo_key| {
            memo_key.clear();
            push_request_url(uri, headers, memo_key);
            let url_len = memo_key.len();
            for name in config.variant_headers() {
                memo_key.push('\n');
                for value in headers.get_all(name) {
                    memo_key.push_str(value.to_str().unwrap_or("\u{fffd}"));
                    memo_key.push(',');
                }
            }
            if let Some(key) = self.memo.get(memo_key.as_str()) {
                return Ok(key);
            }
            let url = &memo_key[..url_len];
            let canonical = route.keyed_url(&CanonicalUrl::parse(config, url)?);
            let key = Arc::new(CacheKey::for_canonical_url(
                config,
                &canonical,
                &Headers(headers),
            ));
            self.memo.insert(memo_key.clone(), key.clone());
            Ok(key)
        })
    }
}
