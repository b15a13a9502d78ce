//! Criterion benches of the hybrid cache: L1 hit, L2 hit and the two-tier path (L1 miss, L2
//! hit, promotion) on a real Redis from the harness; `get_or_set` on a hit beside raw
//! `moka::future::Cache::get` on the same data; and the same lookups through
//! `multi-tier-cache`, the crates.io crate doing the same job (moka L1 + Redis L2), in the
//! same run on the same Redis.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use multi_tier_cache::{Bytes, CacheManager, CacheStrategy, L1Cache, L2Cache, MokaCacheConfig};
use surge_origin::cache::entry::Entry;
use surge_origin::cache::l1::{L1, L1Limits};
use surge_origin::cache::l2::{Read, RedisTarget};
use surge_origin::cache::options::EntryOptions;
use surge_origin::cache::stats::Stats;
use surge_origin::cache::{CacheConfig, HybridCache};
use surge_shared::{Layer, Layers};
use surge_testkit::redis::RedisServer;

const VALUE_BYTES: usize = 1024;

fn value() -> String {
    "v".repeat(VALUE_BYTES)
}

fn l1_hits(c: &mut Criterion) {
    let rt = surge_bench::runtime();
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

/// `multi-tier-cache`'s manager over its moka L1 (holding `l1_items`) and `redis`.
async fn peer(redis: &str, l1_items: u64) -> CacheManager {
    let l1 = L1Cache::new(MokaCacheConfig {
        max_capacity: l1_items,
        time_to_live: Duration::from_secs(3600),
        time_to_idle: Duration::from_secs(3600),
    })
    .expect("peer L1");
    let l2 = L2Cache::with_url(redis).await.expect("peer L2");
    CacheManager::new(std::sync::Arc::new(l1), std::sync::Arc::new(l2))
        .await
        .expect("peer manager")
}

fn peer_l1_hits(c: &mut Criterion) {
    let redis = RedisServer::start().expect("redis for the peer bench");
    let rt = surge_bench::runtime();
    let manager = rt.block_on(peer(&redis.url(), 10_000));
    rt.block_on(manager.set_with_strategy(
        "election:7",
        Bytes::from(value()),
        CacheStrategy::Custom(Duration::from_secs(3600)),
    ))
    .expect("peer set");
    let found = rt.block_on(manager.get("election:7")).expect("peer get");
    assert_eq!(
        found.map(|b| b.len()),
        Some(VALUE_BYTES),
        "the peer serves the value"
    );
    c.bench_function("l1_hit_1KiB/multi_tier_cache_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(manager.get("election:7").await) })
    });
}

/// Keys cycled through a 16-entry L1: nearly every lookup misses L1, hits L2 and promotes.
const CYCLED_KEYS: usize = 1024;

