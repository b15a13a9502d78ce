//! The cache tiers' settings: Redis for L2 and the backplane, and L1's bounds.

use std::sync::Arc;

use crate::settings::{ConfigError, Settings, fail};

use super::l1::L1Limits;
use super::l2::RedisTarget;

/// Redis for L2 and the backplane (`REDIS_URL`); `None`: L1 only.
pub fn redis(s: &Settings<'_>) -> Result<Option<RedisTarget>, ConfigError> {
    s.secret("REDIS_URL")?
        .map(|text| RedisTarget::parse(&text).map_err(|e| fail("REDIS_URL", e)))
        .transpose()
}

/// The Redis for state that must never be evicted (`REDIS_STATE_URL`): tag versions and the
/// write-version counter. `None`: they live beside the entries in `REDIS_URL`'s Redis.
pub fn redis_state(
    s: &Settings<'_>,
    cache: Option<&RedisTarget>,
) -> Result<Option<RedisTarget>, ConfigError> {
    let Some(text) = s.secret("REDIS_STATE_URL")? else {
        return Ok(None);
    };
    if cache.is_none() {
        return Err(fail(
            "REDIS_STATE_URL",
            "is set without REDIS_URL: the state Redis holds the versions of an L2 cache; set \
             REDIS_URL too, or unset REDIS_STATE_URL",
        ));
    }
    RedisTarget::parse(&text)
        .map(Some)
        .map_err(|e| fail("REDIS_STATE_URL", e))
}

/// A certificate authority (PEM, `REDIS_CA_FILE`) trusted besides the platform's roots for
/// `rediss://` URLs.
pub fn redis_ca(s: &Settings<'_>) -> Result<Option<Arc<[u8]>>, ConfigError> {
    s.ca_file("REDIS_CA_FILE")
}

/// L1's bounds (`SURGE_L1_MAX_ITEMS`, default 10,000; `SURGE_L1_MAX_BYTES`, default 256 MiB).
pub fn l1(s: &Settings<'_>) -> Result<L1Limits, ConfigError> {
    let defaults = L1Limits::default();
    Ok(L1Limits {
        max_items: s.number("SURGE_L1_MAX_ITEMS", defaults.max_items, 1, 100_000_000)?,
        max_bytes: s.number("SURGE_L1_MAX_BYTES", defaults.max_bytes, 1 << 20, 1 << 40)?,
    })
}
