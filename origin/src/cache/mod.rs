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
pub mod entry;
pub mod l1;
pub mod l2;
pub mod options;
pub mod stats;
pub mod strategy;
pub mod tags;
pub mod warm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use surge_shared::{CacheStatus, Cascade, KeyPattern, Layer, Tag, TagSet};

use self::backplane::{CHANNEL, Event, Message};
use self::entry::{Entry, Freshness, Meta};
use self::l1::{L1, L1Limits};
use self::l2::{L2, RedisTarget};
use self::options::EntryOptions;
use self::stats::{Stats, StatsSnapshot};
use self::tags::TagVersions;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Longest key accepted (bytes).
pub const MAX_KEY_LEN: usize = 16 * 1024 + 64;

/// Which tier produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// This process's memory.
    L1,
    /// Redis.
    L2,
    /// The factory (a fresh computation).
    Factory,
}

impl Tier {
    /// The lower-case name used in the `x-surge-tier` header.
    pub fn as_str(&self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::L2 => "l2",
            Tier::Factory => "factory",
        }
    }
}

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
            redis_timeout: Duration::from_millis(500),
            defaults: EntryOptions::default(),
            cascade: Cascade::default(),
        }
    }
}

struct Inner {
    config: CacheConfig,
    l1: L1,
    l2: Option<L2>,
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

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl HybridCache {
    /// Builds the cache; with Redis configured, connects to it and starts the backplane
    /// subscriber. An unreachable Redis is an error here (a misconfiguration should stop
    /// start-up); a Redis that fails later is survived.
    pub async fn new(config: CacheConfig) -> Result<Self, l2::ConnectError> {
        let stats = Arc::new(Stats::default());
        let l2 = match &config.redis {
            Some(target) => {
                Some(L2::connect(target.clone(), config.redis_timeout, stats.clone()).await?)
            }
            None => None,
        };
        let inner = Arc::new(Inner {
            l1: L1::new(config.l1, stats.clone()),
            tags: TagVersions::new(l2.is_some()),
            l2,
            stats,
            config,
            flights: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashMap::new()),
        });
        if let Some(l2) = &inner.l2 {
            tokio::spawn(backplane::subscribe(l2.node_urls(), Arc::downgrade(&inner)));
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

    /// Whether L2 is configured and its breaker lets operations through.
    pub fn l2_available(&self) -> Option<bool> {
        self.inner
            .l2
            .as_ref()
            .map(|l2| matches!(l2.breaker().state(), circuit::BreakerState::Closed))
    }

    /// The L2 tier, when configured (for diagnostics and tests).
    pub fn l2(&self) -> Option<&L2> {
        self.inner.l2.as_ref()
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
            self.inner.l1.insert(key, entry.clone()).await;
            return Ok(decode_value(&entry).map(|v| found.with(v)));
        }
        Ok(None)
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
        if let Some(l2) = &self.inner.l2 {
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
        let in_l2 = match &self.inner.l2 {
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
        let versions = match &self.inner.l2 {
            Some(l2) => l2.bump_tags(&names).await,
            None => None,
        };
        let in_l2 = self.inner.l2.as_ref().map(|_| versions.is_some());
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
        let in_l2 = match &self.inner.l2 {
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

/// A usable entry's status and tier, before decoding.
struct Found {
    status: CacheStatus,
    tier: Tier,
}

impl Found {
    fn with<T>(self, value: T) -> Lookup<T> {
        Lookup {
            value,
            status: self.status,
            tier: self.tier,
            fail_safe: false,
        }
    }
}

fn usable(entry: &Entry, now: u64, tier: Tier) -> Option<Found> {
    let status = match entry.meta.freshness(now) {
        Freshness::Fresh => CacheStatus::Hit,
        Freshness::Stale => CacheStatus::Stale,
        Freshness::FailSafe | Freshness::Dead => return None,
    };
    Some(Found { status, tier })
}

fn decode_value<T: DeserializeOwned + Clone + Send + Sync + 'static>(entry: &Entry) -> Option<T> {
    if let Some(typed) = entry.typed.as_ref().and_then(|t| t.downcast_ref::<T>()) {
        return Some(typed.clone());
    }
    serde_json::from_slice(&entry.value).ok()
}

/// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh early with a probability
/// that rises as expiry nears, scaled by how long the factory takes.
fn should_refresh_early(meta: &Meta, now: u64, beta: f64) -> bool {
    if beta <= 0.0 || meta.factory_ms == 0 {
        return false;
    }
    let r = fastrand::f64().max(f64::MIN_POSITIVE);
    let delta = meta.factory_ms as f64;
    (now as f64) - delta * beta * r.ln() >= meta.fresh_until_ms as f64
}

/// Whether a hit comes after the eager-refresh fraction of the entry's TTL.
fn past_eager_threshold(meta: &Meta, now: u64, threshold: Option<f64>) -> bool {
    let Some(fraction) = threshold.filter(|f| *f > 0.0 && *f < 1.0) else {
        return false;
    };
    let ttl = meta.fresh_until_ms.saturating_sub(meta.created_ms) as f64;
    now as f64 >= meta.created_ms as f64 + ttl * fraction
}

impl Inner {
    async fn l1_lookup(&self, key: &str) -> Option<Arc<Entry>> {
        let entry = self.l1.get(key).await?;
        if self.tags_valid(&entry).await {
            Some(entry)
        } else {
            self.l1.remove(key).await;
            None
        }
    }

    async fn l2_lookup(&self, key: &str) -> Option<Arc<Entry>> {
        let l2 = self.l2.as_ref()?;
        let bytes = match l2.get(key).await {
            Some(Some(bytes)) => bytes,
            Some(None) | None => {
                Stats::bump(&self.stats.l2_misses);
                return None;
            }
        };
        let entry = match Entry::decode(&bytes) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                tracing::warn!(key, error = %e, "unreadable L2 entry treated as a miss");
                Stats::bump(&self.stats.l2_corrupt);
                Stats::bump(&self.stats.l2_misses);
                return None;
            }
        };
        if self.tags_valid(&entry).await {
            Stats::bump(&self.stats.l2_hits);
            Some(entry)
        } else {
            Stats::bump(&self.stats.l2_misses);
            None
        }
    }

    async fn tags_valid(&self, entry: &Entry) -> bool {
        if entry.meta.tags.is_empty() {
            return true;
        }
        if let Some(valid) = self.tags.check_local(&entry.meta.tags) {
            return valid;
        }
        let names: Vec<String> = entry.meta.tags.iter().map(|(t, _)| t.clone()).collect();
        let current = self.tags.get(&names, self.l2.as_ref()).await;
        entry
            .meta
            .tags
            .iter()
            .zip(current)
            .all(|((_, v), now)| *v == now)
    }

    async fn current_tag_versions(&self, tags: &[Tag]) -> Vec<(String, u64)> {
        let names: Vec<String> = tags.iter().map(|t| t.as_str().to_string()).collect();
        let versions = self.tags.get(&names, self.l2.as_ref()).await;
        names.into_iter().zip(versions).collect()
    }

    async fn next_version(&self) -> u64 {
        match &self.l2 {
            Some(l2) => match l2.next_version().await {
                Some(v) => v,
                None => now_ms().saturating_mul(1000),
            },
            None => now_ms().saturating_mul(1000),
        }
    }

    async fn publish(&self, event: Event) {
        let Some(l2) = &self.l2 else { return };
        let message = Message {
            from: self.config.instance.clone(),
            event,
        };
        if let Ok(payload) = serde_json::to_string(&message)
            && l2.publish(CHANNEL, &payload).await.is_some()
        {
            Stats::bump(&self.stats.backplane_sent);
        }
    }

    async fn store<T: Serialize + Send + Sync + 'static>(
        &self,
        key: &str,
        value: T,
        options: &EntryOptions,
        tags: Vec<(String, u64)>,
        version: u64,
        factory_ms: u64,
    ) -> Result<(), CacheError> {
        let encoded = serde_json::to_vec(&value).map_err(|e| CacheError::Encode(e.to_string()))?;
        let now = now_ms();
        let fresh_until_ms = now.saturating_add(ms(options.ttl));
        let meta = Meta {
            created_ms: now,
            fresh_until_ms,
            swr_until_ms: fresh_until_ms.saturating_add(ms(options.stale_while_revalidate)),
            fail_safe_until_ms: fresh_until_ms.saturating_add(ms(options.fail_safe_max)),
            tags,
            version,
            factory_ms,
        };
        let entry = Arc::new(Entry {
            value: Arc::from(encoded.as_slice()),
            typed: Some(Arc::new(value)),
            meta,
        });
        if options.layers.contains(Layer::L1) {
            self.l1.insert(key, entry.clone()).await;
        }
        if options.layers.contains(Layer::L2)
            && let Some(l2) = &self.l2
        {
            l2.set(key, &entry.encode(), version, entry.meta.keep_ms(now))
                .await;
        }
        self.publish(Event::Evict {
            keys: vec![key.to_string()],
        })
        .await;
        Ok(())
    }

    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.retain(|_, m| Arc::strong_count(m) > 1);
        flights.entry(key.to_string()).or_default().clone()
    }

    async fn get_or_set<T, E>(
        self: &Arc<Self>,
        key: &str,
        options: &EntryOptions,
        factory: Factory<T, E>,
    ) -> Result<Lookup<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let now = now_ms();
        let mut fallback: Option<(Arc<Entry>, Tier)> = None;
        if options.layers.contains(Layer::L1)
            && let Some(entry) = self.l1_lookup(key).await
            && let Some(answer) =
                self.answer_from(key, options, &factory, &entry, now, Tier::L1, &mut fallback)
        {
            Stats::bump(&self.stats.l1_hits);
            return Ok(answer);
        }
        Stats::bump(&self.stats.l1_misses);

        let flight = self.flight(key);
        let _turn = flight.lock().await;
        // Whoever held the turn before us may have filled L1.
        if options.layers.contains(Layer::L1)
            && let Some(entry) = self.l1_lookup(key).await
            && entry.meta.freshness(now_ms()) == Freshness::Fresh
            && let Some(value) = decode_value::<T>(&entry)
        {
            Stats::bump(&self.stats.l1_hits);
            return Ok(Found {
                status: CacheStatus::Hit,
                tier: Tier::L1,
            }
            .with(value));
        }
        if options.layers.contains(Layer::L2)
            && let Some(entry) = self.l2_lookup(key).await
        {
            if options.layers.contains(Layer::L1)
                && entry.meta.freshness(now_ms()) != Freshness::Dead
            {
                self.l1.insert(key, entry.clone()).await;
            }
            if let Some(answer) = self.answer_from(
                key,
                options,
                &factory,
                &entry,
                now_ms(),
                Tier::L2,
                &mut fallback,
            ) {
                return Ok(answer);
            }
        }

        // Cluster-wide: one process computes, the others wait for its value in L2.
        let use_l2 = options.layers.contains(Layer::L2) && self.l2.is_some();
        let token = self.next_version().await;
        let mut locked = false;
        if use_l2 && let Some(l2) = &self.l2 {
            let lock_ttl = options
                .lock_timeout
                .saturating_mul(2)
                .max(Duration::from_millis(100));
            match l2.try_lock(key, token, lock_ttl).await {
                Some(true) => {
                    locked = true;
                    Stats::bump(&self.stats.lock_acquired);
                }
                Some(false) => {
                    Stats::bump(&self.stats.lock_waits);
                    if let Some(answer) = self.wait_for_peer(key, options).await {
                        return Ok(answer);
                    }
                }
                None => {}
            }
        }
        let tags = self.current_tag_versions(&options.tags).await;
        let result = self
            .compute(key, options, factory, fallback, tags, token)
            .await;
        if locked && let Some(l2) = &self.l2 {
            l2.unlock(key, token).await;
        }
        result
    }

