//! The stored form of a copy's [`Freshness`]: its windows are written into the stored copy's
//! headers (`x-surge-*`, stripped before serving) so any cache store can carry them.

use surge_shared::freshness::Freshness;

use crate::http::Headers;

/// Header holding when the copy was stored (ms since epoch).
pub const STORED_AT: &str = "x-surge-stored-at";
/// Header holding the end of freshness.
pub const FRESH_UNTIL: &str = "x-surge-fresh-until";
/// Header holding the end of the stale-while-revalidate window.
pub const STALE_UNTIL: &str = "x-surge-swr-until";
/// Header holding the end of the stale-if-error window.
pub const ERROR_UNTIL: &str = "x-surge-sie-until";

const ALL: [&str; 4] = [STORED_AT, FRESH_UNTIL, STALE_UNTIL, ERROR_UNTIL];

/// Writes the windows into `headers`.
pub fn write(freshness: &Freshness, headers: &mut Headers) {
    let Freshness {
        stored_at,
        fresh_until,
        stale_until,
        error_until,
    } = freshness;
    for (name, value) in ALL
        .iter()
        .zip([stored_at, fresh_until, stale_until, error_until])
    {
        headers.set(name, value.to_string());
    }
}

/// Reads the windows back; `None` when any is missing or malformed (treat as a miss).
pub fn read(headers: &Headers) -> Option<Freshness> {
    let field = |name| headers.get(name)?.parse::<u64>().ok();
    Some(Freshness {
        stored_at: field(STORED_AT)?,
        fresh_until: field(FRESH_UNTIL)?,
        stale_until: field(STALE_UNTIL)?,
        error_until: field(ERROR_UNTIL)?,
    })
}

/// Removes the windows from `headers` (before a copy is served).
pub fn strip(headers: &mut Headers) {
    for name in ALL {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use surge_shared::freshness::Windows;

    use super::*;

    #[test]
    fn windows_round_trip_through_headers_and_are_stripped() {
        let f = Freshness::new(
            1_000,
            &Windows {
                ttl: Duration::from_secs(10),
                stale_while_revalidate: Duration::from_secs(5),
                stale_if_error: Duration::from_secs(60),
            },
        );
        let mut h = Headers::new();
        write(&f, &mut h);
        assert_eq!(read(&h), Some(f));
        strip(&mut h);
        assert_eq!(h, Headers::new());
    }

    #[test]
    fn malformed_metadata_reads_as_none() {
        let h: Headers = [
            (STORED_AT, "1"),
            (FRESH_UNTIL, "x"),
            (STALE_UNTIL, "1"),
            (ERROR_UNTIL, "1"),
        ]
        .into_iter()
        .collect();
        assert_eq!(read(&h), None);
    }
}
