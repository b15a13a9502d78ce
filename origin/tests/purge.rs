//! One admin call purges L1 in two origin processes, L2 (a real Redis) and the CDN (the
//! Cloudflare stand-in); malformed admin requests get a 4xx naming the field.

mod support;

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{OriginProcess, TOKEN, admin, eventually, http, login, metrics};
use surge_testkit::cloudflare::CloudflareStandin;
use surge_testkit::origin::Reply;
use surge_testkit::redis::RedisServer;

const HOST: &str = "vote.example";

fn env(redis: &RedisServer, cf: &CloudflareStandin) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", redis.url()),
        ("CLOUDFLARE_API_TOKEN", cf.token().to_string()),
        ("CLOUDFLARE_ZONE_ID", cf.zone_id().to_string()),
        ("CLOUDFLARE_API_BASE", cf.api_base()),
    ]
}

/// `x-surge-cache` and `x-surge-tier` (`HIT/l1`) of a GET through `origin` for
/// `vote.example<path>`.
async fn cache_status(client: &reqwest::Client, origin: &OriginProcess, path: &str) -> String {
    let r = client
        .get(origin.url(path))
        .header("host", HOST)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200, "{path}");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    format!("{}/{}", header("x-surge-cache"), header("x-surge-tier"))
}

fn tier<'a>(report: &'a Value, layer: &str) -> &'a Value {
    report["tiers"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["layer"] == layer))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_call_purges_both_processes_redis_and_the_cdn() {
    let redis = RedisServer::start().expect("redis");
    let cf = CloudflareStandin::start().expect("cloudflare stand-in");
    let a = OriginProcess::start(&env(&redis, &cf));
    let mut b = OriginProcess::start(&env(&redis, &cf));
    let client = http();
    let ballot = "/api/elections/1/ballot";

    // Warm both processes' L1.
    for origin in [&a, &b] {
        cache_status(&client, origin, ballot).await;
        assert_eq!(cache_status(&client, origin, ballot).await, "HIT/l1");
    }

    // Purge by tag on A: every tier reports, the CDN got the tag and its cascade.
    let (status, report) = admin(
        &a,
        reqwest::Method::POST,
        "/performance/cache/invalidate",
        Some(json!({ "tags": ["election:1"] })),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    for layer in ["l1", "l2", "l3"] {
        assert_eq!(tier(&report, layer)["outcome"], "done", "{layer}: {report}");
    }
    let purged_tags = cf.accepted().last().cloned().expect("a CDN purge");
    for tag in [
        "election:1",
        "ballot:1",
        "results:1",
        "page:election:1",
        "page:results:1",
    ] {
        assert!(
            purged_tags["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!(tag))),
            "{tag} missing from {purged_tags}"
        );
    }
    // B drops its copy once the backplane message lands and recomputes (nothing valid is
    // left in L2); A then finds B's fresh value in L2, not its own old L1 copy.
    eventually("B to drop its L1 copy", async || {
        cache_status(&client, &b, ballot).await == "MISS/origin"
    })
    .await;
    assert_eq!(cache_status(&client, &a, ballot).await, "HIT/l2");

    // Purge by URL: every variant's key locally, every variant's URL at the CDN.
    cache_status(&client, &a, ballot).await;
    cache_status(&client, &b, ballot).await;
    let (status, report) = admin(
        &b,
        reqwest::Method::POST,
        "/performance/cache/invalidate",
        Some(json!({ "keys": [format!("http://{HOST}{ballot}")] })),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let files = cf.accepted().last().cloned().expect("a CDN purge");
    assert_eq!(files["files"].as_array().map(Vec::len), Some(3), "{files}");
    assert!(
        files["files"]
            .as_array()
            .is_some_and(|f| f.contains(&json!(format!("http://{HOST}{ballot}?surge-vary=enc-br"))))
    );
    assert_eq!(cache_status(&client, &b, ballot).await, "MISS/origin");
    eventually("A to drop its L1 copy", async || {
        cache_status(&client, &a, ballot).await == "HIT/l2"
    })
    .await;

    // Purge by pattern through DELETE: a key-pattern locally, a prefix at the CDN.
    cache_status(&client, &a, "/api/elections/1").await;
    let (status, report) = admin(
        &a,
        reqwest::Method::DELETE,
        "/performance/cache/http%3A%2F%2Fvote.example%2Fapi%2F*",
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert!(
        tier(&report, "l2")["count"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{report}"
    );
    assert_eq!(
        cf.accepted().last().cloned(),
        Some(json!({ "prefixes": ["vote.example/api/"] }))
    );
    assert_eq!(
        cache_status(&client, &a, "/api/elections/1").await,
        "MISS/origin"
    );

    // A CDN that keeps failing: the report says so (207) and the local tiers still purge.
    for _ in 0..4 {
        let mut reply = Reply::ok("{\"success\":false,\"errors\":[]}");
        reply.status = 502;
        cf.queue(reply);
    }
    let (status, report) = admin(
        &a,
        reqwest::Method::POST,
        "/performance/cache/invalidate",
        Some(json!({ "tags": ["ballot:1"] })),
    )
    .await;
    assert_eq!(status, 207, "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(tier(&report, "l1")["outcome"], "done");
    assert_eq!(tier(&report, "l2")["outcome"], "done");
    assert_eq!(tier(&report, "l3")["outcome"], "failed");
    assert!(
        tier(&report, "l3")["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("502")),
        "{report}"
    );
    assert!(cf.rejected().is_empty(), "{:?}", cf.rejected());

    // A process that died does not hold purges up: pub/sub has no one to wait for.
    b.kill();
    let (status, report) = admin(
        &a,
        reqwest::Method::POST,
        "/performance/cache/invalidate",
        Some(json!({ "tags": ["results:1"] })),
    )
    .await;
    assert_eq!(status, 200, "{report}: {}", a.log_tail());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vote_storm_costs_one_purge_per_window() {
    let redis = RedisServer::start().expect("redis");
    let cf = CloudflareStandin::start().expect("cloudflare stand-in");
    let mut vars = env(&redis, &cf);
    vars.push(("SURGE_PURGE_COALESCE", "500ms".into()));
    let origin = OriginProcess::start(&vars);
    let client = http();
    let start = Instant::now();
    let votes = 40;
    for i in 0..votes {
        let cookie = login(&client, &origin, &format!("storm-{i}")).await;
        let r = client
            .post(origin.url("/api/elections/1/votes"))
            .header("cookie", cookie)
            .json(&json!({ "option_id": 1 + i % 3 }))
            .send()
            .await
            .expect("vote");
        assert_eq!(r.status(), 201);
    }
    let windows = start.elapsed().as_millis() / 500 + 1;
    eventually("the last window to flush", async || {
        let (_, stats) = admin(&origin, reqwest::Method::GET, "/performance/stats", None).await;
        stats["vote_purges"]["marked"] == votes && !cf.accepted().is_empty()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let purges = cf
        .accepted()
        .iter()
        .filter(|b| {
            b["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("results:1")))
        })
        .count();
    assert!(
        purges >= 1 && purges as u128 <= windows + 1,
        "{purges} purges for {votes} votes over {windows} windows"
    );
    let r = client
        .get(origin.url("/api/elections/1/results"))
        .send()
        .await
        .expect("results");
    let results: Value = r.json().await.expect("JSON");
    assert_eq!(results["total"], votes);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_refuses_bad_requests_by_name() {
    let origin = OriginProcess::start(&[]);
    let client = http();
    let r = client
        .get(origin.url("/performance/stats"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 401);
    let post = reqwest::Method::POST;
    for (path, body, field) in [
        ("/performance/cache/invalidate", json!({}), "."),
        (
            "/performance/cache/invalidate",
            json!({ "tags": ["has space"] }),
            "tags[0]",
        ),
        (
            "/performance/cache/invalidate",
            json!({ "tagz": ["a"] }),
            ".",
        ),
        (
            "/performance/cache/invalidate",
            json!({ "patterns": ["*"] }),
            "patterns[0]",
        ),
        (
            "/performance/cache/invalidate",
            json!({ "patterns": ["https://vote.example/api/*", "https://*"] }),
            "patterns[1]",
        ),
        (
            "/performance/cache/invalidate",
            json!({ "patterns": ["surge:v1:*"] }),
            "patterns[0]",
        ),
        (
            "/performance/cache/invalidate",
            json!({ "patterns": ["https://vote.example/*"] }),
            "patterns[0]",
        ),
        (
            "/performance/cache/invalidate",
            json!({ "keys": ["ftp://x/"] }),
            "keys[0]",
        ),
        (
            "/performance/cache/invalidate",
            json!({ "hosts": ["-bad-"] }),
            "hosts[0]",
        ),
        (
            "/performance/cache/invalidate",
            json!({ "tags": ["a"], "layers": ["l1"] }),
            "layers",
        ),
        (
            "/performance/cache/invalidate",
            json!({ "tags": ["a"], "everything": true }),
            "everything",
        ),
        ("/performance/cache/warm", json!({ "urls": [] }), "urls"),
        (
            "/performance/cache/warm",
            json!({ "urls": ["/a"], "concurrency": 0 }),
            "concurrency",
        ),
        ("/performance/scaling/event", json!({ "name": "x" }), "."),
        (
            "/performance/scaling/emergency",
            json!({ "replicas": "many" }),
            ".",
        ),
    ] {
        let (status, reply) = admin(&origin, post.clone(), path, Some(body.clone())).await;
        assert_eq!(status, 400, "{path} {body}: {reply}");
        assert_eq!(reply["error"], "invalid_request", "{path} {body}: {reply}");
        if field != "." {
            assert_eq!(reply["field"], field, "{path} {body}: {reply}");
        }
        assert!(
            reply["message"].as_str().is_some_and(|m| m.len() > 10),
            "{reply}"
        );
    }
    let (status, reply) = admin(
        &origin,
        reqwest::Method::DELETE,
        "/performance/cache/short*",
        None,
    )
    .await;
    assert_eq!(
        (status, reply["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("pattern"))
    );
    let (status, reply) = admin(
        &origin,
        reqwest::Method::GET,
        "/performance/scaling/status",
        None,
    )
    .await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["error"], "not_configured");

    // Warm fills the cache through the public routes; the trace log and metrics saw it.
    let (status, report) = admin(&origin,
        post.clone(),
        "/performance/cache/warm",
        Some(json!({ "urls": ["/api/elections/1/ballot", "http://vote.example/elections/1", "/api/elections/77"] })),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["warmed"], 2);
    assert_eq!(report["failed"][0]["url"], "/api/elections/77");
    let r = client
        .get(origin.url("/api/elections/1/ballot"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        r.headers()
            .get("x-surge-cache")
            .and_then(|v| v.to_str().ok()),
        Some("HIT")
    );
    let (_, traces) = admin(
        &origin,
        reqwest::Method::GET,
        "/performance/apm/traces?limit=5",
        None,
    )
    .await;
    assert_eq!(
        traces["recent"].as_array().map(Vec::len),
        Some(5),
        "{traces}"
    );
    let metrics = metrics(&origin).await;
    assert!(
        metrics.contains("surge_http_request_duration_seconds_bucket{")
            && metrics.contains("route=\"ballot\""),
        "{metrics}"
    );
    assert!(metrics.contains("surge_cache_l1_hits_total"), "{metrics}");
    assert!(
        !metrics.contains("surge_redis_up"),
        "no Redis configured, no Redis gauge"
    );
    let (_, stats) = admin(&origin, reqwest::Method::GET, "/performance/stats", None).await;
    assert!(stats["traffic"]["history_minutes"].is_u64(), "{stats}");
    assert!(stats["traffic"]["forecast_method"].is_string(), "{stats}");
    let (_, health) = admin(&origin, reqwest::Method::GET, "/performance/health", None).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["redis"]["configured"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_tokens_are_throttled_but_the_right_token_never_is() {
    let origin = OriginProcess::start(&[]);
    let client = http();
    let stats = |token: Option<&'static str>| {
        let mut r = client.get(origin.url("/performance/stats"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.expect("GET").status().as_u16() }
    };
    // No token at all: a plain 401 that never moves the throttle.
    for _ in 0..30 {
        assert_eq!(stats(None).await, 401);
    }
    assert_eq!(stats(Some(TOKEN)).await, 200);

    // Parallel wrong guesses: exactly MAX_FAILURES (10) are 401, the rest 429.
    let guesses: Vec<u16> =
        futures_util::future::join_all((0..30).map(|_| stats(Some("wrong-token-0123456789"))))
            .await;
    assert_eq!(
        guesses.iter().filter(|s| **s == 401).count(),
        10,
        "{guesses:?}"
    );
    assert_eq!(
        guesses.iter().filter(|s| **s == 429).count(),
        20,
        "{guesses:?}"
    );
    let r = client
        .get(origin.url("/performance/stats"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    // The right token is never refused, and clears the count of its own prefix.
    assert_eq!(
        stats(Some(TOKEN)).await,
        200,
        "the right token passes a lockout"
    );
    for _ in 0..11 {
        stats(Some("test-not-the-token-0123")).await;
    }
    assert_eq!(stats(Some("test-not-the-token-0123")).await, 429);
    assert_eq!(stats(Some(TOKEN)).await, 200);
    assert_eq!(
        stats(Some("test-not-the-token-0123")).await,
        401,
        "success resets the count"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cpu_profile_comes_back_as_folded_stacks() {
    let origin = OriginProcess::start(&[]);
    let client = http();
    let post = reqwest::Method::POST;
    let (status, reply) = admin(
        &origin,
        post.clone(),
        "/performance/apm/profile",
        Some(json!({ "seconds": 0 })),
    )
    .await;
    assert_eq!(
        (status, reply["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("seconds"))
    );

    let busy_url = origin.url("/api/elections/1/ballot");
    let load_client = client.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_load = stop.clone();
    let load = tokio::spawn(async move {
        let mut sent = 0u64;
        while !stop_load.load(std::sync::atomic::Ordering::Relaxed) {
            if load_client.get(&busy_url).send().await.is_ok() {
                sent += 1;
            }
        }
        sent
    });
    let first = admin(
        &origin,
        post.clone(),
        "/performance/apm/profile",
        Some(json!({ "seconds": 2 })),
    );
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        admin(
            &origin,
            post.clone(),
            "/performance/apm/profile",
            Some(json!({ "seconds": 1 })),
        )
        .await
    };
    let ((status, folded), (busy, busy_reply)) = tokio::join!(first, second);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.await.expect("load task");
    assert!(sent > 0, "the load reached the origin");
    assert_eq!(status, 200, "{folded}");
    assert_eq!(busy, 409, "{busy_reply}");
    let text = folded.as_str().expect("folded stacks are text");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        !lines.is_empty(),
        "no samples while serving {sent} requests"
    );
    for line in &lines {
        let (stack, count) = line.rsplit_once(' ').expect("`stack count`");
        assert!(count.parse::<u64>().is_ok_and(|n| n > 0), "{line}");
        assert!(!stack.is_empty());
    }
    assert!(
        text.contains("surge_origin"),
        "the origin's own frames are named: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_heap_profile_comes_back_as_gzipped_pprof() {
    let origin = OriginProcess::start(&[]);
    let client = http();
    // Some traffic, so the heap holds what serving allocates.
    for _ in 0..50 {
        let r = client
            .get(origin.url("/api/elections/1/ballot"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 200);
    }
    let response = client
        .post(origin.url("/performance/apm/heap"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("heap");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/octet-stream")
    );
    let body = response.bytes().await.expect("body");
    assert_eq!(&body[..2], [0x1f, 0x8b], "gzip");
    let mut profile = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut profile)
        .expect("gunzip");
    // A pprof protobuf names the sample types and the mapped binary.
    let text = String::from_utf8_lossy(&profile);
    assert!(text.contains("space"), "no sample types in the profile");
    assert!(text.contains("surge-origin"), "no mapping for the binary");
}
