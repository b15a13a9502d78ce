//! The Cloudflare purge client against the local stand-in, which checks each request against
//! Cloudflare's documented purge API.

use std::time::{Duration, Instant};

use surge_origin::cdn::cloudflare::{Cloudflare, RetryPolicy};
use surge_origin::cdn::config::CloudflareConfig;
use surge_origin::cdn::{Cdn, CdnPurge};
use surge_testkit::cloudflare::CloudflareStandin;
use surge_testkit::origin::Reply;

fn client(standin: &CloudflareStandin, token: Option<&str>) -> Cloudflare {
    Cloudflare::new(
        CloudflareConfig {
            api_token: token.unwrap_or(standin.token()).to_string(),
            zone_id: standin.zone_id().to_string(),
            api_base: standin.api_base(),
        },
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
        },
    )
    .expect("client")
}

#[tokio::test]
async fn targets_go_out_in_documented_batches() {
    let standin = CloudflareStandin::start().expect("stand-in");
    let cf = client(&standin, None);
    let outcome = cf
        .purge(CdnPurge {
            files: (0..250)
                .map(|i| format!("https://vote.example/api/elections/{i}"))
                .collect(),
            tags: vec!["election:1".into(), "results:1".into()],
            hosts: vec!["vote.example".into()],
            prefixes: vec!["vote.example/api/".into()],
            everything: false,
        })
        .await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.purged, 254);
    assert_eq!(outcome.attempts, 6);
    assert!(standin.rejected().is_empty(), "{:?}", standin.rejected());
    let accepted = standin.accepted();
    let sizes: Vec<usize> = accepted
        .iter()
        .map(|b| {
            b.as_object()
                .and_then(|o| o.values().next())
                .and_then(|v| v.as_array())
                .map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes, vec![100, 100, 50, 2, 1, 1]);
    assert_eq!(
        accepted[3]["tags"],
        serde_json::json!(["election:1", "results:1"])
    );

    let all = cf
        .purge(CdnPurge {
            everything: true,
            ..CdnPurge::default()
        })
        .await;
    assert_eq!((all.purged, all.failed), (1, 0));
    assert_eq!(
        standin.accepted().last(),
        Some(&serde_json::json!({ "purge_everything": true }))
    );
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let standin = CloudflareStandin::start().expect("stand-in");
    standin.queue(CloudflareStandin::rate_limited(1));
    let cf = client(&standin, None);
    let start = Instant::now();
    let outcome = cf
        .purge(CdnPurge {
            tags: vec!["election:1".into()],
            ..CdnPurge::default()
        })
        .await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!((outcome.purged, outcome.attempts), (1, 2));
    // The retry waited for Retry-After (1 s), not the 20 ms backoff.
    assert!(start.elapsed() >= Duration::from_millis(950));
    assert_eq!(standin.accepted().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let standin = CloudflareStandin::start().expect("stand-in");
    for _ in 0..3 {
        let mut reply =
            Reply::ok("{\"success\":false,\"errors\":[{\"code\":500,\"message\":\"internal\"}]}");
        reply.status = 503;
        standin.queue(reply);
    }
    let cf = client(&standin, None);
    let outcome = cf
        .purge(CdnPurge {
            tags: vec!["election:1".into()],
            ..CdnPurge::default()
        })
        .await;
    assert_eq!(
        (outcome.purged, outcome.failed, outcome.attempts),
        (0, 1, 3)
    );
    assert!(
        outcome.errors[0].contains("gave up after 3 attempts") && outcome.errors[0].contains("503"),
        "{:?}",
        outcome.errors
    );
}

#[tokio::test]
async fn an_auth_error_is_not_retried() {
    let standin = CloudflareStandin::start().expect("stand-in");
    let cf = client(&standin, Some("wrong-token-0123456789abcdef"));
    let outcome = cf
        .purge(CdnPurge {
            tags: vec!["election:1".into()],
            ..CdnPurge::default()
        })
        .await;
    assert_eq!(
        (outcome.purged, outcome.failed, outcome.attempts),
        (0, 1, 1)
    );
    assert!(
        outcome.errors[0].contains("403") && outcome.errors[0].contains("Authentication error"),
        "{:?}",
        outcome.errors
    );
}
