//! Edge cache and limiter state in a host key-value store, for runtimes that give every
//! request a fresh instance (Spin, SpinKube, `wasmtime serve`): nothing in instance memory
//! outlives the request, so what must be shared lives in the host's store.
//!
//! - The cache keeps each response under `cache:<hashed key>` with the time it may be kept
//!   until; an entry read after that time is deleted and is a miss.
//! - The GCRA limiter keeps each identity's theoretical arrival time under
//!   `rate:<quota>:<identity>` as 8 bytes.
//!
//! Spin's key-value interface offers get, set and delete, each atomic on its own, and no
//! compare-and-swap: two instances checking the same identity at the same moment can both
//! read the old arrival time, so a burst from one client across instances may get a few more
//! requests through than its quota allows (at most one per concurrent instance). The quota
//! still holds across requests, which instance memory could not do. Stores also set no
//! expiry, so limiter keys stay until the store is cleared; a store with eviction (Spin's
//! Redis-backed store, with `maxmemory-policy allkeys-lru`) bounds them.
#![allow(async_fn_in_trait)] // Wasm runtimes are single-threaded: futures are not `Send`.

use std::time::Duration;

use surge_shared::CacheKey;
use surge_shared::freshness::millis;
use surge_shared::rate::{Decision, GcraState};

use crate::http::{EdgeResponse, Headers};
use crate::seams::{CacheStore, Clock, LimitScope, PlatformError, RateLimiter};

/// A host key-value store, as narrow as the edge needs it.
pub trait KeyValue {
    /// The value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PlatformError>;
    /// Sets `key` to `value`.
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), PlatformError>;
    /// Removes `key` (no error when it is absent).
    async fn delete(&self, key: &str) -> Result<(), PlatformError>;
}

/// Format tag of a stored entry.
const ENTRY_FORMAT: &[u8; 4] = b"SE1\0";

/// `response` with the time (ms since the epoch) it may be kept until.
fn encode(keep_until_ms: u64, response: &EdgeResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + response.body.len());
    out.extend_from_slice(ENTRY_FORMAT);
    out.extend_from_slice(&keep_until_ms.to_be_bytes());
    out.extend_from_slice(&response.status.to_be_bytes());
    let headers: Vec<(&str, &str)> = response.headers.iter().collect();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        for part in [name.as_bytes(), value.as_bytes()] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out.extend_from_slice(&(response.body.len() as u32).to_be_bytes());
    out.extend_from_slice(&response.body);
    out
}

/// Reads what [`encode`] wrote; `None` for anything else.
fn decode(bytes: &[u8]) -> Option<(u64, EdgeResponse)> {
    struct Reader<'a>(&'a [u8]);
    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }
        fn u32(&mut self) -> Option<usize> {
            let b: [u8; 4] = self.take(4)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(b)).ok()
        }
        fn text(&mut self) -> Option<String> {
            let n = self.u32()?;
            String::from_utf8(self.take(n)?.to_vec()).ok()
        }
    }
    let mut r = Reader(bytes);
    if r.take(4)? != ENTRY_FORMAT {
        return None;
    }
    let keep_until = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let status = u16::from_be_bytes(r.take(2)?.try_into().ok()?);
    let count = r.u32()?;
    let mut headers = Headers::default();
    for _ in 0..count {
        let name = r.text()?;
        let value = r.text()?;
        headers.append(&name, value);
    }
    let n = r.u32()?;
    let body = r.take(n)?.to_vec();
    if !r.0.is_empty() {
        return None;
    }
    Some((
        keep_until,
        EdgeResponse {
            status,
            headers,
            body,
        },
    ))
}

/// The edge cache over a host key-value store.
pub struct KvStore<K, C> {
    kv: K,
    clock: C,
}

impl<K: KeyValue, C: Clock> KvStore<K, C> {
    /// A cache in `kv`, expiring entries by `clock`.
    pub fn new(kv: K, clock: C) -> Self {
        Self { kv, clock }
    }
}

fn cache_key(key: &CacheKey) -> String {
    format!("cache:{}", key.hashed())
}

impl<K: KeyValue, C: Clock> CacheStore for KvStore<K, C> {
    async fn get(&self, key: &CacheKey) -> Result<Option<EdgeResponse>, PlatformError> {
        let name = cache_key(key);
        let Some(bytes) = self.kv.get(&name).await? else {
            return Ok(None);
        };
        match decode(&bytes) {
            Some((keep_until, response)) if keep_until > self.clock.now_ms() => Ok(Some(response)),
            // Past its time, or not an entry this edge wrote: gone, and a miss.
            _ => {
                self.kv.delete(&name).await?;
                Ok(None)
            }
        }
    }