    /// Decides what an entry found in a tier answers: fresh → hit (maybe refreshing early);
    /// stale → served while a background refresh runs; fail-safe → kept as the fallback.
    #[allow(clippy::too_many_arguments)]
    fn answer_from<T, E>(
        self: &Arc<Self>,
        key: &str,
        options: &EntryOptions,
        factory: &Factory<T, E>,
        entry: &Arc<Entry>,
        now: u64,
        tier: Tier,
        fallback: &mut Option<(Arc<Entry>, Tier)>,
    ) -> Option<Lookup<T>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        match entry.meta.freshness(now) {
            Freshness::Fresh => {
                let value = decode_value::<T>(entry)?;
                if should_refresh_early(&entry.meta, now, options.early_refresh_beta)
                    || past_eager_threshold(&entry.meta, now, options.eager_refresh_threshold)
                {
                    Stats::bump(&self.stats.early_refreshes);
                    self.refresh_in_background(key, options, factory.clone());
                }
                Some(
                    Found {
                        status: CacheStatus::Hit,
                        tier,
                    }
                    .with(value),
                )
            }
            Freshness::Stale => {
                let value = decode_value::<T>(entry)?;
                Stats::bump(&self.stats.stale_served);
                self.refresh_in_background(key, options, factory.clone());
                Some(
                    Found {
                        status: CacheStatus::Stale,
                        tier,
                    }
                    .with(value),
                )
            }
            Freshness::FailSafe => {
                *fallback = Some((entry.clone(), tier));
                None
            }
            Freshness::Dead => None,
        }
    }

    /// Polls L2 until the lock holder's value appears or `lock_timeout` passes.
    async fn wait_for_peer<T>(&self, key: &str, options: &EntryOptions) -> Option<Lookup<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let deadline = Instant::now() + options.lock_timeout;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some(entry) = self.l2_lookup(key).await
                && entry.meta.freshness(now_ms()) == Freshness::Fresh
                && let Some(value) = decode_value::<T>(&entry)
            {
                if options.layers.contains(Layer::L1) {
                    self.l1.insert(key, entry).await;
                }
                return Some(
                    Found {
                        status: CacheStatus::Hit,
                        tier: Tier::L2,
                    }
                    .with(value),
                );
            }
        }
        None
    }

    /// Runs the factory with the soft and hard timeouts, stores the result, or falls back to a
    /// stale value (and throttles retries) when it fails.
    async fn compute<T, E>(
        self: &Arc<Self>,
        key: &str,
        options: &EntryOptions,
        factory: Factory<T, E>,
        fallback: Option<(Arc<Entry>, Tier)>,
        tags: Vec<(String, u64)>,
        version: u64,
    ) -> Result<Lookup<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        Stats::bump(&self.stats.factory_calls);
        let started = Instant::now();
        let hard = options.factory_hard_timeout;
        let mut task = tokio::spawn(async move {
            let run = factory();
            match hard {
                Some(limit) => match tokio::time::timeout(limit, run).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("the factory took longer than {limit:?}")),
                },
                None => run.await.map_err(|e| e.to_string()),
            }
        });
        let outcome = match (options.factory_soft_timeout, &fallback) {
            (Some(soft), Some((stale, tier))) => {
                match tokio::time::timeout(soft, &mut task).await {
                    Ok(joined) => joined.map_err(|e| e.to_string()).and_then(|r| r),
                    Err(_) => {
                        // Serve the stale value now; the factory finishes in the background.
                        let this = self.clone();
                        let (key, options, tags) = (key.to_string(), options.clone(), tags.clone());
                        tokio::spawn(async move {
                            if let Ok(Ok(value)) = task.await {
                                let took = ms(started.elapsed());
                                this.store(&key, value, &options, tags, version, took)
                                    .await
                                    .ok();
                            }
                        });
                        Stats::bump(&self.stats.fail_safe_served);
                        let value = decode_value::<T>(stale)
                            .ok_or_else(|| CacheError::Factory("stale value undecodable".into()))?;
                        return Ok(Lookup {
                            value,
                            status: CacheStatus::Stale,
                            tier: *tier,
                            fail_safe: true,
                        });
                    }
                }
            }
            _ => task.await.map_err(|e| e.to_string()).and_then(|r| r),
        };
        match outcome {
            Ok(value) => {
                let took = ms(started.elapsed());
                self.store(key, value.clone(), options, tags, version, took)
                    .await?;
                Ok(Lookup {
                    value,
                    status: CacheStatus::Miss,
                    tier: Tier::Factory,
                    fail_safe: false,
                })
            }
            Err(error) => {
                Stats::bump(&self.stats.factory_errors);
                let Some((stale, tier)) = fallback else {
                    return Err(CacheError::Factory(error));
                };
                let value = decode_value::<T>(&stale).ok_or(CacheError::Factory(error))?;
                Stats::bump(&self.stats.fail_safe_served);
                // Keep serving the stale value for a while before trying the factory again.
                let mut throttled = (*stale).clone();
                let now = now_ms();
                throttled.meta.fresh_until_ms = now.saturating_add(ms(options.fail_safe_throttle));
                throttled.meta.swr_until_ms = throttled
                    .meta
                    .swr_until_ms
                    .max(throttled.meta.fresh_until_ms);
                throttled.meta.fail_safe_until_ms = throttled
                    .meta
                    .fail_safe_until_ms
                    .max(throttled.meta.fresh_until_ms);
                if options.layers.contains(Layer::L1) {
                    self.l1.insert(key, Arc::new(throttled)).await;
                }
                Ok(Lookup {
                    value,
                    status: CacheStatus::Stale,
                    tier,
                    fail_safe: true,
                })
            }
        }
    }

    /// Starts one background refresh of `key` unless one is already running here.
    fn refresh_in_background<T, E>(
        self: &Arc<Self>,
        key: &str,
        options: &EntryOptions,
        factory: Factory<T, E>,
    ) where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        {
            let mut running = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
            let horizon = options.lock_timeout.max(Duration::from_secs(1));
            running.retain(|_, started| started.elapsed() < horizon.saturating_mul(2));
            if running.contains_key(key) {
                return;
            }
            running.insert(key.to_string(), Instant::now());
        }
        let this = self.clone();
        let (key, options) = (key.to_string(), options.clone());
        tokio::spawn(async move {
            let token = this.next_version().await;
            let use_l2 = options.layers.contains(Layer::L2);
            let locked = match (&this.l2, use_l2) {
                (Some(l2), true) => {
                    l2.try_lock(&key, token, options.lock_timeout.saturating_mul(2))
                        .await
                }
                _ => Some(true),
            };
            // Another process is refreshing: its value reaches us through L2 and the backplane.
            if locked != Some(false) {
                let tags = this.current_tag_versions(&options.tags).await;
                let _ = this
                    .compute(&key, &options, factory, None, tags, token)
                    .await;
                if locked == Some(true)
                    && use_l2
                    && let Some(l2) = &this.l2
                {
                    l2.unlock(&key, token).await;
                }
            }
            this.refreshing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        });
    }
}

impl backplane::Apply for Inner {
    fn id(&self) -> &str {
        &self.config.instance
    }

    async fn apply(&self, event: Event) {
        Stats::bump(&self.stats.backplane_received);
        match event {
            Event::Evict { keys } => {
                for key in keys {
                    self.l1.remove(&key).await;
                }
            }
            Event::Patterns { patterns } => {
                let parsed = patterns
                    .iter()
                    .filter_map(|p| KeyPattern::from_peer(p).ok());
                for p in parsed {
                    self.l1.remove_matching(move |k| p.matches(k)).await;
                }
            }
            Event::Tags { versions } => self.tags.set(&versions),
        }
    }

    async fn resync(&self) {
        self.l1.clear();
        self.tags.clear();
    }
}
