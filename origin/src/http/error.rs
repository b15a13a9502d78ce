//! The one place API errors become HTTP responses (JSON [`ErrorBody`]), for the public
//! workload and the admin API alike.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use surge_shared::admin::ErrorBody;

use crate::domain::session::SessionError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or wrong bearer token.
    #[error("missing or wrong bearer token: send `Authorization: Bearer <SURGE_ADMIN_TOKEN>`")]
    Unauthorized,
    /// Too many failed admin authentications from this client.
    #[error("too many failed admin logins from this address: wait {0} s")]
    TooManyAttempts(u64),
    /// Too many login attempts for this voter from this network, or from this network.
    #[error("too many login attempts: wait {0} s and try again")]
    TooManyLogins(u64),
    /// The caller may not do this; `code` says why.
    #[error("{message}")]
    Forbidden {
        /// Machine-readable code (`not_eligible`, …).
        code: &'static str,
        /// What happened.
        message: String,
    },
    /// The admin API has no token configured, so it is off.
    #[error("the admin API is disabled: start the origin with SURGE_ADMIN_TOKEN set")]
    AdminDisabled,
    /// No valid login cookie.
    #[error("{0}")]
    Session(SessionError),
    /// The request is malformed; `field` names what to fix.
    #[error("{message}")]
    BadRequest {
        /// The field at fault.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Well-formed but not acceptable (e.g. an option not on the ballot).
    #[error("{message}")]
    Unprocessable {
        /// The field at fault.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The body is larger than the route accepts (bytes).
    #[error("the body is larger than this route's limit of {0} bytes")]
    PayloadTooLarge(u64),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state; `code` says how.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code (`already_voted`, `voting_closed`, …).
        code: &'static str,
        /// What happened.
        message: String,
    },
    /// A dependency is down; retry after `retry_after` seconds.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The operation needs configuration this process was started without.
    #[error("{0}")]
    NotConfigured(String),
    /// A system this call depends on failed or refused; `code` says which.
    #[error("{message}")]
    BadGateway {
        /// Machine-readable code (`cluster_forbidden`, `cluster_error`).
        code: &'static str,
        /// What happened and how to fix it.
        message: String,
    },
    /// Something failed that the caller cannot fix.
    #[error("{0}")]
    Internal(String),
}

impl From<surge_shared::admin::AdminError> for ApiError {
    /// A request the shared validators refused: 400 naming the field.
    fn from(e: surge_shared::admin::AdminError) -> Self {
        ApiError::BadRequest {
            field: Some(e.field),
            message: e.message,
        }
    }
}

impl From<crate::purge::PlanError> for ApiError {
    /// A purge request whose targets cannot be translated: 400 naming the field.
    fn from(e: crate::purge::PlanError) -> Self {
        ApiError::BadRequest {
            field: Some(e.field),
            message: e.message,
        }
    }
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// Seconds to wait before retrying, when that helps.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Unavailable { retry_after, .. } => Some(*retry_after),
            ApiError::TooManyAttempts(s) | ApiError::TooManyLogins(s) => Some(*s),
            _ => None,
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ApiError::TooManyLogins(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_logins"),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::AdminDisabled => (StatusCode::SERVICE_UNAVAILABLE, "admin_disabled"),
            ApiError::Session(SessionError::BadCredentials) => {
                (StatusCode::UNAUTHORIZED, "invalid_credentials")
            }
            ApiError::Session(_) => (StatusCode::UNAUTHORIZED, "not_logged_in"),
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::NotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
            ApiError::BadGateway { code, .. } => (StatusCode::BAD_GATEWAY, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// A short random reference tying an answer to its log line.
fn reference() -> String {
    let mut bytes = [0u8; 6];
    match getrandom::fill(&mut bytes) {
        Ok(()) => hex::encode(bytes),
        Err(_) => format!("t{}", crate::clock::now_ms()),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let field = match &self {
            ApiError::BadRequest { field, .. } | ApiError::Unprocessable { field, .. } => {
                field.clone()
            }
            _ => None,
        };
        let retry_after = self.retry_after();
        let message = match &self {
            // The detail (a database message, a path) goes to the log only; the caller gets a
            // reference to quote.
            ApiError::Internal(detail) => {
                let reference = reference();
                tracing::error!(%reference, "internal error: {detail}");
                format!(
                    "something went wrong on our side; quote reference {reference} if you report it"
                )
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: code.to_string(),
            message,
            field,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(self, ApiError::Unauthorized) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_500_says_nothing_of_its_cause_but_gives_a_reference() {
        let response =
            ApiError::Internal("query failed: password=hunter2 at /srv/db".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: ErrorBody = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body.error, "internal");
        assert!(!body.message.contains("hunter2") && !body.message.contains("/srv"));
        assert!(body.message.contains("reference "), "{}", body.message);
    }

    #[tokio::test]
    async fn an_oversize_body_is_a_413() {
        let response = ApiError::PayloadTooLarge(4096).into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
