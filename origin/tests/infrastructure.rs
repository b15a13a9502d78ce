//! `infrastructure/` stays true to the origin: the shard map in the manifests is the origin's
//! own, every origin metric any file there names (alerts, recording rules and their tests,
//! the dashboard, the adapter, HPAs, KEDA) is one the origin exports, and
//! the operator scripts work against a real origin process.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{OriginProcess, TOKEN, http, metrics};
use surge_origin::db::shard::shard_for;
use surge_testkit::postgres::PgPair;
use surge_testkit::redis::RedisServer;

fn infra(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infrastructure")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(infra(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The block under `key: |` in a YAML ConfigMap's data.
fn block(text: &str, key: &str) -> Vec<String> {
    let marker = format!("  {key}: |");
    let mut lines = text.lines().skip_while(|l| l.trim_end() != marker);
    lines
        .next()
        .unwrap_or_else(|| panic!("no `{key}: |` block"));
    lines
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn the_shard_map_in_the_manifests_is_the_origins() {
    let text = read("scaling/database/sharding.yaml");
    assert!(text.contains("  hash: jump-sha256"), "hash scheme named");
    let shards = block(&text, "shards");
    assert_eq!(shards.len(), 4);
    for (i, shard) in shards.iter().enumerate() {
        assert!(
            shard.starts_with(&format!("surge-db-shard-{i}-rw.")),
            "shard {i} is listed in order: {shard}"
        );
        assert!(
            read("scaling/database/shards.yaml").contains(&format!("name: surge-db-shard-{i}\n")),
            "shard {i} has a cluster"
        );
    }
    let samples = block(&text, "samples");
    assert!(samples.len() >= 4);
    for sample in samples {
        let (key, shard) = sample.split_once(' ').expect("`key shard`");
        assert_eq!(
            shard_for(key, shards.len()).to_string(),
            shard,
            "{key} lands where sharding.yaml says"
        );
    }
}

/// The YAML and JSON files under `dir` (npm's `node_modules` aside).
fn config_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "node_modules") {
                out.extend(config_files(&path));
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(path);
        }
    }
    out
}

/// `surge_*` metric names (recording rules `surge:…` excluded) in `text`.
fn surge_metrics(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("surge_") && !w.contains(':'))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_and_dashboard_use_metrics_the_origin_exports() {
    let redis = RedisServer::start().expect("redis");
    let pg = PgPair::start().expect("postgres");
    let origin = OriginProcess::start(&[
        ("REDIS_URL", redis.url()),
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("DATABASE_REPLICA_URLS", pg.replica.url("postgres")),
        ("SURGE_SEED_DEMO", "true".to_string()),
    ]);
    let client = http();
    for path in [
        "/api/elections",
        "/api/elections/1/ballot",
        "/api/elections/1/ballot",
    ] {
        let r = client.get(origin.url(path)).send().await.expect("GET");
        assert_eq!(r.status(), 200, "{path}");
    }
    let exported = metrics(&origin).await;
    let families: Vec<&str> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let is_exported = |name: &str| {
        families.iter().any(|f| {
            name == *f
                || ["_total", "_bucket", "_count", "_sum", "_info"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(*f))
        })
    };
    // Every file under infrastructure/ that can hold a query: rules and their tests, the
    // dashboard, the adapter, HPAs, KEDA.
    let files = config_files(&infra(""));
    assert!(files.len() >= 20, "{files:?}");
    // The adapter serves these to HPAs (its `as:` lines): they exist once the adapter runs.
    let served: Vec<String> = read("scaling/kubernetes/base/prometheus-adapter.yaml")
        .lines()
        .filter(|l| l.trim_start().starts_with("as:"))
        .flat_map(surge_metrics)
        .collect();
    assert!(!served.is_empty());
    let used: Vec<(String, String)> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read");
            let name = f.display().to_string();
            // Comments describe; they query nothing.
            let text: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#') && !l.trim_start().starts_with("as:"))
                .collect::<Vec<_>>()
                .join("\n");
            surge_metrics(&text)
                .into_iter()
                .map(move |m| (name.clone(), m))
        })
        .collect();
    assert!(used.len() >= 10, "{used:?}");
    // Recording rules (`surge:…`) used anywhere are defined in the rules file.
    let rules = read("monitoring/prometheus-rules.yaml");
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            // `surge::module` is a log target, not a rule.
            if word
                .strip_prefix("surge:")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()))
            {
                assert!(
                    rules.contains(&format!("record: {word}")),
                    "{} uses the recording rule {word}, which prometheus-rules.yaml does not define",
                    f.display()
                );
            }
        }
    }
    let used: Vec<String> = used
        .into_iter()
        .filter(|(_, m)| !served.contains(m))
        .map(|(_, m)| m)
        .collect();
    // With Redis and Postgres behind it, the origin exports every family in one scrape.
    let missing: Vec<&String> = used.iter().filter(|m| !is_exported(m)).collect();
    assert!(
        missing.is_empty(),
        "used but not exported: {missing:?}\n{families:?}"
    );
    // The pool's acquire latency is a histogram that counts each acquire.
    let acquires = exported
        .lines()
        .find_map(|l| l.strip_prefix("surge_db_pool_acquire_seconds_count{region=\"local\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the acquire histogram");
    assert!(acquires >= 1.0, "{acquires}");
}

