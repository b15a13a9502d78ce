//! Runs the real `surge-origin` binary on a free loopback port for tests that need whole
//! processes (several origins on one Redis, killing an origin mid-flight).

// Every test crate includes this module and uses a different part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use surge_testkit::net::free_port;
use surge_testkit::process::{ChildGuard, tail};

/// The admin token every test origin uses.
pub const TOKEN: &str = "test-admin-token-0123456789";
/// The cookie key every test origin uses (so processes accept each other's logins).
pub const COOKIE_KEY: &str = "test-cookie-key-0123456789abcdef0123456789";
/// The pepper every test origin hashes voting codes with.
pub const PEPPER: &str = "test-voter-pepper-0123456789abcdef0123456789";

/// One origin process.
pub struct OriginProcess {
    child: ChildGuard,
    port: u16,
    admin_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OriginProcess {
    /// Starts the binary with `env` (plus listen address, admin token and cookie key) and
    /// waits for `/healthz`.
    pub fn start(env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port().expect("port");
        let admin_port = free_port().expect("admin port");
        let log = dir.path().join("origin.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_surge-origin"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SURGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SURGE_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("SURGE_ADMIN_TOKEN", TOKEN)
            .env("SURGE_COOKIE_KEYS", COOKIE_KEY)
            .env("SURGE_VOTER_PEPPER", PEPPER)
            .env("SURGE_INSECURE_COOKIES", "true")
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            command.env(k, v);
        }
        let child = ChildGuard::spawn(&mut command, &log).expect("spawn surge-origin");
        let mut me = Self {
            child,
            port,
            admin_port,
            log,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if healthy(port) {
                break;
            }
            assert!(
                me.child.is_running() && start.elapsed() < Duration::from_secs(30),
                "surge-origin did not start: {}",
                tail(&me.log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    /// Sends SIGTERM, as Kubernetes does when it stops a pod.
    pub fn terminate(&self) {
        self.child.terminate();
    }

    /// Waits up to `limit` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        self.child.wait_exit(limit).and_then(|s| s.code())
    }

    /// `path` on this origin: `/performance/*` on the admin listener, everything else on the
    /// public one.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/performance") {
            self.admin_url(path)
        } else {
            self.public_url(path)
        }
    }

    /// `path` on the public listener.
    pub fn public_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Kills the process with SIGKILL (no graceful shutdown).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 40)
    }
}

/// Whether `GET /healthz` on `port` answers 200 (plain HTTP/1.0 over a socket, so this
/// works before any async runtime exists).
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// An HTTP client that keeps cookies off (tests send them explicitly).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Polls `check` until it holds or 20 s pass.
pub async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    eventually_within(what, Duration::from_secs(20), check).await;
}

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually_within(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The voting code tests give `voter`: 26 hex digits of its SHA-256 (valid Crockford
/// base32), the same in every process.
pub fn code_of(voter: &str) -> String {
    use sha2::Digest;
    hex::encode_upper(&sha2::Sha256::digest(voter.as_bytes())[..13])
}

/// Registers `voter` for `elections` with [`code_of`] through the admin API (a voter already
/// registered stays as it is).
pub async fn register(origin: &OriginProcess, voter: &str, elections: &[i64]) {
    let (status, body) = admin(
        origin,
        reqwest::Method::POST,
        "/performance/voters",
        Some(serde_json::json!({
            "voters": [{ "voter_id": voter, "elections": elections, "code": code_of(voter) }]
        })),
    )
    .await;
    assert_eq!(status, 200, "registering {voter}: {body}");
}

/// Logs `voter` in with `code` and returns the response.
pub async fn try_login(
    client: &reqwest::Client,
    origin: &OriginProcess,
    voter: &str,
    code: &str,
) -> reqwest::Response {
    client
        .post(origin.url("/api/login"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "voter_id": voter, "code": code }).to_string())
        .send()
        .await
        .expect("login request")
}

/// Registers `voter` for election 1, logs them in on `origin` and returns the
/// `auth_token=…` cookie pair.
pub async fn login(client: &reqwest::Client, origin: &OriginProcess, voter: &str) -> String {
    register(origin, voter, &[1]).await;
    let response = try_login(client, origin, voter, &code_of(voter)).await;
    assert_eq!(response.status(), 200, "login failed");
    set_cookie(&response)
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The value of header `name` in `response` as text, empty when it is absent.
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The `Set-Cookie` header of `response` (which must have one).
pub fn set_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie")
        .to_string()
}

/// An admin API call with the test token: the status and the JSON body (or the text as a
/// JSON string when it is not JSON).
pub async fn admin(
    origin: &OriginProcess,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = http().request(method, origin.url(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.expect("admin call");
    let status = r.status();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// `GET /performance/metrics` (OpenMetrics text).
pub async fn metrics(origin: &OriginProcess) -> String {
    http()
        .get(origin.url("/performance/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Casts `option` in election 1 as the voter of `cookie`: the status, `Retry-After` and the
/// JSON body.
pub async fn vote(
    client: &reqwest::Client,
    origin: &OriginProcess,
    cookie: &str,
    option: i32,
) -> (reqwest::StatusCode, Option<u64>, serde_json::Value) {
    let r = client
        .post(origin.url("/api/elections/1/votes"))
        .header("content-type", "application/json")
        .header("cookie", cookie)
        .body(serde_json::json!({ "option_id": option }).to_string())
        .send()
        .await
        .expect("vote");
    let status = r.status();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (
        status,
        retry_after,
        r.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Runs the binary with `args` and only `env` (and `PATH`) until it exits: its exit code and
/// everything it printed.
pub fn run_origin(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_surge-origin"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run surge-origin");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A cluster for the scaling hooks: the Kubernetes stand-in with the three workloads the
/// origin manages by default (api-gateway 2–20, auth-service 2–10, voting-service 3–50) and
/// the settings that point an origin at it (through a kubeconfig in the returned directory).
pub fn cluster() -> (
    surge_testkit::kube::KubeStandin,
    tempfile::TempDir,
    [(&'static str, String); 2],
) {
    let kube = surge_testkit::kube::KubeStandin::start(
        "surge",
        &[
            ("api-gateway", 2, 20, 2),
            ("auth-service", 2, 10, 2),
            ("voting-service", 3, 50, 3),
        ],
    )
    .expect("kube stand-in");
    let dir = tempfile::tempdir().expect("dir");
    let kubeconfig = kube.write_kubeconfig(dir.path()).expect("kubeconfig");
    let env = [
        ("SURGE_KUBE", "kubeconfig".to_string()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
    ];
    (kube, dir, env)
}
