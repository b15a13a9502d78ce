//! Traces through the real binary: a caller's `traceparent` continued by the request span,
//! with cache, database, purge and Cloudflare spans under it; exported over OTLP to a
//! receiver that decodes them, shown as the same tree in `/performance/apm/traces`, and
//! named in log lines.

use std::collections::HashSet;

use serde_json::{Value, json};
use support::{OriginProcess, TOKEN, admin, eventually, header, http};
use surge_testkit::cloudflare::CloudflareStandin;
use surge_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use surge_testkit::postgres::PgPair;
use surge_testkit::redis::RedisServer;

mod support;

const CALLER: &str = "00f067aa0ba902b7";
const BALLOT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PURGE_TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
const REFUSED_TRACE: &str = "6bf92f3577b34da6a3ce929d0e0e4736";

fn traceparent(trace: &str) -> String {
    format!("00-{trace}-{CALLER}-01")
}

/// The span id the response's `traceparent` names.
fn own_span(response: &reqwest::Response) -> String {
    let traceparent = header(response, "traceparent");
    traceparent
        .split('-')
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

fn names(spans: &[&ReceivedSpan]) -> HashSet<String> {
    spans.iter().map(|s| s.name.clone()).collect()
}

/// Every span name in a tree from `/performance/apm/traces`.
fn tree_names(node: &Value, into: &mut HashSet<String>) {
    if let Some(name) = node["name"].as_str() {
        into.insert(name.to_string());
    }
    for child in node["children"].as_array().into_iter().flatten() {
        tree_names(child, into);
    }
}

/// The recent traces `/performance/apm/traces` shows.
async fn recent_traces(origin: &OriginProcess) -> Vec<Value> {
    let (status, page) = admin(
        origin,
        reqwest::Method::GET,
        "/performance/apm/traces?limit=50",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["recent"].as_array().cloned().unwrap_or_default()
}

/// Checks that the spans of one trace form a tree under the request span `root`.
fn hangs_under(spans: &[&ReceivedSpan], root: &ReceivedSpan) {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    for span in spans {
        if span.span_id != root.span_id {
            assert!(
                ids.contains(span.parent_span_id.as_str()),
                "{} has a parent outside the trace: {spans:#?}",
                span.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_an_otlp_collector_and_the_trace_page_as_one_tree() {
    let pg = PgPair::start().expect("postgres");
    let redis = RedisServer::start().expect("redis");
    let cf = CloudflareStandin::start().expect("cloudflare stand-in");
    let collector = OtlpReceiver::start().expect("otlp receiver");
    let origin = OriginProcess::start(&[
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("DATABASE_REPLICA_URLS", pg.replica.url("postgres")),
        ("SURGE_SEED_DEMO", "true".into()),
        ("REDIS_URL", redis.url()),
        ("CLOUDFLARE_API_TOKEN", cf.token().to_string()),
        ("CLOUDFLARE_ZONE_ID", cf.zone_id().to_string()),
        ("CLOUDFLARE_API_BASE", cf.api_base()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("OTEL_SERVICE_NAME", "surge-origin-under-test".into()),
        ("SURGE_LOG_FORMAT", "json".into()),
    ]);
    let client = http();

    // A miss: the request looks in L1 and L2, then asks the database.
    let ballot = client
        .get(origin.url("/api/elections/1/ballot"))
        .header("traceparent", traceparent(BALLOT_TRACE))
        .send()
        .await
        .expect("GET");
    assert_eq!(ballot.status(), 200);
    let ballot_span = own_span(&ballot);
    // A purge: the fan-out reaches L1, L2 and Cloudflare.
    let purge = client
        .post(origin.url("/performance/cache/invalidate"))
        .bearer_auth(TOKEN)
        .header("traceparent", traceparent(PURGE_TRACE))
        .json(&json!({ "tags": ["election:1"] }))
        .send()
        .await
        .expect("purge");
    assert_eq!(purge.status(), 200);
    // A wrong token: the warning it causes names the request's trace.
    let refused = client
        .get(origin.url("/performance/stats"))
        .bearer_auth("not-the-admin-token-0000")
        .header("traceparent", traceparent(REFUSED_TRACE))
        .send()
        .await
        .expect("refused");
    assert_eq!(refused.status(), 401);

    eventually("the spans to reach the collector", async || {
        let spans = collector.spans();
        let of = |trace: &str| {
            spans
                .iter()
                .filter(|s| s.trace_id == trace)
                .map(|s| s.name.clone())
                .collect::<HashSet<_>>()
        };
        of(BALLOT_TRACE).contains("db.query") && of(PURGE_TRACE).contains("cdn.cloudflare")
    })
    .await;
    assert!(
        collector.rejected().is_empty(),
        "{:?}",
        collector.rejected()
    );
    let spans = collector.spans();
    let of = |trace: &str| -> Vec<&ReceivedSpan> {
        spans.iter().filter(|s| s.trace_id == trace).collect()
    };

    let trace = of(BALLOT_TRACE);
    let root = trace
        .iter()
        .find(|s| s.parent_span_id == CALLER)
        .expect("the request span continues the caller's");
    assert_eq!(root.name, "GET ballot");
    assert_eq!(root.kind, 2, "a server span");
    assert_eq!(
        root.span_id, ballot_span,
        "the response names the request span"
    );
    assert_eq!(root.service, "surge-origin-under-test");
    assert_eq!(root.attributes["http.route"], "ballot");
    assert_eq!(root.attributes["http.response.status_code"], "200");
    assert_eq!(root.attributes["surge.cache"], "MISS");
    hangs_under(&trace, root);
    // The L1 lookup (a memory read) has no span of its own: its outcome is the request span's.
    assert_eq!(root.attributes["surge.tier"], "origin");
    assert!(!names(&trace).contains("cache.l1"), "{trace:#?}");
    for name in ["cache.l2", "db.query"] {
        assert!(names(&trace).contains(name), "{name}: {trace:#?}");
    }
    let l2 = trace.iter().find(|s| s.name == "cache.l2").expect("l2");
    assert_eq!(l2.attributes["cache.hit"], "false");
    let query = trace.iter().find(|s| s.name == "db.query").expect("query");
    assert_eq!(query.attributes["db.system.name"], "postgresql");
    assert!(
        query.attributes["db.query.text"].starts_with("SELECT"),
        "{query:?}"
    );

    let trace = of(PURGE_TRACE);
    let root = trace
        .iter()
        .find(|s| s.parent_span_id == CALLER)
        .expect("the admin request continues the caller's trace");
    hangs_under(&trace, root);
    for name in [
        "purge.fan_out",
        "purge.local",
        "purge.cdn",
        "cdn.cloudflare",
    ] {
        assert!(names(&trace).contains(name), "{name}: {trace:#?}");
    }
    let call = trace
        .iter()
        .find(|s| s.name == "cdn.cloudflare")
        .expect("cloudflare");
    assert_eq!(call.kind, 3, "a client span");
    assert_eq!(call.attributes["http.response.status_code"], "200");

    // The trace page shows the same tree.
    let recent = recent_traces(&origin).await;
    let tree = recent
        .iter()
        .find(|t| t["trace_id"] == BALLOT_TRACE)
        .unwrap_or_else(|| panic!("the ballot trace: {recent:?}"));
    assert_eq!(tree["parent_span_id"], CALLER);
    assert_eq!(tree["root"]["span_id"], ballot_span.as_str());
    let mut shown = HashSet::new();
    tree_names(&tree["root"], &mut shown);
    for name in ["GET ballot", "cache.l2", "db.query"] {
        assert!(shown.contains(name), "{name}: {tree}");
    }

    // The log line carries the trace id (and no colour codes).
    let log = origin.log_tail();
    let line = log
        .lines()
        .find(|l| l.contains("wrong bearer token"))
        .unwrap_or_else(|| panic!("no warning logged: {log}"));
    let line: Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(line["spans"][0]["trace_id"], REFUSED_TRACE, "{line}");
    assert!(!log.contains('\u{1b}'), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_the_sampler_drops_get_trace_headers_but_no_spans() {
    const SAMPLED_TRACE: &str = "7bf92f3577b34da6a3ce929d0e0e4736";
    let collector = OtlpReceiver::start().expect("otlp receiver");
    let origin = OriginProcess::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_off".into()),
    ]);
    let client = http();
    // Started here: dropped, yet answered with a trace to continue and a request id.
    let dropped = client
        .get(origin.url("/api/elections/1/ballot"))
        .send()
        .await
        .expect("GET");
    assert_eq!(dropped.status(), 200);
    let dropped_parent = header(&dropped, "traceparent");
    assert!(dropped_parent.ends_with("-00"), "{dropped_parent}");
    let dropped_trace = dropped_parent
        .split('-')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(header(&dropped, "x-request-id"), dropped_trace);
    // The caller sampled it: traced.
    let sampled = client
        .get(origin.url("/api/elections/1/ballot"))
        .header("traceparent", traceparent(SAMPLED_TRACE))
        .send()
        .await
        .expect("GET");
    assert_eq!(sampled.status(), 200);
    assert!(header(&sampled, "traceparent").ends_with("-01"));

    eventually("the sampled trace to reach the collector", async || {
        collector
            .spans()
            .iter()
            .any(|s| s.trace_id == SAMPLED_TRACE)
    })
    .await;
    let spans = collector.spans();
    assert!(
        !spans.iter().any(|s| s.trace_id == dropped_trace),
        "a dropped request made spans: {spans:#?}"
    );
    let recent = recent_traces(&origin).await;
    let shown: Vec<&str> = recent
        .iter()
        .filter_map(|t| t["trace_id"].as_str())
        .collect();
    assert!(shown.contains(&SAMPLED_TRACE), "{recent:?}");
    assert!(!shown.contains(&dropped_trace.as_str()), "{recent:?}");
}
