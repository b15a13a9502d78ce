//! The edge conformance scenarios: each one is written once, against any runtime that serves
//! the Worker on a URL, with two scriptable origins as two regions (`eu` first, then `us`).
#![allow(dead_code)] // each runtime runs the scenarios that apply to it

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use surge_testkit::origin::{Reply, TestOrigin};

/// Generates one `#[test]` per scenario that every runtime must pass, each on a fresh stack
/// from `$stack()`: the shared conformance list, so the two adapters cannot drift.
#[macro_export]
macro_rules! conformance_tests {
    ($stack:ident) => {
        $crate::conformance_tests!(@each $stack;
            cache_miss_then_hit_for_equivalent_urls,
            cache_busting_parameters_never_reach_the_origin,
            origin_s_maxage_overrides_the_route_ttl,
            stale_while_revalidate_serves_stale_then_fresh,
            stale_if_error_and_clear_outage_answers,
            credentialed_requests_bypass_the_shared_cache,
            uncacheable_responses_are_never_stored,
            unkeyed_headers_cannot_poison_the_cache,
            geo_routing_fails_over_to_the_next_region,
            rate_limits_answer_429_with_retry_after,
            methods_sizes_health_and_admin_are_guarded,
            bodies_over_the_limit_are_refused_before_they_are_read,
            requests_carry_a_trace_and_a_request_id_to_the_origin,
        );
    };
    (@each $stack:ident; $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                conformance::$scenario(&mut $stack());
            }
        )*
    };
}

/// A runtime serving the edge.
pub trait Edge {
    /// The edge's URL for `path`.
    fn url(&self, path: &str) -> String;
}

/// The edge and its two origin regions.
pub struct Stack<E> {
    pub edge: E,
    pub eu: TestOrigin,
    pub us: TestOrigin,
}

/// Two origins that answer `ok`, and the geo table that points at them (DE → eu, us; US → us,
/// eu; everyone else eu, us). The regions' 8 s timeout leaves room for a machine busy with
/// the whole suite (a 3 s one once turned a slow answer into a 503); the timeout scenario's
/// origin waits 12 s.
pub fn origins() -> (TestOrigin, TestOrigin, String) {
    let eu = TestOrigin::start(|s| Reply::ok(format!("eu {}", s.path))).expect("eu origin");
    let us = TestOrigin::start(|s| Reply::ok(format!("us {}", s.path))).expect("us origin");
    let geo = format!(
        r#"{{"regions":{{"eu":{{"origin":"{}","timeout":"8s"}},"us":{{"origin":"{}","timeout":"8s"}}}},"countries":{{"DE":["eu","us"],"US":["us","eu"]}},"default":["eu","us"]}}"#,
        eu.url(),
        us.url()
    );
    (eu, us, geo)
}

/// A response as the client saw it.
pub struct Got {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn cache(&self) -> &str {
        self.header("x-surge-cache").unwrap_or("")
    }
}

pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Got {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(body.as_bytes().to_vec())
        .expect("valid request");
    let mut response = agent
        .run(request)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    Got {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

pub fn get(url: &str) -> Got {
    send("GET", url, &[], "")
}

/// Polls `check` for up to 10 s.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A counter-backed handler: each answer carries a new version and `cache_control`.
fn versions(origin: &TestOrigin, cache_control: &'static str) -> Arc<AtomicU32> {
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    origin.set(move |_| {
        let v = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::ok(format!("v{v}")).header("cache-control", cache_control)
    });
    n
}

pub fn cache_miss_then_hit_for_equivalent_urls<E: Edge>(s: &mut Stack<E>) {
    let first = get(&s.edge.url("/api/elections/101?b=2&a=1"));
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    assert_eq!(first.header("x-surge-region"), Some("eu"));
    // Developer tools show where the time went: the edge's cache status, then the fetch.
    let timing = first.header("server-timing").unwrap_or_default();
    assert!(
        timing.starts_with("edge;desc=\"MISS\"")
            && timing.contains("origin;dur=")
            && timing.contains("desc=\"eu\""),
        "{timing}"
    );
    let second = get(&s
        .edge
        .url("/api/elections/101?a=1&b=2&utm_source=newsletter&fbclid=x"));
    // The route keys no query parameter: the origin sees none.
    assert_eq!(
        (second.cache(), second.body.as_str()),
        ("HIT", "eu /api/elections/101")
    );
    assert_eq!(second.header("server-timing"), Some("edge;desc=\"HIT\""));
    let head = send("HEAD", &s.edge.url("/api/elections/101?a=1&b=2"), &[], "");
    assert_eq!(
        (head.status, head.cache(), head.body.as_str()),
        (200, "HIT", "")
    );
    assert_eq!(
        s.eu.requests().len(),
        1,
        "one origin fetch for all equivalent URLs"
    );
}

pub fn cache_busting_parameters_never_reach_the_origin<E: Edge>(s: &mut Stack<E>) {
    let first = get(&s.edge.url("/api/elections/7/ballot?r=8f3a91"));
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    for r in ["2b77e0", "c0ffee", "8f3a91&page=9"] {
        let again = get(&s.edge.url(&format!("/api/elections/7/ballot?r={r}")));
        assert_eq!(
            (again.cache(), again.body.as_str()),
            ("HIT", "eu /api/elections/7/ballot"),
            "?r={r}"
        );
    }
    let seen: Vec<String> = s.eu.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        seen,
        ["/api/elections/7/ballot"],
        "one fetch, without the parameter"
    );
}

pub fn origin_s_maxage_overrides_the_route_ttl<E: Edge>(s: &mut Stack<E>) {
    // The route says 60 s; the origin says 1 s and no stale windows.
    versions(
        &s.eu,
        "public, s-maxage=1, stale-while-revalidate=0, stale-if-error=0",
    );
    assert_eq!(get(&s.edge.url("/api/elections/102")).body, "v1");
    assert_eq!(get(&s.edge.url("/api/elections/102")).cache(), "HIT");
    std::thread::sleep(Duration::from_millis(1300));
    let after = get(&s.edge.url("/api/elections/102"));
    // With no stale window left the store may already have dropped the copy (MISS) or still
    // hold it (EXPIRED); either way the origin is asked again.
    assert!(
        matches!(after.cache(), "MISS" | "EXPIRED"),
        "{}",
        after.cache()
    );
    assert_eq!(after.body, "v2");
}

pub fn stale_while_revalidate_serves_stale_then_fresh<E: Edge>(s: &mut Stack<E>) {
    versions(&s.eu, "public, s-maxage=1, stale-while-revalidate=30");
    assert_eq!(get(&s.edge.url("/api/elections/103")).body, "v1");
    std::thread::sleep(Duration::from_millis(1300));
    let stale = get(&s.edge.url("/api/elections/103"));
    assert_eq!((stale.cache(), stale.body.as_str()), ("STALE", "v1"));
    // The refreshed copy replaces v1. Under load a poll can come more than the 1 s TTL after
    // the refresh landed, so the newer copy may itself be served stale (and refreshed again):
    // what matters is that v1 is gone and the answers still come from the cache.
    eventually("the background revalidation to land", || {
        let r = get(&s.edge.url("/api/elections/103"));
        matches!(r.cache(), "HIT" | "STALE") && r.body != "v1" && r.body.starts_with('v')
    });
}

pub fn stale_if_error_and_clear_outage_answers<E: Edge>(s: &mut Stack<E>) {
    versions(
        &s.eu,
        "public, s-maxage=1, stale-while-revalidate=0, stale-if-error=60",
    );
    assert_eq!(get(&s.edge.url("/api/elections/104")).body, "v1");
    s.eu.stop();
    s.us.stop();
    std::thread::sleep(Duration::from_millis(1300));
    let stale = get(&s.edge.url("/api/elections/104"));
    assert_eq!(
        (stale.status, stale.cache(), stale.body.as_str()),
        (200, "STALE", "v1")
    );

    let json = send(
        "GET",
        &s.edge.url("/api/elections/105"),
        &[("accept", "application/json")],
        "",
    );
    assert_eq!(json.status, 503);
    assert_eq!(json.header("retry-after"), Some("5"));
    assert!(json.body.contains("\"unavailable\""), "{}", json.body);
    let html = send(
        "GET",
        &s.edge.url("/api/elections/105"),
        &[("accept", "text/html")],
        "",
    );
    assert_eq!(html.status, 503);
    assert!(
        html.body.contains("Temporarily unavailable"),
        "{}",
        html.body
    );

    s.eu.resume().expect("eu back");
    s.us.resume().expect("us back");
    s.eu.set(|_| Reply::status(500));
    s.us.set(|_| Reply::status(503));
    let bad = get(&s.edge.url("/api/elections/106"));
    assert_eq!((bad.status, bad.header("retry-after")), (502, Some("5")));
}

pub fn credentialed_requests_bypass_the_shared_cache<E: Edge>(s: &mut Stack<E>) {
    s.eu.set(|seen| {
        Reply::ok(match seen.header("cookie") {
            Some(c) if c.contains("auth_token") => "private view".to_string(),
            _ => "public view".to_string(),
        })
    });
    let url = s.edge.url("/api/elections/107");
    let mine = send("GET", &url, &[("cookie", "auth_token=alice")], "");
    assert_eq!(
        (mine.cache(), mine.body.as_str()),
        ("BYPASS", "private view")
    );
    let bearer = send("GET", &url, &[("authorization", "Bearer alice")], "");
    assert_eq!(bearer.cache(), "BYPASS");
    let public = get(&url);
    assert_eq!(
        (public.cache(), public.body.as_str()),
        ("MISS", "public view"),
        "the bypassed answer was not stored"
    );
    assert_eq!(get(&url).cache(), "HIT");
    let again = send(
        "GET",
        &url,
        &[("cookie", "theme=dark; auth_token=alice")],
        "",
    );
    assert_eq!(
        (again.cache(), again.body.as_str()),
        ("BYPASS", "private view"),
        "never served from the shared cache"
    );
}

pub fn uncacheable_responses_are_never_stored<E: Edge>(s: &mut Stack<E>) {
    s.eu.set(|seen| match seen.path.as_str() {
        "/api/elections/108" => Reply::ok("a").header("set-cookie", "session=1"),
        "/api/elections/109" => Reply::ok("b").header("cache-control", "private, max-age=60"),
        "/api/elections/110" => Reply::ok("c").header("cache-control", "no-store"),
        _ => Reply::ok("receipt"),
    });
    for id in [108, 109, 110] {
        let url = s.edge.url(&format!("/api/elections/{id}"));
        assert_eq!(get(&url).cache(), "MISS");
        assert_eq!(
            get(&url).cache(),
            "MISS",
            "election {id} must not have been stored"
        );
    }
    let vote = send(
        "POST",
        &s.edge.url("/api/elections/108/votes"),
        &[("cookie", "auth_token=v")],
        "{}",
    );
    assert_eq!((vote.status, vote.cache()), (200, "BYPASS"));
}

pub fn unkeyed_headers_cannot_poison_the_cache<E: Edge>(s: &mut Stack<E>) {
    s.eu.set(|seen| {
        let reflected: Vec<&str> = [
            "x-forwarded-host",
            "x-original-url",
            "x-rewrite-url",
            "x-forwarded-scheme",
            "x-http-method-override",
        ]
        .iter()
        .filter_map(|h| seen.header(h))
        .collect();
        Reply::ok(format!("{} [{}]", seen.method, reflected.join(",")))
    });
    let url = s.edge.url("/api/elections/111");
    let attack = send(
        "GET",
        &url,
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("x-forwarded-scheme", "http"),
            ("x-http-method-override", "DELETE"),
        ],
        "",
    );
    assert_eq!(attack.body, "GET []");
    let victim = get(&url);
    assert_eq!((victim.cache(), victim.body.as_str()), ("HIT", "GET []"));
}

