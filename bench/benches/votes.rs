//! Criterion benches of the vote path on a real Postgres primary from the harness (loopback,
//! same server for every case, same run):
//! - votes/s: one INSERT (and commit) per vote against group commit, 2,000 votes in flight
//!   from 256 concurrent callers, through the store's own batcher in both cases;
//! - what reading the results costs at 10,000 and at 1,000,000 votes: the per-shard counters
//!   the store reads, beside the `count(*)` join they replaced.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use surge_origin::db::migrate;
use surge_origin::db::pool::{DbPool, PoolSettings};
use surge_origin::db::router::ReplicaRouter;
use surge_origin::db::slowlog::SlowLog;
use surge_origin::domain::model::{NewVote, Registration};
use surge_origin::domain::store::ElectionStore;
use surge_origin::domain::store::batch::BatchSettings;
use surge_origin::domain::store::postgres::PgStore;
use surge_testkit::postgres::PgPair;

/// Votes per measured round.
const VOTES: usize = 2000;
/// Callers casting at once.
const CALLERS: usize = 256;

fn router(pg: &PgPair) -> Arc<ReplicaRouter> {
    let pool = DbPool::new(
        &pg.primary.url("postgres"),
        &PoolSettings {
            max_size: 32,
            ..PoolSettings::default()
        },
    )
    .expect("pool");
    Arc::new(ReplicaRouter::new(pool, Vec::new()))
}

async fn prepared(pg: &PgPair) -> Arc<ReplicaRouter> {
    let router = router(pg);
    migrate::run(router.primary(), migrate::MIGRATIONS)
        .await
        .expect("migrations");
    let store = PgStore::new(
        router.clone(),
        Vec::new(),
        BatchSettings::default(),
        Arc::new(SlowLog::new(Duration::from_secs(10), 16)),
    );
    store.seed_demo().await.expect("seed");
    router
}

static NEXT_VOTER: AtomicU64 = AtomicU64::new(0);

/// Registers `n` new voters for election 1; their ids.
async fn new_voters(store: &PgStore, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n)
        .map(|_| format!("bench-{}", NEXT_VOTER.fetch_add(1, Ordering::Relaxed)))
        .collect();
    let registrations = ids
        .iter()
        .map(|id| Registration {
            voter_id: id.clone(),
            elections: vec![1],
            code_hash: [7; 32],
        })
        .collect();
    store.register(registrations).await.expect("register");
    ids
}

/// Casts one vote per voter from `CALLERS` concurrent callers; the time it took.
async fn storm(store: &Arc<PgStore>, voters: Vec<String>) -> Duration {
    let queue = Arc::new(std::sync::Mutex::new(voters));
    let start = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let (store, queue) = (store.clone(), queue.clone());
        callers.spawn(async move {
            loop {
                let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                let Some(voter) = next else { return };
                let n = NEXT_VOTER.fetch_add(1, Ordering::Relaxed);
                let cast = store
                    .cast(NewVote {
                        election_id: 1,
                        voter_id: voter,
                        option_id: i32::try_from(n % 3).unwrap_or(0) + 1,
                        receipt: format!("r-bench-{n}"),
                    })
                    .await;
                assert!(
                    matches!(cast, Ok(surge_origin::domain::model::Cast::Recorded(_))),
                    "{cast:?}"
                );
            }
        });
    }
    while callers.join_next().await.is_some() {}
    start.elapsed()
}

fn votes_per_second(c: &mut Criterion) {
    let rt = surge_bench::runtime();
    let pg = PgPair::start().expect("postgres");
    let router = rt.block_on(prepared(&pg));
    let mut group = c.benchmark_group("votes_per_primary");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(VOTES as u64));
    for (name, settings) in [
        (
            "one_insert_per_vote",
            BatchSettings {
                max_votes: 1,
                max_wait: Duration::ZERO,
                in_flight: 32,
            },
        ),
        ("group_commit", BatchSettings::default()),
    ] {
        let store = rt.block_on(async {
            Arc::new(PgStore::new(
                router.clone(),
                Vec::new(),
                settings,
                Arc::new(SlowLog::new(Duration::from_secs(10), 16)),
            ))
        });
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let store = store.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let voters = new_voters(&store, VOTES).await;
                        total += storm(&store, voters).await;
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

/// Election `id` with three options and `votes` votes, counted into its tallies the way the
/// batcher counts them.
async fn election_with_votes(router: &ReplicaRouter, id: i64, votes: i64) {
    let conn = router.primary().get().await.expect("connection");
    conn.execute(
        "INSERT INTO elections VALUES ($1::bigint, 'bench-' || $1::bigint::text, 'Bench', \
         now() - interval '1 day', now() + interval '1 day')",
        &[&id],
    )
    .await
    .expect("election");
    conn.execute(
        "INSERT INTO ballot_options SELECT $1, o, 'Option ' || o FROM generate_series(1, 3) o",
        &[&id],
    )
    .await
    .expect("options");
    conn.execute(
        "INSERT INTO votes (election_id, voter_id, option_id, receipt) \
         SELECT $1::bigint, 'v-' || g, 1 + g % 3, 'r-' || $1::bigint::text || '-' || g \
         FROM generate_series(1, $2::bigint) g",
        &[&id, &votes],
    )
    .await
    .expect("votes");
    conn.execute(
        "INSERT INTO tallies (election_id, option_id, slot, votes) \
         SELECT $1, option_id, 0, count(*) FROM votes WHERE election_id = $1 GROUP BY option_id",
        &[&id],
    )
    .await
    .expect("tallies");
    conn.batch_execute("ANALYZE").await.expect("analyze");
}

fn results_cost(c: &mut Criterion) {
    let rt = surge_bench::runtime();
    let pg = PgPair::start().expect("postgres");
    let router = rt.block_on(prepared(&pg));
    let sizes: [(i64, &str, i64); 2] = [(10, "10k_votes", 10_000), (11, "1M_votes", 1_000_000)];
    rt.block_on(async {
        for (id, _, votes) in sizes {
            election_with_votes(&router, id, votes).await;
        }
    });
    let store = rt.block_on(async {
        PgStore::new(
            router.clone(),
            Vec::new(),
            BatchSettings::default(),
            Arc::new(SlowLog::new(Duration::from_secs(10), 16)),
        )
    });
    let mut group = c.benchmark_group("results");
    group.sample_size(20);
    for (id, label, votes) in sizes {
        group.bench_function(format!("tallies/{label}"), |b| {
            b.to_async(&rt).iter(|| async {
                let r = store.results(id).await.expect("results").expect("election");
                assert_eq!(r.total, votes);
            })
        });
        group.bench_function(format!("count_join/{label}"), |b| {
            b.to_async(&rt).iter(|| async {
                let conn = router.primary().get().await.expect("connection");
                let rows = conn
                    .query(
                        "SELECT o.option_id, o.label, count(v.voter_id) FROM ballot_options o \
                         LEFT JOIN votes v ON v.election_id = o.election_id AND v.option_id = o.option_id \
                         WHERE o.election_id = $1 GROUP BY o.option_id, o.label ORDER BY o.option_id",
                        &[&id],
                    )
                    .await
                    .expect("count");
                assert_eq!(rows.iter().map(|r| r.get::<_, i64>(2)).sum::<i64>(), votes);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, votes_per_second, results_cost);
criterion_main!(benches);
