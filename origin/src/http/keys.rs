//! Request keys: the URL as the client addressed it, the request's headers as the key scheme
//! reads them, and a memo of recent keys so a hot URL is canonicalised and classified once.

use std::cell::RefCell;
use std::sync::Arc;

use surge_shared::key::{HeaderLookup, KeyError};
use surge_shared::{CacheKey, CanonicalUrl, Classified, Policy};

use super::headers::{HeaderSource, text};

/// Request headers through the shared [`HeaderLookup`].
pub struct Headers<'a, H: ?Sized>(pub &'a H);

impl<H: HeaderSource + ?Sized> HeaderLookup for Headers<'_, H> {
    fn header(&self, name: &str) -> Option<String> {
        let mut values = self.0.values_of(name).filter_map(text);
        let first = values.next()?.to_string();
        Some(values.fold(first, |mut acc, v| {
            acc.push_str(", ");
            acc.push_str(v);
            acc
        }))
    }
}

/// Appends the absolute URL of a request for `target` (its path and query) as the client
/// addressed it to `out`.
fn push_request_url(target: &str, headers: &(impl HeaderSource + ?Sized), out: &mut String) {
    let scheme = match headers.text_of("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let host = headers.text_of("host").unwrap_or("localhost");
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    out.push_str(if target.is_empty() { "/" } else { target });
}

thread_local! {
    /// The memo key of the request being keyed: written here, so a memo hit allocates nothing.
    static MEMO_KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A request's cache key and the classification of its path, as the memo keeps them.
pub struct Keyed {
    /// The cache key.
    pub key: CacheKey,
    /// The policy route the path is classified under, with its parameters.
    pub classified: Classified,
}

/// Remembers the canonical key and the classification of recent request URLs, so a hot URL
/// is parsed, canonicalised and matched against the policy once rather than on every hit.
/// The memo is keyed by everything the key depends on: the URL as addressed and the raw
/// values of the headers the key configuration declares as variants.
pub struct KeyMemo {
    memo: moka::sync::Cache<String, Arc<Keyed>>,
}

impl KeyMemo {
    /// A memo of at most `capacity` URLs.
    pub fn new(capacity: u64) -> Self {
        Self {
            memo: moka::sync::Cache::new(capacity),
        }
    }

    /// The key of a request for `target` (its path and query) under `policy`, keyed for the
    /// route its path is classified under (which keeps only its own query parameters).
    pub fn keyed(
        &self,
        policy: &Policy,
        target: &str,
        headers: &(impl HeaderSource + ?Sized),
    ) -> Result<Arc<Keyed>, KeyError> {
        let config = &policy.key;
        MEMO_KEY.with_borrow_mut(|memo_key| {
            memo_key.clear();
            push_request_url(target, headers, memo_key);
            let url_len = memo_key.len();
            for name in config.variant_headers() {
                memo_key.push('\n');
                for value in headers.values_of(name) {
                    memo_key.push_str(text(value).unwrap_or("\u{fffd}"));
                    memo_key.push(',');
                }
            }
            if let Some(keyed) = self.memo.get(memo_key.as_str()) {
                return Ok(keyed);
            }
            let path = target.split_once('?').map_or(target, |(path, _)| path);
            let classified = policy.classified(if path.is_empty() { "/" } else { path });
            let route = policy.route_of(&classified);
            let url = &memo_key[..url_len];
            let canonical = route.keyed_url(&CanonicalUrl::parse(config, url)?);
            let keyed = Arc::new(Keyed {
                key: CacheKey::for_canonical_url(config, &canonical, &Headers(headers)),
                classified,
            });
            self.memo.insert(memo_key.clone(), keyed.clone());
            Ok(keyed)
        })
    }
}