pub fn geo_routing_fails_over_to_the_next_region<E: Edge>(s: &mut Stack<E>) {
    let first = get(&s.edge.url("/api/elections/112"));
    assert_eq!(
        (first.header("x-surge-region"), first.body.as_str()),
        (Some("eu"), "eu /api/elections/112")
    );
    s.eu.stop();
    let over = get(&s.edge.url("/api/elections/113"));
    assert_eq!(
        (over.status, over.header("x-surge-region")),
        (200, Some("us"))
    );
    s.eu.resume().expect("eu back");
    s.eu.set(|_| Reply::status(500));
    let over = get(&s.edge.url("/api/elections/114"));
    assert_eq!(
        over.header("x-surge-region"),
        Some("us"),
        "a 5xx fails over too"
    );
    s.eu.set(|_| Reply::ok("slow").after(Duration::from_secs(12)));
    let over = get(&s.edge.url("/api/elections/115"));
    assert_eq!(
        over.header("x-surge-region"),
        Some("us"),
        "a timeout fails over too"
    );
}

pub fn us_clients_go_to_the_us_region_first<E: Edge>(s: &mut Stack<E>) {
    let r = get(&s.edge.url("/api/elections/116"));
    assert_eq!(r.header("x-surge-region"), Some("us"));
}

