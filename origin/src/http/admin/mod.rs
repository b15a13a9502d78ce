//! `/performance/*`: the operators' API behind the bearer token — health, metrics and stats
//! (`health`), cache inspection, purges and warming (`cache`), scaling (`scaling`), the voter
//! registry (`voters`), and traces, slow queries and profiles (`diagnostics`) — with its
//! OpenAPI document (public and admin routes, with every validator rule: [`super::contract`]).

mod cache;
mod diagnostics;
mod health;
mod scaling;
mod voters;

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::{Json, Router};
use surge_shared::admin::parse_json;
use utoipa::OpenApi;

use super::AppState;
use super::error::ApiError;

pub(crate) use health::render_metrics;

/// The admin routes (mounted under `/performance`).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/stats", get(health::stats))
        .route("/sla", get(health::sla))
        .route("/cache/stats", get(cache::cache_stats))
        .route("/cache/key", get(cache::cache_key))
        .route("/cache/invalidate", post(cache::invalidate))
        .route("/cache/warm", post(cache::warm))
        .route("/cache/{pattern}", delete(cache::delete_pattern))
        .route("/scaling/status", get(scaling::scaling_status))
        .route("/scaling/event", post(scaling::scaling_event))
        .route("/scaling/emergency", post(scaling::scaling_emergency))
        .route("/voters", post(voters::import_voters))
        .route("/voters/issue", post(voters::issue_voters))
        .route("/apm/traces", get(diagnostics::traces))
        .route("/apm/slow-queries", get(diagnostics::slow_queries))
        .route("/apm/profile", post(diagnostics::profile))
        .route("/apm/heap", post(diagnostics::heap))
        .route("/db/analyze", post(diagnostics::analyze))
        .route("/openapi.json", get(openapi))
}

/// The admin routes' part of the OpenAPI document ([`super::contract`] completes it).
#[derive(OpenApi)]
#[openapi(paths(
    health::health,
    health::metrics,
    health::stats,
    health::sla,
    cache::cache_stats,
    cache::cache_key,
    cache::invalidate,
    cache::delete_pattern,
    cache::warm,
    scaling::scaling_status,
    scaling::scaling_event,
    scaling::scaling_emergency,
    voters::import_voters,
    voters::issue_voters,
    diagnostics::traces,
    diagnostics::slow_queries,
    diagnostics::profile,
    diagnostics::heap,
    diagnostics::analyze
))]
pub(super) struct AdminApi;

/// `GET /performance/openapi.json`: the whole API's contract.
async fn openapi() -> Json<&'static serde_json::Value> {
    Json(super::contract::document())
}

/// A JSON body as `T`, or a 400 naming the bad field.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse_json(body).map_err(ApiError::from)
}
