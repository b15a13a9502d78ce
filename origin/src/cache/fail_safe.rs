//! Fail-safe: a copy past stale-while-revalidate but inside stale-if-error stands in for a
//! factory that fails or is slower than its soft timeout. After a failure the copy is held
//! fresh in L1 for `fail_safe_throttle`, so the factory is not retried on every request.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use surge_shared::freshness::EntryState;
use surge_shared::{CacheStatus, Layer, Tier};

use super::entry::Entry;
use super::lookup::decode_value;
use super::options::EntryOptions;
use super::stats::Stats;
use super::{CacheError, Inner, Lookup};
use crate::clock::now_ms;

/// What the lookups before a computation found.
#[derive(Default)]
pub(super) struct Prior {
    /// A copy that may stand in if the factory fails, with the tier it came from.
    pub(super) fallback: Option<(Arc<Entry>, Tier)>,
    /// The state of the copy found, if any (the computed answer is then `EXPIRED`, not `MISS`).
    pub(super) state: Option<EntryState>,
}

impl Inner {
    /// The fallback, served while the factory keeps running in the background.
    pub(super) fn stand_in_while_slow<T>(
        &self,
        (stale, tier): &(Arc<Entry>, Tier),
    ) -> Result<Lookup<T>, CacheError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        Stats::bump(&self.stats.fail_safe_served);
        let value = decode_value::<T>(stale)
            .ok_or_else(|| CacheError::Factory("stale value undecodable".into()))?;
        Ok(Lookup {
            value,
            status: CacheStatus::Stale,
            tier: *tier,
            fail_safe: true,
        })
    }

    /// The fallback, served in place of a failed factory and held fresh in L1 for the
    /// throttle so the next attempt waits.
    pub(super) async fn stand_in_after_failure<T>(
        &self,
        key: &str,
        options: &EntryOptions,
        (stale, tier): (Arc<Entry>, Tier),
        error: String,
    ) -> Result<Lookup<T>, CacheError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let value = decode_value::<T>(&stale).ok_or(CacheError::Factory(error))?;
        Stats::bump(&self.stats.fail_safe_served);
        let mut held = (*stale).clone();
        held.meta.freshness = held
            .meta
            .freshness
            .extended(now_ms(), options.fail_safe_throttle);
        if options.layers.contains(Layer::L1) {
            self.l1.insert(key, Arc::new(held)).await;
        }
        Ok(Lookup {
            value,
            status: CacheStatus::Stale,
            tier,
            fail_safe: true,
        })
    }
}
