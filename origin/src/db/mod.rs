//! The Postgres tier: pooled connections with statistics (`pool`), a lag-aware read-replica
//! router with read-your-writes (`router`), a stable shard map (`shard`), query analysis with
//! `EXPLAIN (FORMAT JSON)` (`analyze`), a slow-query log (`slowlog`), and embedded, versioned
//! migrations (`migrate`).

pub mod analyze;
pub mod config;
pub mod migrate;
pub mod pool;
pub mod router;
pub mod shard;
pub mod slowlog;
pub mod tls;

/// What a data-store call can fail with, as its caller acts on it: retry later, or not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backing database cannot be reached or refused the connection; retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("database error: {0}")]
    Failed(String),
}

/// Future returned by data-store calls.
pub type StoreFuture<'a, T> = futures_util::future::BoxFuture<'a, Result<T, StoreError>>;

/// A Postgres-tier failure, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The connection URL or pool settings are unusable.
    #[error("database configuration: {0}")]
    Config(String),
    /// No connection within the acquire timeout, or the server is unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement failed.
    #[error("query failed: {0}")]
    Query(String),
    /// The statement was refused before reaching the server.
    #[error("refused: {0}")]
    Refused(String),
}

impl From<tokio_postgres::Error> for DbError {
    /// A lost connection — closed, or ended by the server shutting down (SQLSTATE class 57P,
    /// operator intervention, or 08, connection exception) — is `Unavailable`: the statement
    /// may succeed elsewhere or later. Anything else is the statement's own failure.
    fn from(e: tokio_postgres::Error) -> Self {
        let lost = e.is_closed()
            || e.code()
                .is_some_and(|c| c.code().starts_with("57P") || c.code().starts_with("08"));
        if lost {
            DbError::Unavailable(
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string()),
            )
        } else {
            DbError::Query(
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string()),
            )
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    /// The pool's error with its causes (a TLS failure says which certificate check failed).
    fn from(e: deadpool_postgres::PoolError) -> Self {
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(inner) = cause {
            let text = inner.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = inner.source();
        }
        DbError::Unavailable(crate::redact::redact(&message))
    }
}
