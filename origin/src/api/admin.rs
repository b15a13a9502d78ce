//! `/performance/*` handlers.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use surge_shared::{CacheClass, CacheKey};

use super::AppState;
use super::error::ApiError;

/// The admin routes (mounted under `/performance`).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/cache/key", get(cache_key))
}

/// Query of `GET /performance/cache/key`.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    /// The absolute URL to explain.
    pub url: Option<String>,
}

/// What a URL maps to in the key/tag scheme.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The canonical key.
    pub key: String,
    /// Its fixed-length Redis form.
    pub hashed: String,
    /// The route that matched.
    pub route: String,
    /// The route's cache class.
    pub class: CacheClass,
    /// The tags responses carry.
    pub tags: Vec<String>,
    /// The `Cache-Control` the origin sends.
    pub cache_control: String,
}

async fn cache_key(
    State(state): State<Arc<AppState>>,
    Query(query): Query<KeyQuery>,
) -> Result<Json<KeyInfo>, ApiError> {
    let bad = |message: String| ApiError::BadRequest {
        field: Some("url".into()),
        message,
    };
    let url = query
        .url
        .ok_or_else(|| bad("add ?url=<absolute URL, percent-encoded> to the request".into()))?;
    let policy = &state.config.policy;
    let no_headers: [(&str, &str); 0] = [];
    let key =
        CacheKey::new(&policy.key, "GET", &url, &no_headers[..]).map_err(|e| bad(e.to_string()))?;
    let path = key
        .url()
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let matched = policy.classify(path);
    let tags = matched
        .route
        .tags(&matched.params)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Json(KeyInfo {
        hashed: key.hashed(),
        key: key.as_str().to_string(),
        route: matched.route.name.clone(),
        class: matched.route.class,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        cache_control: matched.route.cache_control(),
    }))
}
