//! Surge's origin service: an `axum` + `tokio` server that answers the reference workload
//! behind the edge and exposes the operators' admin API (`/performance/*`). Keys, tags and
//! routes come from `surge-shared`; the cache tiers, the Postgres tier, the CDN purge client
//! and the purge orchestration that spans them live here.

pub mod cache;
pub mod cdn;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod purge;
pub mod redact;
pub mod scaling;
pub mod settings;
pub mod startup;
pub mod telemetry;
