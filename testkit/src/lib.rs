//! Surge's test harness: starts REAL services on 127.0.0.1 on free ports, waits until they are
//! ready, and tears them down when the handle is dropped (also while a test panics).
//!
//! - [`postgres::PgPair`]: a PostgreSQL primary and one streaming replica (`pg_basebackup -R`),
//!   run as the `postgres` user when the test runs as root.
//! - [`redis::RedisServer`]: one Redis node.
//! - [`redis::RedisCluster`]: three masters and three replicas, ready only when the cluster
//!   state is ok everywhere and every replica's link to its master is up.
//! - [`origin::TestOrigin`]: a scriptable HTTP origin that can be stopped and resumed.
//! - [`cloudflare::CloudflareStandin`]: Cloudflare's purge API, checked against its
//!   documented contract (the real API is not reachable from tests).
//! - [`wrangler::WranglerDev`]: the edge Worker under workerd (`wrangler dev --local`).
//! - [`prometheus::Prometheus`]: a real Prometheus scraping given targets with the
//!   project's rules.
//! - [`otlp::OtlpReceiver`]: an OpenTelemetry collector's OTLP/HTTP trace receiver that
//!   checks and decodes what arrives.
//! - [`contract::Contract`]: conforming requests and single-constraint violations drawn from
//!   an OpenAPI document, for contract tests and fuzzing.
//!
//! Every handle can stop and start its services again, for fault tests. The harness is
//! synchronous (it runs commands and polls) so it works from plain and async tests alike.

pub mod cloudflare;
pub mod contract;
pub mod kube;
pub mod net;
pub mod origin;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod redis;
pub mod tls;
pub mod wrangler;

use std::time::Duration;

/// Why a service could not be started or controlled.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A required program is missing.
    #[error("{program} not found ({hint})")]
    Missing {
        /// The program.
        program: String,
        /// How to install it.
        hint: &'static str,
    },
    /// A command failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and output.
        output: String,
    },
    /// A service did not become ready in time.
    #[error("{what} not ready after {waited:?}: {detail}")]
    Timeout {
        /// The service.
        what: String,
        /// How long we waited.
        waited: Duration,
        /// Last observation (log tail, last answer).
        detail: String,
    },
    /// File system trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Result of harness operations.
pub type Result<T> = std::result::Result<T, HarnessError>;
