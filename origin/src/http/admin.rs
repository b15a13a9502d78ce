//! `/performance/*` handlers: health, metrics, stats, cache purge/warm/inspection, scaling
//! (status, scheduled events, emergencies), and APM (traces, slow queries, profiles).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use surge_shared::admin::{
    EmergencyScale, EmergencyScaleRequest, ErrorBody, ImportVotersRequest, InvalidateReport,
    InvalidateRequest, IssueVotersRequest, ScalingEventRequest, ScalingStatus, ScheduledEvent,
    VotersReport, WarmReport, WarmRequest, parse_json,
};
use surge_shared::{CacheClass, CacheKey, KeyPattern};
use utoipa::OpenApi;

use super::AppState;
use super::error::ApiError;
use crate::domain::voters::{self, RegisterError};
use crate::scaling::cluster::ClusterError;
use crate::scaling::controller::{Accepted, ScaleError, Scaler};

/// The admin routes (mounted under `/performance`).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/cache/stats", get(cache_stats))
        .route("/cache/key", get(cache_key))
        .route("/cache/invalidate", post(invalidate))
        .route("/cache/warm", post(warm))
        .route("/cache/{pattern}", delete(delete_pattern))
        .route("/scaling/status", get(scaling_status))
        .route("/scaling/event", post(scaling_event))
        .route("/scaling/emergency", post(scaling_emergency))
        .route("/voters", post(import_voters))
        .route("/voters/issue", post(issue_voters))
        .route("/apm/traces", get(traces))
        .route("/apm/slow-queries", get(slow_queries))
        .route("/apm/profile", post(profile))
        .route("/openapi.json", get(openapi))
}

/// `POST /performance/apm/profile` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    /// How long to sample, 1–30 s.
    pub seconds: u64,
}

#[utoipa::path(post, path = "/performance/apm/profile", tag = "apm", security(("bearer" = [])),
    request_body = ProfileRequest,
    responses((status = 200, description = "Folded stacks (`thread;root;…;leaf samples` per line) for flamegraph tools", content_type = "text/plain", body = String),
        (status = 400, body = ErrorBody), (status = 409, description = "a profile is already running", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody)))]
async fn profile(body: Bytes) -> Result<Response, ApiError> {
    let request: ProfileRequest = parse(&body)?;
    if !(1..=crate::telemetry::profile::MAX_SECONDS).contains(&request.seconds) {
        return Err(ApiError::bad(
            "seconds",
            format!(
                "profile for 1 to {} seconds",
                crate::telemetry::profile::MAX_SECONDS
            ),
        ));
    }
    let duration = Duration::from_secs(request.seconds);
    let folded =
        tokio::task::spawn_blocking(move || crate::telemetry::profile::folded_stacks(duration))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| match e {
                crate::telemetry::profile::ProfileError::Busy => ApiError::Conflict {
                    code: "profile_running",
                    message: e.to_string(),
                },
                crate::telemetry::profile::ProfileError::Failed(m) => ApiError::Internal(m),
            })?;
    let mut response = folded.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// The admin API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Surge origin admin API",
        description = "Operators' API for purges, cache inspection, health, metrics, scaling and APM. Every call needs `Authorization: Bearer <SURGE_ADMIN_TOKEN>`."
    ),
    paths(
        health, metrics, stats, cache_stats, cache_key, invalidate, delete_pattern, warm,
        scaling_status, scaling_event, scaling_emergency, import_voters, issue_voters, traces,
        slow_queries, profile
    ),
    modifiers(&BearerAuth)
)]
pub struct AdminApi;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminApi::openapi())
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse_json(body).map_err(ApiError::from)
}

