//! Fault injection with load running through the origin: each test keeps a steady mixed load
//! (reads, and votes by distinct voters) on real origin processes backed by a real Redis,
//! Redis Cluster or Postgres primary + replica, breaks one dependency on purpose, and asserts
//! what users saw. Each prints a summary line (requests, errors by status, p99 during the
//! fault, recovery time) and appends it to `fault-summary.md` in Cargo's test temp directory.
//! `edge.rs` does the same through the Worker under workerd: a region down, both down, and a
//! slow origin.

#[path = "../support/mod.rs"]
mod support;

mod edge;
mod load;

use std::time::Duration;

use load::{Load, Sample, Step, recovery, summary};
use support::{OriginProcess, TOKEN, eventually, eventually_within, http, login, metrics};
use surge_testkit::postgres::PgPair;
use surge_testkit::redis::{RedisCluster, RedisServer, cli};

/// Requests per second of the background load.
const RATE: u32 = 60;

async fn voters(origin: &OriginProcess, n: usize, tag: &str) -> Vec<(String, String)> {
    let client = http();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{tag}-voter-{i}");
        let cookie = login(&client, origin, &id).await;
        out.push((id, cookie));
    }
    out
}

async fn ballot(origin: &OriginProcess) -> String {
    http()
        .get(origin.url("/api/elections/1/ballot"))
        .send()
        .await
        .expect("ballot")
        .text()
        .await
        .expect("body")
}

fn reads(samples: &[Sample]) -> impl Iterator<Item = &Sample> {
    samples.iter().filter(|s| s.step == Step::Read)
}

fn votes(samples: &[Sample]) -> impl Iterator<Item = &Sample> {
    samples.iter().filter(|s| s.step == Step::Vote)
}