    async fn put(
        &self,
        key: &CacheKey,
        response: &EdgeResponse,
        keep_for: Duration,
    ) -> Result<(), PlatformError> {
        let keep_until = self.clock.now_ms().saturating_add(millis(keep_for));
        self.kv
            .set(&cache_key(key), &encode(keep_until, response))
            .await
    }
}

/// The GCRA limiter over a host key-value store.
pub struct KvLimiter<K, C> {
    kv: K,
    clock: C,
}

impl<K: KeyValue, C: Clock> KvLimiter<K, C> {
    /// A limiter keeping its state in `kv`.
    pub fn new(kv: K, clock: C) -> Self {
        Self { kv, clock }
    }
}

impl<K: KeyValue, C: Clock> RateLimiter for KvLimiter<K, C> {
    async fn check(&self, scope: &LimitScope) -> Result<Decision, PlatformError> {
        let name = format!("rate:{}:{}", scope.name, scope.key);
        let state = GcraState {
            tat: self
                .kv
                .get(&name)
                .await?
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map_or(0, u64::from_be_bytes),
        };
        let now_ns = self.clock.now_ms().saturating_mul(1_000_000);
        let (decision, next) = scope.quota.check(state, now_ns, 1);
        if next != state {
            self.kv.set(&name, &next.tat.to_be_bytes()).await?;
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use futures_executor::block_on;
    use surge_shared::rate::{LimitKey, Quota};

    use super::*;
    use crate::platform::memory::ManualClock;

    /// A map shared by every "instance" built on it, as a host store is.
    #[derive(Clone, Default)]
    struct Map(Rc<RefCell<HashMap<String, Vec<u8>>>>);

    impl KeyValue for Map {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PlatformError> {
            Ok(self.0.borrow().get(key).cloned())
        }
        async fn set(&self, key: &str, value: &[u8]) -> Result<(), PlatformError> {
            self.0.borrow_mut().insert(key.to_string(), value.to_vec());
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), PlatformError> {
            self.0.borrow_mut().remove(key);
            Ok(())
        }
    }

    fn key(path: &str) -> CacheKey {
        let policy = surge_shared::Policy::election_default();
        CacheKey::new(
            &policy.key,
            "GET",
            &format!("https://vote.example{path}"),
            &[][..] as &[(&str, &str)],
        )
        .expect("key")
    }

    fn response() -> EdgeResponse {
        let mut headers = Headers::default();
        headers.append("cache-control", "public, s-maxage=60");
        headers.append("set-cookie-like", "a=1");
        headers.append("set-cookie-like", "b=2");
        EdgeResponse {
            status: 203,
            headers,
            body: b"\0binary\xffbody".to_vec(),
        }
    }

    #[test]
    fn entries_round_trip_and_anything_else_is_refused() {
        let bytes = encode(42, &response());
        assert_eq!(decode(&bytes), Some((42, response())));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        assert_eq!(decode(b"not an entry at all"), None);
    }

    #[test]
    fn an_entry_is_shared_by_instances_until_its_time_passes() {
        let map = Map::default();
        let clock = ManualClock::at(1_000_000);
        let writer = KvStore::new(map.clone(), clock.clone());
        block_on(writer.put(&key("/a"), &response(), Duration::from_secs(10))).expect("put");
        // Another instance, on the same host store.
        let reader = KvStore::new(map.clone(), clock.clone());
        assert_eq!(
            block_on(reader.get(&key("/a"))).expect("get"),
            Some(response())
        );
        assert_eq!(block_on(reader.get(&key("/b"))).expect("get"), None);
        clock.advance(Duration::from_secs(10));
        assert_eq!(block_on(reader.get(&key("/a"))).expect("get"), None);
        assert!(map.0.borrow().is_empty(), "the expired entry is deleted");
        // Garbage under a cache key is a miss, and removed.
        map.0
            .borrow_mut()
            .insert(cache_key(&key("/c")), b"garbage".to_vec());
        assert_eq!(block_on(reader.get(&key("/c"))).expect("get"), None);
        assert!(map.0.borrow().is_empty());
    }

    #[test]
    fn a_quota_is_reached_across_instances() {
        let map = Map::default();
        let clock = ManualClock::at(1_000_000);
        let scope = LimitScope {
            name: "read".into(),
            key: "192.0.2.1".into(),
            quota: Quota {
                rate: 3,
                period: Duration::from_secs(60),
                burst: 3,
                key: LimitKey::Ip,
            },
        };
        let mut allowed = 0;
        for _ in 0..10 {
            // Each request is a fresh instance over the same store.
            let limiter = KvLimiter::new(map.clone(), clock.clone());
            if block_on(limiter.check(&scope)).expect("check").is_allowed() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 3);
        clock.advance(Duration::from_secs(20));
        let limiter = KvLimiter::new(map.clone(), clock.clone());
        assert!(block_on(limiter.check(&scope)).expect("check").is_allowed());
    }
}
