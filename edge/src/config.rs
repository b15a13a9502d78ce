//! The edge's configuration: the shared policy and the geo table, from platform variables
//! (wrangler `[vars]`, or the wasi host's environment), validated once.

use surge_shared::{GeoTable, Policy};

/// Geo table used when `SURGE_GEO` is not set: one local origin.
pub const DEFAULT_GEO_JSON: &str =
    r#"{"regions":{"local":{"origin":"http://127.0.0.1:8080"}},"default":["local"]}"#;

/// Seconds a client is told to wait when no origin answers.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 5;
/// How many limiter checks, on average, per sweep of a host key-value store.
pub const DEFAULT_KV_SWEEP_ONE_IN: u64 = 1024;

/// A variable that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The variable at fault.
    pub var: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Everything the pipeline is configured with.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Routes, auth bypass, key scheme, quotas (`SURGE_POLICY`, JSON; shipped policy when
    /// unset).
    pub policy: Policy,
    /// Regions and failover order (`SURGE_GEO`, JSON).
    pub geo: GeoTable,
    /// `Retry-After` for unavailability answers (`SURGE_RETRY_AFTER`, seconds).
    pub retry_after_secs: u64,
    /// The origin's login cookie keys (`SURGE_COOKIE_KEYS`, a Worker secret or the
    /// component's variable; comma-separated): vote quotas count the voter a cookie proves.
    /// Empty: every cookie is unverifiable and counted by network.
    pub cookie_keys: Vec<Vec<u8>>,
    /// Keys to sign origin requests with (`SURGE_EDGE_KEYS`, a Worker secret or the
    /// component's variable; `id:secret` pairs, newest first, the first signs). Empty: origin
    /// requests go unsigned (local runs against an origin without `SURGE_EDGE_KEYS`).
    pub edge_keys: Vec<surge_shared::edge_auth::EdgeKey>,
    /// On runtimes that keep state in a host key-value store (Spin): about one limiter check
    /// in this many also sweeps the store of limiter keys and cache entries past their time
    /// (`SURGE_KV_SWEEP_ONE_IN`, 1 to 1,000,000; 1 sweeps on every check).
    pub kv_sweep_one_in: u64,
}

impl EdgeConfig {
    /// Reads and validates the variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let policy = match var("SURGE_POLICY").filter(|p| !p.trim().is_empty()) {
            None => Policy::election_default(),
            // JSON only: a TOML parser would add to every Worker's size.
            Some(text) if !text.trim_start().starts_with('{') => {
                return Err(ConfigError {
                    var: "SURGE_POLICY",
                    message: "the edge reads policies as JSON; convert the TOML file (e.g. with \
                              surge_shared::Policy::from_toml_str and serde_json)"
                        .into(),
                });
            }
            Some(text) => Policy::from_json_str(&text).map_err(|e| ConfigError {
                var: "SURGE_POLICY",
                message: e.to_string(),
            })?,
        };
        let geo_text = var("SURGE_GEO")
            .filter(|g| !g.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_GEO_JSON.to_string());
        let geo = GeoTable::from_json_str(&geo_text).map_err(|e| ConfigError {
            var: "SURGE_GEO",
            message: e.to_string(),
        })?;
        let retry_after_secs = number(
            &var,
            "SURGE_RETRY_AFTER",
            DEFAULT_RETRY_AFTER_SECS,
            1..=3600,
            "a number of seconds",
        )?;
        let cookie_keys = match var("SURGE_COOKIE_KEYS").filter(|k| !k.trim().is_empty()) {
            None => Vec::new(),
            Some(text) => {
                surge_shared::session::parse_keys(&text).map_err(|message| ConfigError {
                    var: "SURGE_COOKIE_KEYS",
                    message,
                })?
            }
        };
        let edge_keys = match var("SURGE_EDGE_KEYS").filter(|k| !k.trim().is_empty()) {
            None => Vec::new(),
            Some(text) => {
                surge_shared::edge_auth::parse_keys(&text).map_err(|message| ConfigError {
                    var: "SURGE_EDGE_KEYS",
                    message,
                })?
            }
        };
        let kv_sweep_one_in = number(
            &var,
            "SURGE_KV_SWEEP_ONE_IN",
            DEFAULT_KV_SWEEP_ONE_IN,
            1..=1_000_000,
            "a count of checks per sweep",
        )?;
        Ok(Self {
            policy,
            geo,
            retry_after_secs,
            cookie_keys,
            edge_keys,
            kv_sweep_one_in,
        })
    }
}

/// The whole number in `name`, `default` when unset; an error names the range.
fn number(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    what: &str,
) -> Result<u64, ConfigError> {
    let Some(text) = var(name) else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| ConfigError {
            var: name,
            message: format!(
                "{text:?} is not {what} from {} to {}",
                range.start(),
                range.end()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_variables() {
        let c = EdgeConfig::from_vars(|_| None).expect("defaults");
        assert_eq!(c.geo.failover_order(None, None), ["local"]);
        assert_eq!(c.retry_after_secs, DEFAULT_RETRY_AFTER_SECS);
        assert_eq!(c.kv_sweep_one_in, DEFAULT_KV_SWEEP_ONE_IN);
    }

    #[test]
    fn bad_variables_are_named() {
        let var = |name: &'static str, value: &'static str| {
            EdgeConfig::from_vars(move |n| (n == name).then(|| value.to_string()))
                .err()
                .map(|e| (e.var, e.message))
        };
        let (v, m) = var("SURGE_GEO", r#"{"regions":{},"default":[]}"#).expect("error");
        assert_eq!(v, "SURGE_GEO");
        assert!(m.contains("regions"), "{m}");
        let (v, m) = var(
            "SURGE_POLICY",
            r#"{"routes":[{"name":"a","pattern":"/a","class":"public"}]}"#,
        )
        .expect("error");
        assert_eq!(v, "SURGE_POLICY");
        assert!(m.contains("routes[0].ttl"), "{m}");
        let (v, m) = var("SURGE_POLICY", "[[routes]]\nname='a'\n").expect("error");
        assert_eq!(v, "SURGE_POLICY");
        assert!(m.contains("JSON"), "{m}");
        assert_eq!(
            var("SURGE_RETRY_AFTER", "0").map(|e| e.0),
            Some("SURGE_RETRY_AFTER")
        );
        for bad in ["0", "1000001", "often"] {
            let (v, m) = var("SURGE_KV_SWEEP_ONE_IN", bad).expect("error");
            assert_eq!(v, "SURGE_KV_SWEEP_ONE_IN");
            assert!(m.contains("from 1 to 1000000"), "{m}");
        }
        let (v, m) = var("SURGE_EDGE_KEYS", "k1:short").expect("error");
        assert_eq!(v, "SURGE_EDGE_KEYS");
        assert!(m.contains("at least 32"), "{m}");
    }
}
