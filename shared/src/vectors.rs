//! The key test vectors (`tests/vectors/keys.json`): one file of request → key cases that
//! every target runs, so native and wasm32 builds provably agree.

use serde::{Deserialize, Serialize};

use crate::key::{CacheKey, KeyConfig};

/// The vector file shipped with this crate.
pub const KEY_VECTORS_JSON: &str = include_str!("../tests/vectors/keys.json");

/// A vector file: the key configuration and the cases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    /// Configuration every case is keyed with.
    pub config: KeyConfig,
    /// The cases.
    pub cases: Vec<VectorCase>,
}

/// One case: a request and either the expected key or the expected error kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorCase {
    /// What the case is about.
    pub name: String,
    /// Request method.
    pub method: String,
    /// Request URL.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Expected key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Expected [`crate::KeyError::kind`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VectorCase {
    /// What keying this case gives: the key, or `error:<kind>`.
    pub fn actual(&self, config: &KeyConfig) -> String {
        match CacheKey::new(config, &self.method, &self.url, &self.headers) {
            Ok(key) => key.as_str().to_string(),
            Err(e) => format!("error:{}", e.kind()),
        }
    }

    /// What the case expects, in the form of [`VectorCase::actual`].
    pub fn expected(&self) -> String {
        match (&self.key, &self.error) {
            (Some(key), _) => key.clone(),
            (None, Some(kind)) => format!("error:{kind}"),
            (None, None) => "a key or an error".to_string(),
        }
    }
}

/// Runs every case; returns how many passed, or a description of each failure.
pub fn check(json: &str) -> Result<usize, String> {
    let file: VectorFile =
        serde_json::from_str(json).map_err(|e| format!("vector file does not parse: {e}"))?;
    let failures: Vec<String> = file
        .cases
        .iter()
        .filter_map(|case| {
            let (actual, expected) = (case.actual(&file.config), case.expected());
            (actual != expected).then(|| {
                format!(
                    "{}: {:?}\n  expected {expected}\n  got      {actual}",
                    case.name, case.url
                )
            })
        })
        .collect();
    if failures.is_empty() {
        Ok(file.cases.len())
    } else {
        Err(failures.join("\n"))
    }
}