#[utoipa::path(get, path = "/performance/health", tag = "health", security(("bearer" = [])),
    responses((status = 200, description = "Per-dependency status: Postgres primary and replicas with lag, Redis, CDN", body = Object), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut degraded = false;
    let postgres = match &state.db {
        None => json!({ "configured": false, "store": state.store.kind() }),
        Some(db) => {
            let primary = match tokio::time::timeout(Duration::from_secs(2), async {
                let conn = db.router.primary().get().await?;
                conn.query_one("SELECT 1", &[]).await?;
                Ok::<_, crate::db::DbError>(())
            })
            .await
            {
                Ok(Ok(())) => json!({ "ok": true }),
                Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
                Err(_) => json!({ "ok": false, "error": "no answer within 2s" }),
            };
            let replicas = db.router.status();
            degraded |= primary["ok"] != json!(true) || replicas.iter().any(|r| !r.in_rotation);
            json!({ "configured": true, "primary": primary, "replicas": replicas })
        }
    };
    let redis = match state.cache.l2_available() {
        None => json!({ "configured": false }),
        Some(up) => {
            degraded |= !up;
            json!({ "configured": true, "available": up })
        }
    };
    let cdn = match &state.config.cloudflare {
        None => json!({ "configured": false }),
        Some(cf) => json!({ "configured": true, "zone_id": cf.zone_id, "api_base": cf.api_base }),
    };
    Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "region": state.config.region,
        "uptime_s": state.started.elapsed().as_secs(),
        "postgres": postgres,
        "redis": redis,
        "cdn": cdn,
    }))
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    registry.register(name, help, ConstGauge::new(value));
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    registry.register(name, help, ConstCounter::new(value));
}

#[utoipa::path(get, path = "/performance/metrics", tag = "health", security(("bearer" = [])),
    responses((status = 200, description = "OpenMetrics text: latency histograms by route, cache hit ratios per tier, pool stats, replica lag", content_type = "application/openmetrics-text", body = String), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let mut registry = Registry::with_prefix("surge");
    registry.register(
        "http_request_duration_seconds",
        "Request latency by policy route, method and status class",
        state.metrics.requests.clone(),
    );
    let s = state.cache.stats();
    if let Some(up) = state.cache.l2_available() {
        gauge(
            &mut registry,
            "redis_up",
            "1 while this process reaches Redis (L2 and the backplane), 0 otherwise",
            if up { 1.0 } else { 0.0 },
        );
    }
    counter(&mut registry, "cache_l1_hits", "L1 hits", s.l1_hits);
    counter(&mut registry, "cache_l1_misses", "L1 misses", s.l1_misses);
    counter(&mut registry, "cache_l2_hits", "L2 hits", s.l2_hits);
    counter(&mut registry, "cache_l2_misses", "L2 misses", s.l2_misses);
    counter(
        &mut registry,
        "cache_factory_calls",
        "Values computed",
        s.factory_calls,
    );
    counter(
        &mut registry,
        "cache_tag_invalidations",
        "Tags invalidated",
        s.tag_invalidations,
    );
    gauge(
        &mut registry,
        "cache_l1_hit_ratio",
        "L1 hits / L1 lookups",
        s.l1_hit_ratio(),
    );
    gauge(
        &mut registry,
        "cache_l2_hit_ratio",
        "L2 hits / L2 lookups",
        s.l2_hit_ratio(),
    );
    gauge(
        &mut registry,
        "cache_l1_entries",
        "Entries in L1",
        state.cache.l1_len().await as f64,
    );
    gauge(
        &mut registry,
        "cache_l1_bytes",
        "Bytes held by L1",
        state.cache.l1_weight().await as f64,
    );
    let c = state.vote_purges.stats();
    counter(
        &mut registry,
        "vote_purges_marked",
        "Results purges requested by votes",
        c.marked,
    );
    counter(
        &mut registry,
        "vote_purges_sent",
        "Coalesced results purges sent",
        c.flushes,
    );
    if let Some(db) = &state.db {
        let p = db.router.primary().stats();
        gauge(
            &mut registry,
            "db_pool_size",
            "Primary pool connections",
            p.size as f64,
        );
        gauge(
            &mut registry,
            "db_pool_idle",
            "Primary pool idle connections",
            p.idle as f64,
        );
        gauge(
            &mut registry,
            "db_pool_waiting",
            "Callers waiting for a primary connection",
            p.waiting as f64,
        );
        gauge(
            &mut registry,
            "db_pool_acquire_p99_seconds",
            "Primary pool acquire latency p99",
            p.acquire_us[2] as f64 / 1e6,
        );
        let replicas = db.router.status();
        let max_lag = replicas.iter().filter_map(|r| r.lag_ms).max().unwrap_or(0);
        gauge(
            &mut registry,
            "db_replica_lag_max_seconds",
            "Largest measured replica lag",
            max_lag as f64 / 1e3,
        );
        gauge(
            &mut registry,
            "db_replicas_in_rotation",
            "Replicas taking reads",
            replicas.iter().filter(|r| r.in_rotation).count() as f64,
        );
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| ApiError::Internal(format!("metrics encoding: {e}")))?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}

