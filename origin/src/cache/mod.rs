//! The hybrid cache: L1 (`moka`, per process) over L2 (Redis or Redis Cluster), kept in step
//! across processes by a Redis pub/sub backplane. Keys and tags come from `surge-shared`.
//!
//! - `get_or_set` protects the factory from stampedes three ways: per-process single-flight,
//!   a cluster-wide Redis lock with a fencing token, and probabilistic early refresh (XFetch).
//! - Stale-while-revalidate serves a stale value while one background refresh runs; fail-safe
//!   serves a stale value when the factory fails or times out, and throttles retries.
//! - Tags are invalidated in O(1) per tag: each entry remembers the versions of its tags, an
//!   invalidation bumps the version, and a read compares. Purging a tag never touches the
//!   entries it covers. Cascades from the shared policy extend the purge.
//! - Redis failures never fail a call: L2 is skipped (circuit breaker) and the cache answers
//!   from L1 and the factory until Redis is back.

pub mod backplane;
pub mod circuit;
mod compute;
pub mod config;
pub mod entry;
mod fail_safe;
pub mod l1;
pub mod l2;
pub mod lock;
mod lookup;
pub mod options;
mod refresh;
pub mod stats;
pub mod strategy;
pub mod tags;
pub mod warm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use surge_shared::freshness::EntryState;
use surge_shared::{CacheStatus, Cascade, KeyPattern, Layer, TagSet, Tier};

use self::backplane::Event;
use self::l1::{L1, L1Limits};
use self::l2::{L2, RedisTarget};
use self::lookup::{decode_value, typed, usable};
use self::options::EntryOptions;
use self::stats::{Stats, StatsSnapshot};
use self::tags::TagVersions;
use crate::clock::now_ms;

/// Longest key accepted (bytes).
pub const MAX_KEY_LEN: usize = 16 * 1024 + 64;

/// A value and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup<T> {
    /// The value.
    pub value: T,
    /// `Hit`, `Miss` (computed now) or `Stale` (served past its TTL).
    pub status: CacheStatus,
    /// Where it came from.
    pub tier: Tier,
    /// True when a stale value stands in for a failed or slow factory.
    pub fail_safe: bool,
}

/// What a cache call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The key is empty, too long or has control characters.
    #[error("invalid cache key: {0}")]
    InvalidKey(String),
    /// The factory failed (or timed out) and no stale value could stand in.
    #[error("the value could not be produced: {0}")]
    Factory(String),
    /// The value could not be encoded.
    #[error("the value cannot be encoded: {0}")]
    Encode(String),
    /// A cascade or tag problem.
    #[error("{0}")]
    Tags(String),
}

/// How the cache is set up.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// This process's name on the backplane.
    pub instance: String,
    /// L1 bounds.
    pub l1: L1Limits,
    /// Redis, if any (L1-only without).
    pub redis: Option<RedisTarget>,
    /// A `noeviction` Redis for the tag versions and the write-version counter, apart from
    /// the evictable entries; `None`: they live in `redis`.
    pub redis_state: Option<RedisTarget>,
    /// A certificate authority (PEM) trusted besides the platform's roots for `rediss://`.
    pub redis_ca: Option<Arc<[u8]>>,
    /// Timeout of one Redis operation.
    pub redis_timeout: Duration,
    /// Defaults for calls that pass no options.
    pub defaults: EntryOptions,
    /// Tag cascades.
    pub cascade: Cascade,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            instance: format!("origin-{}-{}", std::process::id(), now_ms()),
            l1: L1Limits::default(),
            redis: None,
            redis_state: None,
            redis_ca: None,
            redis_timeout: Duration::from_millis(500),
            defaults: EntryOptions::default(),
            cascade: Cascade::default(),
        }
    }
}

struct Inner {
    config: CacheConfig,
    l1: L1,
    /// Set once Redis answers: at start, or later by the reconnect task.
    l2: OnceLock<L2>,
    tags: TagVersions,
    stats: Arc<Stats>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    refreshing: Mutex<HashMap<String, Instant>>,
}

