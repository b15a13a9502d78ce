//! The edge pipeline, natively, over in-memory platform pieces and a scripted upstream.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures_executor::block_on;
use surge_edge::config::EdgeConfig;
use surge_edge::http::{Client, EdgeRequest, EdgeResponse, Headers};
use surge_edge::pipeline::Pipeline;
use surge_edge::platform::memory::{ManualClock, MemoryLimiter, MemoryStore, TaskQueue};
use surge_edge::seams::{FetchError, Upstream};
use surge_shared::CacheKey;

type Handler = Box<dyn Fn(&EdgeRequest) -> Result<EdgeResponse, FetchError>>;

/// Origins by base URL; every request is logged.
#[derive(Clone, Default)]
struct Origins {
    handlers: Rc<RefCell<HashMap<String, Handler>>>,
    log: Rc<RefCell<Vec<EdgeRequest>>>,
}

impl Origins {
    fn set(
        &self,
        origin: &str,
        handler: impl Fn(&EdgeRequest) -> Result<EdgeResponse, FetchError> + 'static,
    ) {
        self.handlers
            .borrow_mut()
            .insert(origin.to_string(), Box::new(handler));
    }

    fn calls(&self) -> usize {
        self.log.borrow().len()
    }

    fn last(&self) -> EdgeRequest {
        self.log
            .borrow()
            .last()
            .cloned()
            .expect("at least one upstream call")
    }
}

impl Upstream for Origins {
    async fn fetch(
        &self,
        request: &EdgeRequest,
        _timeout: Duration,
    ) -> Result<EdgeResponse, FetchError> {
        self.log.borrow_mut().push(request.clone());
        let handlers = self.handlers.borrow();
        let handler = handlers
            .iter()
            .find(|(origin, _)| request.url.starts_with(origin.as_str()))
            .map(|(_, h)| h)
            .ok_or_else(|| FetchError::Connect("no such origin".into()))?;
        handler(request)
    }
}

fn ok(body: &str, headers: &[(&str, &str)]) -> Result<EdgeResponse, FetchError> {
    Ok(EdgeResponse {
        status: 200,
        headers: headers.iter().map(|(k, v)| (*k, *v)).collect(),
        body: body.as_bytes().to_vec(),
    })
}

fn status(code: u16) -> Result<EdgeResponse, FetchError> {
    Ok(EdgeResponse {
        status: code,
        headers: Headers::new(),
        body: b"origin error".to_vec(),
    })
}

const EU: &str = "http://eu.test";
const US: &str = "http://us.test";

type TestPipeline =
    Pipeline<MemoryStore<ManualClock>, MemoryLimiter<ManualClock>, Origins, ManualClock, TaskQueue>;

struct World {
    pipeline: TestPipeline,
    origins: Origins,
    clock: ManualClock,
    tasks: TaskQueue,
}

/// The cookie key the origin signs sessions with (the edge verifies them).
const COOKIE_KEY: &str = "pipeline-test-cookie-key-0123456789abcdef";

/// An `auth_token` cookie the origin would issue to `voter`.
fn session(voter: &str) -> String {
    format!(
        "auth_token={}",
        // An hour after the world's clock (ManualClock::at(1_700_000_000_000)).
        surge_shared::session::issue(COOKIE_KEY.as_bytes(), voter, 1_700_003_600)
    )
}

