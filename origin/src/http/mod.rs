//! The HTTP layer: the public workload's routes (JSON in `handlers`, HTML in `pages`, both
//! served through the cache by `respond`), the liveness probe, and the `/performance/*` admin
//! API behind a bearer token. Handlers extract typed input, call one
//! domain function and map errors in one place ([`error::ApiError`]); one middleware times
//! every request into the metrics and the trace log, labelled by the policy route.

pub mod admin;
pub mod auth;
pub mod contract;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod headers;
pub mod hit;
pub mod keys;
pub mod pages;
pub mod rendered;
pub mod respond;
pub mod serve;
pub mod state;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde_json::{Value, json};
use tower::Layer;

use crate::clock::now_ms;
use crate::telemetry::context::{self, TraceContext};
use crate::telemetry::sampling;
pub use state::AppState;
use surge_shared::edge_auth;
use tracing::Instrument;

/// Largest request body accepted on the public listener (the policy's per-route limits are
/// smaller).
const MAX_BODY: usize = 64 * 1024;
/// Largest request body the admin API accepts: a full voter import
/// ([`surge_shared::admin::MAX_VOTERS_PER_REQUEST`] entries) fits.
const MAX_ADMIN_BODY: usize = 4 * 1024 * 1024;

/// The public routes.
fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/elections", get(handlers::elections))
        .route("/api/elections/{id}", get(handlers::election))
        .route("/api/elections/{id}/ballot", get(handlers::ballot))
        .route("/api/elections/{id}/results", get(handlers::results))
        .route("/api/elections/{id}/votes", post(handlers::vote))
        .route("/api/login", post(handlers::login))
        .route("/api/me/votes/{id}", get(handlers::my_vote))
        .route("/elections/{id}", get(pages::election))
        .route("/elections/{id}/results", get(pages::results))
        .route("/elections/{id}/receipt", get(pages::receipt))
        .route("/login", get(pages::login))
}

/// The public listener's router (`SURGE_LISTEN`): the workload and `/healthz`. The admin
/// API is not on it, whatever a request carries.
pub fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .merge(routes())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone());
    // Around the router, not inside it (`Router::layer` runs after the path has been routed):
    // a fresh L1 hit is answered before any routing.
    Router::new().fallback_service(middleware::from_fn_with_state(state, observe).layer(routes))
}

/// The metrics listener's router (`SURGE_METRICS_LISTEN`): `GET /metrics` without the admin
/// token, for Prometheus, and nothing else.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match admin::render_metrics(&state).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// The admin listener's router (`SURGE_ADMIN_LISTEN`): `/performance/*` behind the bearer
/// token, and `/healthz` for probes.
pub fn admin_router(state: Arc<AppState>) -> Router {
    let admin = admin::routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_admin_token,
    ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .nest("/performance", admin)
        .layer(middleware::from_fn_with_state(state.clone(), observe_admin))
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY))
        .with_state(state)
}

/// Headers every answer carries, pages and JSON alike (cached copies included): HTTPS only,
/// no content sniffing, no referrer leaving the site, and for pages a policy that allows no
/// script at all, styles only inline (the pages carry their own), forms only to this site,
/// and no framing.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 4] = [
    (
        HeaderName::from_static("strict-transport-security"),
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    ),
    (
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    ),
    (
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    ),
];

async fn healthz(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "status": "ok", "region": state.config.region }))
}

/// `GET /livez`: the process answers (the liveness probe restarts it otherwise).
async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once start-up is done, 503 before and while draining (the readiness
/// probe takes the pod out of rotation then). A degraded dependency (Redis down) keeps it
/// ready: it serves from L1 and the database, and `/performance/health` says so.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.lifecycle.not_ready() {
        None => Json(json!({ "status": "ready" })).into_response(),
        Some(why) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": why })),
        )
            .into_response(),
    }
}

/// Appends [`SECURITY_HEADERS`] as header lines to `out`.
fn push_security_headers(out: &mut Vec<u8>) {
    for (name, value) in &SECURITY_HEADERS {
        wire::push_header(out, name.as_str(), value.as_bytes());
    }
}

/// Whether `path` is a probe (`/healthz`, `/livez`, `/readyz`): called by the kubelet, not
/// through the edge, and no part of the SLA.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
}

