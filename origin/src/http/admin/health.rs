//! Health, metrics and stats: per-dependency status, the OpenMetrics exposition, and one
//! JSON view of the caches, pools, replicas, vote purges and traffic.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use surge_shared::admin::ErrorBody;

use super::cache::cache_stats_of;
use crate::clock::now_ms;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::scaling::forecast::forecast;
use crate::telemetry::exposition::{self, DbReadings, Readings};

#[utoipa::path(get, path = "/performance/sla", tag = "health", security(("bearer" = [])),
    responses((status = 200, description = "Availability and latency compliance over 1 h, 24 h and 30 d, the error budget left, the burn rate and the fast-burn incidents", body = crate::telemetry::sla::SlaReport),
        (status = 503, description = "the store of SLA minutes (Postgres) is unavailable", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn sla(
    State(state): State<Arc<AppState>>,
) -> Result<Json<crate::telemetry::sla::SlaReport>, ApiError> {
    state
        .sla
        .report(now_ms())
        .await
        .map(Json)
        .map_err(|e| ApiError::Unavailable {
            message: format!("SLA minutes: {e}"),
            retry_after: 5,
        })
}

#[utoipa::path(get, path = "/performance/health", tag = "health", security(("bearer" = [])),
    responses((status = 200, description = "Per-dependency status: Postgres primary and replicas with lag, Redis, CDN", body = Object), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut degraded = false;
    let postgres =
        match &state.db {
            None => json!({ "configured": false, "store": state.store.kind() }),
            Some(db) => {
                let primary =
                    match tokio::time::timeout(Duration::from_secs(2), db.router.primary().ping())
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

#[utoipa::path(get, path = "/performance/metrics", tag = "health", security(("bearer" = [])),
    responses((status = 200, description = "OpenMetrics text: latency histograms by route, cache hit ratios per tier, pool stats, replica lag", content_type = "application/openmetrics-text", body = String), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    render_metrics(&state).await
}

/// The OpenMetrics exposition of this process (also served without the token on the metrics
/// listener).
pub(crate) async fn render_metrics(state: &AppState) -> Result<Response, ApiError> {
    let purges = state.vote_purges.stats();
    let readings = Readings {
        region: state.config.region.clone(),
        requests: state.metrics.requests.clone(),
        cache: state.cache.stats(),
        redis_up: state.cache.l2_available(),
        l1_entries: state.cache.l1_len().await,
        l1_bytes: state.cache.l1_weight().await,
        vote_purges_marked: purges.marked,
        vote_purges_sent: purges.flushes,
        front_answers: state.metrics.front_answers(),
        db: state.db.as_ref().map(|db| DbReadings {
            primary: db.router.primary().stats(),
            acquire_seconds: db.router.primary().acquire_histogram(),
            replicas: db.router.status(),
        }),
    };
    let process = crate::telemetry::process::ProcessReadings::read();
    let text = exposition::encode(&readings, &process)
        .map_err(|e| ApiError::Internal(format!("metrics encoding: {e}")))?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(exposition::CONTENT_TYPE),
    );
    Ok(response)
}

#[utoipa::path(get, path = "/performance/stats", tag = "health", security(("bearer" = [])),
    responses((status = 200, description = "Cache, pools, replicas and vote purge counters", body = Object), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn stats(State(state): State<Arc<AppState>>) -> Json<Value> {
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

/// This pod's requests per minute over its last two hours and the forecast for the next hour
/// from them (the deployment-wide history the predictive floor reads is in the scaling store).
fn traffic(state: &AppState) -> Value {
    let series = state.rates.series(now_ms());
    let next_hour = forecast(&series, 24 * 60, 60);
    json!({
        "history_minutes": series.len(),
        "last_minutes_rpm": series.iter().rev().take(10).rev().collect::<Vec<_>>(),
        "forecast_method": next_hour.method,
        "forecast_peak_rpm_next_hour": next_hour.peak(),
    })
}
