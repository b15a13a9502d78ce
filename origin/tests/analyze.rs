//! Query analysis and the slow-query log, end to end: the real binary on a real primary and
//! replica, called through the admin API as an operator would.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{OriginProcess, admin, http};
use surge_testkit::postgres::PgPair;

fn origin_on(pg: &PgPair) -> OriginProcess {
    OriginProcess::start(&[
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("DATABASE_REPLICA_URLS", pg.replica.url("postgres")),
        ("SURGE_SEED_DEMO", "true".into()),
    ])
}

async fn analyze(origin: &OriginProcess, query: &str) -> (StatusCode, Value) {
    admin(
        origin,
        Method::POST,
        "/performance/db/analyze",
        Some(json!({ "query": query })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_analyze_one_read_only_query_and_nothing_else() {
    let pg = PgPair::start().expect("postgres");
    let origin = origin_on(&pg);

    let (status, plan) = analyze(
        &origin,
        "SELECT * FROM votes WHERE election_id = 1 AND voter_id = 'v-1'",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert!(
        plan["total_cost"].as_f64().is_some_and(|c| c > 0.0),
        "{plan}"
    );
    assert!(plan["plan"]["Node Type"].is_string(), "{plan}");
    assert!(
        plan["indexes"].as_array().is_some_and(|i| !i.is_empty()),
        "the voter's vote is found through an index: {plan}"
    );

    let (status, plan) = analyze(&origin, "SELECT * FROM votes WHERE receipt LIKE '%x'").await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert!(
        plan["recommendations"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("CREATE INDEX")))),
        "a filtered sequential scan gets an index suggestion: {plan}"
    );

    for (query, says) in [
        ("DELETE FROM votes", "single SELECT"),
        ("SELECT 1; DELETE FROM votes", "2 statements"),
        (
            "WITH gone AS (DELETE FROM votes RETURNING 1) SELECT * FROM gone",
            "data-modifying",
        ),
        ("SELECT pg_sleep(10)", "volatile functions (pg_sleep)"),
        ("SELECT random() FROM votes", "volatile functions (random)"),
        ("SELECT * FROM no_such_table", "cannot plan"),
        ("", "give one SELECT"),
    ] {
        let (status, body) = analyze(&origin, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["field"], "query", "{query}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(says)),
            "{query}: {body}"
        );
    }
    let count: i64 = pg
        .primary
        .psql("postgres", "SELECT count(*) FROM elections")
        .expect("psql")
        .parse()
        .expect("a count");
    assert!(count >= 1, "nothing was deleted");

    let unauthenticated = http()
        .post(origin.url("/performance/db/analyze"))
        .json(&json!({ "query": "SELECT 1" }))
        .send()
        .await
        .expect("call");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

/// Reads `/api/elections` (a cache miss, so a statement on the primary) while another session
/// holds the elections table locked for a while; returns the slow-query log after.
async fn read_behind_a_lock(pg: &PgPair, origin: &OriginProcess) -> Value {
    let mut locker = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(pg.primary.url("postgres"))
        .args([
            "-c",
            "BEGIN; LOCK TABLE elections IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(0.6); COMMIT;",
        ])
        .spawn()
        .expect("psql");
    // Let the lock be taken before the read arrives.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let read = http()
        .get(origin.url("/api/elections"))
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), StatusCode::OK);
    assert!(locker.wait().expect("psql ends").success());
    let (status, log) = admin(origin, Method::GET, "/performance/apm/slow-queries", None).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["configured"], true, "{log}");
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_over_the_configured_threshold_reach_the_slow_query_log() {
    let pg = PgPair::start().expect("postgres");
    // Reads go to the primary here, where the lock is.
    let start = |threshold: &str| {
        OriginProcess::start(&[
            ("DATABASE_URL", pg.primary.url("postgres")),
            ("SURGE_SEED_DEMO", "true".into()),
            ("SURGE_SLOW_QUERY", threshold.into()),
        ])
    };
    let strict = start("50ms");
    let log = read_behind_a_lock(&pg, &strict).await;
    let queries = log["queries"].as_array().cloned().unwrap_or_default();
    assert!(
        queries.iter().any(
            |q| q["sql"].as_str().is_some_and(|s| s.contains("elections"))
                && q["took_ms"].as_u64().is_some_and(|ms| ms >= 50)
        ),
        "the read that waited on the lock is logged with its time: {log}"
    );

    let lenient = start("60s");
    let log = read_behind_a_lock(&pg, &lenient).await;
    assert_eq!(log["queries"], json!([]), "nothing took a minute: {log}");
}
