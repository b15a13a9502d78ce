//! Scaling hooks. This part: predictive scaling's pure core — the per-minute request-rate
//! history (`history`) and the forecaster with the replica floor it implies (`forecast`).
//! Applying the floor to a cluster goes through the Kubernetes client.

pub mod forecast;
pub mod history;
