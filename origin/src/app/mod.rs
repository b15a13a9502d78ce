//! The reference workload the platform protects: election data for millions of readers
//! (cached at the edge, in L1/L2, read from replicas), login, and votes that are never lost
//! (committed on the primary before the answer, idempotent per voter).
//!
//! - `model`: the data and request bodies.
//! - `store`: where data lives (Postgres or the embedded demo store).
//! - `session`: signed login cookies with key rotation.
//! - `respond`: serving a route through the hybrid cache with the policy's headers.
//! - `handlers`: the JSON API; `pages`: the server-rendered HTML.
//! - `coalesce`: one results purge per window however many votes arrive.
//! - `voters`: registered voters, their codes and login throttling.

pub mod coalesce;
pub mod handlers;
pub mod model;
pub mod pages;
pub mod respond;
pub mod session;
pub mod store;
pub mod voters;
pub mod warm;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The public routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/elections", get(handlers::elections))
        .route("/api/elections/{id}", get(handlers::election))
        .route("/api/elections/{id}/ballot", get(handlers::ballot))
        .route("/api/elections/{id}/results", get(handlers::results))
        .route("/api/elections/{id}/votes", post(handlers::vote))
        .route("/api/login", post(handlers::login))
        .route("/api/me/votes/{id}", get(handlers::my_vote))
        .route("/elections/{id}", get(pages::election))
        .route("/elections/{id}/results", get(pages::results))
        .route("/elections/{id}/receipt", get(pages::receipt))
        .route("/login", get(pages::login))
}
