//! Any Cookie header: finding the auth cookie never panics, and what it finds is a value in
//! that header after a cookie named `auth_token` (names are read leniently: surrounding
//! whitespace is ignored, which only ever makes more requests bypass the shared cache).
#![no_main]

use libfuzzer_sys::fuzz_target;
use surge_shared::auth::cookie_value;

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    if let Some(value) = cookie_value(&header, "auth_token") {
        let name_at = header
            .find("auth_token")
            .expect("the name is in the header");
        assert!(
            header[name_at..].contains(value),
            "the value follows an auth_token name"
        );
    }
});
