//! Criterion benches of the hybrid cache: L1 hit, L2 hit (real Redis from the harness), and
//! `get_or_set` on a hit beside raw `moka::future::Cache::get` on the same data.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use surge_origin::cache::l2::RedisTarget;
use surge_origin::cache::options::EntryOptions;
use surge_origin::cache::{CacheConfig, HybridCache};
use surge_shared::{Layer, Layers};
use surge_testkit::redis::RedisServer;

const VALUE_BYTES: usize = 1024;

fn value() -> String {
    "v".repeat(VALUE_BYTES)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn l1_hits(c: &mut Criterion) {
    let rt = runtime();
    let cache = rt.block_on(async {
        HybridCache::new(CacheConfig::default())
            .await
            .expect("cache")
    });
    let options = EntryOptions::default().ttl(Duration::from_secs(3600));
    rt.block_on(cache.set("election:7", value(), &options))
        .expect("set");
    let raw: moka::future::Cache<String, String> = moka::future::Cache::new(10_000);
    rt.block_on(raw.insert("election:7".to_string(), value()));

    let mut group = c.benchmark_group("l1_hit_1KiB");
    group.bench_function("surge_get_or_set", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                cache
                    .get_or_set("election:7", &options, || async {
                        Ok::<String, String>(value())
                    })
                    .await,
            )
        })
    });
    group.bench_function("surge_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cache.get::<String>("election:7").await) })
    });
    group.bench_function("raw_moka_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(raw.get("election:7").await) })
    });
    group.finish();
}

fn l2_hits(c: &mut Criterion) {
    let redis = RedisServer::start().expect("redis for the L2 bench");
    let rt = runtime();
    let cache = rt.block_on(async {
        HybridCache::new(CacheConfig {
            redis: Some(RedisTarget::Single(redis.url())),
            ..CacheConfig::default()
        })
        .await
        .expect("cache")
    });
    // L2 only, so every lookup goes to Redis and decodes.
    let options = EntryOptions {
        layers: Layers::NONE.with(Layer::L2),
        ..EntryOptions::default().ttl(Duration::from_secs(3600))
    };
    rt.block_on(cache.set("ballot:7", value(), &options))
        .expect("set");
    c.bench_function("l2_hit_1KiB/surge_get_or_set", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                cache
                    .get_or_set("ballot:7", &options, || async {
                        Ok::<String, String>(value())
                    })
                    .await,
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = l1_hits, l2_hits
}
criterion_main!(benches);
