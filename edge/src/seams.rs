//! The narrow seams between the pipeline and a runtime: cache store, rate limiter, upstream
//! fetch, clock and background tasks. The pipeline calls these; the platform entry points in
//! [`crate::platform`] implement them.
//!
//! Futures are not `Send`: Wasm runtimes are single-threaded.
#![allow(async_fn_in_trait)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use surge_shared::CacheKey;
use surge_shared::rate::{Decision, Quota};

use crate::http::{EdgeRequest, EdgeResponse};

/// A platform failure (binding missing, runtime error); the pipeline degrades, never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlatformError(pub String);

/// The shared cache at the edge.
pub trait CacheStore {
    /// The stored response for `key`, if any.
    async fn get(&self, key: &CacheKey) -> Result<Option<EdgeResponse>, PlatformError>;
    /// Stores `response` under `key`, to be kept for `keep_for` at most.
    async fn put(
        &self,
        key: &CacheKey,
        response: &EdgeResponse,
        keep_for: Duration,
    ) -> Result<(), PlatformError>;
}

/// What a rate-limit check counts: a quota and the identity it is counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitScope {
    /// The quota's name in the policy (`read`, `vote`, …).
    pub name: String,
    /// The counted identity (an IP, or a voter credential digest).
    pub key: String,
    /// The quota.
    pub quota: Quota,
}

/// Rate limiting.
pub trait RateLimiter {
    /// Counts one request against `scope`.
    async fn check(&self, scope: &LimitScope) -> Result<Decision, PlatformError>;
}

/// Why an upstream fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No connection could be made (refused, reset, DNS).
    #[error("connection failed: {0}")]
    Connect(String),
    /// No answer within the region's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// HTTP to origin regions.
pub trait Upstream {
    /// Sends `request` (its URL already points at the region) and waits at most `timeout`.
    async fn fetch(
        &self,
        request: &EdgeRequest,
        timeout: Duration,
    ) -> Result<EdgeResponse, FetchError>;
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// More than the route's limit arrived (reading stopped there).
    TooLarge,
    /// The client's stream failed.
    Failed(String),
}

/// A request body not read yet: the platform's stream, which the pipeline reads only once
/// the route's limit is known, and no further than that limit.
pub trait BodySource {
    /// The whole body, or [`BodyError::TooLarge`] as soon as more than `limit` bytes have
    /// arrived.
    async fn read(self, limit: u64) -> Result<Vec<u8>, BodyError>;
}

/// A body already in memory (tests, and platforms that hand over whole bodies).
impl BodySource for Vec<u8> {
    async fn read(self, limit: u64) -> Result<Vec<u8>, BodyError> {
        if u64::try_from(self.len()).unwrap_or(u64::MAX) > limit {
            Err(BodyError::TooLarge)
        } else {
            Ok(self)
        }
    }
}

/// Appends `chunk` to `body`, or [`BodyError::TooLarge`] if that would pass `limit`.
pub fn append_limited(body: &mut Vec<u8>, chunk: &[u8], limit: u64) -> Result<(), BodyError> {
    let total = body.len().saturating_add(chunk.len());
    if u64::try_from(total).unwrap_or(u64::MAX) > limit {
        return Err(BodyError::TooLarge);
    }
    body.extend_from_slice(chunk);
    Ok(())
}

/// Wall-clock time, and the random bits new trace ids are drawn from.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// 64 random bits for ids (unique, not secret). By default from the standard library's
    /// random hash keys, which the OS seeds natively and under WASI; a platform whose
    /// standard library has no randomness (Workers) overrides it.
    fn random_u64(&self) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(self.now_ms());
        hasher.finish()
    }
}

/// A task that runs after the response is sent (Workers' `waitUntil`).
pub type Task = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// Background work.
pub trait Background {
    /// Runs `task` to completion, possibly after the response has been returned.
    fn spawn(&self, task: Task);
}