fn server_errors(samples: &[&Sample]) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.status == 0 || s.status >= 500)
        .map(|s| format!("{:?} at {:?}: {}", s.step, s.at, s.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_and_restarted_reads_never_fail_and_the_cache_refills() {
    let mut redis = RedisServer::start().expect("redis");
    let origin = OriginProcess::start(&[("REDIS_URL", redis.url())]);
    let expected = ballot(&origin).await;
    let voters = voters(&origin, 200, "redis").await;
    let load = Load::start(origin.url(""), RATE, 5, voters, Some(expected));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let down = load.now();
    redis.kill();
    eventually("the origin to notice Redis is gone", async || {
        metrics(&origin)
            .await
            .contains("surge_redis_up{region=\"local\"} 0")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let up = load.now();
    redis.restart().expect("redis restarts");
    eventually("the origin to reach Redis again", async || {
        metrics(&origin)
            .await
            .contains("surge_redis_up{region=\"local\"} 1")
    })
    .await;
    // New fills reach L2 again: the restarted (empty) Redis gains keys.
    let client = http();
    eventually("L2 to refill", async || {
        client
            .get(origin.url("/api/elections/1/results"))
            .send()
            .await
            .ok();
        cli(redis.port(), &["DBSIZE"])
            .map(|n| n.trim().parse::<u64>().unwrap_or(0) > 0)
            .unwrap_or(false)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = load.stop().await;

    let all: Vec<&Sample> = samples.iter().collect();
    assert!(server_errors(&all).is_empty(), "{:?}", server_errors(&all));
    assert!(
        reads(&samples).all(|s| s.body_ok),
        "a read served a wrong ballot"
    );
    let late: Vec<&Sample> = reads(&samples)
        .filter(|s| s.at > up + Duration::from_secs(1))
        .collect();
    let hits = late
        .iter()
        .filter(|s| s.cache.as_deref() == Some("HIT"))
        .count();
    assert!(
        late.len() >= 20 && hits * 10 >= late.len() * 9,
        "hit ratio after the restart: {hits}/{}",
        late.len()
    );
    summary(
        "Redis killed, restarted",
        &samples,
        (down, up),
        recovery(&samples, Step::Read, up),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_cluster_master_fails_over_without_errors_or_wrong_values() {
    let mut cluster = RedisCluster::start().expect("cluster");
    cluster.wait_healthy().expect("cluster healthy");
    let url = format!(
        "redis+cluster://{}",
        cluster
            .urls()
            .iter()
            .map(|u| u.trim_start_matches("redis://").to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let origin = OriginProcess::start(&[("REDIS_URL", url)]);
    let expected = ballot(&origin).await;
    let voters = voters(&origin, 200, "cluster").await;
    let load = Load::start(origin.url(""), RATE, 5, voters, Some(expected));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let master = cluster.masters()[0];
    let down = load.now();
    cluster.kill(master).expect("kill a master");
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_failover().expect("a replica takes over");
        cluster
    })
    .await
    .expect("join");
    let failed_over = load.now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let samples = load.stop().await;
    drop(cluster);

    let all: Vec<&Sample> = samples.iter().collect();
    assert!(server_errors(&all).is_empty(), "{:?}", server_errors(&all));
    assert!(
        reads(&samples).all(|s| s.body_ok),
        "a read served a wrong ballot"
    );
    assert!(
        votes(&samples)
            .filter(|s| s.at > failed_over)
            .all(|s| s.status == 201),
        "votes after the failover are recorded"
    );
    summary(
        "Redis Cluster master killed (failover)",
        &samples,
        (down, failed_over),
        recovery(&samples, Step::Read, failed_over),
    );
}

fn database_env(pg: &PgPair, max_lag: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("DATABASE_REPLICA_URLS", pg.replica.url("postgres")),
        ("SURGE_REPLICA_MAX_LAG", max_lag.to_string()),
        ("SURGE_SEED_DEMO", "true".to_string()),
    ]
}

async fn replicas_in_rotation(origin: &OriginProcess) -> usize {
    let health: serde_json::Value = http()
        .get(origin.url("/performance/health"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    health["postgres"]["replicas"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["in_rotation"] == true).count())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_or_stopped_replica_moves_reads_to_the_primary_without_errors() {
    let mut pg = PgPair::start().expect("postgres");
    let origin = OriginProcess::start(&database_env(&pg, "1s"));
    let voters = voters(&origin, 300, "replica").await;
    let load = Load::start(origin.url(""), RATE, 4, voters, None);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let lag_from = load.now();
    pg.replica
        .psql("postgres", "SELECT pg_wal_replay_pause()")
        .expect("pause replay");
    eventually("the lagging replica to leave the rotation", async || {
        replicas_in_rotation(&origin).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.replica
        .psql("postgres", "SELECT pg_wal_replay_resume()")
        .expect("resume replay");
    eventually("the replica to come back", async || {
        replicas_in_rotation(&origin).await == 1
    })
    .await;
    pg.replica.stop().expect("stop replica");
    eventually("the stopped replica to leave the rotation", async || {
        replicas_in_rotation(&origin).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let back = load.now();
    pg.replica.start().expect("replica restarts");
    eventually_within(
        "the restarted replica to rejoin",
        Duration::from_secs(30),
        async || replicas_in_rotation(&origin).await == 1,
    )
    .await;
    let samples = load.stop().await;

    let all: Vec<&Sample> = samples.iter().collect();
    assert!(server_errors(&all).is_empty(), "{:?}", server_errors(&all));
    summary(
        "Postgres replica lagging, then stopped",
        &samples,
        (lag_from, back),
        recovery(&samples, Step::Read, back),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_primary_stopped_reads_go_on_votes_get_503_and_no_acknowledged_vote_is_lost() {
    let mut pg = PgPair::start().expect("postgres");
    let origin = OriginProcess::start(&database_env(&pg, "5s"));
    let voters = voters(&origin, 400, "primary").await;
    let load = Load::start(origin.url(""), RATE, 3, voters, None);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let down = load.now();
    pg.primary.stop().expect("stop primary");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let up = load.now();
    pg.primary.start().expect("primary restarts");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let samples = load.stop().await;

    // Reads never fail: cached pages, and the replica for the rest.
    let read_samples: Vec<&Sample> = reads(&samples).collect();
    assert!(
        server_errors(&read_samples).is_empty(),
        "{:?}",
        server_errors(&read_samples)
    );
    // Votes during the outage: a clear 503 with Retry-After, nothing else.
    let mut refused = 0;
    for s in votes(&samples).filter(|s| !(200..300).contains(&s.status)) {
        assert_eq!(s.status, 503, "{s:?}");
        assert!(s.retry_after, "503 without Retry-After: {s:?}");
        assert_eq!(s.error.as_deref(), Some("unavailable"), "{s:?}");
        refused += 1;
    }
    assert!(refused > 0, "some votes met the outage");
    let recovered =
        recovery(&samples, Step::Vote, up).expect("votes succeed again after the restart");

    // Every vote that got a 2xx is in the database exactly once, with its receipt.
    let acknowledged: Vec<(String, String)> = votes(&samples)
        .filter(|s| (200..300).contains(&s.status))
        .filter_map(|s| s.vote.clone())
        .map(|(voter, receipt)| (voter, receipt.expect("2xx votes carry a receipt")))
        .collect();
    assert!(
        acknowledged.len() > 20,
        "{} acknowledged",
        acknowledged.len()
    );
    let rows = pg
        .primary
        .psql(
            "postgres",
            "SELECT voter_id || ' ' || receipt FROM votes WHERE voter_id LIKE 'primary-voter-%' ORDER BY 1",
        )
        .expect("votes");
    let rows: Vec<&str> = rows
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for (voter, receipt) in &acknowledged {
        let line = format!("{voter} {receipt}");
        assert_eq!(
            rows.iter().filter(|r| **r == line).count(),
            1,
            "acknowledged vote {line} is stored exactly once"
        );
    }
    let voters_in_db: std::collections::BTreeSet<&str> =
        rows.iter().filter_map(|r| r.split(' ').next()).collect();
    assert_eq!(voters_in_db.len(), rows.len(), "no voter has two rows");
    summary(
        &format!(
            "Postgres primary stopped ({} votes acknowledged, all stored once; {refused} refused with 503)",
            acknowledged.len()
        ),
        &samples,
        (down, up),
        Some(recovered),
    );
}
