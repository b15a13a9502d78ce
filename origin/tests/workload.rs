//! The election workload end to end against real services: the `surge-origin` binary on a
//! real PostgreSQL primary + streaming replica and a real Redis.

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use support::{OriginProcess, eventually, http, login};
use surge_testkit::postgres::PgPair;
use surge_testkit::redis::RedisServer;

fn database_env(pg: &PgPair) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("DATABASE_REPLICA_URLS", pg.replica.url("postgres")),
        ("SURGE_REPLICA_MAX_LAG", "500ms".into()),
        ("SURGE_SEED_DEMO", "true".into()),
    ]
}

async fn get(
    client: &reqwest::Client,
    url: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = client.get(url).send().await.expect("GET");
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.text().await.expect("body"))
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    body: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let r = request.send().await.expect("POST");
    let (status, headers) = (r.status(), r.headers().clone());
    let text = r.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_are_cached_with_edge_headers_and_pages_render() {
    let pg = PgPair::start().expect("postgres");
    let redis = RedisServer::start().expect("redis");
    let mut env = database_env(&pg);
    env.push(("REDIS_URL", redis.url()));
    let origin = OriginProcess::start(&env);
    let client = http();

    for (path, tags, ttl) in [
        ("/api/elections", "list:election", "s-maxage=60"),
        ("/api/elections/1", "election:1", "s-maxage=60"),
        (
            "/api/elections/1/ballot",
            "ballot:1,election:1",
            "s-maxage=300",
        ),
        ("/api/elections/1/results", "results:1", "s-maxage=1"),
        ("/elections/1", "election:1,page:election:1", "s-maxage=30"),
    ] {
        let (status, h, body) = get(&client, &origin.url(path)).await;
        assert_eq!(status, 200, "{path}: {body}: {}", origin.log_tail());
        assert_eq!(header(&h, "cache-tag"), tags, "{path}");
        assert!(header(&h, "cache-control").contains(ttl), "{path}: {h:?}");
        assert!(
            header(&h, "cache-control").contains("stale-if-error"),
            "{path}"
        );
        assert_eq!(header(&h, "x-surge-cache"), "MISS", "{path}");
        let (_, again, _) = get(&client, &origin.url(path)).await;
        assert_eq!(header(&again, "x-surge-cache"), "HIT", "{path}");
        assert_eq!(header(&again, "x-surge-tier"), "l1", "{path}");
    }
    let (_, _, ballot) = get(&client, &origin.url("/api/elections/1/ballot")).await;
    let ballot: Value = serde_json::from_str(&ballot).expect("JSON");
    assert_eq!(ballot["election"]["title"], "General Election 2026");
    assert_eq!(ballot["options"].as_array().map(Vec::len), Some(3));

    let (_, h, page) = get(&client, &origin.url("/elections/1")).await;
    assert!(header(&h, "content-type").starts_with("text/html"));
    assert!(
        page.contains("<h1 id=\"title\">General Election 2026</h1>"),
        "{page}"
    );
    let (status, _, page) = get(&client, &origin.url("/elections/1/results")).await;
    assert_eq!(status, 200);
    assert!(page.contains("0 votes counted"), "{page}");

    for path in ["/api/elections/999", "/api/elections/abc", "/elections/999"] {
        let (status, h, _) = get(&client, &origin.url(path)).await;
        assert_eq!(status, 404, "{path}");
        assert_ne!(header(&h, "cache-control"), "", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn votes_are_authenticated_validated_idempotent_and_read_back() {
    let pg = PgPair::start().expect("postgres");
    let origin = OriginProcess::start(
        &[
            database_env(&pg),
            vec![("SURGE_PURGE_COALESCE", "100ms".into())],
        ]
        .concat(),
    );
    let client = http();
    let votes = origin.url("/api/elections/1/votes");

    // Login input is checked.
    let login_url = origin.url("/api/login");
    for (body, field) in [
        ("{\"voter\":\"a\"}", "voter"),
        ("{\"voter_id\":\"a b\",\"code\":\"x\"}", "voter_id"),
        ("{\"voter_id\":7,\"code\":\"x\"}", "voter_id"),
        ("{\"voter_id\":\"a\",\"code\":\"too-short\"}", "code"),
        ("not json", "."),
    ] {
        let (status, _, reply) = post(&client, &login_url, None, body).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert_eq!(reply["field"], field, "{body}: {reply}");
    }
    let huge = format!("{{\"voter_id\":\"{}\",\"code\":\"x\"}}", "a".repeat(5000));
    let (status, _, reply) = post(&client, &login_url, None, &huge).await;
    assert_eq!(status, 413, "the login route takes at most 4096 bytes");
    assert_eq!(reply["error"], "payload_too_large");

    // No cookie, a forged cookie: 401.
    let (status, _, reply) = post(&client, &votes, None, "{\"option_id\":1}").await;
    assert_eq!(status, 401);
    assert_eq!(reply["error"], "not_logged_in");
    let cookie = login(&client, &origin, "voter-1").await;
    let forged = cookie.replace("voter-1", "voter-2");
    let (status, _, _) = post(&client, &votes, Some(&forged), "{\"option_id\":1}").await;
    assert_eq!(status, 401);

    // Bad choices: 400 / 422 naming the field.
    let (status, _, reply) = post(&client, &votes, Some(&cookie), "{\"option_id\":\"two\"}").await;
    assert_eq!(
        (status, reply["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("option_id"))
    );
    let (status, _, reply) = post(&client, &votes, Some(&cookie), "{\"option_id\":9}").await;
    assert_eq!(status, 422, "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .is_some_and(|m| m.contains("choose one of 1, 2, 3"))
    );
    let (status, _, _) = post(
        &client,
        &origin.url("/api/elections/42/votes"),
        Some(&cookie),
        "{\"option_id\":1}",
    )
    .await;
    assert_eq!(status, 404);

    // The vote, a retry, a change of mind.
    let (status, h, first) = post(&client, &votes, Some(&cookie), "{\"option_id\":2}").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert_eq!(first["status"], "recorded");
    let receipt = first["receipt"].as_str().expect("receipt").to_string();
    let (status, _, retry) = post(&client, &votes, Some(&cookie), "{\"option_id\":2}").await;
    assert_eq!(status, 200);
    assert_eq!(retry["receipt"], receipt.as_str());
    assert_eq!(retry["status"], "already_recorded");
    let (status, _, change) = post(&client, &votes, Some(&cookie), "{\"option_id\":3}").await;
    assert_eq!(status, 409);
    assert_eq!(change["error"], "already_voted");
    let said = change["message"].as_str().unwrap_or_default();
    assert!(
        !said.contains(&receipt) && !said.contains("option 2"),
        "a 409 never reveals the first choice: {said}"
    );
    let rows = pg
        .primary
        .psql(
            "postgres",
            "SELECT voter_id || ' ' || option_id || ' ' || receipt FROM votes",
        )
        .expect("psql");
    assert_eq!(rows.trim(), format!("voter-1 2 {receipt}"));

    // Read-your-writes: with the replica frozen, a voter still sees their own vote.
    pg.replica
        .psql("postgres", "SELECT pg_wal_replay_pause()")
        .expect("pause replay");
    let cookie2 = login(&client, &origin, "voter-2").await;
    let (status, _, cast) = post(&client, &votes, Some(&cookie2), "{\"option_id\":1}").await;
    assert_eq!(status, 201, "{cast}");
    let mine = client
        .get(origin.url("/api/me/votes/1"))
        .header("cookie", &cookie2)
        .send()
        .await
        .expect("GET");
    assert_eq!(mine.status(), 200);
    assert!(
        mine.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("private"))
    );
    let mine: Value = mine.json().await.expect("JSON");
    assert_eq!(mine["receipt"], cast["receipt"]);
    let on_replica = pg
        .replica
        .psql(
            "postgres",
            "SELECT count(*) FROM votes WHERE voter_id = 'voter-2'",
        )
        .expect("psql replica");
    assert_eq!(
        on_replica.trim(),
        "0",
        "the replica is behind, so the read went to the primary"
    );
    pg.replica
        .psql("postgres", "SELECT pg_wal_replay_resume()")
        .expect("resume replay");

    // The results purge follows the votes (coalesced), and the micro-cache refreshes.
    eventually("results to count both votes", async || {
        let (_, _, body) = get(&client, &origin.url("/api/elections/1/results")).await;
        serde_json::from_str::<Value>(&body).is_ok_and(|r| r["total"] == 2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_vote_survives_the_origin_being_killed() {
    let pg = PgPair::start().expect("postgres");
    let client = http();
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let mut origin = OriginProcess::start(&database_env(&pg));
        let voter = format!("durable-{round}");
        let cookie = login(&client, &origin, &voter).await;
        let (status, _, reply) = post(
            &client,
            &origin.url("/api/elections/1/votes"),
            Some(&cookie),
            "{\"option_id\":1}",
        )
        .await;
        // Killed the moment the 2xx arrives: no graceful shutdown, no flush.
        origin.kill();
        assert_eq!(status, 201, "{reply}: {}", origin.log_tail());
        acknowledged.push((
            voter,
            reply["receipt"].as_str().unwrap_or_default().to_string(),
        ));
    }
    let stored = pg
        .primary
        .psql(
            "postgres",
            "SELECT voter_id || ' ' || receipt FROM votes WHERE voter_id LIKE 'durable-%' ORDER BY voter_id",
        )
        .expect("psql");
    let expected: Vec<String> = acknowledged
        .iter()
        .map(|(voter, receipt)| format!("{voter} {receipt}"))
        .collect();
    assert_eq!(stored.lines().map(str::trim).collect::<Vec<_>>(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_primary_down_reads_answer_and_votes_get_a_clear_503() {
    let mut pg = PgPair::start().expect("postgres");
    let origin = OriginProcess::start(&database_env(&pg));
    let client = http();
    let cookie = login(&client, &origin, "voter-x").await;
    let (status, _, _) = get(&client, &origin.url("/api/elections/1/ballot")).await;
    assert_eq!(status, 200);

    pg.primary.stop().expect("stop primary");
    let (status, _, _) = get(&client, &origin.url("/api/elections/1/ballot")).await;
    assert_eq!(status, 200, "cached reads keep answering");
    let (status, _, _) = get(&client, &origin.url("/api/elections/1")).await;
    assert_eq!(
        status,
        200,
        "uncached reads go to the replica: {}",
        origin.log_tail()
    );
    let (status, h, reply) = post(
        &client,
        &origin.url("/api/elections/1/votes"),
        Some(&cookie),
        "{\"option_id\":3}",
    )
    .await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(header(&h, "retry-after"), "5");
    assert_eq!(reply["error"], "unavailable");

    pg.primary.start().expect("restart primary");
    eventually("votes to succeed after the primary returns", async || {
        let (status, _, _) = post(
            &client,
            &origin.url("/api/elections/1/votes"),
            Some(&cookie),
            "{\"option_id\":3}",
        )
        .await;
        status == 201
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_busting_parameters_never_reach_the_database() {
    let pg = PgPair::start().expect("postgres");
    let origin = OriginProcess::start(&database_env(&pg));
    let client = http();
    let computed = || async {
        let (_, stats) = support::admin(
            &origin,
            reqwest::Method::GET,
            "/performance/cache/stats",
            None,
        )
        .await;
        stats["counters"]["factory_calls"]
            .as_u64()
            .expect("factory_calls")
    };
    let (status, headers, first) = get(&client, &origin.url("/api/elections/1/ballot?r=0")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        headers.get("x-surge-cache").and_then(|v| v.to_str().ok()),
        Some("MISS")
    );
    let timing = |h: &reqwest::header::HeaderMap| {
        h.get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        timing(&headers).starts_with("db;dur="),
        "{}",
        timing(&headers)
    );
    let after_first = computed().await;
    for r in 1..=30 {
        let url = origin.url(&format!("/api/elections/1/ballot?r={r:08x}&utm_source=x"));
        let (status, headers, body) = get(&client, &url).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, first.as_str()));
        assert_eq!(
            headers.get("x-surge-cache").and_then(|v| v.to_str().ok()),
            Some("HIT"),
            "?r={r}"
        );
        assert!(
            timing(&headers).starts_with("l1;desc=\"HIT\", app;dur="),
            "{}",
            timing(&headers)
        );
    }
    assert_eq!(
        computed().await,
        after_first,
        "no random parameter made the origin read the database again"
    );
}
