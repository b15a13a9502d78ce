//! Any Cache-Tag / Surrogate-Key header: parsing never panics, and what parses encodes back
//! to a header that parses to the same set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surge_shared::{Tag, TagSet};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Tag::new(&text);
    let _ = TagSet::parse_surrogate_key_header(&text);
    if let Ok(set) = TagSet::parse_cache_tag_header(&text)
        && let Ok(header) = set.to_cache_tag_header()
    {
        let again = TagSet::parse_cache_tag_header(&header).expect("an encoded header parses");
        assert_eq!(set, again, "tag headers round-trip");
    }
});
