//! Start-up configuration from environment variables, validated before anything listens: a
//! bad value stops the process with a message naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use surge_shared::Policy;

/// Default listen address (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The origin's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`SURGE_LISTEN`).
    pub listen: SocketAddr,
    /// Bearer token for `/performance/*` (`SURGE_ADMIN_TOKEN`); the admin API is off without it.
    pub admin_token: Option<String>,
    /// This process's region name (`SURGE_REGION`).
    pub region: String,
    /// The policy (`SURGE_POLICY`: a TOML or JSON file; the shipped policy otherwise).
    pub policy: Policy,
}

impl Config {
    /// Reads the configuration through `var` (e.g. `std::env::var`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let listen_text = var("SURGE_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen_text.parse().map_err(|e| ConfigError {
            var: "SURGE_LISTEN",
            message: format!(
                "{listen_text:?} is not an address ({e}); write it like {DEFAULT_LISTEN}"
            ),
        })?;
        let admin_token = var("SURGE_ADMIN_TOKEN").filter(|t| !t.is_empty());
        if let Some(token) = &admin_token
            && (token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError {
                var: "SURGE_ADMIN_TOKEN",
                message: format!(
                    "use at least {MIN_TOKEN_LEN} printable characters without spaces (e.g. `openssl rand -hex 32`)"
                ),
            });
        }
        let region = var("SURGE_REGION").unwrap_or_else(|| "local".to_string());
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError {
                var: "SURGE_REGION",
                message: format!("{region:?} must be letters, digits, '-' or '_' (e.g. eu-west)"),
            });
        }
        let policy = match var("SURGE_POLICY").filter(|p| !p.is_empty()) {
            None => Policy::election_default(),
            Some(path) => load_policy(PathBuf::from(path))?,
        };
        Ok(Self {
            listen,
            admin_token,
            region,
            policy,
        })
    }
}

fn load_policy(path: PathBuf) -> Result<Policy, ConfigError> {
    let fail = |message: String| ConfigError {
        var: "SURGE_POLICY",
        message,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let parsed = if path.extension().is_some_and(|x| x == "json") {
        Policy::from_json_str(&text)
    } else {
        Policy::from_toml_str(&text)
    };
    parsed.map_err(|e| fail(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_need_nothing() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.admin_token.is_none());
        assert_eq!(c.region, "local");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let var = |pairs: &[(&str, &str)]| config(pairs).err().map(|e| e.var);
        assert_eq!(var(&[("SURGE_LISTEN", "localhost")]), Some("SURGE_LISTEN"));
        assert_eq!(
            var(&[("SURGE_ADMIN_TOKEN", "short")]),
            Some("SURGE_ADMIN_TOKEN")
        );
        assert_eq!(var(&[("SURGE_REGION", "eu west")]), Some("SURGE_REGION"));
        assert_eq!(
            var(&[("SURGE_POLICY", "/nonexistent/policy.toml")]),
            Some("SURGE_POLICY")
        );
    }

    #[test]
    fn a_bad_policy_file_reports_the_field() {
        let dir = std::env::temp_dir().join(format!("surge-policy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("policy.toml");
        std::fs::write(
            &path,
            "[[routes]]\nname = \"a\"\npattern = \"/a\"\nclass = \"public\"\n",
        )
        .expect("write");
        let err = config(&[("SURGE_POLICY", path.to_str().unwrap_or_default())])
            .expect_err("invalid policy");
        assert!(err.to_string().contains("routes[0].ttl"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
