//! Purge patterns: a small, safe glob over canonical URLs and keys (`https://vote.example/api/*`).
//!
//! Grammar: printable ASCII and space (full keys hold spaces: `surge:v1:GET <url> enc=br`); `*` matches any run of characters, `?` exactly one; nothing else is
//! special, and `[`, `]` and `\` are refused so a pattern passes unchanged to Redis `SCAN MATCH`.
//! A pattern names a host and a first path segment before any wildcard
//! (`https://vote.example/api/*`, or the same inside a full key, `surge:v1:GET https://…`),
//! so "purge everything" or "purge a whole site" is never an accident: those take
//! [`KeyPattern::everything`] and [`KeyPattern::host`], explicit calls.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::key::{CacheKey, REQUEST_KEY_PREFIX};

/// Longest pattern accepted (bytes).
pub const MAX_PATTERN_LEN: usize = 1024;
/// Most wildcards one pattern may hold.
pub const MAX_WILDCARDS: usize = 8;
/// Room [`KeyPattern::for_url_glob`] leaves for what it adds to a glob (the key prefix, a
/// scheme, the variant suffix).
const DERIVED_SLACK: usize = 64;
/// [`KeyPattern::new`]'s rule as a regular expression, for the OpenAPI schema (with
/// `maxLength` [`MAX_PATTERN_LEN`]): an optional key prefix, a scheme, a host and a first
/// path segment of literal characters, then at most [`MAX_WILDCARDS`] wildcards.
pub const PATTERN_REGEX: &str = r"^(surge:v1:(GET |HEAD )?)?[A-Za-z0-9]+://[ -)+-.0->@-Z^-~]+/[ -)+->@-Z^-~]+([*?][ -)+->@-Z^-~]*){0,8}$";

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Empty pattern.
    #[error("empty pattern; write e.g. \"https://vote.example/api/elections/*\"")]
    Empty,
    /// Longer than [`MAX_PATTERN_LEN`].
    #[error("pattern is {0} bytes; the limit is {MAX_PATTERN_LEN}")]
    TooLong(usize),
    /// A character outside the grammar.
    #[error(
        "pattern {pattern:?} contains {found:?}; only printable ASCII and space, without '[', ']' or '\\', is allowed"
    )]
    BadChar {
        /// The pattern (shortened).
        pattern: String,
        /// The character.
        found: char,
    },
    /// No host and first path segment before the first wildcard.
    #[error(
        "pattern {0:?} must name a scheme, a host and a first path segment before any '*' or '?' (e.g. https://vote.example/api/*); purging a whole host or everything is a separate, explicit request"
    )]
    TooBroad(String),
    /// More than [`MAX_WILDCARDS`] wildcards.
    #[error("pattern {0:?} has more than {MAX_WILDCARDS} wildcards")]
    TooManyWildcards(String),
}

/// Whether a pattern's literal prefix names a scheme, a host and the start of a first path
/// segment (after an optional key prefix and method).
fn names_a_path(prefix: &str) -> bool {
    let url = prefix
        .strip_prefix(crate::key::KEY_PREFIX)
        .map(|rest| {
            rest.strip_prefix("GET ")
                .or_else(|| rest.strip_prefix("HEAD "))
                .unwrap_or(rest)
        })
        .unwrap_or(prefix);
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let Some((host, path)) = rest.split_once('/') else {
        return false;
    };
    !scheme.is_empty()
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
        && !host.is_empty()
        && !path.is_empty()
}

/// A validated purge pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "https://vote.example/api/elections/*"))]
pub struct KeyPattern(String);

impl KeyPattern {
    /// Validates a pattern.
    pub fn new(raw: &str) -> Result<Self, PatternError> {
        Self::checked(raw, MAX_PATTERN_LEN, MAX_WILDCARDS)
    }

