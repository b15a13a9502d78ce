//! The monitoring stack against the real binary: a real Prometheus scrapes the origin's
//! metrics listener and evaluates the project's recording and alert rules, and every query
//! the Grafana dashboard makes is valid PromQL that Prometheus answers.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{OriginProcess, eventually_within, http};
use surge_testkit::net::free_port;
use surge_testkit::prometheus::Prometheus;

fn infra(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infrastructure")
        .join(path)
}

/// The first sample value of a query's answer, if it has one.
fn first_value(answer: &Value) -> Option<f64> {
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_origin_and_evaluates_the_rules_and_the_dashboard() {
    let metrics_port = free_port().expect("port");
    let origin = OriginProcess::start(&[
        ("SURGE_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}")),
        ("SURGE_REGION", "eu-west".to_string()),
    ]);
    let prometheus = Prometheus::start(
        &[format!("127.0.0.1:{metrics_port}")],
        &[("pod", "origin-0")],
        Some(&infra("monitoring/prometheus-rules.yaml")),
    )
    .expect("prometheus");
    // Steady traffic for as long as the test runs, so every rate window has increases.
    let traffic = {
        let urls: Vec<String> = ["/api/elections", "/api/elections/1/ballot", "/elections/1"]
            .iter()
            .map(|p| origin.url(p))
            .collect();
        tokio::spawn(async move {
            let client = http();
            loop {
                for url in &urls {
                    let r = client.get(url).send().await.expect("GET");
                    assert_eq!(r.status(), 200, "{url}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // The origin's own series, labelled with its region and the pod Prometheus saw.
    eventually_within("Prometheus has the origin's requests", Duration::from_secs(30), async || {
        let answer = prometheus
            .query(r#"sum(surge_http_request_duration_seconds_count{region="eu-west",pod="origin-0"})"#)
            .expect("query");
        first_value(&answer).is_some_and(|v| v >= 30.0)
    })
    .await;
    let info = prometheus
        .query(r#"surge_build_info{region="eu-west",pod="origin-0"}"#)
        .expect("query");
    assert_eq!(first_value(&info), Some(1.0), "{info}");
    // A recording rule from prometheus-rules.yaml, evaluated over the scraped series: the
    // p99 of requests that took well under a second.
    eventually_within(
        "the p99 recording rule",
        Duration::from_secs(30),
        async || {
            let answer = prometheus
                .query("surge:request_latency_seconds:p99_rate5m")
                .expect("query");
            first_value(&answer).is_some_and(|p99| p99 > 0.0 && p99 < 1.0)
        },
    )
    .await;

    // Every dashboard query, with its variables set to this origin, is valid PromQL.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(infra("monitoring/grafana/surge-origin.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut asked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            let expr = expr
                .replace("$region", "eu-west")
                .replace("$pod", "origin-0");
            let answer = prometheus.query(&expr).expect("query");
            assert_eq!(answer["status"], "success", "{expr}: {answer}");
            asked += 1;
        }
    }
    assert!(asked >= 20, "{asked}");
    // The request-rate panel shows this origin's routes.
    let rate = prometheus
        .query(
            r#"sum by (route) (rate(surge_http_request_duration_seconds_count{region=~"eu-west",pod=~"origin-0",route!="admin"}[1m]))"#,
        )
        .expect("query");
    assert!(
        rate["data"]["result"]
            .as_array()
            .is_some_and(|r| r.len() >= 2),
        "{rate}"
    );
    traffic.abort();
}
