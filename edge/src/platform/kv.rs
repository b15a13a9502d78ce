//! Edge cache and limiter state in a host key-value store, for runtimes that give every
//! request a fresh instance (Spin, SpinKube, `wasmtime serve`): nothing in instance memory
//! outlives the request, so what must be shared lives in the host's store.
//!
//! - The cache keeps each response under `cache:<hashed key>` with the time it may be kept
//!   until; an entry read after that time is deleted and is a miss. Each put also leaves an
//!   empty marker, `cache-until:<keep-until-ms>:<hashed key>`, so that a sweep finds the
//!   entries past their time from key names alone.
//! - The GCRA limiter keeps each identity's theoretical arrival time as 8 bytes under
//!   `rate:<dead-after-ms>:<quota>:<identity>`. Time is cut in buckets as long as the quota's
//!   horizon (its burst window, at least a second); a check reads the current bucket's key,
//!   or the previous one's when the current has none, and writes the current. A state written
//!   in bucket `b` matters no more from the end of bucket `b + 1`, and its key says so.
//!
//! Spin's key-value interface offers get, set and delete, each atomic on its own, and no
//! compare-and-swap: two instances checking the same identity at the same moment can both
//! read the old arrival time, so a burst from one client across instances may get a few more
//! requests through than its quota allows (at most one per concurrent instance). The quota
//! still holds across requests, which instance memory could not do. Stores set no expiry
//! either, so about one check in `SURGE_KV_SWEEP_ONE_IN` (1,024 by default) also sweeps: it
//! lists key names (at most [`SWEEP_MAX_KEYS`]) and deletes the limiter keys whose time has
//! passed, reading no values, and the cache markers whose time has passed with their entries
//! — reading only those entries, to keep one a later put renewed. The store then holds the
//! identities seen in the last two buckets and the cache entries still within their time,
//! not every client and page ever seen. (A put racing the sweep of its key's old marker may
//! lose its fresh entry: one more miss, nothing served wrong.)
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
    /// Up to `limit` key names, in the store's order.
    async fn keys(&self, limit: usize) -> Result<Vec<String>, PlatformError>;
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
    entry_key(&key.hashed())
}

/// The entry of the hashed key `hash`.
fn entry_key(hash: &str) -> String {
    format!("cache:{hash}")
}

/// The marker saying the entry of `hash` may be kept until `keep_until_ms`.
fn marker_key(keep_until_ms: u64, hash: &str) -> String {
    format!("cache-until:{keep_until_ms}:{hash}")
}

/// The time and hashed key a marker's name holds.
fn marker(name: &str) -> Option<(u64, &str)> {
    let (until, hash) = name.strip_prefix("cache-until:")?.split_once(':')?;
    Some((until.parse().ok()?, hash))
}

/// The keep-until time of an encoded entry, without decoding the rest.
fn kept_until(bytes: &[u8]) -> Option<u64> {
    let rest = bytes.strip_prefix(ENTRY_FORMAT)?;
    Some(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?))
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
        let hash = key.hashed();
        self.kv
            .set(&entry_key(&hash), &encode(keep_until, response))
            .await?;
        self.kv.set(&marker_key(keep_until, &hash), &[]).await
    }
}

/// The GCRA limiter over a host key-value store.
pub struct KvLimiter<K, C> {
    kv: K,
    clock: C,
    sweep_one_in: u64,
}

impl<K: KeyValue, C: Clock> KvLimiter<K, C> {
    /// A limiter keeping its state in `kv`; about one check in `sweep_one_in` (at least 1)
    /// also sweeps it.
    pub fn new(kv: K, clock: C, sweep_one_in: u64) -> Self {
        Self {
            kv,
            clock,
            sweep_one_in: sweep_one_in.max(1),
        }
    }
}

/// Most key names one sweep reads.
pub const SWEEP_MAX_KEYS: usize = 65_536;

