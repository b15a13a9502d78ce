//! Refreshing before a reader has to wait: probabilistic early refresh (XFetch) and an eager
//! threshold for fresh hits, and one background refresh per key for stale hits, under the
//! cluster lock so one process refreshes for all.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use serde::Serialize;
use serde::de::DeserializeOwned;
use surge_shared::Layer;

use super::entry::Meta;
use super::fail_safe::Prior;
use super::lock::{self, Lock};
use super::options::EntryOptions;
use super::{Factory, Inner};

/// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh early with a probability
/// that rises as expiry nears, scaled by how long the factory takes.
fn should_refresh_early(meta: &Meta, now: u64, beta: f64) -> bool {
    if beta <= 0.0 || meta.factory_ms == 0 {
        return false;
    }
    let r = fastrand::f64().max(f64::MIN_POSITIVE);
    let delta = meta.factory_ms as f64;
    (now as f64) - delta * beta * r.ln() >= meta.freshness.fresh_until as f64
}

/// Whether a fresh hit on an entry with `meta` should start a background refresh now, by
/// XFetch or by the eager threshold of `options`.
pub(super) fn refresh_due(meta: &Meta, now: u64, options: &EntryOptions) -> bool {
    should_refresh_early(meta, now, options.early_refresh_beta)
        || past_eager_threshold(meta, now, options.eager_refresh_threshold)
}

/// Whether a hit comes after the eager-refresh fraction of the entry's TTL.
fn past_eager_threshold(meta: &Meta, now: u64, threshold: Option<f64>) -> bool {
    let Some(fraction) = threshold.filter(|f| *f > 0.0 && *f < 1.0) else {
        return false;
    };
    let ttl = meta
        .freshness
        .fresh_until
        .saturating_sub(meta.freshness.stored_at) as f64;
    now as f64 >= meta.freshness.stored_at as f64 + ttl * fraction
}

impl Inner {
    /// Starts one background refresh of `key` unless one is already running here.
    pub(super) fn refresh_in_background<T, E>(
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
        // A trace of its own, linked to the request that started it (which may be long done
        // when the refresh ends).
        let span = tracing::info_span!(parent: None, "cache.refresh", cache.key = %key);
        span.follows_from(tracing::Span::current());
        tokio::spawn(
            async move {
                let token = this.next_version().await;
                let lock = match (this.l2(), options.layers.contains(Layer::L2)) {
                    (Some(l2), true) => {
                        lock::acquire(l2, &key, token, options.lock_timeout.saturating_mul(2)).await
                    }
                    _ => Lock::Unknown,
                };
                // Another process is refreshing: its value reaches us through L2 and the backplane.
                if !matches!(lock, Lock::Busy) {
                    let tags = this.current_tag_versions(&options.tags).await;
                    let _ = this
                        .compute(&key, &options, factory, Prior::default(), tags, token)
                        .await;
                    if let Lock::Held(guard) = lock {
                        guard.release().await;
                    }
                }
                this.refreshing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
            }
            .instrument(span),
        );
    }
}
