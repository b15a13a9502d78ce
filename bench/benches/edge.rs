//! Criterion bench of the edge pipeline, natively, on a cache hit (in-memory store, an origin
//! that is never reached).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use surge_edge::config::EdgeConfig;
use surge_edge::http::{Client, EdgeRequest, EdgeResponse, Headers};
use surge_edge::pipeline::Pipeline;
use surge_edge::platform::memory::{MemoryLimiter, MemoryStore, SystemClock, TaskQueue};
use surge_edge::seams::{FetchError, Upstream};

/// An origin answering 1 KiB, cacheable.
struct Origin;

impl Upstream for Origin {
    async fn fetch(
        &self,
        _request: &EdgeRequest,
        _timeout: Duration,
    ) -> Result<EdgeResponse, FetchError> {
        let mut headers = Headers::new();
        headers.set("content-type", "application/json");
        Ok(EdgeResponse {
            status: 200,
            headers,
            body: vec![b'x'; 1024],
        })
    }
}

fn pipeline_hit(c: &mut Criterion) {
    // The shipped policy without quotas: the bench measures the cache hit, not 429s.
    let mut policy = surge_shared::Policy::election_default();
    for route in &mut policy.routes {
        route.limit = None;
    }
    let policy_json = serde_json::to_string(&policy).expect("policy serialises");
    let config =
        EdgeConfig::from_vars(|name| (name == "SURGE_POLICY").then(|| policy_json.clone()))
            .expect("config");
    let pipeline = Pipeline::new(
        config,
        MemoryStore::new(SystemClock, 10_000),
        MemoryLimiter::new(SystemClock),
        Origin,
        SystemClock,
        TaskQueue::new(),
    );
    let request = EdgeRequest {
        method: "GET".into(),
        url: "https://vote.example/api/elections/7?utm_source=news&lang=fr".into(),
        headers: [
            ("accept-encoding", "gzip, br"),
            ("accept", "application/json"),
            ("user-agent", "bench"),
        ]
        .into_iter()
        .collect(),
        body: Vec::new(),
        client: Client {
            ip: Some("198.51.100.7".into()),
            country: Some("DE".into()),
            continent: Some("EU".into()),
        },
    };
    let first = futures_executor::block_on(pipeline.handle(request.clone()));
    assert_eq!(first.headers.get("x-surge-cache"), Some("MISS"));
    let hit = futures_executor::block_on(pipeline.handle(request.clone()));
    assert_eq!(hit.headers.get("x-surge-cache"), Some("HIT"));
    c.bench_function("edge/pipeline_hit_1KiB", |b| {
        b.iter(|| black_box(futures_executor::block_on(pipeline.handle(request.clone()))))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = pipeline_hit
}
criterion_main!(benches);
