//! Read-through, write-through and write-behind against a real Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use surge_origin::cache::l2::RedisTarget;
use surge_origin::cache::options::EntryOptions;
use surge_origin::cache::strategy::{Store, WriteBehind, read_through, write_through};
use surge_origin::cache::{CacheConfig, HybridCache};
use surge_shared::{Tag, TagSet, Tier};
use surge_testkit::redis::{RedisServer, cli};

#[derive(Default)]
struct Table {
    rows: Mutex<HashMap<String, u32>>,
    down: AtomicBool,
    loads: AtomicU32,
    saves: AtomicU32,
}

impl Store<u32> for Table {
    async fn load(&self, key: &str) -> Result<u32, String> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.rows
            .lock()
            .map_err(|e| e.to_string())?
            .get(key)
            .copied()
            .ok_or_else(|| format!("no row {key}"))
    }

    async fn save(&self, batch: &[(String, u32)]) -> Result<(), String> {
        if self.down.load(Ordering::SeqCst) {
            return Err("database unavailable".into());
        }
        self.saves.fetch_add(1, Ordering::SeqCst);
        let mut rows = self.rows.lock().map_err(|e| e.to_string())?;
        for (k, v) in batch {
            rows.insert(k.clone(), *v);
        }
        Ok(())
    }
}

async fn cache(redis: &RedisServer, name: &str) -> HybridCache {
    HybridCache::new(CacheConfig {
        instance: name.into(),
        redis: Some(RedisTarget::Single(redis.url())),
        ..CacheConfig::default()
    })
    .await
    .expect("cache")
}

