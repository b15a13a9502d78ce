//! Any policy file (TOML or JSON): parsing never panics, and a valid policy survives a JSON
//! round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surge_shared::Policy;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for parsed in [Policy::from_toml_str(&text), Policy::from_json_str(&text)] {
        if let Ok(policy) = parsed {
            let json = serde_json::to_string(&policy).expect("a policy serialises");
            let again = Policy::from_json_str(&json).expect("a serialised policy parses");
            assert_eq!(policy, again, "policies round-trip through JSON");
        }
    }
});
