//! The scaling endpoints end to end: the origin binary with a real Postgres (where events and
//! emergencies persist) and the Kubernetes API stand-in (`surge_testkit::kube`), reached
//! through a kubeconfig exactly as an operator's laptop or a CI job would reach a cluster.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{OriginProcess, admin, eventually, eventually_within};
use surge_testkit::postgres::PgPair;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

async fn status(origin: &OriginProcess) -> Value {
    let (code, body) = admin(origin, Method::GET, "/performance/scaling/status", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

fn at(offset: Duration) -> String {
    (OffsetDateTime::now_utc() + offset)
        .format(&Rfc3339)
        .expect("format")
}

fn ago(offset: Duration) -> String {
    (OffsetDateTime::now_utc() - offset)
        .format(&Rfc3339)
        .expect("format")
}

fn actions(status: &Value) -> Vec<String> {
    status["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_and_emergencies_move_hpa_floors_and_survive_a_restart() {
    let pg = PgPair::start().expect("postgres");
    let (kube, _dir, cluster) = support::cluster();
    let mut env = cluster.to_vec();
    env.extend([
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("SURGE_SEED_DEMO", "true".to_string()),
        ("SURGE_SCALING_TICK", "200ms".to_string()),
        ("SURGE_WARM_URLS", "/api/elections,/elections/1".to_string()),
    ]);
    let mut origin = OriginProcess::start(&env);

    let s = status(&origin).await;
    assert_eq!(s["namespace"], "surge");
    let voting = &s["workloads"][2];
    assert_eq!(voting["name"], "voting-service");
    assert_eq!(
        (
            voting["min_replicas"].as_u64(),
            voting["base_min_replicas"].as_u64(),
            voting["max_replicas"].as_u64()
        ),
        (Some(3), Some(3), Some(50))
    );
    assert_eq!(voting["metrics"], json!(["cpu: 42% / 60%"]));

    // Emergency: the Deployment is scaled before the answer, the floor holds it; a retry is
    // the same emergency.
    let emergency = json!({ "targets": { "api-gateway": 8 }, "duration": "1m", "reason": "turnout spike in the north" });
    let (code, first) = admin(
        &origin,
        Method::POST,
        "/performance/scaling/emergency",
        Some(emergency.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{first}");
    let gateway = kube.workload("api-gateway").expect("api-gateway");
    assert_eq!((gateway.replicas, gateway.min), (8, 8));
    assert_eq!(
        gateway
            .annotations
            .get("surge.dev/base-min-replicas")
            .map(String::as_str),
        Some("2")
    );
    let (code, again) = admin(
        &origin,
        Method::POST,
        "/performance/scaling/emergency",
        Some(emergency),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);

    // Bad requests name the field: malformed ones get 400, well-formed ones this deployment
    // cannot take (a workload it does not manage, more than maxReplicas, an event already
    // over) 422.
    let bad = [
        (
            json!({ "name": "x", "start": at(Duration::from_secs(60)), "end": at(Duration::from_secs(120)), "targets": { "web": 4 } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "targets.web",
        ),
        (
            json!({ "name": "x", "start": at(Duration::from_secs(60)), "end": at(Duration::from_secs(120)), "targets": { "voting-service": 51 } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "targets.voting-service",
        ),
        (
            json!({ "name": "x", "start": ago(Duration::from_secs(120)), "end": ago(Duration::from_secs(60)), "targets": { "voting-service": 5 } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "end",
        ),
        (
            json!({ "name": "x", "start": at(Duration::from_secs(120)), "end": at(Duration::from_secs(60)), "targets": { "voting-service": 5 } }),
            StatusCode::BAD_REQUEST,
            "end",
        ),
    ];
    for (body, status, field) in bad {
        let (code, answer) = admin(
            &origin,
            Method::POST,
            "/performance/scaling/event",
            Some(body),
        )
        .await;
        assert_eq!(code, status, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }

    // An event starting in a second, with a cache warm; a retry is 200, a clash 409.
    let polls = json!({
        "name": "polls-close",
        "start": at(Duration::from_secs(1)),
        "end": at(Duration::from_secs(5)),
        "targets": { "voting-service": 20 },
        "warm_cache": true,
    });
    let (code, event) = admin(
        &origin,
        Method::POST,
        "/performance/scaling/event",
        Some(polls.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{event}");
    assert_eq!(event["state"], "pending");
    let (code, _) = admin(
        &origin,
        Method::POST,
        "/performance/scaling/event",
        Some(polls.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let mut clash = polls.clone();
    clash["targets"]["voting-service"] = json!(30);
    let (code, answer) = admin(
        &origin,
        Method::POST,
        "/performance/scaling/event",
        Some(clash),
    )
    .await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (StatusCode::CONFLICT, Some("event_exists"))
    );
    let later = json!({
        "name": "certification",
        "start": at(Duration::from_secs(3600)),
        "end": at(Duration::from_secs(7200)),
        "targets": { "auth-service": 6 },
    });
    let (code, _) = admin(
        &origin,
        Method::POST,
        "/performance/scaling/event",
        Some(later),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);

    eventually("the event to raise voting-service's floor", async || {
        kube.workload("voting-service").is_some_and(|w| w.min == 20)
    })
    .await;
    let voting = kube.workload("voting-service").expect("voting-service");
    assert_eq!(
        voting
            .annotations
            .get("surge.dev/base-min-replicas")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        voting
            .annotations
            .get("surge.dev/raised-by")
            .map(String::as_str),
        Some("event:polls-close")
    );

    // A restart keeps the schedule and the emergency; the event still ends on time.
    origin.kill();
    let origin = OriginProcess::start(&env);
    let s = status(&origin).await;
    let names: Vec<&str> = s["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"certification"), "{s}");
    assert_eq!(s["emergencies"][0]["id"], first["id"]);
    assert_eq!(s["emergencies"][0]["state"], "active");
    eventually(
        "the event's end to restore voting-service's floor",
        async || {
            kube.workload("voting-service")
                .is_some_and(|w| w.min == 3 && w.annotations.is_empty())
        },
    )
    .await;
    assert_eq!(
        kube.workload("auth-service").map(|w| w.min),
        Some(2),
        "a future event does not act early"
    );

    // Cluster errors are clear API errors.
    kube.fail_next(403);
    let (code, answer) = admin(&origin, Method::GET, "/performance/scaling/status", None).await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("cluster_forbidden")),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rbac"),
        "{answer}"
    );

    // The emergency expires after its minute and the floor goes back.
    eventually_within(
        "the emergency to be reverted",
        Duration::from_secs(90),
        async || {
            kube.workload("api-gateway")
                .is_some_and(|w| w.min == 2 && w.annotations.is_empty())
        },
    )
    .await;
    let s = status(&origin).await;
    let done = actions(&s);
    for action in [
        "emergency.started",
        "emergency.repeated",
        "deployment.scaled",
        "event.scheduled",
        "event.started",
        "cache.warmed",
        "floor.raised",
        "event.ended",
        "floor.restored",
        "emergency.reverted",
    ] {
        assert!(
            done.iter().any(|a| a == action),
            "{action} missing from the audit log: {done:?}"
        );
    }
    let warmed = s["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .find(|e| e["action"] == "cache.warmed")
        .expect("warm entry");
    assert!(
        warmed["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("2 warmed, 0 failed"),
        "{warmed}"
    );
    assert_eq!(s["emergencies"][0]["state"], "reverted");

    // Every write the hooks made was a merge patch of the allowed fields (the stand-in
    // refuses anything else), carrying the resourceVersion for HPAs.
    for (path, patch) in kube.patches() {
        if path.contains("horizontalpodautoscalers") {
            assert!(
                patch["metadata"]["resourceVersion"].is_string(),
                "{path}: {patch}"
            );
        }
    }

    // A managed workload missing from the cluster is a 404 naming it.
    kube.remove("auth-service");
    let (code, answer) = admin(&origin, Method::GET, "/performance/scaling/status", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("auth-service"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_cluster_the_scaling_endpoints_say_how_to_enable_them() {
    let origin = OriginProcess::start(&[]);
    let (code, answer) = admin(&origin, Method::GET, "/performance/scaling/status", None).await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("not_configured"))
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("SURGE_KUBE"),
        "{answer}"
    );
    let body = json!({ "targets": { "api-gateway": 0 }, "duration": "5m", "reason": "x" });
    let (code, answer) = admin(
        &origin,
        Method::POST,
        "/performance/scaling/emergency",
        Some(body),
    )
    .await;
    assert_eq!(
        (code, answer["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("targets.api-gateway")),
        "bad input is named before anything else"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_history_adds_up_every_pod_survives_a_restart_and_stays_bounded() {
    use surge_origin::db::migrate::{self, MIGRATIONS};
    use surge_origin::db::pool::{DbPool, PoolSettings};
    use surge_origin::scaling::history::{KEEP_MINUTES, RateHistory, series_of};
    use surge_origin::scaling::store::{PgScalingStore, ScalingStore};

    let pg = PgPair::start().expect("postgres");
    let url = pg.primary.url("postgres");
    let connect =
        || PgScalingStore::new(DbPool::new(&url, &PoolSettings::default()).expect("pool"));
    migrate::run(
        &DbPool::new(&url, &PoolSettings::default()).expect("pool"),
        MIGRATIONS,
    )
    .await
    .expect("migrate");

    // Two pods count their own requests: in minute t, pod A serves 100 + 10t and pod B 50.
    // The deployment served 150 + 10t.
    const BASE: u64 = 29_000_000; // a minute in 2025
    let minute_ms = |t: u64| (BASE + t) * 60_000;
    let run = |minutes: std::ops::Range<u64>| {
        let (a, b) = (RateHistory::default(), RateHistory::default());
        for t in minutes.clone() {
            for i in 0..100 + 10 * t {
                a.record(minute_ms(t) + i);
            }
            for i in 0..50 {
                b.record(minute_ms(t) + 30_000 + i);
            }
        }
        let now = minute_ms(minutes.end);
        (a.take_unsent(now), b.take_unsent(now))
    };
    let store = connect();
    let (a, b) = run(0..6);
    assert_eq!(a.len(), 6, "{a:?}");
    store.add_rates(a).await.expect("pod A");
    store.add_rates(b).await.expect("pod B");
    drop(store);

    // Both pods restart: a new pool and store over the same database.
    let store = connect();
    let (a, b) = run(6..12);
    store.add_rates(b).await.expect("pod B");
    store.add_rates(a).await.expect("pod A");
    let rows = store.rates(BASE).await.expect("rates");
    let series = series_of(&rows, BASE + 12, KEEP_MINUTES);
    let expected: Vec<f64> = (0..12).map(|t| 150.0 + 10.0 * t as f64).collect();
    assert_eq!(series, expected);

    // Bounded: a minute two weeks and five minutes later drops the first five.
    store
        .add_rates(vec![(BASE + KEEP_MINUTES + 5, 1)])
        .await
        .expect("later");
    let rows = store.rates(0).await.expect("rates");
    assert_eq!(rows.first(), Some(&(BASE + 5, 200)), "{:?}", &rows[..3]);
    assert_eq!(rows.len(), 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_without_the_controller_still_hands_in_its_request_rate() {
    // In the manifests the controller runs in its own pod, which serves no traffic: the
    // forecast sees the deployment's rate only if every serving pod hands its counts in.
    let pg = PgPair::start().expect("postgres");
    // Kept running: it hands the minute in once the minute has closed.
    let _origin = origin_that_served_thirty_requests(&pg).await;
    // The minute closes, then the next hand-in (every 15 s) stores it.
    eventually_within(
        "the counts to reach scaling_rates",
        Duration::from_secs(100),
        async || {
            pg.primary
                .psql(
                    "postgres",
                    "SELECT coalesce(sum(requests), 0) FROM scaling_rates",
                )
                .ok()
                .and_then(|out| out.trim().parse::<u64>().ok())
                .is_some_and(|n| n >= 30)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_origin_hands_in_its_last_partial_minute() {
    // The periodic hand-in stores only closed minutes; a pod stopped mid-minute would take
    // that minute's requests with it.
    let pg = PgPair::start().expect("postgres");
    let mut origin = origin_that_served_thirty_requests(&pg).await;
    origin.terminate();
    assert_eq!(origin.wait_exit(Duration::from_secs(60)), Some(0));
    let stored = pg
        .primary
        .psql(
            "postgres",
            "SELECT coalesce(sum(requests), 0) FROM scaling_rates",
        )
        .expect("query");
    assert!(
        stored.trim().parse::<u64>().is_ok_and(|n| n >= 30),
        "stored after the stop: {stored}"
    );
}

/// An origin on `pg`'s primary, with the demo data, after 30 requests to `/api/elections`.
async fn origin_that_served_thirty_requests(pg: &PgPair) -> OriginProcess {
    let origin = OriginProcess::start(&[
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("SURGE_SEED_DEMO", "true".to_string()),
    ]);
    let client = support::http();
    for _ in 0..30 {
        let answer = client
            .get(origin.public_url("/api/elections"))
            .send()
            .await
            .expect("request");
        assert_eq!(answer.status(), StatusCode::OK);
    }
    origin
}