fn two_tier_hits(c: &mut Criterion) {
    let redis = RedisServer::start().expect("redis for the two-tier bench");
    let rt = surge_bench::runtime();
    let cache = rt.block_on(async {
        HybridCache::new(CacheConfig {
            redis: Some(RedisTarget::Single(redis.url())),
            l1: L1Limits {
                max_items: 16,
                ..L1Limits::default()
            },
            ..CacheConfig::default()
        })
        .await
        .expect("cache")
    });
    let manager = rt.block_on(peer(&redis.url(), 16));
    let options = EntryOptions::default().ttl(Duration::from_secs(3600));
    let keys: Vec<String> = (0..CYCLED_KEYS).map(|i| format!("ballot:{i}")).collect();
    rt.block_on(async {
        for key in &keys {
            cache.set(key, value(), &options).await.expect("set");
            manager
                .set_with_strategy(
                    &format!("peer:{key}"),
                    Bytes::from(value()),
                    CacheStrategy::Custom(Duration::from_secs(3600)),
                )
                .await
                .expect("peer set");
        }
    });
    let peer_keys: Vec<String> = keys.iter().map(|k| format!("peer:{k}")).collect();
    // Both serve every key before anything is timed (from L2 once L1 has evicted it).
    rt.block_on(async {
        for (key, peer_key) in keys.iter().zip(&peer_keys) {
            let ours = cache.get::<String>(key).await.expect("get");
            assert!(ours.is_some(), "{key} served");
            let theirs = manager.get(peer_key).await.expect("peer get");
            assert_eq!(
                theirs.map(|b| b.len()),
                Some(VALUE_BYTES),
                "{peer_key} served"
            );
        }
    });
    let mut group = c.benchmark_group("l1_l2_hit_1KiB");
    let next = std::sync::atomic::AtomicUsize::new(0);
    group.bench_function("surge_get", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CYCLED_KEYS;
            black_box(cache.get::<String>(&keys[i]).await)
        })
    });
    // The same keys read from L2 alone (the layers skip L1): the baseline the two-tier path
    // is held to.
    let l2_only = EntryOptions {
        layers: Layers::NONE.with(Layer::L2),
        ..options.clone()
    };
    group.bench_function("surge_get_or_set_l2_only", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CYCLED_KEYS;
            black_box(
                cache
                    .get_or_set(&keys[i], &l2_only, || async {
                        Ok::<String, String>(value())
                    })
                    .await,
            )
        })
    });
    // The two lookups alternating in one timed loop, so the loopback's drift hits both
    // alike: criterion times the two-tier lookup; the L2-only lookups between them are timed
    // too, and the ratio of the two totals is printed.
    let l2_only_total = std::sync::Mutex::new((Duration::ZERO, Duration::ZERO));
    group.bench_function("surge_get_alternating_with_l2_only", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (cache, keys, l2_only, next, totals) =
                (&cache, &keys, &l2_only, &next, &l2_only_total);
            async move {
                let (mut two_tier, mut l2) = (Duration::ZERO, Duration::ZERO);
                for _ in 0..iters {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CYCLED_KEYS;
                    let started = std::time::Instant::now();
                    black_box(cache.get::<String>(&keys[i]).await.ok());
                    two_tier += started.elapsed();
                    let j = (i + CYCLED_KEYS / 2) % CYCLED_KEYS;
                    let started = std::time::Instant::now();
                    black_box(
                        cache
                            .get_or_set(&keys[j], l2_only, || async {
                                Ok::<String, String>(value())
                            })
                            .await
                            .ok(),
                    );
                    l2 += started.elapsed();
                }
                let mut t = totals.lock().expect("totals");
                t.0 += two_tier;
                t.1 += l2;
                two_tier
            }
        })
    });
    let (two_tier, l2) = *l2_only_total.lock().expect("totals");
    if !l2.is_zero() {
        println!(
            "alternating: two-tier / L2-only = {:.3} ({:?} against {:?} in all)",
            two_tier.as_secs_f64() / l2.as_secs_f64(),
            two_tier,
            l2
        );
    }
    group.bench_function("multi_tier_cache_get", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CYCLED_KEYS;
            black_box(manager.get(&peer_keys[i]).await)
        })
    });
    group.finish();

    // The parts of that path, on the same keys and Redis: the L1 miss, the Redis read, the
    // decode, and the promotion into a full 16-entry L1.
    let l2 = cache.l2().expect("L2 connected");
    let entries: Vec<std::sync::Arc<Entry>> = rt.block_on(async {
        let mut out = Vec::new();
        for key in &keys {
            let Read::Found(bytes) = l2.get(key).await else {
                panic!("{key} in L2")
            };
            out.push(std::sync::Arc::new(Entry::decode(&bytes).expect("decodes")));
        }
        out
    });
    let l1 = L1::new(
        L1Limits {
            max_items: 16,
            ..L1Limits::default()
        },
        std::sync::Arc::new(Stats::default()),
    );
    let mut group = c.benchmark_group("l1_l2_parts_1KiB");
    group.bench_function("l1_miss", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CYCLED_KEYS;
            black_box(l1.get(&keys[i]).await)
        })
    });
    group.bench_function("l2_read", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CYCLED_KEYS;
            black_box(l2.get(&keys[i]).await)
        })
    });
    group.bench_function("l2_read_and_decode", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CYCLED_KEYS;
            match l2.get(&keys[i]).await {
                Read::Found(bytes) => black_box(Entry::decode(&bytes).is_ok()),
                _ => false,
            }
        })
    });
    group.bench_function("l1_promote_full", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CYCLED_KEYS;
            l1.insert(&keys[i], entries[i].clone()).await;
        })
    });
    group.finish();
}

fn l2_hits(c: &mut Criterion) {
    let redis = RedisServer::start().expect("redis for the L2 bench");
    let rt = surge_bench::runtime();
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
    targets = l1_hits, peer_l1_hits, two_tier_hits, l2_hits
}
criterion_main!(benches);