fn world() -> World {
    let geo = format!(
        r#"{{"regions":{{"eu":{{"origin":"{EU}"}},"us":{{"origin":"{US}"}}}},
            "countries":{{"US":["us","eu"]}},"continents":{{"EU":["eu","us"]}},"default":["eu","us"]}}"#
    );
    let config = EdgeConfig::from_vars(|name| match name {
        "SURGE_GEO" => Some(geo.clone()),
        "SURGE_COOKIE_KEYS" => Some(COOKIE_KEY.to_string()),
        _ => None,
    })
    .expect("config");
    let clock = ManualClock::at(1_700_000_000_000);
    let origins = Origins::default();
    let tasks = TaskQueue::new();
    let pipeline = Pipeline::new(
        config,
        MemoryStore::new(clock.clone(), 1000),
        MemoryLimiter::new(clock.clone()),
        origins.clone(),
        clock.clone(),
        tasks.clone(),
    );
    World {
        pipeline,
        origins,
        clock,
        tasks,
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> EdgeRequest {
    request("GET", url, headers, "")
}

fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> EdgeRequest {
    EdgeRequest {
        method: method.into(),
        url: url.into(),
        headers: headers.iter().map(|(k, v)| (*k, *v)).collect(),
        body: body.as_bytes().to_vec(),
        client: Client {
            ip: Some("198.51.100.7".into()),
            country: Some("DE".into()),
            continent: Some("EU".into()),
        },
    }
}

impl World {
    fn send(&self, req: EdgeRequest) -> EdgeResponse {
        block_on(self.pipeline.handle(req))
    }
}

fn cache(r: &EdgeResponse) -> &str {
    r.headers.get("x-surge-cache").unwrap_or("")
}

fn body(r: &EdgeResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn miss_then_hit_and_equivalent_urls_share_one_entry() {
    let w = world();
    w.origins.set(EU, |_| ok("elections", &[]));
    let first = w.send(get("https://vote.example/api/elections/7?a=1&b=2", &[]));
    assert_eq!((first.status, cache(&first)), (200, "MISS"));
    assert_eq!(first.headers.get("x-surge-region"), Some("eu"));
    let second = w.send(get(
        "https://VOTE.example/api/elections/7?b=2&a=1&utm_source=x",
        &[],
    ));
    assert_eq!(
        (cache(&second), body(&second).as_str()),
        ("HIT", "elections")
    );
    assert_eq!(second.headers.get("x-surge-tier"), Some("edge"));
    assert_eq!(w.origins.calls(), 1);
    // The route keys no query parameter, so none reaches the origin.
    assert_eq!(w.origins.last().url, "http://eu.test/api/elections/7");
}

#[test]
fn route_ttl_and_origin_s_maxage_decide_freshness() {
    let w = world();
    w.origins.set(EU, |r| {
        if r.url.contains("/7") {
            ok("short", &[("cache-control", "public, s-maxage=2")])
        } else {
            ok("route", &[])
        }
    });
    w.send(get("https://vote.example/api/elections/7", &[]));
    w.send(get("https://vote.example/api/elections/8", &[]));
    w.clock.advance(Duration::from_secs(3));
    // s-maxage=2 has passed (the route's stale-while-revalidate still applies); 60 s has not.
    assert_eq!(
        cache(&w.send(get("https://vote.example/api/elections/8", &[]))),
        "HIT"
    );
    assert_eq!(
        cache(&w.send(get("https://vote.example/api/elections/7", &[]))),
        "STALE"
    );
}

#[test]
fn stale_while_revalidate_serves_stale_then_fresh() {
    let w = world();
    let version = Rc::new(RefCell::new(1));
    let v = version.clone();
    w.origins
        .set(EU, move |_| ok(&format!("v{}", v.borrow()), &[]));
    w.send(get("https://vote.example/api/elections/7", &[]));
    *version.borrow_mut() = 2;
    w.clock.advance(Duration::from_secs(61));
    let stale = w.send(get("https://vote.example/api/elections/7", &[]));
    assert_eq!((cache(&stale), body(&stale).as_str()), ("STALE", "v1"));
    assert_eq!(w.tasks.len(), 1, "revalidation runs in the background");
    block_on(w.tasks.run_all());
    let fresh = w.send(get("https://vote.example/api/elections/7", &[]));
    assert_eq!((cache(&fresh), body(&fresh).as_str()), ("HIT", "v2"));
}

#[test]
fn stale_if_error_covers_an_origin_outage() {
    let w = world();
    w.origins.set(EU, |_| ok("ballot", &[]));
    w.send(get("https://vote.example/api/elections/7", &[]));
    // Past TTL (60 s) and SWR (30 s), inside stale-if-error (1 h); both regions down.
    w.clock.advance(Duration::from_secs(120));
    w.origins
        .set(EU, |_| Err(FetchError::Connect("refused".into())));
    w.origins.set(US, |_| status(503));
    let r = w.send(get("https://vote.example/api/elections/7", &[]));
    assert_eq!(
        (r.status, cache(&r), body(&r).as_str()),
        (200, "STALE", "ballot")
    );
}

#[test]
fn no_copy_and_no_origin_gives_a_clear_error_with_retry_after() {
    let w = world();
    w.origins
        .set(EU, |_| Err(FetchError::Timeout(Duration::from_secs(10))));
    w.origins
        .set(US, |_| Err(FetchError::Connect("refused".into())));
    let json = w.send(get(
        "https://vote.example/api/elections/9",
        &[("accept", "application/json")],
    ));
    assert_eq!(json.status, 503);
    assert_eq!(json.headers.get("retry-after"), Some("5"));
    assert_eq!(json.headers.get("content-type"), Some("application/json"));
    assert!(body(&json).contains("\"unavailable\""));
    let html = w.send(get(
        "https://vote.example/api/elections/9",
        &[("accept", "text/html")],
    ));
    assert!(body(&html).contains("<h1>Temporarily unavailable</h1>"));
    w.origins.set(EU, |_| status(500));
    w.origins.set(US, |_| status(502));
    assert_eq!(
        w.send(get("https://vote.example/api/elections/9", &[]))
            .status,
        502
    );
}

#[test]
fn credentialed_requests_bypass_and_are_never_stored() {
    let w = world();
    w.origins.set(EU, |r| {
        ok(
            if r.headers.contains("cookie") {
                "private view"
            } else {
                "public view"
            },
            &[],
        )
    });
    let with_cookie = w.send(get(
        "https://vote.example/api/elections/7",
        &[("cookie", "theme=dark; auth_token=abc")],
    ));
    assert_eq!(
        (cache(&with_cookie), body(&with_cookie).as_str()),
        ("BYPASS", "private view")
    );
    let with_auth = w.send(get(
        "https://vote.example/api/elections/7",
        &[("authorization", "Bearer x")],
    ));
    assert_eq!(cache(&with_auth), "BYPASS");
    let anonymous = w.send(get(
        "https://vote.example/api/elections/7",
        &[("cookie", "theme=dark")],
    ));
    assert_eq!(
        (cache(&anonymous), body(&anonymous).as_str()),
        ("MISS", "public view"),
        "non-auth cookies are not forwarded on shared routes"
    );
    assert!(!w.origins.last().headers.contains("cookie"));
    // The credentialed request still bypasses once a shared copy exists.
    let again = w.send(get(
        "https://vote.example/api/elections/7",
        &[("cookie", "auth_token=abc")],
    ));
    assert_eq!(
        (cache(&again), body(&again).as_str()),
        ("BYPASS", "private view")
    );
}

#[test]
fn responses_with_cookies_private_or_to_posts_are_never_stored() {
    let w = world();
    w.origins.set(EU, |r| match r.url.rsplit('/').next() {
        Some("1") => ok("a", &[("set-cookie", "s=1")]),
        Some("2") => ok("b", &[("cache-control", "private, max-age=60")]),
        _ => ok("c", &[("cache-control", "no-store")]),
    });
    for id in ["1", "2", "3"] {
        let url = format!("https://vote.example/api/elections/{id}");
        assert_eq!(cache(&w.send(get(&url, &[]))), "MISS");
        assert_eq!(
            cache(&w.send(get(&url, &[]))),
            "MISS",
            "{id} must not have been stored"
        );
    }
    assert_eq!(w.pipeline.store().len(), 0);
    let vote = w.send(request(
        "POST",
        "https://vote.example/api/elections/1/votes",
        &[],
        "{}",
    ));
    assert_eq!(cache(&vote), "BYPASS");
    assert_eq!(w.pipeline.store().len(), 0);
}

#[test]
fn unkeyed_headers_neither_reach_the_origin_nor_poison_the_cache() {
    let w = world();
    w.origins.set(EU, |r| {
        let reflected: Vec<String> = [
            "x-forwarded-host",
            "x-original-url",
            "x-forwarded-scheme",
            "x-http-method-override",
        ]
        .iter()
        .filter_map(|h| r.headers.get(h).map(str::to_string))
        .collect();
        ok(&format!("{} {}", r.method, reflected.join(",")), &[])
    });
    let poisoned = w.send(get(
        "https://vote.example/api/elections/7",
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-original-url", "/admin"),
            ("x-forwarded-scheme", "http"),
            ("x-http-method-override", "DELETE"),
        ],
    ));
    assert_eq!(body(&poisoned), "GET ");
    let clean = w.send(get("https://vote.example/api/elections/7", &[]));
    assert_eq!((cache(&clean), body(&clean).as_str()), ("HIT", "GET "));
}

#[test]
fn geo_routing_fails_over_in_order() {
    let w = world();
    w.origins
        .set(EU, |_| Err(FetchError::Connect("refused".into())));
    w.origins.set(US, |_| ok("from us", &[]));
    let r = w.send(get("https://vote.example/api/elections/7", &[]));
    assert_eq!(
        (r.status, r.headers.get("x-surge-region")),
        (200, Some("us"))
    );
    // A 5xx also fails over for reads.
    w.origins.set(EU, |_| status(500));
    let r = w.send(get("https://vote.example/api/elections/8", &[]));
    assert_eq!(r.headers.get("x-surge-region"), Some("us"));
    // A US client goes to us first.
    w.origins.set(EU, |_| ok("from eu", &[]));
    let mut req = get("https://vote.example/api/elections/9", &[]);
    req.client.country = Some("US".into());
    assert_eq!(w.send(req).headers.get("x-surge-region"), Some("us"));
}

#[test]
fn a_vote_is_not_replayed_on_another_region_after_a_5xx() {
    let w = world();
    w.origins.set(EU, |_| status(500));
    w.origins.set(US, |_| ok("receipt", &[]));
    let r = w.send(request(
        "POST",
        "https://vote.example/api/elections/1/votes",
        &[("cookie", "auth_token=a")],
        "{}",
    ));
    assert_eq!(r.status, 502);
    assert_eq!(w.origins.calls(), 1);
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let w = world();
    w.origins.set(EU, |_| ok("receipt", &[]));
    // The vote quota: 3 per minute per voter the cookie proves.
    let vote = |who: &str| {
        request(
            "POST",
            "https://vote.example/api/elections/1/votes",
            &[("cookie", &session(who))],
            "{}",
        )
    };
    for _ in 0..3 {
        assert_eq!(w.send(vote("alice")).status, 200);
    }
    let limited = w.send(vote("alice"));
    assert_eq!(limited.status, 429);
    let retry: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=60).contains(&retry));
    assert!(body(&limited).contains("rate_limited"));
    assert_eq!(
        w.send(vote("bob")).status,
        200,
        "another voter has their own quota"
    );
    // Unverifiable cookies are counted by network, together.
    let forged = |n: usize| {
        request(
            "POST",
            "https://vote.example/api/elections/1/votes",
            &[(
                "cookie",
                &format!("auth_token=v1.mallory-{n}.4000000000.00"),
            )],
            "{}",
        )
    };
    let answers: Vec<u16> = (0..4).map(|n| w.send(forged(n)).status).collect();
    assert_eq!(
        answers,
        [200, 200, 200, 429],
        "forged cookies share one quota"
    );
}

