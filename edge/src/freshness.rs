//! How old a stored response is: its freshness windows are written into the stored copy's
//! headers (`x-surge-*`, stripped before serving) so any cache store can carry them.

use std::time::Duration;

use crate::http::Headers;

/// Header holding when the copy was stored (ms since epoch).
pub const STORED_AT: &str = "x-surge-stored-at";
/// Header holding the end of freshness.
pub const FRESH_UNTIL: &str = "x-surge-fresh-until";
/// Header holding the end of the stale-while-revalidate window.
pub const SWR_UNTIL: &str = "x-surge-swr-until";
/// Header holding the end of the stale-if-error window.
pub const SIE_UNTIL: &str = "x-surge-sie-until";

/// The three windows of a cacheable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// Fresh for this long.
    pub ttl: Duration,
    /// Then servable while revalidating for this long.
    pub swr: Duration,
    /// Then (from the end of `ttl`) servable when the origin fails for this long.
    pub sie: Duration,
}

/// Where a stored copy stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Within its TTL: serve it.
    Fresh,
    /// Past its TTL, inside stale-while-revalidate: serve it and refresh in the background.
    Revalidate,
    /// Past stale-while-revalidate, inside stale-if-error: fetch, and serve it if that fails.
    ErrorOnly,
    /// Too old for anything.
    Expired,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The windows of one stored copy, as absolute times (ms since epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// When it was stored.
    pub stored_at: u64,
    /// End of freshness.
    pub fresh_until: u64,
    /// End of stale-while-revalidate.
    pub swr_until: u64,
    /// End of stale-if-error.
    pub sie_until: u64,
}

impl Freshness {
    /// Windows for a copy stored at `now`.
    pub fn new(now: u64, ttls: &Ttls) -> Self {
        let fresh_until = now.saturating_add(ms(ttls.ttl));
        Self {
            stored_at: now,
            fresh_until,
            swr_until: fresh_until.saturating_add(ms(ttls.swr)),
            sie_until: fresh_until.saturating_add(ms(ttls.sie)),
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: u64) -> EntryState {
        if now < self.fresh_until {
            EntryState::Fresh
        } else if now < self.swr_until {
            EntryState::Revalidate
        } else if now < self.sie_until {
            EntryState::ErrorOnly
        } else {
            EntryState::Expired
        }
    }

    /// How long a store must keep the copy from `now` so every window can use it.
    pub fn keep_for(&self, now: u64) -> Duration {
        Duration::from_millis(self.swr_until.max(self.sie_until).saturating_sub(now))
    }

    /// Age in whole seconds at `now` (for the `Age` header).
    pub fn age_secs(&self, now: u64) -> u64 {
        now.saturating_sub(self.stored_at) / 1000
    }

    /// Writes the windows into `headers`.
    pub fn write(&self, headers: &mut Headers) {
        headers.set(STORED_AT, self.stored_at.to_string());
        headers.set(FRESH_UNTIL, self.fresh_until.to_string());
        headers.set(SWR_UNTIL, self.swr_until.to_string());
        headers.set(SIE_UNTIL, self.sie_until.to_string());
    }

    /// Reads the windows back; `None` when any is missing or malformed (treat as a miss).
    pub fn read(headers: &Headers) -> Option<Self> {
        let field = |name| headers.get(name)?.parse::<u64>().ok();
        Some(Self {
            stored_at: field(STORED_AT)?,
            fresh_until: field(FRESH_UNTIL)?,
            swr_until: field(SWR_UNTIL)?,
            sie_until: field(SIE_UNTIL)?,
        })
    }

    /// Removes the windows from `headers` (before a copy is served).
    pub fn strip(headers: &mut Headers) {
        for name in [STORED_AT, FRESH_UNTIL, SWR_UNTIL, SIE_UNTIL] {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_each_other() {
        let f = Freshness::new(
            1_000,
            &Ttls {
                ttl: Duration::from_secs(10),
                swr: Duration::from_secs(5),
                sie: Duration::from_secs(60),
            },
        );
        assert_eq!(f.state(1_000), EntryState::Fresh);
        assert_eq!(f.state(10_999), EntryState::Fresh);
        assert_eq!(f.state(11_000), EntryState::Revalidate);
        assert_eq!(f.state(16_000), EntryState::ErrorOnly);
        assert_eq!(f.state(71_000), EntryState::Expired);
        assert_eq!(f.keep_for(1_000), Duration::from_secs(70));
        let mut h = Headers::new();
        f.write(&mut h);
        assert_eq!(Freshness::read(&h), Some(f));
        Freshness::strip(&mut h);
        assert_eq!(h, Headers::new());
    }

    #[test]
    fn malformed_metadata_reads_as_none() {
        let h: Headers = [
            (STORED_AT, "1"),
            (FRESH_UNTIL, "x"),
            (SWR_UNTIL, "1"),
            (SIE_UNTIL, "1"),
        ]
        .into_iter()
        .collect();
        assert_eq!(Freshness::read(&h), None);
    }
}
