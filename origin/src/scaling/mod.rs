//! Scaling hooks: scheduled events, emergency scale-ups and the predictive floor, applied to
//! the cluster as HorizontalPodAutoscaler `minReplicas` floors.
//!
//! - `history`: the origin's own request rate per minute;
//! - `forecast`: Holt-Winters / Holt forecast and the replica floor it implies;
//! - `plan`: which floor each workload needs now, and why (pure);
//! - `store`: events, emergencies, audit log and controller lease (Postgres or memory);
//! - `cluster`: the `kube` client for HPAs and Deployment scale;
//! - `controller`: ties them together on a tick and behind the admin API.

pub mod cluster;
pub mod config;
pub mod controller;
pub mod forecast;
pub mod history;
pub mod plan;
pub mod store;
