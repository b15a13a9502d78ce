//! The harness starts real services and they behave like the real thing.

use std::time::{Duration, Instant};

use surge_testkit::postgres::PgPair;
use surge_testkit::redis::{RedisCluster, RedisServer, Role, cli};

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn postgres_write_on_primary_is_visible_on_replica() {
    let pg = PgPair::start().expect("postgres primary + replica start");
    assert_eq!(
        pg.replica
            .psql("postgres", "select pg_is_in_recovery()")
            .expect("query"),
        "t"
    );
    assert_eq!(
        pg.primary
            .psql("postgres", "select pg_is_in_recovery()")
            .expect("query"),
        "f"
    );
    pg.primary
        .psql(
            "postgres",
            "create table votes(id int primary key); insert into votes values (1), (2)",
        )
        .expect("write on primary");
    eventually("rows on the replica", || {
        pg.replica
            .psql("postgres", "select count(*) from votes")
            .is_ok_and(|n| n == "2")
    });
    let refused = pg.replica.psql("postgres", "insert into votes values (3)");
    assert!(refused.is_err(), "the replica must be read-only");
}

#[test]
fn postgres_replica_can_be_stopped_and_rejoins() {
    let mut pg = PgPair::start().expect("postgres primary + replica start");
    pg.replica.kill().expect("kill replica");
    assert!(pg.replica.psql("postgres", "select 1").is_err());
    pg.primary
        .psql(
            "postgres",
            "create table t(x int); insert into t values (42)",
        )
        .expect("primary keeps working");
    pg.replica.start().expect("restart replica");
    pg.wait_streaming().expect("replica streams again");
    eventually("catch-up after restart", || {
        pg.replica
            .psql("postgres", "select x from t")
            .is_ok_and(|x| x == "42")
    });
    pg.create_database("shard_1").expect("create database");
    eventually("database on replica", || {
        pg.replica
            .psql("shard_1", "select 1")
            .is_ok_and(|x| x == "1")
    });
}

#[test]
fn redis_node_serves_and_survives_a_restart() {
    let mut redis = RedisServer::start().expect("redis starts");
    assert_eq!(
        cli(redis.port(), &["set", "k", "v"]).expect("set").trim(),
        "OK"
    );
    assert_eq!(cli(redis.port(), &["get", "k"]).expect("get").trim(), "v");
    redis.kill();
    assert!(
        cli(redis.port(), &["ping"]).is_err(),
        "a killed server must not answer"
    );
    redis.restart().expect("restart");
    assert_eq!(cli(redis.port(), &["ping"]).expect("ping").trim(), "PONG");
    assert_eq!(
        cli(redis.port(), &["get", "k"]).expect("get").trim(),
        "",
        "no persistence"
    );
}

#[test]
fn redis_cluster_serves_every_slot_range_and_fails_over() {
    let mut cluster = RedisCluster::start().expect("cluster starts healthy");
    let entry = cluster.ports()[0];
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    // Keys spread over the slot space: every master must end up holding some.
    for i in 0..60 {
        let key = format!("key:{i}");
        let out = cli(entry, &["-c", "set", &key, &i.to_string()]).expect("set through redirects");
        assert_eq!(out.trim(), "OK");
    }
    for master in &masters {
        let size: u32 = cli(*master, &["dbsize"])
            .expect("dbsize")
            .trim()
            .parse()
            .expect("number");
        assert!(
            size > 0,
            "master {master} holds no key: slots are not spread"
        );
    }
    for i in 0..60 {
        let key = format!("key:{i}");
        assert_eq!(
            cli(entry, &["-c", "get", &key]).expect("get").trim(),
            i.to_string()
        );
    }

    // Kill one master after replication: its replica takes over with the data.
    let victim = masters[1];
    let survivor = cluster
        .ports()
        .into_iter()
        .find(|p| *p != victim)
        .expect("another node");
    cluster.kill(victim).expect("kill master");
    cluster.wait_failover().expect("replica promoted");
    assert_eq!(cluster.masters().len(), 3);
    for i in 0..60 {
        let key = format!("key:{i}");
        assert_eq!(
            cli(survivor, &["-c", "get", &key])
                .expect("get after failover")
                .trim(),
            i.to_string()
        );
    }
    cluster.restart(victim).expect("old master rejoins");
    eventually("old master rejoins as replica", || {
        matches!(cluster.role(victim), Ok(Role::Replica))
    });
}

#[test]
fn free_ports_lie_outside_the_ephemeral_range_and_never_repeat() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("the kernel's ephemeral range");
    let mut bounds = range
        .split_whitespace()
        .map(|p| p.parse::<u16>().expect("a port"));
    let (lo, hi) = (bounds.next().expect("low"), bounds.next().expect("high"));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let port = surge_testkit::net::free_port().expect("a free port");
        assert!(
            !(lo..=hi).contains(&port),
            "{port} is in the ephemeral range {lo}..={hi}"
        );
        assert!(seen.insert(port), "{port} was handed out twice");
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }
}
