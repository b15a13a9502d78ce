//! The cluster-wide compute lock: one process computes a key while the others wait for its
//! value in L2. The lock carries a fencing token and a TTL (a crashed holder's lock expires);
//! a [`LockGuard`] releases it when dropped, so a cancelled request does not leave it held
//! until the TTL runs out.

use std::time::Duration;

use super::l2::{L2, LockReply};

/// What asking for the lock gave.
pub enum Lock {
    /// This caller holds the lock until the guard is dropped or released.
    Held(LockGuard),
    /// Another process holds it: wait for its value.
    Busy,
    /// L2 cannot say (absent, failed, breaker open): compute without the lock.
    Unknown,
}

/// Asks for the lock of `key` with `token`, kept at most `ttl`.
pub async fn acquire(l2: &L2, key: &str, token: u64, ttl: Duration) -> Lock {
    match l2.try_lock(key, token, ttl).await {
        LockReply::Acquired => Lock::Held(LockGuard {
            l2: l2.clone(),
            key: key.to_string(),
            token,
            held: true,
        }),
        LockReply::Held => Lock::Busy,
        LockReply::Unavailable => Lock::Unknown,
    }
}

/// A held lock; released on [`LockGuard::release`] or, failing that, when dropped.
pub struct LockGuard {
    l2: L2,
    key: String,
    token: u64,
    held: bool,
}

impl LockGuard {
    /// Releases the lock now (if this token still holds it).
    pub async fn release(mut self) {
        self.held = false;
        self.l2.unlock(&self.key, self.token).await;
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        // Dropped without `release`: the caller was cancelled. Release in the background
        // (outside a runtime, the lock's TTL ends it).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (l2, key, token) = (self.l2.clone(), std::mem::take(&mut self.key), self.token);
            runtime.spawn(async move {
                l2.unlock(&key, token).await;
            });
        }
    }
}
