//! Bearer-token guard for the admin API: compared in constant time, failed attempts limited
//! per client address, the token never logged.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Failed attempts per address within a minute before further attempts are refused.
pub const MAX_FAILURES: u32 = 10;

/// Lets the request through only with `Authorization: Bearer <token>`.
pub async fn require_admin_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let expected = state
        .config
        .admin_token
        .as_deref()
        .ok_or(ApiError::AdminDisabled)?;
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let failures = state.admin_failures.get(&client).unwrap_or(0);
    if failures >= MAX_FAILURES {
        return Err(ApiError::TooManyAttempts(60));
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(next.run(request).await)
    } else {
        state.admin_failures.insert(client, failures + 1);
        tracing::warn!(%client, "admin API: missing or wrong bearer token");
        Err(ApiError::Unauthorized)
    }
}
