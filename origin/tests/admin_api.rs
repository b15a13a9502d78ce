//! The admin API is closed without the token and explains URLs with it.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use surge_origin::config::Config;
use surge_origin::http::{admin_router, router};
use tower::ServiceExt;

const TOKEN: &str = "test-token-0123456789";

async fn state(token: Option<&str>) -> std::sync::Arc<surge_origin::http::AppState> {
    let config = Config::from_vars(|name| match name {
        "SURGE_ADMIN_TOKEN" => token.map(str::to_string),
        _ => None,
    })
    .expect("valid config");
    surge_origin::startup::start(config, surge_origin::telemetry::spans::SpanTrees::new(64))
        .await
        .expect("starts with embedded defaults")
}

/// The admin listener's router.
async fn app(token: Option<&str>) -> axum::Router {
    admin_router(state(token).await)
}

#[tokio::test]
async fn the_public_listener_has_no_admin_api_whatever_a_request_carries() {
    let public = router(state(Some(TOKEN)).await);
    let bearer = format!("Bearer {TOKEN}");
    for path in [
        "/performance/health",
        "/performance/openapi.json",
        "/performance/cache/key?url=https://vote.example/a",
    ] {
        let (status, _, _) = call(public.clone(), path, Some(&bearer)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _, _) = call(public, "/api/elections", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(app(Some(TOKEN)).await, "/api/elections", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the admin listener serves no public route"
    );
}

async fn call(
    app: axum::Router,
    uri: &str,
    auth: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = Request::get(uri);
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let response = app
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("router answers");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        challenge,
    )
}

#[tokio::test]
async fn admin_api_refuses_missing_and_wrong_tokens() {
    let url = "/performance/cache/key?url=https://vote.example/";
    let (status, body, challenge) = call(app(Some(TOKEN)).await, url, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    let (status, _, _) = call(
        app(Some(TOKEN)).await,
        url,
        Some("Bearer test-token-0123456788"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(app(Some(TOKEN)).await, url, Some(TOKEN)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the Bearer scheme is required"
    );
    let (status, body, _) = call(app(None).await, url, Some("Bearer anything-at-all-here")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "admin_disabled");
}

#[tokio::test]
async fn cache_key_endpoint_explains_a_url() {
    let bearer = format!("Bearer {TOKEN}");
    let (status, body, _) = call(app(Some(TOKEN)).await,
        "/performance/cache/key?url=https%3A%2F%2FVote.Example%2Fapi%2Felections%2F7%2Fresults%3Futm_source%3Dx%26b%3D2%26a%3D1",
        Some(&bearer),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The results route keys no query parameter: `a` and `b` are dropped like `utm_source`.
    assert_eq!(
        body["key"],
        "surge:v1:GET https://vote.example/api/elections/7/results enc=identity"
    );
    assert_eq!(body["route"], "results");
    assert_eq!(body["class"], "micro-cache");
    assert_eq!(body["tags"], serde_json::json!(["results:7"]));
    assert!(
        body["hashed"]
            .as_str()
            .is_some_and(|h| h.len() == "surge:v1:h:".len() + 64)
    );

    let (status, body, _) = call(
        app(Some(TOKEN)).await,
        "/performance/cache/key?url=ftp://x/",
        Some(&bearer),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "url");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("only http and https"))
    );

    let (status, body, _) = call(
        app(Some(TOKEN)).await,
        "/performance/cache/key",
        Some(&bearer),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "url");
}

#[tokio::test]
async fn health_is_public() {
    let (status, body, _) = call(app(None).await, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["region"], "local");
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes_of_both_listeners() {
    let bearer = format!("Bearer {TOKEN}");
    let (status, doc, _) = call(
        app(Some(TOKEN)).await,
        "/performance/openapi.json",
        Some(&bearer),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["securitySchemes"]["session"].is_object());
    for schema in [
        "InvalidateRequest",
        "InvalidateReport",
        "WarmRequest",
        "ErrorBody",
        "ImportVotersRequest",
        "IssueVotersRequest",
        "VotersReport",
        "AnalyzeRequest",
        "LoginRequest",
        "VoteRequest",
        "Ballot",
        "Results",
        "Receipt",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 30, "{:?}", paths.keys().collect::<Vec<_>>());
    // Every documented operation is routed on its listener (a wrong path or method would be
    // 404/405 there).
    let state = state(Some(TOKEN)).await;
    for (path, operations) in paths {
        let concrete = path
            .replace("{pattern}", "https%3A%2F%2Fvote.example%2Fa%2F*")
            .replace("{id}", "1");
        let listener = if path.starts_with("/performance") {
            admin_router(state.clone())
        } else {
            router(state.clone())
        };
        for method in operations.as_object().expect("operations").keys() {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .header(header::AUTHORIZATION, &bearer)
                .body(Body::empty())
                .expect("request");
            let response = listener
                .clone()
                .oneshot(request)
                .await
                .expect("router answers");
            assert!(
                !matches!(
                    response.status(),
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                ),
                "{method} {path} is documented but not routed ({})",
                response.status()
            );
        }
    }
}
