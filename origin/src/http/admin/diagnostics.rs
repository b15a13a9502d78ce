//! Diagnostics: recent and slowest requests, the slow-query log, and on-demand CPU profiles.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use surge_shared::admin::{AnalyzeRequest, ErrorBody};

use super::parse;
use crate::db::DbError;
use crate::db::analyze::{QueryAnalysis, analyze_query};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::telemetry::profile::{self, ProfileError};

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
pub(super) async fn profile(body: Bytes) -> Result<Response, ApiError> {
    let request: ProfileRequest = parse(&body)?;
    if !(1..=profile::MAX_SECONDS).contains(&request.seconds) {
        return Err(ApiError::bad(
            "seconds",
            format!("profile for 1 to {} seconds", profile::MAX_SECONDS),
        ));
    }
    let duration = Duration::from_secs(request.seconds);
    let folded = tokio::task::spawn_blocking(move || profile::folded_stacks(duration))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            ProfileError::Busy => ApiError::Conflict {
                code: "profile_running",
                message: e.to_string(),
            },
            ProfileError::Failed(m) => ApiError::Internal(m),
        })?;
    let mut response = folded.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

#[utoipa::path(post, path = "/performance/apm/heap", tag = "apm", security(("bearer" = [])),
    responses((status = 200, description = "The live sampled allocations as a gzipped pprof protobuf (`go tool pprof`, `pprof -http`)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 409, description = "a heap profile is already being taken", body = ErrorBody),
        (status = 503, description = "heap profiling is off in this process", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn heap() -> Result<Response, ApiError> {
    use crate::telemetry::heap::{self, HeapError};
    let profile = heap::pprof().await.map_err(|e| match e {
        HeapError::Busy => ApiError::Conflict {
            code: "profile_running",
            message: e.to_string(),
        },
        HeapError::Off => ApiError::NotConfigured(e.to_string()),
        HeapError::Failed(m) => ApiError::Internal(m),
    })?;
    let mut response = profile.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"heap.pb.gz\""),
    );
    Ok(response)
}

/// Query of `GET /performance/apm/traces`.
#[derive(Debug, Deserialize)]
pub struct TraceQuery {
    /// Most traces per list (default 50, at most 512); read as text so a bad value gets the
    /// API's own error.
    pub limit: Option<String>,
}

#[utoipa::path(get, path = "/performance/apm/traces", tag = "apm", security(("bearer" = [])),
    params(("limit" = Option<usize>, Query, description = "Most traces per list, 1–512 (default 50)")),
    responses((status = 200, description = "Recent and slowest traces as span trees (`recent`, `slowest`), each with its trace id, request id and root span", body = Object), (status = 400, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn traces(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TraceQuery>,
) -> Result<Json<crate::telemetry::spans::TraceReport>, ApiError> {
    let limit = match query.limit.as_deref() {
        None => 50,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=512).contains(n))
            .ok_or_else(|| ApiError::bad("limit", "a whole number between 1 and 512"))?,
    };
    Ok(Json(state.traces.report(limit)))
}

#[utoipa::path(get, path = "/performance/apm/slow-queries", tag = "apm", security(("bearer" = [])),
    responses((status = 200, description = "Statements over the slow-query threshold, newest first", body = Object), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn slow_queries(State(state): State<Arc<AppState>>) -> Json<Value> {
    match &state.db {
        None => Json(json!({ "configured": false, "queries": [] })),
        Some(db) => Json(json!({ "configured": true, "queries": db.slow.entries() })),
    }
}

#[utoipa::path(post, path = "/performance/db/analyze", tag = "apm", security(("bearer" = [])),
    request_body = AnalyzeRequest,
    responses((status = 200, description = "The plan, its cost and rows, the indexes it uses, sequential scans and index suggestions; the query is planned, never run", body = Object),
        (status = 400, description = "not exactly one read-only SELECT, or it calls a volatile function", body = ErrorBody),
        (status = 503, description = "no database configured, or it does not answer", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn analyze(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<QueryAnalysis>, ApiError> {
    let request: AnalyzeRequest = parse(&body)?;
    request.validate()?;
    let db = state.db.as_ref().ok_or_else(|| {
        ApiError::NotConfigured("query analysis needs a database: set DATABASE_URL".into())
    })?;
    match analyze_query(db.router.primary(), &request.query).await {
        Ok(analysis) => Ok(Json(analysis)),
        Err(DbError::Refused(message)) => Err(ApiError::bad("query", message)),
        Err(DbError::Query(message)) => Err(ApiError::bad(
            "query",
            format!("the database cannot plan it: {message}"),
        )),
        Err(e @ (DbError::Unavailable(_) | DbError::Config(_))) => Err(ApiError::Unavailable {
            message: format!("the database does not answer: {e}"),
            retry_after: 5,
        }),
    }
}
