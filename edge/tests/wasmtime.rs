//! The edge as a wasi-http component (spin-sdk, `wasm32-wasip2`) hosted in-process by wasmtime,
//! running the same conformance scenarios as the Workers build where they make sense without
//! Cloudflare bindings (no `cf` geo facts: clients get the default region order).

#[macro_use]
mod conformance;

use std::path::PathBuf;
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
    BUILT.get_or_init(|| surge_wasi_host::build_edge_component().expect("the component builds"))
}

fn stack() -> Stack<WasiEdge> {
    stack_with(&[])
}

fn stack_with(extra: &[(&str, &str)]) -> Stack<WasiEdge> {
    let (eu, us, geo) = conformance::origins();
    let mut env = vec![
        ("SURGE_GEO", geo.as_str()),
        ("SURGE_COOKIE_KEYS", conformance::COOKIE_KEY),
        ("SURGE_EDGE_KEYS", conformance::EDGE_KEY),
    ];
    env.extend_from_slice(extra);
    let edge = WasiEdge::start(component(), &env).expect("wasmtime serves the component");
    Stack { edge, eu, us }
}

conformance_tests!(stack);

/// Spin gives every request a fresh instance: the cache and the limiter must live in the
/// host's key-value store, not in instance memory.
#[test]
fn each_request_gets_a_fresh_instance_and_state_lives_in_the_host_store() {
    let stack = stack();
    let url = stack.edge.url("/api/elections/1/ballot");
    assert_eq!(conformance::get(&url).cache(), "MISS");
    assert_eq!(conformance::get(&url).cache(), "HIT");
    assert_eq!(
        stack.eu.requests().len(),
        1,
        "the HIT came from the host store"
    );
    assert_eq!(stack.edge.instances(), 2, "one instance per request");
    let keys = stack.edge.key_value().keys();
    assert!(keys.iter().any(|k| k.starts_with("cache:")), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.starts_with("cache-until:")),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("rate:")), "{keys:?}");
}

/// Spin's store sets no expiry: limiter keys and cache entries past their time are swept
/// from the store by the component (here on every check), read through the key-value
/// interface's `get-keys`.
#[test]
fn keys_past_their_time_are_swept_from_the_host_store() {
    let stack = stack_with(&[("SURGE_KV_SWEEP_ONE_IN", "1")]);
    let store = stack.edge.key_value();
    let mut past = Vec::new();
    for i in 0..20 {
        past.push(format!("rate:1000:read:198.51.100.{i}"));
        // A page cached long ago and never read again: its entry and its marker.
        past.push(format!("cache:surge:v1:h:{i:064x}"));
        past.push(format!("cache-until:1000:surge:v1:h:{i:064x}"));
    }
    for name in &past {
        store.insert(name, b"\0\0\0\0\0\0\0\0");
    }
    let far = u64::MAX.to_string();
    store.insert(&format!("rate:{far}:read:203.0.113.9"), &[0; 8]);
    let url = stack.edge.url("/api/elections/1/ballot");
    assert_eq!(conformance::get(&url).cache(), "MISS");
    let keys = store.keys();
    assert!(!keys.iter().any(|k| past.contains(k)), "swept: {keys:?}");
    assert!(
        keys.contains(&format!("rate:{far}:read:203.0.113.9")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("rate:") && k.ends_with(":read:ip:127.0.0.1")),
        "this request's own state stays: {keys:?}"
    );
}
