//! Any admin API body: parsing and validating never panics, and an accepted body names no
//! more targets than the documented limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surge_shared::admin::{
    EmergencyScaleRequest, InvalidateRequest, MAX_TARGETS, ScalingEventRequest, WarmRequest,
    parse_json,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_json::<InvalidateRequest>(data)
        && r.validate().is_ok()
    {
        for n in [
            r.keys.len(),
            r.tags.len(),
            r.prefixes.len(),
            r.patterns.len(),
            r.hosts.len(),
        ] {
            assert!(n <= MAX_TARGETS);
        }
    }
    if let Ok(r) = parse_json::<WarmRequest>(data) {
        let _ = r.validate();
    }
    if let Ok(r) = parse_json::<ScalingEventRequest>(data)
        && r.validate().is_ok()
    {
        assert!(r.end > r.start);
    }
    if let Ok(r) = parse_json::<EmergencyScaleRequest>(data) {
        let _ = r.validate();
    }
});
