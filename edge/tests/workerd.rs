//! The edge Worker end to end under workerd (`wrangler dev --local`), with two real HTTP
//! origins on loopback as two regions. The scenarios live in `conformance/`.

#[macro_use]
mod conformance;

use conformance::{Edge, Stack};
use surge_testkit::wrangler::WranglerDev;

impl Edge for WranglerDev {
    fn url(&self, path: &str) -> String {
        WranglerDev::url(self, path)
    }
}

fn stack_in(country: &str, continent: &str) -> Stack<WranglerDev> {
    let (eu, us, geo) = conformance::origins();
    let cf = format!(r#"{{"country":"{country}","continent":"{continent}","colo":"TST"}}"#);
    let edge = WranglerDev::start(
        &[
            ("SURGE_GEO", &geo),
            ("SURGE_COOKIE_KEYS", conformance::COOKIE_KEY),
            ("SURGE_EDGE_KEYS", conformance::EDGE_KEY),
        ],
        Some(&cf),
    )
    .expect("wrangler dev starts");
    Stack { edge, eu, us }
}

fn stack() -> Stack<WranglerDev> {
    stack_in("DE", "EU")
}

conformance_tests!(stack);

/// Needs Cloudflare's `cf` object: workerd only.
#[test]
fn us_clients_go_to_the_us_region_first() {
    conformance::us_clients_go_to_the_us_region_first(&mut stack_in("US", "NA"));
}
