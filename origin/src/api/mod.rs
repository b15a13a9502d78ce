//! HTTP surface: the public health probe and the `/performance/*` admin API behind a bearer
//! token. Handlers extract typed input, call one domain function and map errors in one place
//! ([`error::ApiError`]).

pub mod admin;
pub mod auth;
pub mod error;

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::{Value, json};

use crate::config::Config;

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
}

/// Builds the whole router.
pub fn router(state: Arc<AppState>) -> Router {
    let admin = admin::routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_admin_token,
    ));
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/performance", admin)
        .with_state(state)
}

async fn healthz(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "status": "ok", "region": state.config.region }))
}
