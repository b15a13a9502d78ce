//! Criterion bench of what a fresh instance per request costs the wasi-http component (as
//! Spin and `wasmtime serve` run it): creating a store and instance from the pre-instantiated
//! component with the pooling allocator and with on-demand allocation, and a whole
//! `GET /__surge/health` answered by a new instance (instantiate, run, finish, drop).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use surge_wasi_host::{Allocation, Handler, Prepared};

const GEO: &str =
    r#"{"regions":{"eu":{"origin":"http://127.0.0.1:9","timeout":"1s"}},"default":["eu"]}"#;

fn component() -> PathBuf {
    surge_wasi_host::build_edge_component().expect("the component builds")
}

fn instantiation(c: &mut Criterion) {
    let component = component();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("wasi_instance");
    for (name, allocation) in [
        ("instantiate_pooling", Allocation::Pooling),
        ("instantiate_on_demand", Allocation::OnDemand),
    ] {
        let prepared =
            Prepared::new(&component, &[("SURGE_GEO", GEO)], allocation).expect("prepared");
        group.bench_function(name, |b| {
            b.iter(|| {
                let instance = runtime.block_on(prepared.instantiate()).expect("instance");
                black_box(instance);
            });
        });
    }
    let prepared =
        Prepared::new(&component, &[("SURGE_GEO", GEO)], Allocation::Pooling).expect("prepared");
    let handler = Handler::new(prepared);
    group.bench_function("health_request_on_a_fresh_instance", |b| {
        b.iter(|| {
            let request = http::Request::get("http://vote.example/__surge/health")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request");
            let response = runtime.block_on(handler.handle(request));
            assert_eq!(response.status(), 200);
        });
    });
    group.finish();
}

criterion_group!(benches, instantiation);
criterion_main!(benches);