impl<K: KeyValue, C: Clock> KvLimiter<K, C> {
    /// Deletes what has passed its time in the store the limiter shares with the cache: the
    /// limiter keys, and the cache markers with their entries unless a later put renewed
    /// the entry. Returns how many keys went.
    pub async fn sweep(&self) -> Result<usize, PlatformError> {
        let now_ms = self.clock.now_ms();
        let mut deleted = 0;
        for name in self.kv.keys(SWEEP_MAX_KEYS).await? {
            if let Some(until) = dead_after(&name) {
                if until <= now_ms {
                    self.kv.delete(&name).await?;
                    deleted += 1;
                }
            } else if let Some((until, hash)) = marker(&name)
                && until <= now_ms
            {
                let entry = entry_key(hash);
                if let Some(bytes) = self.kv.get(&entry).await?
                    && kept_until(&bytes).is_none_or(|keep| keep <= now_ms)
                {
                    self.kv.delete(&entry).await?;
                    deleted += 1;
                }
                self.kv.delete(&name).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// The limiter key of `scope` for the bucket of length `bucket_ms` numbered `bucket`.
fn rate_key(scope: &LimitScope, bucket_ms: u64, bucket: u64) -> String {
    let dead_after = bucket.saturating_add(2).saturating_mul(bucket_ms);
    format!("rate:{dead_after}:{}:{}", scope.name, scope.key)
}

/// When a limiter key's state stops mattering (ms), read from its name.
fn dead_after(name: &str) -> Option<u64> {
    let (until, _) = name.strip_prefix("rate:")?.split_once(':')?;
    until.parse().ok()
}

/// Whether this check also sweeps: a hash of the identity and the time, so about one check
/// in `one_in` across all instances, without shared state.
fn sweeps_now(scope: &LimitScope, now_ms: u64, one_in: u64) -> bool {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (scope.key.as_str(), now_ms).hash(&mut hasher);
    hasher.finish().is_multiple_of(one_in)
}

impl<K: KeyValue, C: Clock> RateLimiter for KvLimiter<K, C> {
    async fn check(&self, scope: &LimitScope) -> Result<Decision, PlatformError> {
        let now_ms = self.clock.now_ms();
        let bucket_ms = (scope.quota.horizon() / 1_000_000).max(1000);
        let bucket = now_ms / bucket_ms;
        let current = rate_key(scope, bucket_ms, bucket);
        let stored = match self.kv.get(&current).await? {
            Some(bytes) => Some(bytes),
            None if bucket > 0 => self.kv.get(&rate_key(scope, bucket_ms, bucket - 1)).await?,
            None => None,
        };
        let state = GcraState {
            tat: stored
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map_or(0, u64::from_be_bytes),
        };
        let now_ns = now_ms.saturating_mul(1_000_000);
        let (decision, next) = scope.quota.check(state, now_ns, 1);
        if next != state {
            self.kv.set(&current, &next.tat.to_be_bytes()).await?;
        }
        if sweeps_now(scope, now_ms, self.sweep_one_in) {
            // The decision stands whatever the sweep meets; the next sweep tries again.
            let _ = self.sweep().await;
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
        async fn keys(&self, limit: usize) -> Result<Vec<String>, PlatformError> {
            Ok(self.0.borrow().keys().take(limit).cloned().collect())
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
        assert_eq!(entries(&map), 0, "the expired entry is deleted");
        // Garbage under a cache key is a miss, and removed.
        map.0
            .borrow_mut()
            .insert(cache_key(&key("/c")), b"garbage".to_vec());
        assert_eq!(block_on(reader.get(&key("/c"))).expect("get"), None);
        assert_eq!(entries(&map), 0);
    }

    /// How many cache entries `map` holds.
    fn entries(map: &Map) -> usize {
        map.0
            .borrow()
            .keys()
            .filter(|k| k.starts_with("cache:"))
            .count()
    }

    #[test]
    fn a_sweep_deletes_cache_entries_past_their_time_and_keeps_renewed_ones() {
        let map = Map::default();
        let clock = ManualClock::at(1_000_000);
        let store = KvStore::new(map.clone(), clock.clone());
        let put = |path: &str, secs: u64| {
            block_on(store.put(&key(path), &response(), Duration::from_secs(secs))).expect("put");
        };
        put("/short", 10);
        put("/renewed", 10);
        put("/long", 3600);
        clock.advance(Duration::from_secs(5));
        put("/renewed", 3600);
        // Past the time of the short entry and of the renewed one's first put; never read.
        clock.advance(Duration::from_secs(10));
        let limiter = KvLimiter::new(map.clone(), clock.clone(), 1024);
        // The short entry and its marker, the renewed entry's old marker.
        assert_eq!(block_on(limiter.sweep()).expect("sweep"), 3);
        assert_eq!(block_on(store.get(&key("/short"))).expect("get"), None);
        for kept in ["/renewed", "/long"] {
            assert_eq!(
                block_on(store.get(&key(kept))).expect("get"),
                Some(response()),
                "{kept}"
            );
        }
        let left = map.0.borrow().len();
        assert_eq!(left, 4, "two entries and their markers");
        clock.advance(Duration::from_secs(3600));
        assert_eq!(block_on(limiter.sweep()).expect("sweep"), 4);
        assert!(map.0.borrow().is_empty());
    }

    #[test]
    fn the_store_stays_bounded_as_pages_come_and_go() {
        let map = Map::default();
        let clock = ManualClock::at(60_000 * 1000);
        let store = KvStore::new(map.clone(), clock.clone());
        // 20,000 pages each cached once for a minute and never read again, and a limiter
        // check for each, 10 a second for over half an hour.
        for i in 0..20_000u32 {
            block_on(store.put(
                &key(&format!("/api/elections/{i}/ballot")),
                &response(),
                Duration::from_secs(60),
            ))
            .expect("put");
            allowed(
                &map,
                &clock,
                &format!("10.0.{}.{}", (i >> 8) & 255, i & 255),
            );
            clock.advance(Duration::from_millis(100));
        }
        let held = entries(&map);
        // A minute of pages (600) and what came since the last sweep (one check in 1,024
        // sweeps, on average; the gaps vary); without sweeps, all 20,000.
        assert!(held < 5_000, "{held} entries held for 20,000 pages");
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
            let limiter = KvLimiter::new(map.clone(), clock.clone(), 1024);
            if block_on(limiter.check(&scope)).expect("check").is_allowed() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 3);
        clock.advance(Duration::from_secs(20));
        let limiter = KvLimiter::new(map.clone(), clock.clone(), 1024);
        assert!(block_on(limiter.check(&scope)).expect("check").is_allowed());
    }

    fn scope(identity: &str) -> LimitScope {
        LimitScope {
            name: "read".into(),
            key: identity.into(),
            // 3 a minute, burst 3: a 60 s horizon, so 60 s buckets.
            quota: Quota {
                rate: 3,
                period: Duration::from_secs(60),
                burst: 3,
                key: LimitKey::Ip,
            },
        }
    }

    fn allowed(map: &Map, clock: &ManualClock, identity: &str) -> bool {
        let limiter = KvLimiter::new(map.clone(), clock.clone(), 1024);
        block_on(limiter.check(&scope(identity)))
            .expect("check")
            .is_allowed()
    }

    #[test]
    fn the_quota_holds_across_a_bucket_boundary() {
        let map = Map::default();
        let clock = ManualClock::at(60_000 * 1000 - 5);
        for _ in 0..3 {
            assert!(allowed(&map, &clock, "192.0.2.1"));
        }
        clock.advance(Duration::from_millis(10));
        assert!(
            !allowed(&map, &clock, "192.0.2.1"),
            "the new bucket reads the previous one"
        );
        clock.advance(Duration::from_secs(20));
        assert!(allowed(&map, &clock, "192.0.2.1"));
    }

    #[test]
    fn a_sweep_deletes_only_limiter_keys_past_their_time() {
        let map = Map::default();
        let clock = ManualClock::at(60_000 * 1000);
        for i in 0..50 {
            allowed(&map, &clock, &format!("198.51.100.{i}"));
        }
        clock.advance(Duration::from_secs(60));
        for i in 0..5 {
            allowed(&map, &clock, &format!("203.0.113.{i}"));
        }
        map.0
            .borrow_mut()
            .insert(cache_key(&key("/a")), encode(u64::MAX, &response()));
        let limiter = KvLimiter::new(map.clone(), clock.clone(), 1024);
        assert_eq!(
            block_on(limiter.sweep()).expect("sweep"),
            0,
            "all still matter"
        );
        clock.advance(Duration::from_secs(60));
        assert_eq!(block_on(limiter.sweep()).expect("sweep"), 50);
        let left: Vec<String> = map.0.borrow().keys().cloned().collect();
        assert_eq!(left.len(), 6, "{left:?}");
        assert!(
            left.iter()
                .all(|k| k.contains("203.0.113.") || k.starts_with("cache:"))
        );
    }

    #[test]
    fn the_store_stays_bounded_as_identities_come_and_go() {
        let map = Map::default();
        let clock = ManualClock::at(60_000 * 1000);
        // 20,000 clients, one request each, 10 a second for over half an hour.
        for i in 0..20_000u32 {
            allowed(
                &map,
                &clock,
                &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
            );
            clock.advance(Duration::from_millis(100));
        }
        let held = map.0.borrow().len();
        // Two buckets of clients (1,200) and what came since the last sweep.
        assert!(held < 4_000, "{held} keys held for 20,000 clients");
    }
}
