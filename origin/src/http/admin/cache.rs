//! The cache: counters, what a URL keys to, purges across every tier, and warming.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use surge_shared::admin::{
    ErrorBody, InvalidateReport, InvalidateRequest, WarmReport, WarmRequest,
};
use surge_shared::key::CanonicalUrl;
use surge_shared::{CacheClass, CacheKey, KeyPattern};

use super::parse;
use crate::http::AppState;
use crate::http::error::ApiError;

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

pub(super) async fn cache_stats_of(state: &AppState) -> CacheStats {
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
pub(super) async fn cache_stats(State(state): State<Arc<AppState>>) -> Json<CacheStats> {
    Json(cache_stats_of(&state).await)
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
    /// Its fixed-length digest (for stores and logs that limit key length; L2 keeps the
    /// readable key).
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
pub(super) async fn cache_key(
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
    let canonical =
        CanonicalUrl::parse(&policy.key, &url).map_err(|e| ApiError::bad("url", e.to_string()))?;
    let no_headers: [(&str, &str); 0] = [];
    let matched = policy.classify(canonical.path());
    let keyed = matched.route.keyed_url(&canonical);
    let key = CacheKey::for_canonical_url(&policy.key, &keyed, &no_headers[..]);
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

pub(super) fn report_response(report: InvalidateReport) -> Response {
    // 207: some tier failed; the body says which.
    let status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (status, Json(report)).into_response()
}

pub(super) async fn run_invalidate(
    state: &AppState,
    request: InvalidateRequest,
) -> Result<Response, ApiError> {
    request.validate()?;
    let plan = state.purger.plan(&request)?;
    Ok(report_response(state.purger.run(plan).await))
}

#[utoipa::path(post, path = "/performance/cache/invalidate", tag = "cache", security(("bearer" = [])),
    request_body = InvalidateRequest,
    responses((status = 200, description = "Every tier done or skipped", body = InvalidateReport),
        (status = 207, description = "Some tier failed; see its line", body = InvalidateReport),
        (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn invalidate(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: InvalidateRequest = parse(&body)?;
    run_invalidate(&state, request).await
}

#[utoipa::path(delete, path = "/performance/cache/{pattern}", tag = "cache", security(("bearer" = [])),
    params(("pattern" = String, Path, description = "A URL glob, percent-encoded: a scheme, a host and a first path segment before any wildcard, at most 8 wildcards")),
    responses((status = 200, body = InvalidateReport), (status = 207, body = InvalidateReport),
        (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn delete_pattern(
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
pub(super) async fn warm(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<WarmReport>, ApiError> {
    let request: WarmRequest = parse(&body)?;
    request.validate()?;
    Ok(Json(
        crate::cache::warm::warm(
            &state.config.warm_target(),
            request.urls,
            usize::from(request.concurrency),
        )
        .await,
    ))
}
