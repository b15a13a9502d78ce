//! The edge Worker end to end under workerd (`wrangler dev --local`), with two real HTTP
//! origins on loopback as two regions. The scenarios live in `conformance/`.

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
    let edge = WranglerDev::start(&[("SURGE_GEO", &geo)], Some(&cf)).expect("wrangler dev starts");
    Stack { edge, eu, us }
}

fn stack() -> Stack<WranglerDev> {
    stack_in("DE", "EU")
}

#[test]
fn cache_miss_then_hit_for_equivalent_urls() {
    conformance::cache_miss_then_hit_for_equivalent_urls(&stack());
}

#[test]
fn origin_s_maxage_overrides_the_route_ttl() {
    conformance::origin_s_maxage_overrides_the_route_ttl(&stack());
}

#[test]
fn stale_while_revalidate_serves_stale_then_fresh() {
    conformance::stale_while_revalidate_serves_stale_then_fresh(&stack());
}

#[test]
fn stale_if_error_and_clear_outage_answers() {
    conformance::stale_if_error_and_clear_outage_answers(&mut stack());
}

#[test]
fn credentialed_requests_bypass_the_shared_cache() {
    conformance::credentialed_requests_bypass_the_shared_cache(&stack());
}

#[test]
fn uncacheable_responses_are_never_stored() {
    conformance::uncacheable_responses_are_never_stored(&stack());
}

#[test]
fn unkeyed_headers_cannot_poison_the_cache() {
    conformance::unkeyed_headers_cannot_poison_the_cache(&stack());
}

#[test]
fn geo_routing_fails_over_to_the_next_region() {
    conformance::geo_routing_fails_over_to_the_next_region(&mut stack());
}

#[test]
fn us_clients_go_to_the_us_region_first() {
    conformance::us_clients_go_to_the_us_region_first(&stack_in("US", "NA"));
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    conformance::rate_limits_answer_429_with_retry_after(&stack());
}

#[test]
fn methods_sizes_health_and_admin_are_guarded() {
    conformance::methods_sizes_health_and_admin_are_guarded(&stack());
}