    /// Validates a pattern against the grammar and the given limits.
    fn checked(raw: &str, max_len: usize, max_wildcards: usize) -> Result<Self, PatternError> {
        if raw.is_empty() {
            return Err(PatternError::Empty);
        }
        if raw.len() > max_len {
            return Err(PatternError::TooLong(raw.len()));
        }
        if let Some(found) = raw
            .chars()
            .find(|c| !(c.is_ascii_graphic() || *c == ' ') || matches!(c, '[' | ']' | '\\'))
        {
            return Err(PatternError::BadChar {
                pattern: raw.chars().take(64).collect(),
                found,
            });
        }
        let prefix = &raw[..raw.find(['*', '?']).unwrap_or(raw.len())];
        if !names_a_path(prefix) {
            return Err(PatternError::TooBroad(raw.to_string()));
        }
        if raw.bytes().filter(|b| matches!(b, b'*' | b'?')).count() > max_wildcards {
            return Err(PatternError::TooManyWildcards(
                raw.chars().take(64).collect(),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// A glob over canonical URLs (`https://vote.example/api/*`) as a pattern over request
    /// keys; with `variants`, an exact URL also matches its keys' variant suffixes
    /// (` enc=br`). A glob that is already over keys (`surge:v1:…`) is taken as it is. The
    /// limits apply to the glob as given: the key prefix, a scheme and the variant wildcard
    /// added here do not count against them.
    pub fn for_url_glob(glob: &str, variants: bool) -> Result<Self, PatternError> {
        if CacheKey::is_key(glob) {
            return Self::new(glob);
        }
        let mut text = format!("{REQUEST_KEY_PREFIX}{glob}");
        if variants && !glob.ends_with('*') {
            text.push_str(" *");
        }
        Self::checked(&text, MAX_PATTERN_LEN + DERIVED_SLACK, MAX_WILDCARDS + 2)
    }

    /// The pattern that matches everything; only for an explicit "purge everything".
    pub fn everything() -> Self {
        Self("*".to_string())
    }

    /// Every full key of `host` over `scheme` (`surge:v1:GET https://host/*`); only for an
    /// explicit "purge this host". The host must be a plain name (letters, digits, `.`, `-`,
    /// an optional `:port`).
    pub fn host(scheme: &str, host: &str) -> Result<Self, PatternError> {
        let plain = |t: &str, extra: &[u8]| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
        };
        if !plain(scheme, b"") || !plain(host, b".-:") {
            return Err(PatternError::TooBroad(format!("{scheme}://{host}/*")));
        }
        Ok(Self(format!("{REQUEST_KEY_PREFIX}{scheme}://{host}/*")))
    }

    /// A pattern received from another process (the purge backplane): one [`KeyPattern::new`]
    /// accepts, a [`KeyPattern::host`] pattern, or [`KeyPattern::everything`].
    pub fn from_peer(raw: &str) -> Result<Self, PatternError> {
        if raw == "*" {
            return Ok(Self::everything());
        }
        if let Some(url) = raw
            .strip_prefix(REQUEST_KEY_PREFIX)
            .and_then(|r| r.strip_suffix("/*"))
            && let Some((scheme, host)) = url.split_once("://")
            && let Ok(p) = Self::host(scheme, host)
        {
            return Ok(p);
        }
        Self::new(raw)
    }

    /// Whether this is the match-everything pattern.
    pub fn is_everything(&self) -> bool {
        self.0 == "*"
    }

    /// The literal text before the first wildcard.
    pub fn literal_prefix(&self) -> &str {
        let end = self.0.find(['*', '?']).unwrap_or(self.0.len());
        &self.0[..end]
    }

    /// The pattern text (also valid as a Redis `MATCH` argument).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let (p, t) = (self.0.as_bytes(), text.as_bytes());
        let (mut pi, mut ti) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some(b'*') => {
                    backtrack = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == b'?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match backtrack {
                    Some((star, matched)) => {
                        pi = star + 1;
                        ti = matched + 1;
                        backtrack = Some((star, matched + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for KeyPattern {
    type Error = PatternError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<KeyPattern> for String {
    fn from(p: KeyPattern) -> Self {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_redis() {
        let p = KeyPattern::new("https://a.example/api/*/results").expect("valid");
        assert!(p.matches("https://a.example/api/7/results"));
        assert!(p.matches("https://a.example/api/7/x/results"));
        assert!(!p.matches("https://a.example/api/7/results/x"));
        let q = KeyPattern::new("https://a.example/api/?").expect("valid");
        assert!(q.matches("https://a.example/api/x"));
        assert!(!q.matches("https://a.example/api/xy"));
        assert_eq!(p.literal_prefix(), "https://a.example/api/");
        assert!(KeyPattern::everything().matches("anything at all"));
    }

    #[test]
    fn a_pattern_names_a_host_and_a_first_segment_before_any_wildcard() {
        for broad in [
            "*",
            "https://*",
            "surge:v1:*",
            "surge:v1:GET *",
            "https://vote.example/*",
            "https://vote.example*",
            "surge:v1:GET https://vote.example/*",
            "surge:v1:GET https://*",
            "vote.example/api/*",
        ] {
            assert!(
                matches!(KeyPattern::new(broad), Err(PatternError::TooBroad(_))),
                "{broad:?} must be refused"
            );
        }
        for narrow in [
            "https://vote.example/api/*",
            "https://vote.example/a*",
            "http://localhost:8080/api/*",
            "surge:v1:GET https://vote.example/api/elections/1 *",
            "surge:v1:HEAD https://vote.example/elections/*",
        ] {
            assert!(KeyPattern::new(narrow).is_ok(), "{narrow:?}");
        }
        // A whole host, or everything, only by their explicit constructors.
        let host = KeyPattern::host("https", "vote.example").expect("plain host");
        assert!(host.matches("surge:v1:GET https://vote.example/api/elections/1 enc=br"));
        assert!(!host.matches("surge:v1:GET https://other.example/api"));
        for bad in ["*", "", "vote.example/x", "a b"] {
            assert!(KeyPattern::host("https", bad).is_err(), "{bad:?}");
        }
        // What a peer broadcasts: any of the three forms, nothing broader.
        assert_eq!(KeyPattern::from_peer(host.as_str()), Ok(host.clone()));
        assert!(KeyPattern::from_peer("*").is_ok_and(|p| p.is_everything()));
        assert!(KeyPattern::from_peer("https://vote.example/api/*").is_ok());
        assert!(KeyPattern::from_peer("https://*").is_err());
        assert!(KeyPattern::from_peer("surge:v1:GET https://*/*").is_err());
    }

    #[test]
    fn dangerous_patterns_are_refused() {
        assert_eq!(KeyPattern::new(""), Err(PatternError::Empty));
        assert!(matches!(
            KeyPattern::new("*"),
            Err(PatternError::TooBroad(_))
        ));
        assert!(matches!(
            KeyPattern::new("https*"),
            Err(PatternError::TooBroad(_))
        ));
        assert!(matches!(
            KeyPattern::new("https://a/[ab]"),
            Err(PatternError::BadChar { .. })
        ));
        assert!(matches!(
            KeyPattern::new("https://a/\\*"),
            Err(PatternError::BadChar { .. })
        ));
        assert!(matches!(
            KeyPattern::new("https://a/\tx"),
            Err(PatternError::BadChar { .. })
        ));
        assert!(matches!(
            KeyPattern::new("https://a/\u{e9}"),
            Err(PatternError::BadChar { .. })
        ));
        assert!(matches!(
            KeyPattern::new("https://a.example/api/*?*?*?*?*?"),
            Err(PatternError::TooManyWildcards(_))
        ));
        assert!(matches!(
            KeyPattern::new(&"a".repeat(2000)),
            Err(PatternError::TooLong(2000))
        ));
    }

    #[test]
    fn url_globs_become_patterns_over_request_keys() {
        let p = KeyPattern::for_url_glob("https://vote.example/api/*", true).expect("valid");
        assert!(p.matches("surge:v1:GET https://vote.example/api/elections/1 enc=br"));
        let exact =
            KeyPattern::for_url_glob("https://vote.example/api/elections/1", true).expect("valid");
        assert!(exact.matches("surge:v1:GET https://vote.example/api/elections/1 enc=gzip"));
        assert!(!exact.matches("surge:v1:GET https://vote.example/api/elections/10 enc=gzip"));
        let plain =
            KeyPattern::for_url_glob("https://vote.example/api/elections/1", false).expect("valid");
        assert!(!plain.matches("surge:v1:GET https://vote.example/api/elections/1 enc=gzip"));
        let as_key =
            KeyPattern::for_url_glob("surge:v1:GET https://vote.example/a*", true).expect("valid");
        assert_eq!(as_key.as_str(), "surge:v1:GET https://vote.example/a*");
        assert!(KeyPattern::for_url_glob("https://*", true).is_err());
    }
}
