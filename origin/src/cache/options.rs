//! Per-call and per-cache options: TTL, layers, tags, stale-while-revalidate, fail-safe,
//! stampede lock timeout, factory timeouts and early refresh.

use std::time::Duration;

use surge_shared::freshness::Windows;
use surge_shared::{Layers, Route, Tag};

/// How one entry is cached and refreshed.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryOptions {
    /// Freshness.
    pub ttl: Duration,
    /// Layers used (`l1`, `l2`; `l3` is the CDN and is only a purge target here).
    pub layers: Layers,
    /// Tags the entry carries.
    pub tags: Vec<Tag>,
    /// After `ttl`, the entry is served while one background refresh runs.
    pub stale_while_revalidate: Duration,
    /// After `ttl`, the entry is served if the factory fails or times out.
    pub fail_safe_max: Duration,
    /// After a factory failure is covered by a stale value, the factory is not retried for
    /// this long (so a failing backend is not hammered).
    pub fail_safe_throttle: Duration,
    /// How long callers wait for another process's factory before running their own.
    pub lock_timeout: Duration,
    /// With a stale value at hand, the caller gets it after this long while the factory goes
    /// on in the background.
    pub factory_soft_timeout: Option<Duration>,
    /// The factory is abandoned after this long.
    pub factory_hard_timeout: Option<Duration>,
    /// Probabilistic early refresh (XFetch) strength; 0 disables it, 1 is the paper's default.
    pub early_refresh_beta: f64,
    /// Eager refresh: a hit after this fraction of the TTL (0 < x < 1) refreshes in the
    /// background, so hot keys never expire under load.
    pub eager_refresh_threshold: Option<f64>,
}

impl Default for EntryOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            layers: Layers::ALL,
            tags: Vec::new(),
            stale_while_revalidate: Duration::ZERO,
            fail_safe_max: Duration::from_secs(3600),
            fail_safe_throttle: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(5),
            factory_soft_timeout: None,
            factory_hard_timeout: None,
            early_refresh_beta: 0.0,
            eager_refresh_threshold: None,
        }
    }
}

impl EntryOptions {
    /// The entry's windows in the shared freshness model (fail-safe is stale-if-error).
    pub fn windows(&self) -> Windows {
        Windows {
            ttl: self.ttl,
            stale_while_revalidate: self.stale_while_revalidate,
            stale_if_error: self.fail_safe_max,
        }
    }

    /// Options following a shared route policy (TTL, SWR, fail-safe from stale-if-error,
    /// layers, lock timeout); `tags` are the route's rendered tags.
    pub fn for_route(route: &Route, tags: Vec<Tag>) -> Self {
        Self {
            ttl: route.ttl.unwrap_or_default(),
            layers: route.layers(),
            tags,
            stale_while_revalidate: route.stale_while_revalidate.unwrap_or_default(),
            fail_safe_max: route.stale_if_error.unwrap_or_default(),
            lock_timeout: route.lock_timeout,
            ..Self::default()
        }
    }

    /// With these tags.
    pub fn tagged(mut self, tags: impl IntoIterator<Item = Tag>) -> Self {
        self.tags = tags.into_iter().collect();
        self
    }

    /// With this TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
}
