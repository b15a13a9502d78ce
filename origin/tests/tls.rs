//! TLS to Postgres and Redis: a primary and replica that refuse plain TCP, and a Redis that
//! speaks only TLS and admits one ACL user, all with certificates from a throwaway CA. The
//! origin reaches them only when it trusts that CA, and says so clearly when it does not.

mod support;

use std::process::Command;

use reqwest::{Method, StatusCode};
use support::{OriginProcess, PEPPER, admin, http, run_origin};
use surge_testkit::net::free_port;
use surge_testkit::postgres::PgPair;
use surge_testkit::redis::RedisServer;
use surge_testkit::tls::TestCerts;

fn path(p: std::path::PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs the origin with `env` until it exits (it fails at start); its exit code and output.
fn failed_start(env: &[(&str, String)]) -> (Option<i32>, String) {
    let port = || format!("127.0.0.1:{}", free_port().expect("port"));
    let mut all = vec![
        ("SURGE_LISTEN", port()),
        ("SURGE_ADMIN_LISTEN", port()),
        ("SURGE_VOTER_PEPPER", PEPPER.to_string()),
    ];
    all.extend(env.iter().cloned());
    run_origin(&[], &all)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_origin_reaches_postgres_and_redis_only_over_verified_tls() {
    let certs = TestCerts::generate().expect("certificates");
    let pg = PgPair::start_tls(&certs).expect("postgres with TLS");
    let redis = RedisServer::start_tls(&certs, "surge", "acl-password-0123").expect("redis");
    // The servers refuse plain connections.
    let plain = Command::new("psql")
        .args(["-X", "-A", "-t", "-c", "SELECT 1", "-d"])
        .arg(format!("{}?sslmode=disable", pg.primary.url("postgres")))
        .output()
        .expect("psql");
    assert!(!plain.status.success(), "plain TCP is refused");

    // The Redis URL, with its ACL user and password, comes from a file.
    let secrets = tempfile::tempdir().expect("dir");
    let redis_url_file = secrets.path().join("redis-url");
    std::fs::write(&redis_url_file, format!("{}\n", redis.url())).expect("write");
    let database = |server: &surge_testkit::postgres::PgServer| {
        format!("{}?sslmode=require", server.url("postgres"))
    };
    let env = vec![
        ("DATABASE_URL", database(&pg.primary)),
        ("DATABASE_REPLICA_URLS", database(&pg.replica)),
        ("DATABASE_CA_FILE", path(certs.ca())),
        ("REDIS_URL_FILE", path(redis_url_file.clone())),
        ("REDIS_CA_FILE", path(certs.ca())),
        ("SURGE_SEED_DEMO", "true".to_string()),
    ];

    // Without the CA, neither server is trusted, and start-up says which and why.
    let without = |var: &str| -> Vec<(&'static str, String)> {
        env.iter().filter(|(k, _)| *k != var).cloned().collect()
    };
    let (code, out) = failed_start(&without("REDIS_CA_FILE"));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("REDIS_URL") && out.to_lowercase().contains("certificate"),
        "{out}"
    );
    assert!(
        !out.contains("acl-password-0123"),
        "the password never prints: {out}"
    );
    let (code, out) = failed_start(&without("DATABASE_CA_FILE"));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("DATABASE_URL") && out.contains("UnknownIssuer"),
        "{out}"
    );

    // With it, everything works over TLS.
    let origin = OriginProcess::start(&env);
    let client = http();
    for expected in ["MISS", "HIT"] {
        let r = client
            .get(origin.url("/api/elections/1"))
            .send()
            .await
            .expect("read");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()
                .get("x-surge-cache")
                .and_then(|v| v.to_str().ok()),
            Some(expected)
        );
    }
    let (status, health) = admin(&origin, Method::GET, "/performance/health", None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["redis"]["available"], true, "{health}");
    assert_eq!(health["postgres"]["primary"]["ok"], true, "{health}");
    assert!(
        !health.to_string().contains("acl-password-0123"),
        "{health}"
    );
    // The entry reached L2 over TLS.
    let keys = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
        .args(["--tls", "--cacert", &path(certs.ca())])
        .args([
            "--user",
            "surge",
            "--pass",
            "acl-password-0123",
            "--no-auth-warning",
        ])
        .args(["--scan", "--pattern", "surge:v1:e:*elections/1*"])
        .output()
        .expect("redis-cli");
    assert!(
        !String::from_utf8_lossy(&keys.stdout).trim().is_empty(),
        "L2 holds the entry: {keys:?}"
    );
}
