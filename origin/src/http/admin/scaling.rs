//! Scaling: the hooks' status, scheduled events and emergencies.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use surge_shared::admin::{
    EmergencyScale, EmergencyScaleRequest, ErrorBody, ScalingEventRequest, ScalingStatus,
    ScheduledEvent,
};

use super::parse;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::scaling::cluster::ClusterError;
use crate::scaling::controller::{Accepted, ScaleError, Scaler};

impl From<ScaleError> for ApiError {
    fn from(e: ScaleError) -> Self {
        match e {
            ScaleError::Invalid(e) => ApiError::from(e),
            ScaleError::Unacceptable(e) => ApiError::Unprocessable {
                field: Some(e.field),
                message: e.message,
            },
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

pub(super) fn scaler(state: &AppState) -> Result<&Scaler, ApiError> {
    state.scaler.as_deref().ok_or_else(|| {
        ApiError::NotConfigured(
            "scaling hooks are off in this process: start the origin with SURGE_KUBE=in-cluster (inside a pod) or SURGE_KUBE=kubeconfig (KUBECONFIG)".into(),
        )
    })
}

pub(super) fn accepted<T: Serialize>(a: Accepted<T>) -> Response {
    let status = if a.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(a.value)).into_response()
}

#[utoipa::path(get, path = "/performance/scaling/status", tag = "scaling", security(("bearer" = [])),
    responses((status = 200, body = ScalingStatus), (status = 404, description = "a managed workload has no HPA or Deployment", body = ErrorBody), (status = 502, description = "the Kubernetes API failed or refused", body = ErrorBody), (status = 503, description = "scaling is off (no SURGE_KUBE)", body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn scaling_status(
    State(state): State<Arc<AppState>>,
) -> Result<Json<ScalingStatus>, ApiError> {
    Ok(Json(scaler(&state)?.status().await?))
}

#[utoipa::path(post, path = "/performance/scaling/event", tag = "scaling", security(("bearer" = [])),
    request_body = ScalingEventRequest,
    responses((status = 201, description = "Scheduled", body = ScheduledEvent), (status = 200, description = "The same event was scheduled before", body = ScheduledEvent), (status = 400, body = ErrorBody), (status = 422, description = "a workload this origin does not manage, more replicas than its HPA's maxReplicas, or an event already over", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "another event has this name", body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn scaling_event(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ScalingEventRequest = parse(&body)?;
    request.validate()?;
    Ok(accepted(scaler(&state)?.schedule(request).await?))
}

#[utoipa::path(post, path = "/performance/scaling/emergency", tag = "scaling", security(("bearer" = [])),
    request_body = EmergencyScaleRequest,
    responses((status = 201, description = "Scaled up", body = EmergencyScale), (status = 200, description = "An emergency with these targets already holds", body = EmergencyScale), (status = 400, body = ErrorBody), (status = 422, description = "a workload this origin does not manage, more replicas than its HPA's maxReplicas, or an event already over", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn scaling_emergency(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: EmergencyScaleRequest = parse(&body)?;
    request.validate()?;
    Ok(accepted(scaler(&state)?.emergency(request).await?))
}
