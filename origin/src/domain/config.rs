//! The workload's settings: login sessions (cookie keys, lifetime, `Secure`), the voting-code
//! pepper, vote batching, and how long results purges caused by votes are gathered.

use std::time::Duration;

use crate::settings::{ConfigError, Settings, fail};

use super::store::batch::BatchSettings;
use super::voters::code::MIN_PEPPER_LEN;

/// The workload's settings.
#[derive(Clone)]
pub struct DomainConfig {
    /// Keys that sign and verify `auth_token` cookies (`SURGE_COOKIE_KEYS`, comma-separated,
    /// newest first: the first signs, all verify, so keys rotate without logging anyone out).
    /// Empty: a random key per process (fine for one local process only).
    pub cookie_keys: Vec<Vec<u8>>,
    /// How long a login lasts (`SURGE_SESSION_TTL`, default 1h).
    pub session_ttl: Duration,
    /// Whether cookies carry `Secure` (`SURGE_INSECURE_COOKIES=true` drops it for plain-HTTP
    /// local runs).
    pub secure_cookies: bool,
    /// The pepper voting codes are hashed with (`SURGE_VOTER_PEPPER`, at least 32
    /// characters; required with a database, random per process for the embedded store).
    pub voter_pepper: Option<Vec<u8>>,
    /// How votes are batched per shard (`SURGE_VOTE_BATCH_MAX`, `SURGE_VOTE_BATCH_WAIT`,
    /// `SURGE_VOTE_BATCHES_IN_FLIGHT`).
    pub vote_batch: BatchSettings,
    /// How long tag purges caused by votes are gathered before one purge goes out
    /// (`SURGE_PURGE_COALESCE`, default 1s).
    pub purge_coalesce: Duration,
}

impl std::fmt::Debug for DomainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainConfig")
            .field("cookie_keys", &self.cookie_keys.len())
            .field("session_ttl", &self.session_ttl)
            .field("secure_cookies", &self.secure_cookies)
            .field(
                "voter_pepper",
                &self.voter_pepper.as_ref().map(|_| "<redacted>"),
            )
            .field("vote_batch", &self.vote_batch)
            .field("purge_coalesce", &self.purge_coalesce)
            .finish()
    }
}

/// Reads the workload's settings; `with_database` says whether codes are stored (and so need
/// a pepper shared by every origin).
pub fn read(s: &Settings<'_>, with_database: bool) -> Result<DomainConfig, ConfigError> {
    let cookie_keys = match s.secret("SURGE_COOKIE_KEYS")? {
        None => Vec::new(),
        Some(text) => {
            surge_shared::session::parse_keys(&text).map_err(|m| fail("SURGE_COOKIE_KEYS", m))?
        }
    };
    // Read before the pepper: a bad batch setting is reported even when the pepper is missing.
    let defaults = BatchSettings::default();
    let vote_batch = BatchSettings {
        max_votes: s.number("SURGE_VOTE_BATCH_MAX", defaults.max_votes, 1, 10_000)?,
        max_wait: s.duration(
            "SURGE_VOTE_BATCH_WAIT",
            defaults.max_wait,
            Duration::ZERO,
            Duration::from_millis(100),
        )?,
        in_flight: s.number("SURGE_VOTE_BATCHES_IN_FLIGHT", defaults.in_flight, 1, 64)?,
    };
    let voter_pepper = match s.secret("SURGE_VOTER_PEPPER")? {
        None if with_database => {
            return Err(fail(
                "SURGE_VOTER_PEPPER",
                format!(
                    "voting codes in Postgres are hashed with a server-side pepper: set at least {MIN_PEPPER_LEN} random characters (e.g. `openssl rand -hex 32`), the same on every origin"
                ),
            ));
        }
        None => None,
        Some(p) if p.len() < MIN_PEPPER_LEN => {
            return Err(fail(
                "SURGE_VOTER_PEPPER",
                format!("use at least {MIN_PEPPER_LEN} characters (e.g. `openssl rand -hex 32`)"),
            ));
        }
        Some(p) => Some(p.into_bytes()),
    };
    Ok(DomainConfig {
        cookie_keys,
        session_ttl: s.duration(
            "SURGE_SESSION_TTL",
            Duration::from_secs(3600),
            Duration::from_secs(60),
            Duration::from_secs(7 * 86400),
        )?,
        secure_cookies: !s.flag("SURGE_INSECURE_COOKIES", false)?,
        voter_pepper,
        vote_batch,
        purge_coalesce: s.duration(
            "SURGE_PURGE_COALESCE",
            Duration::from_secs(1),
            Duration::from_millis(10),
            Duration::from_secs(60),
        )?,
    })
}