/// Runs an operator script against `origin` with the token in a file, through a `curl` that
/// records its command line; checks that the command line never held the token.
fn script(name: &str, origin: &OriginProcess, args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("token file");
    let real_curl = String::from_utf8(
        Command::new("bash")
            .args(["-c", "command -v curl"])
            .output()
            .expect("find curl")
            .stdout,
    )
    .expect("path");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    let argv_log = dir.path().join("curl-argv");
    std::fs::write(
        bin.join("curl"),
        format!(
            "#!/bin/bash\nprintf '%s\\n' \"$@\" >> {}\nexec {} \"$@\"\n",
            argv_log.display(),
            real_curl.trim()
        ),
    )
    .expect("curl shim");
    Command::new("chmod")
        .arg("+x")
        .arg(bin.join("curl"))
        .status()
        .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(infra("cdn/scripts").join(name))
        .args(args)
        .env("PATH", path)
        .env("SURGE_ADMIN_URL", origin.admin_url(""))
        .env("SURGE_ADMIN_TOKEN_FILE", &token)
        .env_remove("SURGE_ADMIN_TOKEN")
        .output()
        .expect("run script");
    let argv = std::fs::read_to_string(&argv_log).unwrap_or_default();
    if out.status.success() {
        assert!(
            !argv.is_empty(),
            "{name} succeeded, so it called curl (through the shim)"
        );
    }
    assert!(
        !argv.contains(TOKEN),
        "{name} put the admin token on curl's command line:\n{argv}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_scripts_purge_and_warm_a_real_origin() {
    let origin = OriginProcess::start(&[]);
    let (ok, out, err) = script(
        "warm-cache.sh",
        &origin,
        &["/api/elections", "/api/elections/1/ballot"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"warmed\":2"), "{out}");
    let r = http()
        .get(origin.url("/api/elections/1/ballot"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        r.headers()
            .get("x-surge-cache")
            .and_then(|v| v.to_str().ok()),
        Some("HIT"),
        "warmed"
    );

    let (ok, out, err) = script("purge-cache.sh", &origin, &["--tag", "election:1"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"l1\""), "one line per tier: {out}");
    let r = http()
        .get(origin.url("/api/elections/1/ballot"))
        .send()
        .await
        .expect("GET");
    assert_ne!(
        r.headers()
            .get("x-surge-cache")
            .and_then(|v| v.to_str().ok()),
        Some("HIT"),
        "purged"
    );

    // Refusals are clear and touch nothing.
    let (ok, _, err) = script("purge-cache.sh", &origin, &["--everything"]);
    assert!(!ok && err.contains("--yes-really"), "{err}");
    let (ok, _, err) = script("warm-cache.sh", &origin, &["api/elections"]);
    assert!(!ok && err.contains("neither a path"), "{err}");
    // A wrong token is the API's 401, reported as such.
    let out = Command::new("bash")
        .arg(infra("cdn/scripts/purge-cache.sh"))
        .args(["--tag", "election:1"])
        .env("SURGE_ADMIN_URL", origin.admin_url(""))
        .env("SURGE_ADMIN_TOKEN", "wrong-token-0123456789")
        .env_remove("SURGE_ADMIN_TOKEN_FILE")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 401"),
        "{out:?}"
    );
}

#[test]
fn latency_alerts_read_bucket_edges_the_origin_exports() {
    use surge_origin::telemetry::LATENCY_BUCKETS;
    for threshold in [0.1, 0.5, 1.0] {
        assert!(
            LATENCY_BUCKETS.contains(&threshold),
            "the {threshold} s SLO threshold is a bucket edge"
        );
    }
    let rules = read("monitoring/prometheus-rules.yaml");
    let edges: Vec<&str> = rules
        .split("le=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(!edges.is_empty(), "the latency alerts read a bucket");
    for edge in edges {
        let value: f64 = edge.parse().expect("a number");
        assert!(
            LATENCY_BUCKETS.contains(&value) && edge.contains('.'),
            "le=\"{edge}\" is not a bucket edge as the origin writes it (e.g. 1.0)"
        );
    }
}
