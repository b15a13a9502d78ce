//! Any URL and any Accept-Encoding/Accept-Language: keying never panics, and a canonical URL
//! is a fixed point (keying it again gives the same key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use surge_shared::key::{KeyConfig, canonical_url};
use surge_shared::{CacheKey, Policy};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (url, header) = text.split_once('\n').unwrap_or((&text, "gzip, br"));
    let config: KeyConfig = Policy::election_default().key;
    let headers = [("Accept-Encoding", header), ("Accept-Language", header)];
    let _ = CacheKey::new(&config, "GET", url, &headers[..]);
    if let Ok(once) = canonical_url(&config, url) {
        let twice = canonical_url(&config, &once).expect("a canonical URL stays valid");
        assert_eq!(once, twice, "canonicalisation is idempotent");
    }
});
