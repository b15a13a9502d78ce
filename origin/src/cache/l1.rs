//! L1: an in-process `moka` cache bounded by item count AND bytes, with per-entry expiry and
//! eviction counting.
//!
//! moka bounds one weight. Weighing every entry at `max(bytes, max_bytes / max_items)` makes
//! that one bound enforce both: no more than `max_items` entries fit (each weighs at least a
//! per-item share) and no more than `max_bytes` bytes (each weighs at least its size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

use super::entry::Entry;
use super::stats::Stats;

/// L1 bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Limits {
    /// Most entries held.
    pub max_items: u64,
    /// Most bytes held (approximate: key, value and metadata).
    pub max_bytes: u64,
}

impl Default for L1Limits {
    fn default() -> Self {
        Self {
            max_items: 10_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

struct ByEntry;

impl Expiry<String, Arc<Entry>> for ByEntry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.meta.freshness.keep_for(crate::clock::now_ms()))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.meta.freshness.keep_for(crate::clock::now_ms()))
    }
}

/// The L1 tier.
#[derive(Clone)]
pub struct L1 {
    cache: Cache<String, Arc<Entry>>,
}

impl L1 {
    /// An empty L1 within `limits`, counting evictions into `stats`.
    pub fn new(limits: L1Limits, stats: Arc<Stats>) -> Self {
        let share =
            u32::try_from((limits.max_bytes / limits.max_items.max(1)).max(1)).unwrap_or(u32::MAX);
        let cache = Cache::builder()
            .max_capacity(limits.max_bytes.max(1))
            .weigher(move |key: &String, entry: &Arc<Entry>| {
                u32::try_from(entry.weight(key.len()))
                    .unwrap_or(u32::MAX)
                    .max(share)
            })
            .expire_after(ByEntry)
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    Stats::bump(&stats.l1_evictions);
                }
            })
            .build();
        Self { cache }
    }

    /// The entry for `key`, if held.
    pub async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.cache.get(key).await
    }

    /// Holds `entry` under `key`.
    pub async fn insert(&self, key: &str, entry: Arc<Entry>) {
        self.cache.insert(key.to_string(), entry).await;
    }

    /// Drops `key`.
    pub async fn remove(&self, key: &str) {
        self.cache.invalidate(key).await;
    }

    /// Drops every entry whose key `matches`; returns how many.
    pub async fn remove_matching(&self, matches: impl Fn(&str) -> bool) -> u64 {
        let keys: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(k, _)| matches(k))
            .map(|(k, _)| k)
            .collect();
        for key in &keys {
            self.cache.invalidate(key.as_str()).await;
        }
        u64::try_from(keys.len()).unwrap_or(u64::MAX)
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Entries held (after pending maintenance).
    pub async fn len(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }

    /// Whether nothing is held.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// Weight held (bytes, as weighed).
    pub async fn weight(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.weighted_size()
    }
}
