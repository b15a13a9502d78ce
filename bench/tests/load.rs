//! `surge-load` against a real origin on loopback: reports, thresholds, exit codes, errors.

use std::process::Command;

use serde_json::Value;
use surge_origin::config::Config;
use surge_origin::startup;

const TOKEN: &str = "load-test-admin-token-0123456789";

/// Starts an origin (embedded store) in this process; returns the base URLs of its public
/// and admin listeners.
async fn origin() -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let admin_addr = admin_listener.local_addr().expect("address");
    let config = Config::from_vars(|name| match name {
        "SURGE_LISTEN" => Some(addr.to_string()),
        "SURGE_ADMIN_LISTEN" => Some(admin_addr.to_string()),
        "SURGE_INSECURE_COOKIES" => Some("true".into()),
        "SURGE_ADMIN_TOKEN" => Some(TOKEN.into()),
        _ => None,
    })
    .expect("config");
    let state = startup::start(config, surge_origin::telemetry::spans::SpanTrees::new(64))
        .await
        .expect("origin starts");
    let app = surge_origin::http::router(state.clone());
    let admin = surge_origin::http::admin_router(state);
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    tokio::spawn(async move { axum::serve(admin_listener, admin).await.ok() });
    (format!("http://{addr}"), format!("http://{admin_addr}"))
}

/// Issues `count` voters for election 1 through the admin API at `admin` and writes their
/// codes file in `dir`.
async fn credentials(admin: &str, dir: &std::path::Path, count: usize) -> String {
    let report: Value = reqwest::Client::new()
        .post(format!("{admin}/performance/voters/issue"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "election_id": 1, "count": count }))
        .send()
        .await
        .expect("issue")
        .json()
        .await
        .expect("JSON");
    let mut csv = String::from("voter_id,code\n");
    for v in report["issued"].as_array().expect("issued") {
        csv.push_str(&format!(
            "{},{}\n",
            v["voter_id"].as_str().unwrap_or(""),
            v["code"].as_str().unwrap_or("")
        ));
    }
    let path = dir.join("codes.csv");
    std::fs::write(&path, csv).expect("codes file");
    path.to_str().expect("utf-8").to_string()
}

const SCENARIO: &str = r#"
name = "smoke"
[load]
model = "open"
start_rate = 100
stages = [{ duration = "2s", target = 100 }]
[[steps]]
name = "view_ballot"
weight = 8
path = "/api/elections/{election}/ballot"
[[steps]]
name = "cast_vote"
weight = 2
method = "POST"
path = "/api/elections/{election}/votes"
body = '{"option_id": {option}}'
auth = true
expect = [201, 200, 409]
"#;

/// Runs `surge-load` off the async runtime (the origin under test lives on it).
async fn surge_load_off_runtime(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        surge_load(&args)
    })
    .await
    .expect("join")
}