#[tokio::test(flavor = "multi_thread")]
async fn read_through_loads_once_and_write_through_keeps_cache_and_store_in_step() {
    let redis = RedisServer::start().expect("redis");
    let cache = cache(&redis, "rt").await;
    let table = Arc::new(Table::default());
    table
        .rows
        .lock()
        .expect("lock")
        .insert("votes:1".into(), 10);
    let options = EntryOptions::default();
    for _ in 0..3 {
        assert_eq!(
            read_through(&cache, &table, "votes:1", &options)
                .await
                .expect("loads")
                .value,
            10
        );
    }
    assert_eq!(table.loads.load(Ordering::SeqCst), 1);

    write_through(&cache, table.as_ref(), "votes:1", 11, &options)
        .await
        .expect("written");
    assert_eq!(table.rows.lock().expect("lock").get("votes:1"), Some(&11));
    assert_eq!(
        cache
            .get::<u32>("votes:1")
            .await
            .expect("get")
            .map(|l| l.value),
        Some(11)
    );

    table.down.store(true, Ordering::SeqCst);
    assert!(
        write_through(&cache, table.as_ref(), "votes:1", 12, &options)
            .await
            .is_err()
    );
    assert_eq!(
        cache
            .get::<u32>("votes:1")
            .await
            .expect("get")
            .map(|l| l.value),
        Some(11),
        "a refused write never reaches the cache"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn write_behind_loses_nothing_when_the_flusher_dies() {
    let redis = RedisServer::start().expect("redis");
    let cache = cache(&redis, "wb").await;
    let table = Arc::new(Table::default());
    let first = WriteBehind::open(&redis.url(), "votes", "flusher-a")
        .await
        .expect("queue");
    let options = EntryOptions::default();
    for i in 0..50u32 {
        first
            .write(&cache, &format!("tally:{}", i % 10), i, &options)
            .await
            .expect("queued");
    }
    // The cache has the newest values at once.
    let now = cache
        .get::<u32>("tally:3")
        .await
        .expect("get")
        .expect("cached");
    assert_eq!((now.value, now.tier), (43, Tier::L1));
    assert!(
        table.rows.lock().expect("lock").is_empty(),
        "nothing written yet"
    );

    // Flusher A takes a batch, then fails before the store accepts it (a crash mid-flush) ...
    table.down.store(true, Ordering::SeqCst);
    assert!(
        first
            .flush_once::<u32, _>(table.as_ref(), 20, Duration::from_secs(60))
            .await
            .is_err()
    );
    // ... and a running flusher is killed.
    let running = tokio::spawn(first.clone().run_flusher::<u32, _>(
        table.clone(),
        20,
        Duration::from_millis(10),
        Duration::from_secs(60),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.abort();
    assert_eq!(first.pending().await.expect("pending"), 50);

    // Flusher B claims what A left and writes everything, in order.
    table.down.store(false, Ordering::SeqCst);
    let second = WriteBehind::open(&redis.url(), "votes", "flusher-b")
        .await
        .expect("queue");
    let mut written = 0;
    for _ in 0..10 {
        written += second
            .flush_once::<u32, _>(table.as_ref(), 20, Duration::ZERO)
            .await
            .expect("flush");
    }
    assert_eq!(written, 50);
    assert_eq!(second.pending().await.expect("pending"), 0);
    let rows = table.rows.lock().expect("lock");
    assert_eq!(rows.len(), 10);
    assert_eq!(rows.get("tally:3"), Some(&43), "the newest value wins");
}

/// `INFO stats` field `evicted_keys` of the Redis on `port`.
fn evicted_keys(port: u16) -> u64 {
    let info = cli(port, &["INFO", "stats"]).expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("evicted_keys")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_cache_redis_evicts_entries_but_never_tag_versions_or_queued_writes() {
    // As the manifests deploy them: a cache Redis that evicts (allkeys-lru, a small
    // maxmemory here) and a state Redis that never does.
    let cache_redis = RedisServer::start().expect("cache redis");
    let state_redis = RedisServer::start().expect("state redis");
    for args in [
        ["CONFIG", "SET", "maxmemory", "4mb"],
        ["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    ] {
        cli(cache_redis.port(), &args).expect("configure the cache redis");
    }
    cli(
        state_redis.port(),
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    )
    .expect("configure the state redis");
    let config = |instance: &str| CacheConfig {
        instance: instance.into(),
        redis: Some(RedisTarget::Single(cache_redis.url())),
        redis_state: Some(RedisTarget::Single(state_redis.url())),
        ..CacheConfig::default()
    };
    let cache = HybridCache::new(config("a")).await.expect("cache");

    // A tagged entry whose tag is then purged, and 100 queued writes.
    let election = Tag::new("election:1").expect("tag");
    cache
        .set(
            "ballot:1",
            1u32,
            &EntryOptions::default().tagged([election.clone()]),
        )
        .await
        .expect("set");
    cache
        .invalidate_tags(&[election].into_iter().collect::<TagSet>())
        .await
        .expect("purge");
    let queue = WriteBehind::open(&state_redis.url(), "votes", "flusher")
        .await
        .expect("queue");
    for i in 0..100u32 {
        queue
            .write(
                &cache,
                &format!("tally:{}", i % 10),
                i,
                &EntryOptions::default(),
            )
            .await
            .expect("queued");
    }

    // Another process fills the cache Redis six times over.
    let filler = HybridCache::new(config("b")).await.expect("filler");
    let page = vec![7u8; 8 * 1024];
    for i in 0..3_000 {
        filler
            .set(&format!("page:{i}"), page.clone(), &EntryOptions::default())
            .await
            .expect("set page");
    }
    assert!(
        evicted_keys(cache_redis.port()) > 0,
        "the cache Redis evicted"
    );
    assert_eq!(evicted_keys(state_redis.port()), 0);

    // The purge is remembered: the version is in the state Redis, none is in the cache Redis,
    // and a process starting now (no L1) does not serve the purged entry.
    assert_eq!(
        cli(state_redis.port(), &["HGET", "{surge}:tagv", "election:1"])
            .expect("hget")
            .trim(),
        "1"
    );
    assert_eq!(
        cli(
            cache_redis.port(),
            &["EXISTS", "{surge}:tagv", "{surge}:fence"]
        )
        .expect("exists")
        .trim(),
        "0"
    );
    let fresh = HybridCache::new(config("c")).await.expect("fresh");
    assert!(
        fresh.get::<u32>("ballot:1").await.expect("get").is_none(),
        "a purged entry came back"
    );

    // Every queued write is still there and reaches the store.
    assert_eq!(queue.pending().await.expect("pending"), 100);
    let table = Table::default();
    let mut written = 0;
    while written < 100 {
        let n = queue
            .flush_once::<u32, _>(&table, 40, Duration::ZERO)
            .await
            .expect("flush");
        assert!(n > 0, "the queue ran dry at {written}");
        written += n;
    }
    let rows = table.rows.lock().expect("lock");
    assert_eq!(rows.len(), 10);
    assert_eq!(rows.get("tally:9"), Some(&99));
}