/// `GET /performance/cache/stats`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CacheStats {
    /// Raw counters.
    #[schema(value_type = Object)]
    pub counters: crate::cache::stats::StatsSnapshot,
    /// L1 hits / L1 lookups.
    pub l1_hit_ratio: f64,
    /// L2 hits / L2 lookups.
    pub l2_hit_ratio: f64,
    /// Entries in this process's L1.
    pub l1_entries: u64,
    /// Bytes held by this process's L1.
    pub l1_bytes: u64,
    /// Whether Redis is configured.
    pub l2_configured: bool,
    /// Whether Redis answers now (absent without Redis).
    pub l2_available: Option<bool>,
}

async fn cache_stats_of(state: &AppState) -> CacheStats {
    let counters = state.cache.stats();
    CacheStats {
        l1_hit_ratio: counters.l1_hit_ratio(),
        l2_hit_ratio: counters.l2_hit_ratio(),
        counters,
        l1_entries: state.cache.l1_len().await,
        l1_bytes: state.cache.l1_weight().await,
        l2_configured: state.cache.l2().is_some(),
        l2_available: state.cache.l2_available(),
    }
}

#[utoipa::path(get, path = "/performance/cache/stats", tag = "cache", security(("bearer" = [])),
    responses((status = 200, body = CacheStats), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn cache_stats(State(state): State<Arc<AppState>>) -> Json<CacheStats> {
    Json(cache_stats_of(&state).await)
}

#[utoipa::path(get, path = "/performance/stats", tag = "health", security(("bearer" = [])),
    responses((status = 200, description = "Cache, pools, replicas and vote purge counters", body = Object), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn stats(State(state): State<Arc<AppState>>) -> Json<Value> {
    let pools = state.db.as_ref().map(|db| {
        json!({
            "primary": db.router.primary().stats(),
            "replicas": db.router.status(),
        })
    });
    Json(json!({
        "region": state.config.region,
        "uptime_s": state.started.elapsed().as_secs(),
        "store": state.store.kind(),
        "cache": cache_stats_of(&state).await,
        "vote_purges": state.vote_purges.stats(),
        "postgres": pools,
        "traffic": traffic(&state),
    }))
}

/// Requests per minute lately and the forecast for the next hour (daily seasonality).
fn traffic(state: &AppState) -> Value {
    use crate::scaling::forecast::forecast;
    let series = state.rates.series(crate::clock::now_ms());
    let next_hour = forecast(&series, 24 * 60, 60);
    json!({
        "history_minutes": series.len(),
        "last_minutes_rpm": series.iter().rev().take(10).rev().collect::<Vec<_>>(),
        "forecast_method": next_hour.method,
        "forecast_peak_rpm_next_hour": next_hour.peak(),
    })
}

/// Query of `GET /performance/cache/key`.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    /// The absolute URL to explain.
    pub url: Option<String>,
}

/// What a URL maps to in the key/tag scheme.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyInfo {
    /// The canonical key.
    pub key: String,
    /// Its fixed-length Redis form.
    pub hashed: String,
    /// The route that matched.
    pub route: String,
    /// The route's cache class.
    #[schema(value_type = String, example = "public")]
    pub class: CacheClass,
    /// The tags responses carry.
    pub tags: Vec<String>,
    /// The `Cache-Control` the origin sends.
    pub cache_control: String,
}