/// The 403 for a public request the edge did not sign when the origin holds edge keys
/// (`SURGE_EDGE_KEYS`): a direct hit on an origin host would skip the edge's caching, limits
/// and WAF. The probes pass unsigned (the kubelet calls them directly).
fn not_from_edge(state: &AppState, request: &Request, probe: bool) -> Option<Response> {
    if probe {
        return None;
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or(request.uri().path(), |target| target.as_str());
    let signature = request
        .headers()
        .get(edge_auth::HEADER)
        .and_then(|v| v.to_str().ok());
    let refused = edge_refusal(state, signature, request.method().as_str(), target)?;
    Some(
        error::ApiError::Forbidden {
            code: "not_from_edge",
            message: format!(
                "{refused}; this origin answers only requests that come through the edge"
            ),
        }
        .into_response(),
    )
}

/// Why `signature` does not show the edge sent `method target`, when the origin holds edge
/// keys; `None` when it does or no keys are held.
fn edge_refusal(
    state: &AppState,
    signature: Option<&str>,
    method: &str,
    target: &str,
) -> Option<edge_auth::SignatureError> {
    let keys = &state.config.edge_keys;
    if keys.is_empty() {
        return None;
    }
    edge_auth::verify(keys, signature, now_ms() / 1000, method, target).err()
}

/// The one middleware of the public listener: classifies the path once (the handler takes the
/// classification from the request's extensions), refuses what the edge did not sign, enforces
/// the route's body limit, times the request into the metrics, the SLA and its span, and adds
/// the security headers.
async fn observe(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let policy = &state.config.policy;
    let classified = policy.classified(request.uri().path());
    let matched = policy.route_of(&classified);
    let probe = is_probe(request.uri().path());
    let refused = not_from_edge(&state, &request, probe);
    request.extensions_mut().insert(classified);
    let call = Call {
        route: &matched.name,
        limit: matched.max_body_bytes,
        public: !probe,
        l1_first: true,
    };
    record(&state, call, request, next, refused).await
}

/// Times an admin request, enforces the admin body limit, and records it as route `admin`.
async fn observe_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let call = Call {
        route: "admin",
        limit: u64::try_from(MAX_ADMIN_BODY).unwrap_or(u64::MAX),
        public: false,
        l1_first: false,
    };
    record(&state, call, request, next, None).await
}

/// What [`record`] needs to know of a request besides the request.
struct Call<'a> {
    /// The policy route's name (or `admin`).
    route: &'a str,
    /// Its body limit.
    limit: u64,
    /// Whether it counts towards the SLA: public traffic, as the alert rules count it — not the
    /// admin API, not probes.
    public: bool,
    /// Whether a fresh L1 entry answers before routing ([`respond::l1_hit`]).
    l1_first: bool,
}

/// Runs `request` (or answers with `refused`) with its body cut at the limit (413 at once when
/// `Content-Length` says more), and records it in the metrics and its span.
async fn record(
    state: &AppState,
    call: Call<'_>,
    request: Request,
    next: Next,
    refused: Option<Response>,
) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    // The request's span, named by route (bounded: the policy's names) as OpenTelemetry's
    // HTTP conventions ask; every log line written while serving carries its fields.
    // A request the sampler drops has no span: on a cache hit the span is most of the work.
    let traced = match request.extensions().get::<sampling::Drawn>() {
        Some(&sampling::Drawn(traced)) => traced,
        None => {
            let given = request
                .headers()
                .get(context::TRACEPARENT)
                .and_then(|v| v.to_str().ok());
            sampling::configured().records(given, fastrand::f64)
        }
    };
    let span = if !traced {
        tracing::Span::none()
    } else {
        tracing::info_span!(
            "request",
            otel.name = %format_args!("{method} {}", call.route),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            request_id = tracing::field::Empty,
            http.request.method = method.as_str(),
            http.route = call.route,
            url.path = request.uri().path(),
            http.response.status_code = tracing::field::Empty,
            surge.cache = tracing::field::Empty,
            surge.tier = tracing::field::Empty,
        )
    };
    let context = if traced {
        TraceContext::attach(&span, request.headers())
    } else {
        TraceContext::unsampled(request.headers())
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut response = if let Some(refused) = refused {
        refused
    } else if declared.is_some_and(|n| n > call.limit) {
        axum::response::IntoResponse::into_response(error::ApiError::PayloadTooLarge(call.limit))
    } else {
        let request = request.map(|body| {
            axum::body::Body::new(http_body_util::Limited::new(
                body,
                usize::try_from(call.limit).unwrap_or(usize::MAX),
            ))
        });
        let l1_first = call.l1_first;
        async move {
            if !l1_first {
                return next.run(request).await;
            }
            let (parts, body) = request.into_parts();
            if let Some(hit) = respond::l1_hit(state, &parts).await {
                return hit;
            }
            next.run(Request::from_parts(parts, body)).await
        }
        .instrument(span.clone())
        .await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (context::TRACEPARENT, context.traceparent()),
        (context::REQUEST_ID, context.request_id),
    ] {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    }
    for (name, value) in &SECURITY_HEADERS {
        headers.insert(name, value.clone());
    }
    let took = start.elapsed();
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
    for (field, header) in [
        ("surge.cache", surge_shared::status::CACHE_STATUS_HEADER),
        ("surge.tier", surge_shared::status::TIER_HEADER),
    ] {
        if let Some(value) = response.headers().get(header).and_then(|v| v.to_str().ok()) {
            span.record(field, value);
        }
    }
    account(
        state,
        call.route,
        method.as_str(),
        status,
        took,
        call.public,
    );
    response
}

/// Counts a finished request in the metrics, in the SLA when it is `public` traffic, and in
/// the scaling rates.
fn account(state: &AppState, route: &str, method: &str, status: u16, took: Duration, public: bool) {
    state.metrics.observe(route, method, status, took);
    let now = now_ms();
    if public {
        state.sla.record(now, status, took);
    }
    state.rates.record(now);
}
