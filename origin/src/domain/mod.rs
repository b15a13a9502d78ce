//! The reference workload the platform protects, without HTTP: election data for millions
//! of readers, login, and votes that are never lost (committed on the primary before the
//! answer, idempotent per voter).
//!
//! - `model`: the data and request bodies.
//! - `store`: where data lives (Postgres or the embedded demo store).
//! - `session`: signed login cookies with key rotation.
//! - `coalesce`: one results purge per window however many votes arrive.
//! - `voters`: registered voters, their codes and login throttling.

pub mod coalesce;
pub mod config;
pub mod model;
pub mod session;
pub mod store;
pub mod voters;
