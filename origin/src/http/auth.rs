//! Bearer-token guard for the admin API: compared in constant time, the token never logged.
//! Wrong tokens are throttled per client address and token prefix, atomically; the right
//! token is never refused and clears its address's count; a request with no token at all is a
//! plain 401 that counts for nothing, so nobody can lock operators out without guessing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use moka::ops::compute::Op;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Wrong tokens per address and prefix within a minute before further wrong ones get 429.
pub const MAX_FAILURES: u32 = 10;
/// Characters of a presented token that key its failure count.
const PREFIX: usize = 4;

/// Who a failure is counted against: the client address and the presented token's prefix.
pub type FailureKey = (IpAddr, String);

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
    let Some(presented) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
    else {
        return Err(ApiError::Unauthorized);
    };
    let key: FailureKey = (client, presented.chars().take(PREFIX).collect());
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        state.admin_failures.invalidate(&key);
        return Ok(next.run(request).await);
    }
    let mut failures = 0;
    state.admin_failures.entry(key).and_compute_with(|entry| {
        failures = entry.map_or(0, |e| e.into_value()).saturating_add(1);
        Op::Put(failures)
    });
    tracing::warn!(%client, failures, "admin API: wrong bearer token");
    if failures > MAX_FAILURES {
        Err(ApiError::TooManyAttempts(60))
    } else {
        Err(ApiError::Unauthorized)
    }
}