#[test]
fn method_size_health_and_admin_guards() {
    let w = world();
    w.origins.set(EU, |_| ok("x", &[]));
    let r = w.send(request(
        "DELETE",
        "https://vote.example/api/elections/1",
        &[],
        "",
    ));
    assert_eq!((r.status, r.headers.get("allow")), (405, Some("GET, HEAD")));
    let r = w.send(request(
        "POST",
        "https://vote.example/api/login",
        &[],
        &"x".repeat(5000),
    ));
    assert_eq!(r.status, 413);
    let r = w.send(get("https://vote.example/__surge/health", &[]));
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("\"eu\""));
    let r = w.send(get("https://vote.example/performance/cache/stats", &[]));
    assert_eq!(r.status, 404);
    let r = w.send(get(
        "https://vote.example/performance/%2e%2e/performance/health",
        &[],
    ));
    assert_eq!(r.status, 404);
    assert_eq!(w.origins.calls(), 0);
    let r = w.send(get("ftp://vote.example/", &[]));
    assert_eq!(r.status, 400);
}

#[test]
fn stored_copy_keeps_tags_for_purge_and_clients_never_see_them() {
    let w = world();
    w.origins.set(EU, |_| {
        ok(
            "results",
            &[("cache-tag", "Election:7, custom"), ("x-surge-tier", "l1")],
        )
    });
    let r = w.send(get("https://vote.example/api/elections/7/results", &[]));
    assert!(!r.headers.contains("cache-tag"));
    assert_eq!(r.headers.get("x-surge-tier"), Some("l1"));
    let key = CacheKey::new(
        &w.pipeline.config().policy.key,
        "GET",
        "https://vote.example/api/elections/7/results",
        &Headers::new(),
    )
    .expect("key");
    let stored = w.pipeline.store().peek(&key).expect("stored");
    assert_eq!(
        stored.headers.get("cache-tag"),
        Some("results:7,election:7,custom")
    );
    let hit = w.send(get("https://vote.example/api/elections/7/results", &[]));
    assert!(!hit.headers.contains("cache-tag") && !hit.headers.contains("x-surge-stored-at"));
}

