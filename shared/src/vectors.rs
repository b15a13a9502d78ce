//! The key test vectors (`tests/vectors/keys.json`): one file of request → key cases, and of
//! purge patterns with what they must and must not match, that any build of this crate can
//! check itself against.

use serde::{Deserialize, Serialize};

use crate::key::{CacheKey, CanonicalUrl, KeyConfig};
use crate::pattern::KeyPattern;

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
    /// Purge-pattern cases.
    #[serde(default)]
    pub patterns: Vec<PatternCase>,
}

/// One purge pattern: whether [`KeyPattern::new`] accepts it, and keys it must and must not
/// match when it does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternCase {
    /// What the case is about.
    pub name: String,
    /// The pattern as an operator would send it.
    pub pattern: String,
    /// Whether it is accepted.
    pub accepted: bool,
    /// Keys it must match.
    #[serde(default)]
    pub matches: Vec<String>,
    /// Keys it must not match.
    #[serde(default)]
    pub misses: Vec<String>,
}

impl PatternCase {
    /// What is wrong with this case, if anything.
    pub fn failure(&self) -> Option<String> {
        let problem = match (KeyPattern::new(&self.pattern), self.accepted) {
            (Ok(_), false) => Some("accepted, but must be refused".to_string()),
            (Err(e), true) => Some(format!("refused ({e}), but must be accepted")),
            (Err(_), false) => None,
            (Ok(p), true) => {
                let wrong: Vec<String> = self
                    .matches
                    .iter()
                    .filter(|k| !p.matches(k))
                    .map(|k| format!("does not match {k:?}"))
                    .chain(
                        self.misses
                            .iter()
                            .filter(|k| p.matches(k))
                            .map(|k| format!("matches {k:?}")),
                    )
                    .collect();
                (!wrong.is_empty()).then(|| wrong.join("; "))
            }
        };
        problem.map(|p| format!("{}: pattern {:?} {p}", self.name, self.pattern))
    }
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
    /// The route's query allow-list ([`crate::Route::query`]); absent: the URL is keyed whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Vec<String>>,
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
        let key = match &self.query {
            None => CacheKey::new(config, &self.method, &self.url, &self.headers),
            Some(names) => CanonicalUrl::parse(config, &self.url)
                .map(|url| CacheKey::for_canonical_url(config, &url.keeping(names), &self.headers)),
        };
        match key {
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
        .chain(file.patterns.iter().filter_map(PatternCase::failure))
        .collect();
    if failures.is_empty() {
        Ok(file.cases.len() + file.patterns.len())
    } else {
        Err(failures.join("\n"))
    }
}