pub fn rate_limits_answer_429_with_retry_after<E: Edge>(s: &mut Stack<E>) {
    // login: 10 per minute per IP. The Workers binding counts approximately (a sliding
    // window), so a burst of 30 must see the first few through and most of the rest refused.
    let login = s.edge.url("/api/login");
    let answers: Vec<Got> = (0..30).map(|_| send("POST", &login, &[], "{}")).collect();
    assert!(
        answers[..5].iter().all(|a| a.status == 200),
        "the first logins are within the quota"
    );
    let refused: Vec<&Got> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(
        refused.len() >= 15,
        "only {} of 30 logins were refused",
        refused.len()
    );
    assert!(refused.iter().all(|r| {
        r.header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    }));
    assert!(
        refused[0].body.contains("rate_limited"),
        "{}",
        refused[0].body
    );
    // vote: exactly 3 per minute per voter the cookie proves.
    let vote = |who: &str| {
        send(
            "POST",
            &s.edge.url("/api/elections/1/votes"),
            &[("cookie", &session(who))],
            "{}",
        )
    };
    for _ in 0..3 {
        assert_eq!(vote("alice").status, 200);
    }
    let fourth = vote("alice");
    assert_eq!(fourth.status, 429);
    assert!(
        fourth
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| (1..=60).contains(&s))
    );
    assert_eq!(vote("bob").status, 200, "another voter has their own quota");
    // A cookie that does not verify is counted by network: forged voters share one quota.
    let forged: Vec<u16> = (0..4)
        .map(|n| {
            send(
                "POST",
                &s.edge.url("/api/elections/1/votes"),
                &[(
                    "cookie",
                    &format!("auth_token=v1.mallory-{n}.4000000000.00"),
                )],
                "{}",
            )
            .status
        })
        .collect();
    assert_eq!(forged[..3], [200, 200, 200]);
    assert_eq!(forged[3], 429, "forged cookies share the network's quota");
}

/// The login cookie key the edges under test verify with (`SURGE_COOKIE_KEYS`).
pub const COOKIE_KEY: &str = "conformance-cookie-key-0123456789abcdef";
/// The key the edges under test sign origin requests with (`SURGE_EDGE_KEYS`).
pub const EDGE_KEY: &str = "conformance:edge-key-0123456789abcdef0123456789";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An `auth_token` cookie the origin would issue to `voter`, valid for an hour.
pub fn session(voter: &str) -> String {
    format!(
        "auth_token={}",
        surge_shared::session::issue(COOKIE_KEY.as_bytes(), voter, unix_now() + 3600)
    )
}

