//! The voter registry: importing registered voters and issuing new ones with codes.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use surge_shared::admin::{ErrorBody, ImportVotersRequest, IssueVotersRequest, VotersReport};

use super::parse;
use crate::domain::voters::{self, RegisterError};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::respond::unavailable;

fn registered(
    outcome: Result<VotersReport, RegisterError>,
) -> Result<Json<VotersReport>, ApiError> {
    match outcome {
        Ok(report) => Ok(Json(report)),
        Err(RegisterError::Invalid(e)) => Err(e.into()),
        Err(RegisterError::Store(e)) => Err(unavailable(&e)),
    }
}

#[utoipa::path(post, path = "/performance/voters", tag = "voters", security(("bearer" = [])),
    request_body = ImportVotersRequest,
    responses((status = 200, description = "Registered; codes issued for voters sent without one (shown only here)", body = VotersReport), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn import_voters(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<VotersReport>, ApiError> {
    let request: ImportVotersRequest = parse(&body)?;
    registered(voters::register(state.store.as_ref(), &state.voter_codes, &request).await)
}

#[utoipa::path(post, path = "/performance/voters/issue", tag = "voters", security(("bearer" = [])),
    request_body = IssueVotersRequest,
    responses((status = 200, description = "New voters and their codes (shown only here)", body = VotersReport), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody), (status = 401, description = "missing or wrong token", body = ErrorBody), (status = 429, description = "too many failed tokens", body = ErrorBody)))]
pub(super) async fn issue_voters(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<VotersReport>, ApiError> {
    let request: IssueVotersRequest = parse(&body)?;
    request.validate()?;
    let import = voters::new_voters(request.election_id, request.count)
        .map_err(|e| ApiError::Internal(e.message))?;
    registered(voters::register(state.store.as_ref(), &state.voter_codes, &import).await)
}
