//! The edge as a wasi-http component (spin-sdk, `wasm32-wasip2`) hosted in-process by wasmtime,
//! running the same conformance scenarios as the Workers build where they make sense without
//! Cloudflare bindings (no `cf` geo facts: clients get the default region order).

mod conformance;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use conformance::{Edge, Stack};
use surge_wasi_host::WasiEdge;

impl Edge for WasiEdge {
    fn url(&self, path: &str) -> String {
        WasiEdge::url(self, path)
    }
}

/// Builds the component once per test run and returns its path.
fn component() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = surge_testkit::wrangler::repo_root();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "-p",
                "surge-edge",
                "--target",
                "wasm32-wasip2",
                "--features",
                "wasi",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the wasi-http component failed");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        target.join("wasm32-wasip2/release/surge_edge.wasm")
    })
}

fn stack() -> Stack<WasiEdge> {
    let (eu, us, geo) = conformance::origins();
    let edge = WasiEdge::start(component(), &[("SURGE_GEO", &geo)])
        .expect("wasmtime serves the component");
    Stack { edge, eu, us }
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
fn rate_limits_answer_429_with_retry_after() {
    conformance::rate_limits_answer_429_with_retry_after(&stack());
}

#[test]
fn methods_sizes_health_and_admin_are_guarded() {
    conformance::methods_sizes_health_and_admin_are_guarded(&stack());
}