pub fn methods_sizes_health_and_admin_are_guarded<E: Edge>(s: &mut Stack<E>) {
    let r = send("DELETE", &s.edge.url("/api/elections/1"), &[], "");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = get(&s.edge.url("/__surge/health"));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"eu\""), "{}", r.body);
    let r = get(&s.edge.url("/performance/health"));
    assert_eq!(r.status, 404);
    assert!(
        s.eu.requests().is_empty() && s.us.requests().is_empty(),
        "nothing reached an origin"
    );
    let r = send(
        "GET",
        &s.edge.url("/api/elections/117"),
        &[("keep-alive", "timeout=99"), ("x-original-url", "/admin")],
        "",
    );
    assert_eq!(r.status, 200);
    let seen = s.eu.requests();
    let last = seen.last().expect("the request reached eu");
    assert!(last.header("x-original-url").is_none());
    // Signed for the origin: the signature verifies for exactly this request, and a
    // client's own signature header never passes through.
    let keys = surge_shared::edge_auth::parse_keys(EDGE_KEY).expect("key");
    let signature = last.header(surge_shared::edge_auth::HEADER);
    assert_eq!(
        surge_shared::edge_auth::verify(&keys, signature, unix_now(), &last.method, &last.path),
        Ok(()),
        "{signature:?} for {} {}",
        last.method,
        last.path
    );
    let forged =
        "v1 conformance 1 0000000000000000000000000000000000000000000000000000000000000000";
    send(
        "GET",
        &s.edge.url("/api/elections/118"),
        &[(surge_shared::edge_auth::HEADER, forged)],
        "",
    );
    let seen = s.eu.requests();
    let last = seen.last().expect("the request reached eu");
    assert_ne!(last.header(surge_shared::edge_auth::HEADER), Some(forged));
    assert!(
        surge_shared::edge_auth::verify(
            &keys,
            last.header(surge_shared::edge_auth::HEADER),
            unix_now(),
            "GET",
            &last.path
        )
        .is_ok()
    );
    // Last: under `wrangler dev` on a loaded machine, the request after an early 413 to a
    // client still sending its body has been seen to stall for 30 s in the local proxy (the
    // body-limit scenario covers 413s on raw connections).
    let r = send("POST", &s.edge.url("/api/login"), &[], &"x".repeat(5000));
    assert_eq!(r.status, 413);
}

