//! With `SURGE_EDGE_KEYS` the origin binary answers public requests only when the edge
//! signed them: unsigned, forged, stale and re-targeted requests get 403, keys rotate, and
//! the probes, the admin listener and the origin's own cache warming keep working.

mod support;

use support::{OriginProcess, TOKEN, http};
use surge_shared::edge_auth::{self, HEADER};

const NEW: &str = "k2:new-edge-key-0123456789abcdef0123456789";
const OLD: &str = "k1:old-edge-key-0123456789abcdef0123456789";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn key(text: &str) -> edge_auth::EdgeKey {
    edge_auth::parse_keys(text).expect("key").remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_origin_serves_only_what_the_edge_signed() {
    let origin = OriginProcess::start(&[("SURGE_EDGE_KEYS", format!("{NEW},{OLD}"))]);
    let client = http();
    let get = |target: &'static str, signature: Option<String>| {
        let mut request = client.get(origin.url(target));
        if let Some(s) = signature {
            request = request.header(HEADER, s);
        }
        async move {
            let r = request.send().await.expect("GET");
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
    };
    let target = "/api/elections/1?lang=en";

    let (status, body) = get(target, None).await;
    assert_eq!(status, 403, "unsigned: {body}");
    assert!(body.contains("not_from_edge"), "{body}");

    for (what, signature, expected) in [
        (
            "the newest key",
            edge_auth::sign(&key(NEW), now(), "GET", target),
            200,
        ),
        (
            "the previous key",
            edge_auth::sign(&key(OLD), now(), "GET", target),
            200,
        ),
        (
            "a key the origin does not hold",
            edge_auth::sign(
                &key("k3:other-key-0123456789abcdef0123456789"),
                now(),
                "GET",
                target,
            ),
            403,
        ),
        (
            "a forged secret under a known id",
            edge_auth::sign(
                &key("k2:forged-key-0123456789abcdef0123456789"),
                now(),
                "GET",
                target,
            ),
            403,
        ),
        (
            "two minutes ago",
            edge_auth::sign(&key(NEW), now() - 120, "GET", target),
            403,
        ),
        (
            "another path",
            edge_auth::sign(&key(NEW), now(), "GET", "/api/elections/2"),
            403,
        ),
        (
            "another method",
            edge_auth::sign(&key(NEW), now(), "POST", target),
            403,
        ),
        ("garbage", "v1 k2 x y".to_string(), 403),
    ] {
        let (status, body) = get(target, Some(signature)).await;
        assert_eq!(status, expected, "{what}: {body}");
    }

    // Probes are called by the kubelet, not through the edge.
    for probe in ["/livez", "/readyz", "/healthz"] {
        assert_eq!(get(probe, None).await.0, 200, "{probe}");
    }
    // The admin listener is not public traffic; the origin's own warming signs its requests.
    let (status, report) = support::admin(
        &origin,
        reqwest::Method::POST,
        "/performance/cache/warm",
        Some(serde_json::json!({ "urls": ["/api/elections", "/elections/1"] })),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["warmed"], 2, "{report}");
    let health = client
        .get(origin.url("/performance/health"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

#[test]
fn bad_edge_keys_stop_start_up_naming_the_variable() {
    let (code, output) = support::run_origin(
        &["check-config"],
        &[("SURGE_EDGE_KEYS", "k1:too-short".to_string())],
    );
    assert_ne!(code, Some(0), "{output}");
    assert!(output.contains("SURGE_EDGE_KEYS"), "{output}");
    assert!(
        !output.contains("too-short"),
        "the secret never prints: {output}"
    );
}
