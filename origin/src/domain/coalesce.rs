//! Coalesced tag purges: a vote marks its election's results tag dirty; one purge per window
//! goes out for everything marked in it, so a storm of votes costs one purge a window instead
//! of one per vote.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use surge_shared::Tag;
use surge_shared::admin::InvalidateRequest;
use tokio::sync::Notify;

use crate::purge::Purger;

/// The dirty set and its counters.
#[derive(Default)]
pub struct Coalescer {
    dirty: Mutex<BTreeSet<Tag>>,
    notify: Notify,
    marked: AtomicU64,
    flushes: AtomicU64,
}

/// How much coalescing saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CoalesceStats {
    /// Tags marked (one per vote).
    pub marked: u64,
    /// Purges sent.
    pub flushes: u64,
}

impl Coalescer {
    /// Starts the flusher: at most one purge through `purger` every `window`.
    pub fn spawn(purger: Purger, window: Duration) -> Arc<Self> {
        let this = Arc::new(Self::default());
        let me = this.clone();
        tokio::spawn(async move {
            loop {
                me.notify.notified().await;
                tokio::time::sleep(window).await;
                me.flush(&purger).await;
            }
        });
        this
    }

    /// Purges everything marked so far, now (the flusher's step, and the last act before the
    /// process exits, so no vote's results purge is lost to a shutdown).
    pub async fn flush(&self, purger: &Purger) {
        let tags: Vec<Tag> = {
            let mut dirty = self
                .dirty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::take(&mut *dirty).into_iter().collect()
        };
        if tags.is_empty() {
            return;
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let request = InvalidateRequest {
            tags,
            cascade: true,
            ..InvalidateRequest::default()
        };
        let report = purger.invalidate(&request).await;
        if !report.ok {
            tracing::warn!(?report.tiers, "coalesced purge did not reach every tier");
        }
    }

    /// Marks `tag` for the next purge.
    pub fn mark(&self, tag: Tag) {
        self.marked.fetch_add(1, Ordering::Relaxed);
        self.dirty
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tag);
        self.notify.notify_one();
    }

    /// Counters so far.
    pub fn stats(&self) -> CoalesceStats {
        CoalesceStats {
            marked: self.marked.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }
}