/// Writes `head` (and `chunks`, paced) on a raw connection to the edge at `url` and returns
/// the head of the Worker's answer (status line first) while the connection is still open: a
/// body the edge waited for in full would never come, so an answer proves it stopped reading.
///
/// `wrangler dev`'s local proxy, on a loaded machine, has answered a raw connection with its
/// own 503 right after an early 413 to another client still sending: an answer without the
/// edge's `x-surge-cache` header did not come from the Worker, and the request is sent again
/// (at most twice more, each time said on stderr).
fn answer_before_the_body_ends(url: &str, head: &str, chunks: &[String]) -> String {
    for _ in 0..2 {
        let answer = raw_exchange(url, head, chunks);
        if answer.to_ascii_lowercase().contains("\nx-surge-cache:") {
            return answer;
        }
        eprintln!("not the Worker's answer, sending again: {answer:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    raw_exchange(url, head, chunks)
}

/// One raw exchange for [`answer_before_the_body_ends`]: the answer's head.
fn raw_exchange(url: &str, head: &str, chunks: &[String]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port")
        .to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect to the edge");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("head");
    for chunk in chunks {
        // The edge may answer and close mid-way; later writes may then fail.
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    if let Err(e) = reader.read_line(&mut answer) {
        panic!(
            "no answer before the body ended ({e}) to {:?}",
            head.lines().next().unwrap_or_default()
        );
    }
    // The header lines, until the blank line (or the connection ends).
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line != "\r\n" => answer.push_str(&line),
            _ => break,
        }
    }
    answer
}

pub fn bodies_over_the_limit_are_refused_before_they_are_read<E: Edge>(s: &mut Stack<E>) {
    let url = s.edge.url("/api/login");
    // Declared too large: 413 at once, though not one byte of the body is ever sent.
    let head = "POST /api/login HTTP/1.1\r\nHost: vote.example\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\nX-Case: declared\r\n\r\n";
    let status = answer_before_the_body_ends(&url, head, &[]);
    assert!(status.starts_with("HTTP/1.1 413 "), "{status:?}");
    // Chunked, with no length: cut off once it passes the login route's 4 KiB, though the
    // body never ends.
    let head = "POST /api/login HTTP/1.1\r\nHost: vote.example\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
    let status = answer_before_the_body_ends(&url, head, &vec![chunk; 8]);
    assert!(status.starts_with("HTTP/1.1 413 "), "{status:?}");
    assert!(
        s.eu.requests().is_empty() && s.us.requests().is_empty(),
        "nothing reached an origin"
    );
    // Within the limit, a chunked body passes whole.
    let head = "POST /api/login HTTP/1.1\r\nHost: vote.example\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let chunks = [
        format!("200\r\n{}\r\n", "y".repeat(0x200)),
        format!("200\r\n{}\r\n", "y".repeat(0x200)),
        "0\r\n\r\n".to_string(),
    ];
    let status = answer_before_the_body_ends(&url, head, &chunks);
    assert!(status.starts_with("HTTP/1.1 200 "), "{status:?}");
    let seen = s.eu.requests();
    let last = seen.last().expect("the login reached eu");
    assert_eq!(last.body.len(), 0x400);
}

/// The edge continues the caller's W3C trace (or starts one) and passes it, with a request
/// id, to the origin; the client gets the request id back, never a stored copy's ids.
pub fn requests_carry_a_trace_and_a_request_id_to_the_origin<E: Edge>(s: &mut Stack<E>) {
    // An origin that names its own span, as a traced origin does.
    s.eu.set(|seen| {
        Reply::ok(format!("eu {}", seen.path)).header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
    });
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let got = send(
        "GET",
        &s.edge.url("/api/elections"),
        &[("traceparent", caller), ("x-request-id", "req-42")],
        "",
    );
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("x-request-id"), Some("req-42"));
    assert_eq!(got.header("traceparent"), None, "origin ids stay inside");
    let seen = s.eu.requests();
    let sent = seen.last().expect("the request reached eu");
    let traceparent = sent.header("traceparent").unwrap_or_default();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
            && traceparent.ends_with("-01"),
        "{traceparent}"
    );
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "the edge's hop has a span of its own: {traceparent}"
    );
    assert_eq!(sent.header("x-request-id"), Some("req-42"));

    // Without them (or with a malformed one): a new sampled trace, whose id names the request.
    let got = send(
        "GET",
        &s.edge.url("/api/elections/2/ballot"),
        &[("traceparent", "garbage"), ("x-request-id", "not a token")],
        "",
    );
    assert_eq!(got.status, 200, "{}", got.body);
    let seen = s.eu.requests();
    let sent = seen.last().expect("the request reached eu");
    let traceparent = sent.header("traceparent").unwrap_or_default().to_string();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    let (trace_id, span_id) = (parts[1], parts[2]);
    let hex = |text: &str, len: usize| {
        text.len() == len
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && text.bytes().any(|b| b != b'0')
    };
    assert!(hex(trace_id, 32) && hex(span_id, 16), "{traceparent}");
    assert_eq!(parts[3], "01");
    assert_eq!(sent.header("x-request-id"), Some(trace_id));
    assert_eq!(got.header("x-request-id"), Some(trace_id));

    // Every request gets its own trace.
    get(&s.edge.url("/api/elections/3/ballot"));
    let seen = s.eu.requests();
    let next = seen
        .last()
        .and_then(|r| r.header("traceparent"))
        .unwrap_or_default();
    assert!(!next.contains(trace_id), "{next} repeats {traceparent}");
}
