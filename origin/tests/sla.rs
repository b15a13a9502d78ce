//! The SLA tracker on the real binary with a real Postgres: public requests are counted,
//! 5xx answers spend the error budget and open a fast-burn incident, counts made while the
//! database was down are kept until it is back, and a restart keeps everything.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{OriginProcess, admin, eventually_within, http, login, vote};
use surge_testkit::postgres::PgPair;

async fn sla(origin: &OriginProcess) -> Value {
    let (status, report) = admin(origin, reqwest::Method::GET, "/performance/sla", None).await;
    assert_eq!(status, 200, "{report}");
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sla_counts_requests_spends_budget_on_5xx_and_survives_a_restart() {
    let mut pg = PgPair::start().expect("postgres");
    let env = vec![
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("SURGE_SEED_DEMO", "true".to_string()),
    ];
    let mut origin = OriginProcess::start(&env);
    let client = http();
    let cookie = login(&client, &origin, "sla-voter").await;
    for _ in 0..20 {
        let r = client
            .get(origin.url("/api/elections"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 200);
    }
    let before = sla(&origin).await;
    assert_eq!(before["store"], "postgres");
    let hour = &before["windows"][0];
    assert_eq!(hour["window"], "1h");
    assert!(
        hour["requests"].as_u64().is_some_and(|n| n >= 21),
        "{before}"
    );
    assert_eq!(hour["availability"], 1.0, "{before}");
    assert_eq!(before["error_budget_left"], 1.0);
    assert!(before["incidents"].as_array().is_some_and(Vec::is_empty));

    // With the primary down, votes answer 503: each spends budget, and the counts wait in
    // the process until the database is back.
    pg.primary.stop().expect("stop the primary");
    let mut unavailable = 0;
    for option in [1, 1, 1] {
        let (status, _, _) = vote(&client, &origin, &cookie, option).await;
        unavailable += u64::from(status == 503);
    }
    assert_eq!(unavailable, 3);
    pg.primary.start().expect("start the primary");
    let mut report = Value::Null;
    eventually_within(
        "the SLA store is back",
        Duration::from_secs(30),
        async || {
            let (status, r) = admin(&origin, reqwest::Method::GET, "/performance/sla", None).await;
            report = r;
            status == 200
        },
    )
    .await;
    let hour = &report["windows"][0];
    assert!(
        hour["availability"].as_f64().is_some_and(|a| a < 1.0),
        "{report}"
    );
    assert!(
        report["error_budget_left"]
            .as_f64()
            .is_some_and(|b| b < 1.0),
        "{report}"
    );
    assert!(
        report["burn_rate_5m"].as_f64().is_some_and(|b| b > 14.4),
        "{report}"
    );
    let incidents = report["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{report}");
    assert!(incidents[0]["end"].is_null(), "still burning: {report}");
    let requests = hour["requests"].as_u64().expect("requests");

    // A restart (the stopping process flushes its last counts) keeps every figure.
    origin.terminate();
    assert_eq!(origin.wait_exit(Duration::from_secs(30)), Some(0));
    let origin = OriginProcess::start(&env);
    let after = sla(&origin).await;
    assert!(
        after["windows"][0]["requests"]
            .as_u64()
            .is_some_and(|n| n >= requests),
        "{after}"
    );
    assert_eq!(after["error_budget_left"], report["error_budget_left"]);
    assert_eq!(after["incidents"].as_array().map(Vec::len), Some(1));
}
