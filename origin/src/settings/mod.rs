//! Reading settings: each variable from the environment, else (for secrets) from the file
//! named by `<NAME>_FILE`, else from the `SURGE_CONFIG` TOML file, where it is named in lower
//! case without the `SURGE_` prefix (`listen = "127.0.0.1:8080"`). Each subsystem reads its
//! own variables through [`Settings`] and owns their checks; every error names the variable
//! and says how to fix it. The reader remembers what was read, so a file setting nothing
//! reads is refused without a list of names to keep in step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod catalogue;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The variable at fault.
    pub var: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The error for `var`.
pub fn fail(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

type Env<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Variable lookup over the environment, `<NAME>_FILE` secrets and the `SURGE_CONFIG` file.
pub struct Settings<'a> {
    env: Env<'a>,
    file: BTreeMap<String, String>,
    path: Option<String>,
    read: Mutex<BTreeSet<&'static str>>,
}

/// The name of `var` in the config file.
fn file_key(var: &str) -> String {
    var.strip_prefix("SURGE_")
        .unwrap_or(var)
        .to_ascii_lowercase()
}

impl<'a> Settings<'a> {
    /// The variables read so far.
    #[cfg(test)]
    pub(crate) fn names_read(&self) -> BTreeSet<&'static str> {
        self.read.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Settings read through `env` (e.g. `std::env::var`), with the file `SURGE_CONFIG` names.
    pub fn new(env: impl Fn(&str) -> Option<String> + 'a) -> Result<Self, ConfigError> {
        let env: Env<'a> = Box::new(env);
        let path = env("SURGE_CONFIG").filter(|p| !p.is_empty());
        let file = match &path {
            None => BTreeMap::new(),
            Some(path) => read_config_file(Path::new(path))?,
        };
        Ok(Self {
            env,
            file,
            path,
            read: Mutex::new(BTreeSet::new()),
        })
    }

    fn note(&self, var: &'static str) {
        self.read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(var);
    }

    fn env_value(&self, var: &str) -> Option<String> {
        (self.env)(var).filter(|v| !v.is_empty())
    }

    /// The raw value of `var`, if set.
    pub fn get(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        self.note(var);
        Ok(self
            .env_value(var)
            .or_else(|| self.file.get(&file_key(var)).cloned()))
    }

    /// The raw value of a secret: also read from the file `<var>_FILE` names (trimmed), so
    /// the value never appears in the environment or on a command line.
    pub fn secret(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        self.note(var);
        if let Some(value) = self.env_value(var) {
            return Ok(Some(value));
        }
        if let Some(path) = self.env_value(&format!("{var}_FILE")) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| fail(var, format!("cannot read {var}_FILE {path}: {e}")))?;
            return Ok(Some(text.trim().to_string()));
        }
        Ok(self.file.get(&file_key(var)).cloned())
    }

    /// `var` parsed with `parse`, `default` when unset.
    pub fn parsed<T>(
        &self,
        var: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(var)? {
            None => Ok(default),
            Some(text) => parse(&text).map_err(|m| fail(var, m)),
        }
    }

    /// A whole number within `min..=max` (`_` may group digits), `default` when unset.
    pub fn number<T>(&self, var: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        self.parsed(var, default, |text| {
            text.replace('_', "")
                .parse::<T>()
                .ok()
                .filter(|n| *n >= min && *n <= max)
                .ok_or_else(|| format!("{text:?}: a whole number from {min} to {max}"))
        })
    }

    /// A duration (`500ms`, `5s`, `1h`) within `min..=max`, `default` when unset.
    pub fn duration(
        &self,
        var: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        self.parsed(var, default, |text| {
            let d = parse_duration(text)?;
            if d < min || d > max {
                return Err(format!(
                    "{text:?}: must be between {} and {}",
                    surge_shared::duration::format(min),
                    surge_shared::duration::format(max)
                ));
            }
            Ok(d)
        })
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), `default` when unset.
    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parsed(var, default, |text| {
            match text.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(format!("{text:?} is not true or false")),
            }
        })
    }

    /// The PEM certificate authority file `var` names, read and checked.
    pub fn ca_file(&self, var: &'static str) -> Result<Option<Arc<[u8]>>, ConfigError> {
        let Some(path) = self.get(var)? else {
            return Ok(None);
        };
        let pem =
            std::fs::read(&path).map_err(|e| fail(var, format!("cannot read {path}: {e}")))?;
        parse_ca(&pem).map_err(|e| fail(var, format!("{path} {e}")))?;
        Ok(Some(Arc::from(pem)))
    }

    /// A comma-separated list, trimmed; `default` when unset.
    pub fn list(&self, var: &'static str, default: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .get(var)?
            .unwrap_or_else(|| default.to_string())
            .split(',')
            .map(|item| item.trim().to_string())
            .collect())
    }

    /// Refuses settings in the `SURGE_CONFIG` file that nothing read: a misspelt name, or a
    /// setting of a feature these settings leave off.
    pub fn finish(self) -> Result<(), ConfigError> {
        let read = self.read.into_inner().unwrap_or_else(|p| p.into_inner());
        let known: BTreeSet<String> = read.iter().map(|v| file_key(v)).collect();
        if let Some(name) = self.file.keys().find(|k| !known.contains(*k)) {
            return Err(fail(
                "SURGE_CONFIG",
                format!(
                    "{}: unknown setting `{name}`, or one for a feature these settings leave off; read here: {}",
                    self.path.unwrap_or_default(),
                    known.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// The certificates of a PEM file (what `*_CA_FILE` settings hold); an error when there are
/// none or one does not parse.
pub fn parse_ca(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file ({e})"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// A duration written like `500ms`, `5s` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    surge_shared::duration::parse(text).map_err(|e| format!("{e}; write it like 500ms, 5s or 1h"))
}

fn read_config_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let bad = |message: String| fail("SURGE_CONFIG", format!("{}: {message}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let table: toml::Table = text.parse().map_err(|e| bad(format!("{e}")))?;
    let mut out = BTreeMap::new();
    for (name, value) in table {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let mut parts = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s),
                        other => {
                            return Err(bad(format!("`{name}` lists {other}; list strings only")));
                        }
                    }
                }
                parts.join(",")
            }
            other => {
                return Err(bad(format!(
                    "`{name}` is {}; use a string, number or boolean",
                    other.type_str()
                )));
            }
        };
        out.insert(name, text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_must_hold_certificates() {
        assert!(parse_ca(b"").is_err());
        assert!(parse_ca(b"hello").is_err());
        assert!(
            parse_ca(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }
}