fn surge_load(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .args(args)
        .output()
        .expect("surge-load runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_reports_latency_statuses_and_cache_mix_and_enforces_thresholds() {
    let (target, admin) = origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("smoke.toml");
    std::fs::write(&scenario, SCENARIO).expect("write scenario");
    let json = dir.path().join("report.json");
    let html = dir.path().join("report.html");
    let (scenario_s, json_s, html_s) = (
        scenario.to_str().expect("utf-8").to_string(),
        json.to_str().expect("utf-8").to_string(),
        html.to_str().expect("utf-8").to_string(),
    );
    let codes = credentials(&admin, dir.path(), 200).await;

    // Without credentials a scenario that logs in refuses to start, saying how to get them.
    let (code, _, stderr) = surge_load_off_runtime(&[
        "run",
        "--quiet",
        "--scenario",
        &scenario_s,
        "--target",
        &target,
    ])
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("--credentials"), "{stderr}");

    let args = [
        "run",
        "--quiet",
        "--scenario",
        &scenario_s,
        "--target",
        &target,
        "--credentials",
        &codes,
        "--out",
        &json_s,
        "--html",
        &html_s,
        "--threshold",
        "errors<1%",
        "--threshold",
        "p99<10s",
    ];
    let (code, stdout, stderr) = surge_load_off_runtime(&args).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("view_ballot") && stdout.contains("cast_vote"),
        "{stdout}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    let steps = report["steps"].as_array().expect("steps");
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    // 200 arrivals; the votes also log in first.
    let arrivals = step("view_ballot")["requests"].as_u64().unwrap_or(0)
        + step("cast_vote")["requests"].as_u64().unwrap_or(0);
    assert_eq!(arrivals, 200, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(
        step("view_ballot")["cache"]["HIT"]
            .as_u64()
            .is_some_and(|n| n > 100),
        "{report}"
    );
    assert_eq!(
        step("cast_vote")["statuses"]["201"],
        step("cast_vote")["requests"],
        "{report}"
    );
    assert_eq!(step("login")["requests"], step("cast_vote")["requests"]);
    assert!(report["latency"]["p99"].as_f64().is_some_and(|p| p > 0.0));
    assert!(report["timeline"].as_array().is_some_and(|t| t.len() >= 2));
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("<svg") && page.contains("smoke"));

    // The reference scenario, shrunk: each of 20 users logs in with its own code and votes
    // once; repeats (200, 409) are expected, not errors.
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/election-day.toml");
    let closed_json = dir.path().join("closed.json");
    let closed_s = closed_json.to_str().expect("utf-8").to_string();
    let (code, stdout, stderr) = surge_load_off_runtime(&[
        "run",
        "--quiet",
        "--scenario",
        reference,
        "--target",
        &target,
        "--credentials",
        &codes,
        "--scale",
        "0.0002",
        "--time-scale",
        "0.001",
        "--out",
        &closed_s,
        "--threshold",
        "errors<0.1%",
    ])
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let closed: Value =
        serde_json::from_str(&std::fs::read_to_string(&closed_json).expect("report"))
            .expect("JSON");
    let closed_step = |name: &str| {
        closed["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    let votes = closed_step("cast_vote");
    let firsts = votes["statuses"]["201"].as_u64().unwrap_or(0);
    let repeats = votes["statuses"]["200"].as_u64().unwrap_or(0)
        + votes["statuses"]["409"].as_u64().unwrap_or(0);
    assert!(
        firsts > 0 && firsts <= 20,
        "at most one first vote per user: {closed}"
    );
    assert_eq!(
        firsts + repeats,
        votes["requests"].as_u64().unwrap_or(0),
        "{closed}"
    );
    assert_eq!(closed["errors"], 0, "{closed}");
    assert!(
        closed_step("login")["statuses"]["200"]
            .as_u64()
            .is_some_and(|n| n >= firsts)
    );

    // A threshold the run cannot meet: exit 1, and it says which.
    let args2 = [
        "run",
        "--quiet",
        "--scenario",
        &scenario_s,
        "--target",
        &target,
        "--credentials",
        &codes,
        "--threshold",
        "p50<0.001ms",
    ];
    let (code, stdout, _) = surge_load_off_runtime(&args2).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("threshold broken: p50<0.001ms"), "{stdout}");

    // Compare a report with itself: no regression.
    let (code, stdout, _) = surge_load(&["compare", &json_s, &json_s]);
    assert_eq!(code, 0, "{stdout}");
    assert!(!stdout.contains("REGRESSION"));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, SCENARIO.replace("weight = 8", "weight = \"heavy\"")).expect("write");
    let bad_s = bad.to_str().expect("utf-8");
    let (code, _, stderr) = surge_load(&["run", "--scenario", bad_s]);
    assert_eq!(code, 2);
    assert!(stderr.contains("steps[0].weight"), "{stderr}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, SCENARIO).expect("write");
    let good_s = good.to_str().expect("utf-8");
    let codes = dir.path().join("codes.csv");
    std::fs::write(&codes, "voter_id,code\nv-1,AAAAA\n").expect("write");
    let (code, _, stderr) = surge_load(&[
        "run",
        "--scenario",
        good_s,
        "--credentials",
        dir.path().join("missing.csv").to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing.csv"), "{stderr}");
    // Nothing listens on port 9 of loopback.
    let (code, _, stderr) = surge_load(&[
        "run",
        "--quiet",
        "--scenario",
        good_s,
        "--target",
        "http://127.0.0.1:9",
        "--credentials",
        codes.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot reach http://127.0.0.1:9"),
        "{stderr}"
    );
    let (code, _, stderr) = surge_load(&["run", "--scenario", good_s, "--threshold", "p99<fast"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("p99<fast"), "{stderr}");
}

#[test]
fn client_addresses_are_spread_when_asked() {
    let origin =
        surge_testkit::origin::TestOrigin::start(|_| surge_testkit::origin::Reply::ok("ok"))
            .expect("test origin");
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("reads.toml");
    std::fs::write(
        &scenario,
        SCENARIO
            .replace(
                "weight = 2\nmethod = \"POST\"",
                "weight = 2\nmethod = \"GET\"",
            )
            .replace("body = '{\"option_id\": {option}}'\nauth = true\n", ""),
    )
    .expect("write");
    let (code, stdout, stderr) = surge_load(&[
        "run",
        "--quiet",
        "--scenario",
        scenario.to_str().expect("utf-8"),
        "--target",
        &origin.url(),
        "--client-ips",
        "3",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let mut seen: Vec<String> = origin
        .requests()
        .iter()
        .filter_map(|r| r.header("cf-connecting-ip").map(str::to_string))
        .collect();
    assert!(seen.len() >= 200, "every request carries an address");
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec!["10.0.0.0", "10.0.0.1", "10.0.0.2"]);
}
