//! Purge patterns: a small, safe glob over canonical URLs and keys (`https://vote.example/api/*`).
//!
//! Grammar: printable ASCII and space (full keys hold spaces: `surge:v1:GET <url> enc=br`); `*` matches any run of characters, `?` exactly one; nothing else is
//! special, and `[`, `]` and `\` are refused so a pattern passes unchanged to Redis `SCAN MATCH`.
//! A pattern must start with at least [`MIN_LITERAL_PREFIX`] literal characters, so "purge
//! everything" is never an accident: that takes [`KeyPattern::everything`], an explicit call.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Literal characters a pattern must start with.
pub const MIN_LITERAL_PREFIX: usize = 8;
/// Longest pattern accepted (bytes).
pub const MAX_PATTERN_LEN: usize = 1024;
/// Most wildcards one pattern may hold.
pub const MAX_WILDCARDS: usize = 8;

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
    /// Too few literal characters before the first wildcard.
    #[error(
        "pattern {0:?} must start with at least {MIN_LITERAL_PREFIX} literal characters (e.g. a scheme and host) before any '*' or '?'; purging everything is a separate, explicit request"
    )]
    TooBroad(String),
    /// More than [`MAX_WILDCARDS`] wildcards.
    #[error("pattern {0:?} has more than {MAX_WILDCARDS} wildcards")]
    TooManyWildcards(String),
}

/// A validated purge pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "https://vote.example/api/elections/*"))]
pub struct KeyPattern(String);

impl KeyPattern {
    /// Validates a pattern.
    pub fn new(raw: &str) -> Result<Self, PatternError> {
        if raw.is_empty() {
            return Err(PatternError::Empty);
        }
        if raw.len() > MAX_PATTERN_LEN {
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
        let prefix = raw.find(['*', '?']).unwrap_or(raw.len());
        if prefix < MIN_LITERAL_PREFIX {
            return Err(PatternError::TooBroad(raw.to_string()));
        }
        if raw.bytes().filter(|b| matches!(b, b'*' | b'?')).count() > MAX_WILDCARDS {
            return Err(PatternError::TooManyWildcards(
                raw.chars().take(64).collect(),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The pattern that matches everything; only for an explicit "purge everything".
    pub fn everything() -> Self {
        Self("*".to_string())
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
        let q = KeyPattern::new("https://a.example/?").expect("valid");
        assert!(q.matches("https://a.example/x"));
        assert!(!q.matches("https://a.example/xy"));
        assert_eq!(p.literal_prefix(), "https://a.example/api/");
        assert!(KeyPattern::everything().matches("anything at all"));
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
            KeyPattern::new("https://a/*?*?*?*?*?"),
            Err(PatternError::TooManyWildcards(_))
        ));
        assert!(matches!(
            KeyPattern::new(&"a".repeat(2000)),
            Err(PatternError::TooLong(2000))
        ));
    }
}
