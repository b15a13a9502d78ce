//! The connection front on the real binary: a fresh L1 hit it answers is the answer the
//! router gives the same request, header for header (304s included); traced, unsigned and
//! uncached requests reach the router instead.

mod support;

use reqwest::header::HeaderMap;
use support::{OriginProcess, http, metrics};
use surge_shared::edge_auth::{self, HEADER};

/// A caller's `traceparent` with the sampled flag: the router traces the request.
const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// Headers whose values differ per request whichever path answers.
const PER_REQUEST: [&str; 4] = ["date", "server-timing", "traceparent", "x-request-id"];

/// An origin that traces only requests whose caller traces them.
fn env() -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".into()),
        ("OTEL_TRACES_SAMPLER_ARG", "0".into()),
    ]
}

/// `surge_http_front_answers_total` in the origin's metrics.
async fn front_answers(origin: &OriginProcess) -> u64 {
    let text = metrics(origin).await;
    text.lines()
        .find(|line| line.starts_with("surge_http_front_answers_total"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no front counter in {text}"))
}

/// One GET on a new connection (a connection the router served once stays with it).
async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    let mut request = http().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("GET");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.expect("body"))
}

/// `headers` without the per-request ones, sorted by name.
fn lasting(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut kept: Vec<_> = headers
        .iter()
        .filter(|(name, _)| !PER_REQUEST.contains(&name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    kept.sort();
    kept
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hit_on_the_front_is_the_routers_answer_header_for_header() {
    let origin = OriginProcess::start(&env());
    for path in [
        "/api/elections/1/ballot",
        "/elections/1",
        "/elections/20",
        "/api/elections/999",
    ] {
        let url = origin.url(path);
        let (_, first, _) = get(&url, &[]).await;
        assert_eq!(first["x-surge-cache"], "MISS", "{path}");

        let before = front_answers(&origin).await;
        let (status, front, body) = get(&url, &[]).await;
        assert_eq!(
            front_answers(&origin).await,
            before + 1,
            "{path}: the front answered"
        );
        let (routed_status, routed, routed_body) = get(&url, &[("traceparent", SAMPLED)]).await;
        assert_eq!(
            front_answers(&origin).await,
            before + 1,
            "{path}: a traced request is the router's"
        );
        assert_eq!((status, &body), (routed_status, &routed_body), "{path}");
        assert_eq!(front["x-surge-cache"], "HIT", "{path}");
        assert_eq!(lasting(&front), lasting(&routed), "{path}");
        for name in PER_REQUEST {
            assert!(
                front.contains_key(name),
                "{path}: {name} on the front's answer"
            );
        }
        assert!(
            routed["traceparent"]
                .to_str()
                .is_ok_and(|t| t.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")),
            "the router continued the caller's trace"
        );

        if status == 200 {
            let etag = front["etag"].to_str().expect("etag").to_string();
            let (status, front, body) = get(&url, &[("if-none-match", &etag)]).await;
            let (routed_status, routed, _) =
                get(&url, &[("if-none-match", &etag), ("traceparent", SAMPLED)]).await;
            assert_eq!((status, routed_status), (304, 304), "{path}");
            assert_eq!(body, "", "{path}");
            assert!(front.get("content-type").is_none(), "{path}");
            assert_eq!(lasting(&front), lasting(&routed), "{path}");
        } else {
            assert_eq!(status, 404, "{path}");
        }
    }
    assert_eq!(
        get(&origin.url("/readyz"), &[]).await.0,
        200,
        "probes are the router's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_edge_keys_the_front_answers_only_what_the_edge_signed() {
    const KEY: &str = "k1:front-edge-key-0123456789abcdef0123456789";
    let mut env = env();
    env.push(("SURGE_EDGE_KEYS", KEY.into()));
    let origin = OriginProcess::start(&env);
    let key = edge_auth::parse_keys(KEY).expect("key").remove(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let target = "/api/elections/1/ballot";
    let url = origin.url(target);
    let signed = edge_auth::sign(&key, now, "GET", target);
    assert_eq!(get(&url, &[(HEADER, &signed)]).await.0, 200, "a miss");

    let before = front_answers(&origin).await;
    let (status, headers, _) = get(&url, &[(HEADER, &signed)]).await;
    assert_eq!(
        (status, &headers["x-surge-cache"]),
        (200, &"HIT".parse().expect("value"))
    );
    assert_eq!(
        front_answers(&origin).await,
        before + 1,
        "a signed hit is the front's"
    );

    let elsewhere = edge_auth::sign(&key, now, "GET", "/api/elections/2/ballot");
    for headers in [vec![], vec![(HEADER, elsewhere.as_str())]] {
        let (status, _, body) = get(&url, &headers).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("not_from_edge"), "{body}");
    }
    assert_eq!(
        front_answers(&origin).await,
        before + 1,
        "refusals are the router's, with its reason"
    );
}