/// The hybrid cache. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct HybridCache {
    inner: Arc<Inner>,
}

type Factory<T, E> =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<T, E>> + Send>> + Send + Sync>;

fn validate_key(key: &str) -> Result<(), CacheError> {
    if key.is_empty() {
        return Err(CacheError::InvalidKey("empty key".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(CacheError::InvalidKey(format!(
            "{} bytes; the limit is {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(CacheError::InvalidKey(
            "control characters are not allowed".into(),
        ));
    }
    Ok(())
}

/// Retries L2 with backoff (250 ms doubling to 10 s) until it answers or the cache is gone.
async fn reconnect(inner: std::sync::Weak<Inner>) {
    let mut wait = Duration::from_millis(250);
    loop {
        tokio::time::sleep(wait).await;
        let Some(cache) = inner.upgrade() else { return };
        match cache.connect_l2().await {
            Ok(l2) => {
                tracing::info!("Redis reachable again: L2 and the backplane are on");
                cache.attach(l2, true);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "Redis still unreachable"),
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

impl Inner {
    /// The L2 tier once it is connected.
    fn l2(&self) -> Option<&L2> {
        self.l2.get()
    }

    async fn connect_l2(&self) -> Result<L2, l2::ConnectError> {
        let target = self.config.redis.clone().ok_or_else(|| l2::ConnectError {
            target: "none".into(),
            message: "no Redis configured".into(),
            unreachable: false,
        })?;
        let connect = |target| {
            L2::connect(
                target,
                self.config.redis_ca.clone(),
                self.config.redis_timeout,
                self.stats.clone(),
            )
        };
        let l2 = connect(target).await?;
        match self.config.redis_state.clone() {
            None => Ok(l2),
            Some(state) => Ok(l2.with_state(connect(state).await?)),
        }
    }

    /// Puts `l2` to use and starts the backplane subscriber. Attached `late`, L1 and the
    /// tag versions are forgotten first: invalidations sent while this process could not
    /// hear them may have made them stale.
    fn attach(self: &Arc<Self>, l2: L2, late: bool) {
        if late {
            self.l1.clear();
            self.tags.clear();
        }
        let clients = l2.node_clients();
        if self.l2.set(l2).is_ok() {
            tokio::spawn(backplane::subscribe(clients, Arc::downgrade(self)));
        }
    }
}

impl HybridCache {
    /// Builds the cache; with Redis configured, connects to it and starts the backplane
    /// subscriber. A Redis that cannot be reached yet (refused, timed out) does not stop
    /// start-up: the cache serves from L1 and the factory, and connects in the background
    /// with backoff. A Redis that refuses us (certificate, credentials) is an error: that is a
    /// misconfiguration. A Redis that fails later is survived.
    pub async fn new(config: CacheConfig) -> Result<Self, l2::ConnectError> {
        let stats = Arc::new(Stats::default());
        let inner = Arc::new(Inner {
            l1: L1::new(config.l1, stats.clone()),
            tags: TagVersions::new(config.redis.is_some()),
            l2: OnceLock::new(),
            stats,
            config,
            flights: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashMap::new()),
        });
        if inner.config.redis.is_some() {
            match inner.connect_l2().await {
                Ok(l2) => inner.attach(l2, false),
                Err(e) if e.unreachable => {
                    tracing::warn!(error = %e, "Redis unreachable at start: serving from L1, retrying");
                    tokio::spawn(reconnect(Arc::downgrade(&inner)));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self { inner })
    }

    /// Counters so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Entries in L1 now.
    pub async fn l1_len(&self) -> u64 {
        self.inner.l1.len().await
    }

    /// Bytes L1 holds now (as weighed).
    pub async fn l1_weight(&self) -> u64 {
        self.inner.l1.weight().await
    }

    /// Whether L2 is configured and connected with its breaker letting operations through
    /// (`None` without Redis configured).
    pub fn l2_available(&self) -> Option<bool> {
        self.inner.config.redis.as_ref()?;
        Some(self.inner.l2().is_some_and(L2::healthy))
    }

    /// The L2 tier, when configured (for diagnostics and tests).
    pub fn l2(&self) -> Option<&L2> {
        self.inner.l2()
    }

    /// The cached value of `key`, fresh or inside stale-while-revalidate; `None` otherwise.
    pub async fn get<T>(&self, key: &str) -> Result<Option<Lookup<T>>, CacheError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        validate_key(key)?;
        let now = now_ms();
        if let Some(entry) = self.inner.l1_lookup(key).await
            && let Some(found) = usable(&entry, now, Tier::L1)
        {
            Stats::bump(&self.inner.stats.l1_hits);
            return Ok(decode_value(&entry).map(|v| found.with(v)));
        }
        Stats::bump(&self.inner.stats.l1_misses);
        if let Some(entry) = self.inner.l2_lookup(key).await
            && let Some(found) = usable(&entry, now, Tier::L2)
        {
            let Some((entry, value)) = typed::<T>(entry) else {
                return Ok(None);
            };
            self.inner.l1.insert(key, entry).await;
            return Ok(Some(found.with(value)));
        }
        Ok(None)
    }

    /// The value of `key` when L1 holds it fresh and `options` ask for no early refresh of it
    /// now: an answer that needs nothing else (no refresh, no L2, no factory). `None`
    /// otherwise, and [`HybridCache::get_or_set`] takes it from there.
    pub async fn fresh_in_l1<T>(&self, key: &str, options: &EntryOptions) -> Option<Lookup<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if !options.layers.contains(Layer::L1) || validate_key(key).is_err() {
            return None;
        }
        let entry = self.inner.l1_lookup(key).await?;
        let now = now_ms();
        if entry.meta.state(now) != EntryState::Fresh
            || refresh::refresh_due(&entry.meta, now, options)
        {
            return None;
        }
        let value = decode_value::<T>(&entry)?;
        Stats::bump(&self.inner.stats.l1_hits);
        Some(Lookup {
            value,
            status: CacheStatus::Hit,
            tier: Tier::L1,
            fail_safe: false,
        })
    }

    /// Stores `value` under `key` in the layers of `options`, and evicts older copies from
    /// every other process's L1.
    pub async fn set<T>(
        &self,
        key: &str,
        value: T,
        options: &EntryOptions,
    ) -> Result<(), CacheError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        validate_key(key)?;
        let tags = self.inner.current_tag_versions(&options.tags).await;
        let version = self.inner.next_version().await;
        self.inner
            .store(key, value, options, tags, version, 0)
            .await
    }

    /// The value of `key`, from L1, L2 or `factory`, with stampede protection,
    /// stale-while-revalidate, fail-safe and early refresh as `options` say.
    pub async fn get_or_set<T, F, Fut, E>(
        &self,
        key: &str,
        options: &EntryOptions,
        factory: F,
    ) -> Result<Lookup<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        validate_key(key)?;
        let factory: Factory<T, E> = Arc::new(move || Box::pin(factory()));
        self.inner.get_or_set(key, options, factory).await
    }

    /// Removes `key` from L1 and L2 here, and from every other process's L1.
    pub async fn remove(&self, key: &str) -> Result<(), CacheError> {
        validate_key(key)?;
        self.inner.l1.remove(key).await;
        if let Some(l2) = self.inner.l2() {
            l2.remove(&[key.to_string()]).await;
        }
        self.inner
            .publish(Event::Evict {
                keys: vec![key.to_string()],
            })
            .await;
        Ok(())
    }

    /// Removes every key matching `pattern` from L1 (every process) and L2 (cluster-aware
    /// `SCAN`, never `KEYS`). Returns `(l1_removed_here, l2_removed)`; `l2_removed` is `None`
    /// when L2 is absent or failed.
    pub async fn invalidate(&self, pattern: &KeyPattern) -> (u64, Option<u64>) {
        let p = pattern.clone();
        let here = self.inner.l1.remove_matching(move |k| p.matches(k)).await;
        let in_l2 = match self.inner.l2() {
            Some(l2) => l2.remove_matching(pattern).await,
            None => None,
        };
        if let Some(n) = in_l2 {
            self.inner
                .stats
                .pattern_removed
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner
            .publish(Event::Patterns {
                patterns: vec![pattern.as_str().to_string()],
            })
            .await;
        (here, in_l2)
    }

    /// Invalidates `tags` and everything their cascades reach, in O(1) per tag: entries are
    /// not touched; reads see the new versions. Returns the tags invalidated.
    pub async fn invalidate_tags(&self, tags: &TagSet) -> Result<TagSet, CacheError> {
        Ok(self.invalidate_tags_with(tags, true).await?.0)
    }

    /// [`HybridCache::invalidate_tags`] with cascades optional. Also says whether L2 recorded
    /// the new versions: `None` without L2, `Some(false)` when Redis failed (the bump is then
    /// local to this process until Redis returns).
    pub async fn invalidate_tags_with(
        &self,
        tags: &TagSet,
        cascade: bool,
    ) -> Result<(TagSet, Option<bool>), CacheError> {
        let expanded = if cascade {
            self.cascade_of(tags)?
        } else {
            tags.clone()
        };
        let names: Vec<String> = expanded.iter().map(|t| t.as_str().to_string()).collect();
        let versions = match self.inner.l2() {
            Some(l2) => l2.bump_tags(&names).await,
            None => None,
        };
        let in_l2 = self.inner.l2().map(|_| versions.is_some());
        let versions: Vec<(String, u64)> = match versions {
            Some(v) => names.into_iter().zip(v).collect(),
            // Without L2 (absent or down) the bump is local; peers catch up when L2 returns.
            None => self.inner.tags.bump_local(&names),
        };
        self.inner.tags.set(&versions);
        self.inner.stats.tag_invalidations.fetch_add(
            u64::try_from(versions.len()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.inner.publish(Event::Tags { versions }).await;
        Ok((expanded, in_l2))
    }

    /// `tags` with everything the policy's cascades add.
    pub fn cascade_of(&self, tags: &TagSet) -> Result<TagSet, CacheError> {
        self.inner
            .config
            .cascade
            .expand(tags)
            .map_err(|e| CacheError::Tags(e.to_string()))
    }

    /// Removes `keys` from L1 (here, and through the backplane in every process) and L2.
    /// Says whether L2 took the removal: `None` without L2, `Some(false)` when Redis failed.
    pub async fn remove_keys(&self, keys: &[String]) -> Result<Option<bool>, CacheError> {
        for key in keys {
            validate_key(key)?;
        }
        for key in keys {
            self.inner.l1.remove(key).await;
        }
        let in_l2 = match self.inner.l2() {
            Some(l2) => Some(l2.remove(keys).await.is_some()),
            None => None,
        };
        self.inner
            .publish(Event::Evict {
                keys: keys.to_vec(),
            })
            .await;
        Ok(in_l2)
    }

    /// Fills the cache for each `(key, options, factory)`, `concurrency` at a time; returns the
    /// keys that failed with their errors.
    pub async fn warm<T, F, Fut, E>(
        &self,
        items: Vec<(String, EntryOptions, F)>,
        concurrency: usize,
    ) -> Vec<(String, CacheError)>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        use futures_util::stream::{self, StreamExt};
        stream::iter(items)
            .map(|(key, options, factory)| async move {
                let result = self.get_or_set(&key, &options, factory).await;
                result.err().map(|e| (key, e))
            })
            .buffer_unordered(concurrency.max(1))
            .filter_map(|r| async move { r })
            .collect()
            .await
    }
}
