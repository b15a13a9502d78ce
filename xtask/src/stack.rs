//! `cargo xtask run`: Surge on this machine. With PostgreSQL and Redis installed, the real
//! stack on loopback — a Postgres primary with a streaming replica, Redis, migrations and the
//! demo election — under the origin; without them (or with `--embedded`), the origin alone
//! with its in-process demo store. `--shards N` adds vote shards (each a primary with a
//! replica), `--edge` puts the Worker under `wrangler dev` in front. Demo voters are issued
//! through the admin API and their codes written to `target/demo-voters.csv`. Services live
//! in temporary directories and stop with Ctrl-C. `--monitoring` starts Prometheus as well,
//! with the project's recording and alert rules, scraping the origin's metrics listener.

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use surge_testkit::postgres::PgPair;
use surge_testkit::prometheus::Prometheus;
use surge_testkit::redis::RedisServer;
use surge_testkit::wrangler::WranglerDev;

use crate::{Failure, Step, cargo, on_path, postgres_server_present, root, status};

/// What `run` was asked for.
pub struct RunOptions {
    /// Skip Postgres and Redis even when installed.
    pub embedded: bool,
    /// Start the edge Worker too.
    pub edge: bool,
    /// Vote shards to start.
    pub shards: u8,
    /// Demo voters to issue.
    pub voters: u32,
    /// Start Prometheus too, with the project's rules, scraping the origin.
    pub monitoring: bool,
}

fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let seed = std::process::id() as u8;
        buf.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = seed.wrapping_mul(i as u8 + 31));
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn env_or(name: &str, default: impl FnOnce() -> String) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(default)
}

struct Services {
    _pg: Vec<PgPair>,
    _redis: Option<RedisServer>,
    env: Vec<(&'static str, String)>,
    summary: Vec<String>,
}

fn start_services(embedded: bool, shards: u8) -> Result<Services, Failure> {
    let configured =
        std::env::var_os("DATABASE_URL").is_some() || std::env::var_os("REDIS_URL").is_some();
    let mut services = Services {
        _pg: Vec::new(),
        _redis: None,
        env: Vec::new(),
        summary: Vec::new(),
    };
    if embedded || configured {
        services.summary.push(if configured {
            "data and cache: as configured by DATABASE_URL / REDIS_URL".into()
        } else {
            "data: embedded demo store (in memory); cache: L1 only".into()
        });
        return Ok(services);
    }
    if !postgres_server_present() || !on_path("redis-server") {
        services.summary.push(
            "data: embedded demo store (install postgresql and redis-server, or run `cargo xtask setup`, for the real stack)".into(),
        );
        return Ok(services);
    }
    println!("xtask: starting PostgreSQL primary + streaming replica and Redis on 127.0.0.1");
    let pg = PgPair::start().map_err(|e| Failure(format!("PostgreSQL: {e}")))?;
    let redis = RedisServer::start().map_err(|e| Failure(format!("Redis: {e}")))?;
    services.env = vec![
        ("DATABASE_URL", pg.primary.url("postgres")),
        ("DATABASE_REPLICA_URLS", pg.replica.url("postgres")),
        ("SURGE_SEED_DEMO", "true".into()),
        ("REDIS_URL", redis.url()),
    ];
    services.summary = vec![
        format!("postgres primary: {}", pg.primary.url("postgres")),
        format!(
            "postgres replica: {} (streaming)",
            pg.replica.url("postgres")
        ),
        format!("redis: {}", redis.url()),
    ];
    if shards > 1 {
        let mut urls = vec![format!(
            "{},{}",
            pg.primary.url("postgres"),
            pg.replica.url("postgres")
        )];
        for i in 1..shards {
            println!("xtask: starting vote shard {i} (primary + streaming replica)");
            let shard = PgPair::start().map_err(|e| Failure(format!("PostgreSQL: {e}")))?;
            urls.push(format!(
                "{},{}",
                shard.primary.url("postgres"),
                shard.replica.url("postgres")
            ));
            services.summary.push(format!(
                "vote shard {i}: {} (+ replica {})",
                shard.primary.url("postgres"),
                shard.replica.url("postgres")
            ));
            services._pg.push(shard);
        }
        let last = services.summary.len() - usize::from(shards - 1);
        services.summary.insert(
            last,
            format!(
                "vote shard 0: the main primary ({} shards by voter)",
                urls.len()
            ),
        );
        services.env.push(("DATABASE_SHARD_URLS", urls.join(";")));
    }
    services._pg.insert(0, pg);
    services._redis = Some(redis);
    Ok(services)
}

fn terminate(child: &mut Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .ok();
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    child.wait().ok();
}

/// Waits for the origin, issues `count` demo voters for election 1 through the admin API and
/// writes their codes to `target/demo-voters.csv` (mode 0600); what to print about it.
fn issue_demo_voters(admin_listen: &str, token: &str, count: u32) -> Result<String, Failure> {
    let base = format!("http://{admin_listen}");
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build(),
    );
    let start = std::time::Instant::now();
    while agent.get(format!("{base}/healthz")).call().is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(Failure(
                "surge-origin did not answer on /healthz within 60 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let path = root().join("target/demo-voters.csv");
    let mut csv = String::from("voter_id,code\n");
    let mut left = count;
    while left > 0 {
        let n = left.min(10_000);
        let body = serde_json::json!({ "election_id": 1, "count": n }).to_string();
        let mut reply = agent
            .post(format!("{base}/performance/voters/issue"))
            .header("authorization", &format!("Bearer {token}"))
            .header("content-type", "application/json")
            .send(body.as_str())
            .map_err(|e| Failure(format!("issuing demo voters: {e}")))?;
        let text = reply
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure(format!("issuing demo voters: {e}")))?;
        let report: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| Failure(format!("issuing demo voters: {text}")))?;
        let issued = report["issued"]
            .as_array()
            .ok_or_else(|| Failure(format!("issuing demo voters: {text}")))?;
        for v in issued {
            csv.push_str(&format!(
                "{},{}\n",
                v["voter_id"].as_str().unwrap_or_default(),
                v["code"].as_str().unwrap_or_default()
            ));
        }
        left -= n;
    }
    std::fs::remove_file(&path).ok();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(
        &mut options
            .open(&path)
            .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?,
        csv.as_bytes(),
    )
    .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
    Ok(format!(
        "voters: {count} demo voters for election 1; their ids and codes are in {} (log in with POST /api/login and {{\"voter_id\", \"code\"}})",
        path.display()
    ))
}