#[utoipa::path(get, path = "/performance/cache/key", tag = "cache", security(("bearer" = [])),
    params(("url" = String, Query, description = "Absolute URL, percent-encoded")),
    responses((status = 200, body = KeyInfo), (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn cache_key(
    State(state): State<Arc<AppState>>,
    Query(query): Query<KeyQuery>,
) -> Result<Json<KeyInfo>, ApiError> {
    let url = query.url.ok_or_else(|| {
        ApiError::bad(
            "url",
            "add ?url=<absolute URL, percent-encoded> to the request",
        )
    })?;
    let policy = &state.config.policy;
    let no_headers: [(&str, &str); 0] = [];
    let key = CacheKey::new(&policy.key, "GET", &url, &no_headers[..])
        .map_err(|e| ApiError::bad("url", e.to_string()))?;
    let path = key
        .url()
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let matched = policy.classify(path);
    let tags = matched
        .route
        .tags(&matched.params)
        .map_err(|e| ApiError::bad("url", e.to_string()))?;
    Ok(Json(KeyInfo {
        hashed: key.hashed(),
        key: key.as_str().to_string(),
        route: matched.route.name.clone(),
        class: matched.route.class,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        cache_control: matched.route.cache_control(),
    }))
}

fn report_response(report: InvalidateReport) -> Response {
    // 207: some tier failed; the body says which.
    let status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (status, Json(report)).into_response()
}

async fn run_invalidate(
    state: &AppState,
    request: InvalidateRequest,
) -> Result<Response, ApiError> {
    request.validate()?;
    state
        .purger
        .check(&request)
        .map_err(|e| ApiError::bad(e.field, e.message))?;
    Ok(report_response(state.purger.invalidate(&request).await))
}

#[utoipa::path(post, path = "/performance/cache/invalidate", tag = "cache", security(("bearer" = [])),
    request_body = InvalidateRequest,
    responses((status = 200, description = "Every tier done or skipped", body = InvalidateReport),
        (status = 207, description = "Some tier failed; see its line", body = InvalidateReport),
        (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn invalidate(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let request: InvalidateRequest = parse(&body)?;
    run_invalidate(&state, request).await
}

#[utoipa::path(delete, path = "/performance/cache/{pattern}", tag = "cache", security(("bearer" = [])),
    params(("pattern" = String, Path, description = "A URL glob, percent-encoded (at least 8 literal characters before any wildcard)")),
    responses((status = 200, body = InvalidateReport), (status = 207, body = InvalidateReport),
        (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn delete_pattern(
    State(state): State<Arc<AppState>>,
    Path(pattern): Path<String>,
) -> Result<Response, ApiError> {
    let pattern = KeyPattern::new(&pattern).map_err(|e| ApiError::bad("pattern", e.to_string()))?;
    run_invalidate(
        &state,
        InvalidateRequest {
            patterns: vec![pattern],
            cascade: true,
            ..InvalidateRequest::default()
        },
    )
    .await
}

#[utoipa::path(post, path = "/performance/cache/warm", tag = "cache", security(("bearer" = [])),
    request_body = WarmRequest,
    responses((status = 200, body = WarmReport), (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn warm(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<WarmReport>, ApiError> {
    let request: WarmRequest = parse(&body)?;
    request.validate()?;
    Ok(Json(
        crate::cache::warm::warm(
            state.config.listen,
            request.urls,
            usize::from(request.concurrency),
        )
        .await,
    ))
}

impl From<ScaleError> for ApiError {
    fn from(e: ScaleError) -> Self {
        match e {
            ScaleError::Invalid(e) => ApiError::from(e),
            ScaleError::Exists(_) => ApiError::Conflict {
                code: "event_exists",
                message: e.to_string(),
            },
            ScaleError::Cluster(ClusterError::NotFound { .. }) => ApiError::NotFound(e.to_string()),
            ScaleError::Cluster(ClusterError::Conflict(_)) => ApiError::Conflict {
                code: "cluster_conflict",
                message: e.to_string(),
            },
            ScaleError::Cluster(ClusterError::Forbidden(_)) => ApiError::BadGateway {
                code: "cluster_forbidden",
                message: e.to_string(),
            },
            ScaleError::Cluster(ClusterError::Failed(_)) => ApiError::BadGateway {
                code: "cluster_error",
                message: e.to_string(),
            },
            ScaleError::Store(e) => ApiError::Unavailable {
                message: format!("scaling state: {e}"),
                retry_after: 5,
            },
        }
    }
}

fn scaler(state: &AppState) -> Result<&Scaler, ApiError> {
    state.scaler.as_deref().ok_or_else(|| {
        ApiError::NotConfigured(
            "scaling hooks are off in this process: start the origin with SURGE_KUBE=in-cluster (inside a pod) or SURGE_KUBE=kubeconfig (KUBECONFIG)".into(),
        )
    })
}

fn accepted<T: Serialize>(a: Accepted<T>) -> Response {
    let status = if a.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(a.value)).into_response()
}

#[utoipa::path(get, path = "/performance/scaling/status", tag = "scaling", security(("bearer" = [])),
    responses((status = 200, body = ScalingStatus), (status = 404, description = "a managed workload has no HPA or Deployment", body = ErrorBody), (status = 502, description = "the Kubernetes API failed or refused", body = ErrorBody), (status = 503, description = "scaling is off (no SURGE_KUBE)", body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn scaling_status(
    State(state): State<Arc<AppState>>,
) -> Result<Json<ScalingStatus>, ApiError> {
    Ok(Json(scaler(&state)?.status().await?))
}

#[utoipa::path(post, path = "/performance/scaling/event", tag = "scaling", security(("bearer" = [])),
    request_body = ScalingEventRequest,
    responses((status = 201, description = "Scheduled", body = ScheduledEvent), (status = 200, description = "The same event was scheduled before", body = ScheduledEvent), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "another event has this name", body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn scaling_event(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ScalingEventRequest = parse(&body)?;
    request.validate()?;
    Ok(accepted(scaler(&state)?.schedule(request).await?))
}

#[utoipa::path(post, path = "/performance/scaling/emergency", tag = "scaling", security(("bearer" = [])),
    request_body = EmergencyScaleRequest,
    responses((status = 201, description = "Scaled up", body = EmergencyScale), (status = 200, description = "An emergency with these targets already holds", body = EmergencyScale), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn scaling_emergency(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: EmergencyScaleRequest = parse(&body)?;
    request.validate()?;
    Ok(accepted(scaler(&state)?.emergency(request).await?))
}

fn registered(
    outcome: Result<VotersReport, RegisterError>,
) -> Result<Json<VotersReport>, ApiError> {
    match outcome {
        Ok(report) => Ok(Json(report)),
        Err(RegisterError::Invalid(e)) => Err(e.into()),
        Err(RegisterError::Store(e)) => Err(crate::http::respond::unavailable(&e)),
    }
}

#[utoipa::path(post, path = "/performance/voters", tag = "voters", security(("bearer" = [])),
    request_body = ImportVotersRequest,
    responses((status = 200, description = "Registered; codes issued for voters sent without one (shown only here)", body = VotersReport), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn import_voters(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<VotersReport>, ApiError> {
    let request: ImportVotersRequest = parse(&body)?;
    registered(voters::register(state.store.as_ref(), &state.voter_codes, &request).await)
}

#[utoipa::path(post, path = "/performance/voters/issue", tag = "voters", security(("bearer" = [])),
    request_body = IssueVotersRequest,
    responses((status = 200, description = "New voters and their codes (shown only here)", body = VotersReport), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn issue_voters(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<VotersReport>, ApiError> {
    let request: IssueVotersRequest = parse(&body)?;
    request.validate()?;
    let import = voters::new_voters(request.election_id, request.count)
        .map_err(|e| ApiError::Internal(e.message))?;
    registered(voters::register(state.store.as_ref(), &state.voter_codes, &import).await)
}

/// Query of `GET /performance/apm/traces`.
#[derive(Debug, Deserialize)]
pub struct TraceQuery {
    /// Most traces per list (default 50, at most 512).
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/performance/apm/traces", tag = "apm", security(("bearer" = [])),
    params(("limit" = Option<usize>, Query, description = "Most traces per list, 1–512 (default 50)")),
    responses((status = 200, description = "Recent and slowest requests", body = Object), (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn traces(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TraceQuery>,
) -> Result<Json<crate::telemetry::TraceReport>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=512).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 512"));
    }
    Ok(Json(state.traces.report(limit)))
}

#[utoipa::path(get, path = "/performance/apm/slow-queries", tag = "apm", security(("bearer" = [])),
    responses((status = 200, description = "Statements over the slow-query threshold, newest first", body = Object), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
async fn slow_queries(State(state): State<Arc<AppState>>) -> Json<Value> {
    match &state.db {
        None => Json(json!({ "configured": false, "queries": [] })),
        Some(db) => Json(json!({ "configured": true, "queries": db.slow.entries() })),
    }
}
