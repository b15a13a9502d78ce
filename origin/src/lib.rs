//! Surge's origin service: an `axum` + `tokio` server that answers the reference workload
//! behind the edge and exposes the operators' admin API (`/performance/*`). Keys, tags and
//! routes come from `surge-shared`.

pub mod api;
pub mod cache;
pub mod config;
pub mod db;
