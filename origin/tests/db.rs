//! The Postgres tier against the harness's real primary and streaming replica.

use std::time::Duration;

use support::eventually;
use surge_origin::db::analyze::{analyze_query, suggest_indexes};
use surge_origin::db::migrate::{self, MIGRATIONS};
use surge_origin::db::pool::{DbPool, PoolSettings};
use surge_origin::db::router::{ReplicaConfig, ReplicaRouter, Session, Target};
use surge_origin::db::shard::ShardMap;
use surge_origin::db::slowlog::SlowLog;
use surge_testkit::postgres::PgPair;

mod support;

fn pool(url: &str) -> DbPool {
    DbPool::new(url, &PoolSettings::default()).expect("pool")
}

fn router(pg: &PgPair, max_lag: Duration) -> ReplicaRouter {
    ReplicaRouter::new(
        pool(&pg.primary.url("postgres")),
        vec![ReplicaConfig {
            pool: pool(&pg.replica.url("postgres")),
            weight: 1,
            max_lag,
        }],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_leave_a_lagging_replica_and_come_back_when_it_catches_up() {
    let pg = PgPair::start().expect("postgres");
    let router = router(&pg, Duration::from_millis(500));
    router.refresh().await;
    assert_eq!(router.pick_read(&Session::default()), Target::Replica(0));

    pg.replica
        .psql("postgres", "SELECT pg_wal_replay_pause()")
        .expect("pause replay");
    pg.primary
        .psql(
            "postgres",
            "CREATE TABLE lag_probe (x int); INSERT INTO lag_probe VALUES (1)",
        )
        .expect("write on primary");
    eventually("reads to move to the primary", async || {
        router.refresh().await;
        router.pick_read(&Session::default()) == Target::Primary
    })
    .await;
    let status = router.status();
    assert!(
        !status[0].in_rotation && status[0].lag_ms.is_some_and(|l| l > 500),
        "{status:?}"
    );
    let (conn, target) = router
        .read(&Session::default())
        .await
        .expect("a connection");
    assert_eq!(target, Target::Primary);
    assert_eq!(
        conn.query_one("SELECT count(*) FROM lag_probe", &[])
            .await
            .expect("query")
            .get::<_, i64>(0),
        1
    );

    pg.replica
        .psql("postgres", "SELECT pg_wal_replay_resume()")
        .expect("resume replay");
    eventually("the replica to return", async || {
        router.refresh().await;
        router.pick_read(&Session::default()) == Target::Replica(0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_replica_is_taken_out_and_the_primary_answers() {
    let mut pg = PgPair::start().expect("postgres");
    let router = router(&pg, Duration::from_secs(5));
    router.refresh().await;
    assert_eq!(router.pick_read(&Session::default()), Target::Replica(0));
    pg.replica.kill().expect("stop replica");
    router.refresh().await;
    assert_eq!(router.pick_read(&Session::default()), Target::Primary);
    assert!(!router.status()[0].healthy);
    let (_, target) = router
        .read(&Session::default())
        .await
        .expect("primary answers");
    assert_eq!(target, Target::Primary);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_stopping_mid_read_hands_the_read_to_the_primary() {
    let mut pg = PgPair::start().expect("postgres");
    let router = router(&pg, Duration::from_secs(5));
    router.refresh().await;
    assert_eq!(router.pick_read(&Session::default()), Target::Replica(0));
    let slow = SlowLog::new(Duration::from_secs(60), 8);
    // The statement is still running on the replica when a fast shutdown ends its backend.
    let session = Session::default();
    let read = router.read_rows(
        &session,
        "SELECT pg_is_in_recovery() FROM pg_sleep(2)",
        &[],
        &slow,
    );
    let stop = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        pg.replica.stop()
    };
    let (read, stopped) = tokio::join!(read, stop);
    stopped.expect("stop replica");
    let (rows, target) = read.expect("the primary answers the read");
    assert_eq!(target, Target::Primary);
    assert!(
        !rows[0].get::<_, bool>(0),
        "the answer came from the primary"
    );
    let status = &router.status()[0];
    assert!(!status.healthy && !status.in_rotation, "{status:?}");
    assert!(status.error.is_some(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_voter_always_reads_their_own_write() {
    let pg = PgPair::start().expect("postgres");
    let router = router(&pg, Duration::from_secs(30));
    let writer = router.write().await.expect("primary");
    writer
        .batch_execute("CREATE TABLE ryw (voter text PRIMARY KEY)")
        .await
        .expect("table");
    router.refresh().await;
    // Replay is paused: the replica stays in rotation for others (within max_lag) but cannot
    // have this voter's write.
    pg.replica
        .psql("postgres", "SELECT pg_wal_replay_pause()")
        .expect("pause");
    let mut session = Session::default();
    writer
        .execute("INSERT INTO ryw VALUES ('alice')", &[])
        .await
        .expect("vote");
    router.wrote(&writer, &mut session).await.expect("lsn");
    router.refresh().await;
    for _ in 0..20 {
        let (conn, target) = router.read(&session).await.expect("read");
        assert_eq!(
            target,
            Target::Primary,
            "the voter's reads avoid the replica that lacks the write"
        );
        let n: i64 = conn
            .query_one("SELECT count(*) FROM ryw WHERE voter = 'alice'", &[])
            .await
            .expect("q")
            .get(0);
        assert_eq!(n, 1);
    }
    assert_eq!(
        router.pick_read(&Session::default()),
        Target::Replica(0),
        "others still use the replica"
    );
    pg.replica
        .psql("postgres", "SELECT pg_wal_replay_resume()")
        .expect("resume");
    eventually("the replica to pass the write", async || {
        router.refresh().await;
        router.pick_read(&session) == Target::Replica(0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_route_to_a_stable_shard_across_two_databases() {
    let pg = PgPair::start().expect("postgres");
    pg.create_database("shard_0").expect("db");
    pg.create_database("shard_1").expect("db");
    let shards = ShardMap::new(vec![
        pool(&pg.primary.url("shard_0")),
        pool(&pg.primary.url("shard_1")),
    ])
    .expect("map");
    for i in 0..2 {
        let conn = pool(&pg.primary.url(&format!("shard_{i}")))
            .get()
            .await
            .expect("conn");
        conn.batch_execute("CREATE TABLE voters (id text PRIMARY KEY)")
            .await
            .expect("table");
    }
    for i in 0..200 {
        let key = format!("voter:{i}");
        let conn = shards.for_key(&key).get().await.expect("conn");
        conn.execute("INSERT INTO voters VALUES ($1)", &[&key])
            .await
            .expect("insert");
    }
    let mut counts = Vec::new();
    for i in 0..2 {
        let conn = pool(&pg.primary.url(&format!("shard_{i}")))
            .get()
            .await
            .expect("conn");
        counts.push(
            conn.query_one("SELECT count(*) FROM voters", &[])
                .await
                .expect("q")
                .get::<_, i64>(0),
        );
    }
    assert_eq!(counts.iter().sum::<i64>(), 200);
    assert!(
        counts.iter().all(|c| *c > 50),
        "both shards hold voters: {counts:?}"
    );
    for i in 0..200 {
        let key = format!("voter:{i}");
        let conn = shards.for_key(&key).get().await.expect("conn");
        let found: i64 = conn
            .query_one("SELECT count(*) FROM voters WHERE id = $1", &[&key])
            .await
            .expect("q")
            .get(0);
        assert_eq!(found, 1, "{key} is where the map says");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_once_and_queries_are_explained_never_run() {
    let pg = PgPair::start().expect("postgres");
    let db = pool(&pg.primary.url("postgres"));
    assert_eq!(
        migrate::run(&db, MIGRATIONS).await.expect("migrates"),
        vec![1, 2, 3, 4, 5]
    );
    assert!(
        migrate::run(&db, MIGRATIONS)
            .await
            .expect("idempotent")
            .is_empty()
    );

    let conn = db.get().await.expect("conn");
    conn.batch_execute(
        "INSERT INTO elections VALUES (1, 'general', 'General', now(), now() + interval '1 day');
         INSERT INTO ballot_options VALUES (1, 1, 'Yes'), (1, 2, 'No');
         INSERT INTO votes (election_id, voter_id, option_id, receipt)
           SELECT 1, 'voter-' || g, 1 + g % 2, 'r-' || g FROM generate_series(1, 20000) g;
         CREATE TABLE audit (id serial PRIMARY KEY, actor text NOT NULL, action text NOT NULL);
         INSERT INTO audit (actor, action) SELECT 'actor-' || (g % 5000), 'x' FROM generate_series(1, 20000) g;
         ANALYZE;",
    )
    .await
    .expect("data");

    let by_voter = analyze_query(
        &db,
        "SELECT * FROM votes WHERE election_id = 1 AND voter_id = 'voter-7'",
    )
    .await
    .expect("explained");
    assert!(
        by_voter.indexes.iter().any(|i| i == "votes_pkey"),
        "{:?}",
        by_voter.indexes
    );
    let by_actor = analyze_query(&db, "SELECT * FROM audit WHERE actor = 'actor-7'")
        .await
        .expect("explained");
    assert!(by_actor.seq_scans.iter().any(|s| s.table == "audit"));
    assert!(
        by_actor
            .recommendations
            .iter()
            .any(|r| r.contains("CREATE INDEX ON audit (actor)")),
        "{:?}",
        by_actor.recommendations
    );
    assert!(by_actor.total_cost > 0.0 && by_actor.plan.is_object());

    for _ in 0..3 {
        conn.query("SELECT count(*) FROM audit WHERE actor = 'actor-1'", &[])
            .await
            .expect("seq scans");
    }
    // Statistics reach pg_stat_user_tables when the session flushes them.
    conn.execute("SELECT pg_stat_force_next_flush()", &[])
        .await
        .expect("flush stats");
    eventually("the scans to show in the statistics", async || {
        suggest_indexes(&db, "audit").await.is_ok_and(|s| {
            s.iter()
                .any(|s| s.column == "actor" && s.sql.contains("audit (actor)"))
        })
    })
    .await;
    assert!(suggest_indexes(&db, "no such table").await.is_err());

    let before: i64 = conn
        .query_one("SELECT count(*) FROM votes", &[])
        .await
        .expect("q")
        .get(0);
    assert!(analyze_query(&db, "DELETE FROM votes").await.is_err());
    assert!(
        analyze_query(&db, "SELECT 1; DELETE FROM votes")
            .await
            .is_err()
    );
    let after: i64 = conn
        .query_one("SELECT count(*) FROM votes", &[])
        .await
        .expect("q")
        .get(0);
    assert_eq!(before, after, "nothing was executed");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_close_down_to_the_minimum_and_the_minimum_stays_warm() {
    let pg = PgPair::start().expect("postgres");
    let pool = DbPool::new(
        &pg.primary.url("postgres"),
        &PoolSettings {
            min_idle: 2,
            idle_timeout: Duration::from_millis(200),
            ..PoolSettings::default()
        },
    )
    .expect("pool");
    assert_eq!(pool.stats().size, 0, "connections open lazily");
    pool.maintain().await;
    assert_eq!(pool.stats().size, 2, "topped up to min_idle");

    let mut burst = Vec::new();
    for _ in 0..6 {
        burst.push(pool.get().await.expect("connection"));
    }
    drop(burst);
    assert_eq!(pool.stats().size, 6);
    tokio::time::sleep(Duration::from_millis(400)).await;
    pool.maintain().await;
    assert_eq!(
        pool.stats().size,
        2,
        "idle connections beyond the minimum closed"
    );
    let conn = pool.get().await.expect("a kept connection still works");
    assert_eq!(
        conn.query_one("SELECT 1", &[])
            .await
            .expect("query")
            .get::<_, i32>(0),
        1
    );
}
