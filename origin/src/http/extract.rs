//! What a request carries, read and checked once: the election id in the path, the voter a
//! session cookie proves, the client's address, and a cacheable GET with the route the
//! metrics middleware classified it under.

use std::net::{IpAddr, SocketAddr};

use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Uri, header};
use surge_shared::Classified;
use time::OffsetDateTime;

use surge_shared::session::cookie_name;

use crate::domain::session::SessionError;

use super::error::ApiError;
use super::state::AppState;

/// Parses an election id from the path.
pub fn election_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::NotFound(format!(
            "election {:?} does not exist: ids are positive integers",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

/// The voter a request's session cookie proves, or 401. With `Secure` cookies only the
/// `__Host-` cookie counts.
pub fn voter(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| {
            surge_shared::auth::cookie_value(h, cookie_name(state.config.domain.secure_cookies))
        })
        .ok_or(ApiError::Session(SessionError::Missing))?;
    let now = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
    state.sessions.verify(token, now).map_err(ApiError::Session)
}

/// The client's address: the configured client-IP header (set by the edge in front) when
/// present and valid, else the TCP peer.
pub fn client_ip(state: &AppState, headers: &HeaderMap, extensions: &Extensions) -> IpAddr {
    state
        .config
        .client_ip_header
        .as_ref()
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
        .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
}

/// A GET on a route that may be cached, as [`super::respond::cached`] needs it: the URI, the
/// headers — taken from the request, not copied: nothing reads them after the handler's
/// extraction — and the route the metrics middleware classified the path under, so the path
/// is matched once per request.
#[derive(Debug)]
pub struct Routed {
    /// The request's URI.
    pub uri: Uri,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its route.
    pub classified: Classified,
}

impl FromRequestParts<Arc<AppState>> for Routed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let classified = parts
            .extensions
            .remove::<Classified>()
            .unwrap_or_else(|| state.config.policy.classified(parts.uri.path()));
        Ok(Self {
            uri: parts.uri.clone(),
            headers: std::mem::take(&mut parts.headers),
            classified,
        })
    }
}
