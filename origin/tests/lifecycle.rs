//! The origin's life as Kubernetes drives it: ready only after its start-up warm, not ready
//! at once on SIGTERM while it keeps serving for the drain period, then it finishes what is
//! in flight, sends the results purge its votes asked for, and exits 0.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use support::{OriginProcess, eventually, header, http, login, run_origin, vote};
use surge_testkit::cloudflare::CloudflareStandin;
use surge_testkit::redis::RedisServer;

async fn status_of(client: &reqwest::Client, url: String) -> (StatusCode, Option<String>) {
    let r = client.get(url).send().await.expect("request");
    let cache = r
        .headers()
        .get("x-surge-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (r.status(), cache)
}

fn purged_results(cf: &CloudflareStandin) -> bool {
    cf.accepted().iter().any(|body| {
        body["tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t == "results:1"))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_origin_drains_finishes_and_flushes_its_purges() {
    let cf = CloudflareStandin::start().expect("cloudflare stand-in");
    let mut origin = OriginProcess::start(&[
        ("CLOUDFLARE_API_TOKEN", cf.token().to_string()),
        ("CLOUDFLARE_ZONE_ID", cf.zone_id().to_string()),
        ("CLOUDFLARE_API_BASE", cf.api_base()),
        ("SURGE_DRAIN", "2s".into()),
        ("SURGE_PURGE_COALESCE", "60s".into()),
        (
            "SURGE_START_WARM",
            "/api/elections,/api/elections/1/ballot".into(),
        ),
    ]);
    let client = http();
    eventually("ready", async || {
        status_of(&client, origin.url("/readyz")).await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(
        status_of(&client, origin.url("/livez")).await.0,
        StatusCode::OK
    );
    // The start-up warm ran before the process said it was ready.
    assert_eq!(
        status_of(&client, origin.url("/api/elections")).await,
        (StatusCode::OK, Some("HIT".to_string()))
    );

    // A vote marks a results purge due only in a minute.
    let cookie = login(&client, &origin, "dora").await;
    let ballot: Value = client
        .get(origin.url("/api/elections/1/ballot"))
        .send()
        .await
        .expect("ballot")
        .json()
        .await
        .expect("JSON");
    let option = ballot["options"][0]["id"].as_i64().expect("an option");
    let (status, _, _) = vote(
        &client,
        &origin,
        &cookie,
        i32::try_from(option).expect("id"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!purged_results(&cf), "the purge waits for its window");

    origin.terminate();
    // Not ready at once, and still serving while load balancers take it out of rotation.
    eventually("not ready while draining", async || {
        status_of(&client, origin.url("/readyz")).await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let (status, _) = status_of(&client, origin.url("/api/elections/1/results")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "requests during the drain are served"
    );

    let code = tokio::task::spawn_blocking(move || origin.wait_exit(Duration::from_secs(20)))
        .await
        .expect("wait");
    assert_eq!(code, Some(0), "a clean exit after the drain");
    assert!(
        purged_results(&cf),
        "the vote's results purge went out before the exit: {:?}",
        cf.accepted()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_starts_without_redis_and_takes_it_up_when_it_answers() {
    let port = surge_testkit::net::free_port().expect("port");
    let origin = OriginProcess::start(&[("REDIS_URL", format!("redis://127.0.0.1:{port}"))]);
    let client = http();
    // Ready, serving from L1 and the store, and saying it is degraded.
    eventually("ready without Redis", async || {
        status_of(&client, origin.url("/readyz")).await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(
        status_of(&client, origin.url("/api/elections")).await.0,
        StatusCode::OK
    );
    let (_, health) =
        support::admin(&origin, reqwest::Method::GET, "/performance/health", None).await;
    assert_eq!(
        (
            health["status"].as_str(),
            health["redis"]["available"].as_bool()
        ),
        (Some("degraded"), Some(false)),
        "{health}"
    );

    // Redis comes up: the origin connects by itself and fills L2.
    let redis = RedisServer::start_on(port).expect("redis");
    eventually("L2 connected", async || {
        let (_, health) =
            support::admin(&origin, reqwest::Method::GET, "/performance/health", None).await;
        health["redis"]["available"] == true
    })
    .await;
    let (status, _) = status_of(&client, origin.url("/api/elections/1/ballot")).await;
    assert_eq!(status, StatusCode::OK);
    eventually("the entry reaches L2", async || {
        !surge_testkit::redis::cli(
            redis.port(),
            &["--scan", "--pattern", "surge:v1:e:*ballot*"],
        )
        .unwrap_or_default()
        .trim()
        .is_empty()
    })
    .await;
}

#[test]
fn check_config_validates_without_starting_and_names_what_is_wrong() {
    let run = |env: &[(&str, &str)]| {
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        run_origin(&["check-config"], &env)
    };
    let (code, out) = run(&[("SURGE_ADMIN_TOKEN", "a-secret-admin-token-0123")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("the configuration is valid"), "{out}");
    assert!(
        !out.contains("a-secret-admin-token-0123"),
        "secrets are redacted: {out}"
    );
    let (code, out) = run(&[("SURGE_DRAIN", "forever")]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("SURGE_DRAIN"), "{out}");
    // Span export speaks OTLP/HTTP with protobuf only: a collector set up for gRPC is named.
    let (code, out) = run(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && out.contains("http/protobuf"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_its_own_listener_without_the_admin_token() {
    let port = surge_testkit::net::free_port().expect("port");
    let origin = OriginProcess::start(&[("SURGE_METRICS_LISTEN", format!("127.0.0.1:{port}"))]);
    let client = http();
    let _ = status_of(&client, origin.url("/api/elections")).await;
    let scrape = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(scrape.status(), StatusCode::OK);
    assert!(
        scrape
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        scrape.headers()
    );
    let text = scrape.text().await.expect("text");
    assert!(
        text.contains("surge_http_request_duration_seconds"),
        "{text}"
    );
    // Every cache counter the code keeps is exported, and the build says what it is.
    for name in [
        "surge_cache_l1_evictions_total",
        "surge_cache_l2_errors_total",
        "surge_cache_l2_skipped_total",
        "surge_cache_fail_safe_served_total",
        "surge_cache_backplane_received_total",
        "surge_build_info{region=\"local\",version=\"",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // Only metrics there: nothing of the admin API or the public routes.
    for path in [
        "/performance/health",
        "/api/elections",
        "/performance/metrics",
    ] {
        let r = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_json_lines_without_colours_when_not_on_a_terminal() {
    let origin = OriginProcess::start(&[("RUST_LOG", "info".into())]);
    let client = http();
    let _ = status_of(&client, origin.url("/api/elections")).await;
    let log = origin.log_tail();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the origin logged something");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "no ANSI codes: {line}");
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            event["level"].is_string() && event["fields"].is_object(),
            "{event}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("\"listening\"")),
        "the start-up line is a JSON event too: {log}"
    );
}

#[test]
fn help_lists_every_setting_and_version_prints_the_build() {
    let (code, help) = run_origin(&["--help"], &[]);
    assert_eq!(code, Some(0), "{help}");
    for setting in surge_origin::settings::catalogue::SETTINGS {
        assert!(help.contains(setting.var), "--help omits {}", setting.var);
        assert!(
            help.contains(setting.default),
            "--help omits {}'s default",
            setting.var
        );
    }
    let (code, version) = run_origin(&["--version"], &[]);
    assert_eq!(code, Some(0));
    assert_eq!(
        version.trim(),
        format!("surge-origin {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_continue_the_callers_trace_and_carry_a_request_id() {
    let origin = OriginProcess::start(&[]);
    let client = http();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = client
        .get(origin.url("/api/elections"))
        .header("traceparent", parent)
        .header("x-request-id", "req-42")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    let continued = header(&r, "traceparent");
    assert!(
        continued.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && continued.ends_with("-01"),
        "{continued}"
    );
    assert_ne!(continued, parent, "the origin's own span");
    assert_eq!(header(&r, "x-request-id"), "req-42");

    // Without them, a new trace, and the trace id names the request.
    let r = client
        .get(origin.url("/api/elections"))
        .send()
        .await
        .expect("GET");
    let fresh = header(&r, "traceparent");
    let trace_id = fresh.split('-').nth(1).unwrap_or_default().to_string();
    assert_eq!(trace_id.len(), 32, "{fresh}");
    assert_eq!(header(&r, "x-request-id"), trace_id);

    // The trace log names both.
    let (status, traces) = support::admin(
        &origin,
        reqwest::Method::GET,
        "/performance/apm/traces",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let recent = traces["recent"].as_array().expect("recent");
    assert!(
        recent
            .iter()
            .any(|t| t["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
                && t["request_id"] == "req-42"),
        "{traces}"
    );
    assert!(
        recent.iter().any(|t| t["trace_id"] == trace_id.as_str()),
        "{traces}"
    );
}
