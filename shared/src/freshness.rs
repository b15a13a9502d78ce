//! How old a cached copy is, in one model for every tier: the three windows a route grants
//! (fresh, stale-while-revalidate, stale-if-error), the absolute times they end for one
//! stored copy, and where the copy stands at a given moment. The edge and the origin decide
//! what to serve from [`EntryState`] alone, and name the outcome with the same
//! [`CacheStatus`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::status::CacheStatus;

/// `d` in whole milliseconds, saturating (durations in Surge are far below the limit).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The three windows of a cacheable response, relative to when it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Fresh for this long.
    pub ttl: Duration,
    /// Then servable while a refresh runs, for this long.
    pub stale_while_revalidate: Duration,
    /// From the end of `ttl`, servable when a refresh fails, for this long.
    pub stale_if_error: Duration,
}

/// Where a stored copy stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Within its TTL: serve it.
    Fresh,
    /// Past its TTL, inside stale-while-revalidate: serve it and refresh in the background.
    Stale,
    /// Past stale-while-revalidate, inside stale-if-error: fetch anew, and serve it only if
    /// that fails.
    ErrorOnly,
    /// Past every window: fetch anew.
    Expired,
}

impl EntryState {
    /// The status of an answer served from a copy in this state, or `None` when the copy
    /// cannot be served as it is.
    pub fn served(self) -> Option<CacheStatus> {
        match self {
            EntryState::Fresh => Some(CacheStatus::Hit),
            EntryState::Stale => Some(CacheStatus::Stale),
            EntryState::ErrorOnly | EntryState::Expired => None,
        }
    }

    /// The status of an answer fetched anew because the stored copy was in this state
    /// (`None`: there was no copy): a copy found too old is `EXPIRED` in every tier, and only
    /// the absence of a copy is a `MISS`.
    pub fn refetched(state: Option<Self>) -> CacheStatus {
        match state {
            None => CacheStatus::Miss,
            Some(_) => CacheStatus::Expired,
        }
    }
}

/// The windows of one stored copy, as absolute times (ms since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// When it was stored.
    pub stored_at: u64,
    /// End of freshness.
    pub fresh_until: u64,
    /// End of stale-while-revalidate.
    pub stale_until: u64,
    /// End of stale-if-error.
    pub error_until: u64,
}

impl Freshness {
    /// The windows of a copy stored at `now`.
    pub fn new(now: u64, windows: &Windows) -> Self {
        let fresh_until = now.saturating_add(millis(windows.ttl));
        Self {
            stored_at: now,
            fresh_until,
            stale_until: fresh_until.saturating_add(millis(windows.stale_while_revalidate)),
            error_until: fresh_until.saturating_add(millis(windows.stale_if_error)),
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: u64) -> EntryState {
        if now < self.fresh_until {
            EntryState::Fresh
        } else if now < self.stale_until {
            EntryState::Stale
        } else if now < self.error_until {
            EntryState::ErrorOnly
        } else {
            EntryState::Expired
        }
    }

    /// How long a store must keep the copy from `now` so every window can still use it
    /// (at least 1 ms: stores read zero as "forever" or refuse it).
    pub fn keep_for(&self, now: u64) -> Duration {
        Duration::from_millis(
            self.stale_until
                .max(self.error_until)
                .saturating_sub(now)
                .max(1),
        )
    }

    /// Fresh again from `now` for `hold` (a copy kept serving after a failed refresh, so the
    /// next attempt waits): the later windows never end before the new freshness does.
    pub fn extended(&self, now: u64, hold: Duration) -> Self {
        let fresh_until = now.saturating_add(millis(hold));
        Self {
            stored_at: self.stored_at,
            fresh_until,
            stale_until: self.stale_until.max(fresh_until),
            error_until: self.error_until.max(fresh_until),
        }
    }

    /// Age in whole seconds at `now` (for the `Age` header).
    pub fn age_secs(&self, now: u64) -> u64 {
        now.saturating_sub(self.stored_at) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_at_1s() -> Freshness {
        Freshness::new(
            1_000,
            &Windows {
                ttl: Duration::from_secs(10),
                stale_while_revalidate: Duration::from_secs(5),
                stale_if_error: Duration::from_secs(60),
            },
        )
    }

    #[test]
    fn windows_follow_each_other() {
        let f = stored_at_1s();
        assert_eq!(f.state(1_000), EntryState::Fresh);
        assert_eq!(f.state(10_999), EntryState::Fresh);
        assert_eq!(f.state(11_000), EntryState::Stale);
        assert_eq!(f.state(16_000), EntryState::ErrorOnly);
        assert_eq!(f.state(71_000), EntryState::Expired);
        assert_eq!(f.keep_for(1_000), Duration::from_secs(70));
        assert_eq!(f.keep_for(80_000), Duration::from_millis(1));
        assert_eq!(f.age_secs(12_999), 11);
    }

    #[test]
    fn every_tier_names_an_old_copy_the_same_way() {
        let f = stored_at_1s();
        let at = |now| f.state(now);
        assert_eq!(at(5_000).served(), Some(CacheStatus::Hit));
        assert_eq!(at(12_000).served(), Some(CacheStatus::Stale));
        assert_eq!(at(20_000).served(), None);
        assert_eq!(at(71_000).served(), None);
        assert_eq!(
            EntryState::refetched(Some(at(20_000))),
            CacheStatus::Expired
        );
        assert_eq!(
            EntryState::refetched(Some(at(71_000))),
            CacheStatus::Expired
        );
        assert_eq!(EntryState::refetched(None), CacheStatus::Miss);
    }

    #[test]
    fn an_extended_copy_is_fresh_again_and_keeps_its_later_windows() {
        let f = stored_at_1s();
        let held = f.extended(20_000, Duration::from_secs(2));
        assert_eq!(held.state(21_999), EntryState::Fresh);
        assert_eq!(held.state(22_000), EntryState::ErrorOnly);
        assert_eq!(held.error_until, f.error_until);
        let late = f.extended(100_000, Duration::from_secs(2));
        assert_eq!(late.stale_until, 102_000);
        assert_eq!(late.error_until, 102_000);
    }
}