/// Runs the local stack until Ctrl-C.
pub fn run(options: &RunOptions) -> Step {
    status(cargo().args(["build", "--release", "-p", "surge-origin"]))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| Failure(format!("cannot handle Ctrl-C: {e}")))?;

    let services = start_services(options.embedded, options.shards)?;
    let listen = env_or("SURGE_LISTEN", || "127.0.0.1:8080".into());
    let admin_listen = env_or("SURGE_ADMIN_LISTEN", || "127.0.0.1:9090".into());
    let token = env_or("SURGE_ADMIN_TOKEN", || random_hex(16));
    let cookie_keys = env_or("SURGE_COOKIE_KEYS", || random_hex(32));
    let mut command = Command::new(root().join("target/release/surge-origin"));
    command
        .env("SURGE_LISTEN", &listen)
        .env("SURGE_ADMIN_LISTEN", &admin_listen)
        .env("SURGE_ADMIN_TOKEN", &token)
        .env(
            "SURGE_INSECURE_COOKIES",
            env_or("SURGE_INSECURE_COOKIES", || "true".into()),
        )
        .env("SURGE_COOKIE_KEYS", &cookie_keys)
        .env(
            "SURGE_VOTER_PEPPER",
            env_or("SURGE_VOTER_PEPPER", || random_hex(32)),
        );
    for (name, value) in &services.env {
        command.env(name, value);
    }
    let metrics_listen = env_or("SURGE_METRICS_LISTEN", || "127.0.0.1:9091".into());
    if options.monitoring {
        command.env("SURGE_METRICS_LISTEN", &metrics_listen);
    }
    let mut origin = command
        .spawn()
        .map_err(|e| Failure(format!("cannot start surge-origin: {e}")))?;

    let voters = match issue_demo_voters(&admin_listen, &token, options.voters) {
        Ok(line) => line,
        Err(e) => {
            terminate(&mut origin);
            return Err(e);
        }
    };

    let edge = if options.edge {
        std::thread::sleep(Duration::from_millis(500));
        let geo = format!(
            r#"{{"regions":{{"local":{{"origin":"http://{listen}","timeout":"5s"}}}},"countries":{{}},"default":["local"]}}"#
        );
        println!("xtask: starting the edge Worker under wrangler dev (builds it first if needed)");
        // The Worker verifies login cookies with the origin's keys (a secret when deployed).
        match WranglerDev::start(
            &[("SURGE_GEO", &geo), ("SURGE_COOKIE_KEYS", &cookie_keys)],
            None,
        ) {
            Ok(edge) => Some(edge),
            Err(e) => {
                terminate(&mut origin);
                return Err(Failure(format!(
                    "the edge did not start: {e} (run `cargo xtask setup` for wrangler and the Worker tools)"
                )));
            }
        }
    } else {
        None
    };

    let prometheus = if options.monitoring {
        match Prometheus::start(
            std::slice::from_ref(&metrics_listen),
            &[("pod", "local")],
            Some(&root().join("infrastructure/monitoring/prometheus-rules.yaml")),
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                terminate(&mut origin);
                return Err(Failure(format!(
                    "Prometheus did not start: {e} (run `cargo xtask setup`)"
                )));
            }
        }
    } else {
        None
    };

    println!("\nxtask: Surge is running (Ctrl-C stops everything)");
    for line in &services.summary {
        println!("  {line}");
    }
    println!("  origin: http://{listen}  (try /elections/1 and /api/elections/1/results)");
    if let Some(edge) = &edge {
        println!(
            "  edge:   {}  (the Worker, caching in front of the origin)",
            edge.url("/")
        );
    }
    println!(
        "  admin:  curl -H 'Authorization: Bearer {token}' http://{admin_listen}/performance/health"
    );
    println!("  {voters}");
    if let Some(prometheus) = &prometheus {
        println!(
            "  prometheus: {}  (scraping http://{metrics_listen}/metrics every second, with the SLA recording and alert rules; try surge:request_latency_seconds:p99_rate5m)",
            prometheus.url()
        );
    }

    loop {
        if stop.load(Ordering::SeqCst) {
            println!("\nxtask: stopping");
            terminate(&mut origin);
            return Ok(());
        }
        match origin.try_wait() {
            Ok(Some(exit)) => {
                return Err(Failure(format!("surge-origin exited ({exit})")));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(Failure(format!("cannot watch surge-origin: {e}"))),
        }
    }
}
