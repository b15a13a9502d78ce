//! How fast the scaling hooks react, measured end to end: the origin binary with a real
//! Postgres and the Kubernetes API stand-in, reached through a kubeconfig, at the production
//! tick (15 s), while the request rate steps up. The test checks that each kind of scaling
//! raises the right floor, and prints the seconds from its trigger to the patch the stand-in
//! received (`cargo nextest run -p surge-origin --test scaling_reaction --no-capture`); the
//! figures are recorded in `bench/RESULTS.md`, never asserted.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{OriginProcess, admin, eventually_within};
use surge_testkit::kube::KubeStandin;
use surge_testkit::postgres::PgPair;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Requests/s one pod sustains, as the origin is told (`SURGE_POD_CAPACITY_RPS`).
const POD_RPS: u64 = 5;
/// The rate before the step: one pod's worth, so the forecast floor stays at 1.
const BASE_RPS: u64 = 5;
/// The rate after the step: ten pods' worth.
const STEP_RPS: u64 = 50;

/// Sends `GET /api/elections` at the rate in `rps` (read on every request) until dropped.
fn load(origin: &OriginProcess, rps: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    let url = origin.public_url("/api/elections");
    let client = support::http();
    tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        loop {
            let rate = rps.load(Ordering::Relaxed).max(1);
            next += Duration::from_micros(1_000_000 / rate);
            tokio::time::sleep_until(next).await;
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let _ = client.get(url).send().await;
            });
        }
    })
}

/// Waits (polling every 10 ms, up to `limit`) until `check` holds on the stand-in's state;
/// returns when it was first seen.
async fn seen(
    kube: &KubeStandin,
    what: &str,
    limit: Duration,
    check: impl Fn(&KubeStandin) -> bool,
) -> Instant {
    let give_up = Instant::now() + limit;
    loop {
        if check(kube) {
            return Instant::now();
        }
        assert!(Instant::now() < give_up, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn min_of(kube: &KubeStandin, workload: &str) -> u32 {
    kube.workload(workload).map_or(0, |w| w.min)
}

#[tokio::test(flavor = "multi_thread")]
async fn event_emergency_and_forecast_floors_react_to_a_step_in_traffic() {
    let pg = PgPair::start().expect("postgres");
    let (kube, _dir, cluster) = support::cluster();
    let mut env = cluster.to_vec();
    env.extend([
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("SURGE_SEED_DEMO", "true".to_string()),
        ("SURGE_POD_CAPACITY_RPS", POD_RPS.to_string()),
        ("SURGE_PREDICTIVE_WORKLOAD", "api-gateway".to_string()),
    ]);
    let origin = OriginProcess::start(&env);
    // The deployment's history: the half hour before this process started, at the base rate
    // (as the scaling store would hold it from the pods that ran before).
    let now_minute = OffsetDateTime::now_utc().unix_timestamp() / 60;
    pg.primary
        .psql(
            "postgres",
            &format!(
                "INSERT INTO scaling_rates (minute, requests) \
                 SELECT m, {} FROM generate_series({}, {}) AS m",
                BASE_RPS * 60,
                now_minute - 30,
                now_minute - 1
            ),
        )
        .expect("seed the rate history");
    let rps = Arc::new(AtomicU64::new(BASE_RPS));
    let traffic = load(&origin, rps.clone());
    let base = |w: &str| min_of(&kube, w);
    assert_eq!(
        (
            base("api-gateway"),
            base("auth-service"),
            base("voting-service")
        ),
        (2, 2, 3)
    );

    // Emergency: from the operator's request to the Deployment's scale.
    let asked = Instant::now();
    let (code, body) = admin(
        &origin,
        Method::POST,
        "/performance/scaling/emergency",
        Some(json!({ "targets": { "auth-service": 6 }, "duration": "10m", "reason": "reaction test" })),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let scaled = seen(&kube, "emergency scale", Duration::from_secs(30), |k| {
        k.workload("auth-service")
            .is_some_and(|w| w.replicas >= 6 && w.min == 6)
    })
    .await;
    let emergency = scaled - asked;

    // Scheduled event: from its start to the raised floor.
    let start = OffsetDateTime::now_utc() + Duration::from_secs(4);
    let start_instant = Instant::now() + Duration::from_secs(4);
    let (code, body) = admin(
        &origin,
        Method::POST,
        "/performance/scaling/event",
        Some(json!({
            "name": "polls-close",
            "start": start.format(&Rfc3339).expect("time"),
            "end": (start + Duration::from_secs(600)).format(&Rfc3339).expect("time"),
            "targets": { "voting-service": 10 },
        })),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(
        min_of(&kube, "voting-service"),
        3,
        "raised before its start"
    );
    let raised = seen(&kube, "event floor", Duration::from_secs(30), |k| {
        min_of(k, "voting-service") == 10
    })
    .await;
    let event = raised.saturating_duration_since(start_instant);

    // Forecast: the rate steps up tenfold; from the step to the forecast's floor.
    assert_eq!(
        min_of(&kube, "api-gateway"),
        2,
        "no forecast floor at the base rate"
    );
    let stepped = Instant::now();
    rps.store(STEP_RPS, Ordering::Relaxed);
    let floored = seen(&kube, "forecast floor", Duration::from_secs(180), |k| {
        min_of(k, "api-gateway") > 2
    })
    .await;
    let forecast = floored - stepped;
    traffic.abort();
    let floor = min_of(&kube, "api-gateway");
    eventually_within(
        "the status to name the forecast",
        Duration::from_secs(20),
        async || {
            let (_, status) =
                admin(&origin, Method::GET, "/performance/scaling/status", None).await;
            status["workloads"][0]["raised_by"] == json!(["forecast"])
        },
    )
    .await;
    println!(
        "scaling reaction at a 15 s tick: emergency {:.3} s (request to Deployment scale), \
         event {:.3} s (start to HPA floor), forecast {:.1} s (a {BASE_RPS} → {STEP_RPS} req/s \
         step to an HPA floor of {floor})",
        emergency.as_secs_f64(),
        event.as_secs_f64(),
        forecast.as_secs_f64()
    );
}