#[test]
fn head_is_answered_from_the_get_entry_without_a_body() {
    let w = world();
    w.origins.set(EU, |_| ok("full body", &[]));
    let head = w.send(request(
        "HEAD",
        "https://vote.example/api/elections/7",
        &[],
        "",
    ));
    assert_eq!(
        (head.status, cache(&head), head.body.len()),
        (200, "MISS", 0)
    );
    assert_eq!(w.origins.last().method, "GET");
    let get_r = w.send(get("https://vote.example/api/elections/7", &[]));
    assert_eq!((cache(&get_r), body(&get_r).as_str()), ("HIT", "full body"));
}

#[test]
fn path_confusion_and_deception_never_cache_private_data() {
    // A careless origin: private data with a cacheable Cache-Control on any path that
    // mentions the voter's own data. The edge must still never store it.
    let deceptive = [
        "/api/me/votes/1.css",
        "/api/me/votes/1/style.css",
        "/api/me/votes/1;.js",
        "/api/me/..%2fme/votes/1",
        "/api/elections/1/..%2f..%2fme/votes/1",
        "/api/elections/1/%2e%2e/%2e%2e/me/votes/1",
        "/api/x/..%2fme/votes/1",
        "/elections/1/..%2F..%2Fapi/me/votes/1",
        "/api/me%2fvotes/1.png",
    ];
    for path in deceptive {
        let w = world();
        w.origins.set(EU, |_| {
            ok(
                "voter 42 voted for option 2",
                &[("cache-control", "public, max-age=600")],
            )
        });
        let url = format!("https://vote.example{path}");
        for cookie in [Some("auth_token=voter42"), None] {
            let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
            let r = w.send(get(&url, &headers));
            assert!(
                !matches!(cache(&r), "HIT" | "STALE"),
                "{path}: served from the shared cache"
            );
        }
        assert_eq!(
            w.pipeline.store().len(),
            0,
            "{path}: private data stored in the shared cache"
        );
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn path() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just("/api/elections/{n}"),
                Just("/api/elections/{n}/ballot"),
                Just("/api/elections/{n}/results"),
                Just("/elections/{n}"),
                Just("/api/me/votes/{n}"),
                Just("/api/me/votes/{n}.css"),
            ],
            1u32..1000,
        )
            .prop_map(|(p, n)| p.replace("{n}", &n.to_string()))
    }

    #[derive(Debug, Clone)]
    enum Credential {
        None,
        Cookie(String),
        Authorization(String),
    }

    fn credential() -> impl Strategy<Value = Credential> {
        prop_oneof![
            Just(Credential::None),
            "[A-Za-z0-9._-]{1,40}".prop_map(Credential::Cookie),
            "[ -~]{1,40}".prop_map(Credential::Authorization),
        ]
    }

    fn response_headers() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
        prop_oneof![
            Just(vec![]),
            Just(vec![("cache-control", "public, s-maxage=60")]),
            Just(vec![("set-cookie", "session=1; HttpOnly")]),
            Just(vec![("cache-control", "private, max-age=60")]),
            Just(vec![("cache-control", "no-store")]),
            Just(vec![("cache-control", "no-cache")]),
            Just(vec![
                ("cache-control", "public, s-maxage=60"),
                ("set-cookie", "a=b")
            ]),
        ]
    }

    fn uncacheable(headers: &[(&str, &str)]) -> bool {
        headers.iter().any(|(k, v)| {
            *k == "set-cookie"
                || (*k == "cache-control"
                    && (v.contains("private") || v.contains("no-store") || v.contains("no-cache")))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// For any request with the auth cookie or `Authorization`, and any response with
        /// `Set-Cookie`, `private`, `no-store` or `no-cache`, nothing is stored in or served
        /// from the shared cache — whatever the platform headers say.
        #[test]
        fn credentialed_requests_and_uncacheable_responses_never_touch_the_shared_cache(
            path in path(),
            credential in credential(),
            response in response_headers(),
            cf_ip in "[ -~]{0,50}",
            cf_country in "[ -~]{0,8}",
            other_cookies in "[a-z]{1,6}=[a-z0-9]{0,6}",
        ) {
            let w = world();
            let headers = response.clone();
            w.origins.set(EU, move |r| {
                let who = if r.headers.contains("cookie") || r.headers.contains("authorization") {
                    "private"
                } else {
                    "public"
                };
                Ok(EdgeResponse {
                    status: 200,
                    headers: headers.iter().map(|(k, v)| (*k, *v)).collect(),
                    body: who.as_bytes().to_vec(),
                })
            });
            let url = format!("https://vote.example{path}");
            let cookie;
            let mut request_headers: Vec<(&str, &str)> = vec![
                ("cf-connecting-ip", cf_ip.as_str()),
                ("cf-ipcountry", cf_country.as_str()),
            ];
            match &credential {
                Credential::None => request_headers.push(("cookie", other_cookies.as_str())),
                Credential::Cookie(v) => {
                    cookie = format!("{other_cookies}; auth_token={v}");
                    request_headers.push(("cookie", cookie.as_str()));
                }
                Credential::Authorization(v) => request_headers.push(("authorization", v.as_str())),
            }
            // Twice: the second would be a HIT if the first had been stored.
            for _ in 0..2 {
                let r = w.send(get(&url, &request_headers));
                let credentialed = !matches!(credential, Credential::None);
                if credentialed || uncacheable(&response) || path.starts_with("/api/me/") {
                    prop_assert!(!matches!(cache(&r), "HIT" | "STALE"), "{} answered {}", path, cache(&r));
                    prop_assert_eq!(w.pipeline.store().len(), 0, "{} stored", path);
                }
                if credentialed {
                    prop_assert_eq!(cache(&r), "BYPASS");
                }
            }
            // An anonymous reader never gets what a credentialed request produced.
            let anonymous = w.send(get(&url, &[]));
            prop_assert_ne!(body(&anonymous), "private");
        }
    }
}
