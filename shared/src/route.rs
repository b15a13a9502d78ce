//! Path patterns for the route table: `/api/elections/{id}/results`, `/static/*`, `/assets/**`.
//!
//! A pattern is a list of `/`-separated segments: literal text, `{name}` (one segment, captured),
//! `*` (one segment) or `**` (the rest of the path, zero or more segments; last only). Matching
//! is exact and case-sensitive on the canonical path, so `/api/x` does not match `/api/x/`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::template::Params;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Param(String),
    Any,
    Rest,
}

/// A validated path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathPattern {
    raw: String,
    segments: Vec<Segment>,
}

/// Longest path pattern accepted (bytes).
pub const MAX_PATTERN_LEN: usize = 512;

impl PathPattern {
    /// Parses a pattern; the error says what is wrong and how to write it.
    pub fn new(raw: &str) -> Result<Self, String> {
        if raw.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "path pattern is {} bytes; the limit is {MAX_PATTERN_LEN}",
                raw.len()
            ));
        }
        let Some(body) = raw.strip_prefix('/') else {
            return Err(format!("path pattern {raw:?} must start with '/'"));
        };
        let mut segments = Vec::new();
        let parts: Vec<&str> = body.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let segment = match *part {
                "**" if i + 1 == parts.len() => Segment::Rest,
                "**" => {
                    return Err(format!(
                        "path pattern {raw:?}: '**' may only be the last segment"
                    ));
                }
                "*" => Segment::Any,
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => {
                    let name = &p[1..p.len() - 1];
                    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        return Err(format!(
                            "path pattern {raw:?}: parameter {p} must be letters, digits or '_'"
                        ));
                    }
                    if segments
                        .iter()
                        .any(|s| matches!(s, Segment::Param(n) if n == name))
                    {
                        return Err(format!("path pattern {raw:?}: parameter {p} appears twice"));
                    }
                    Segment::Param(name.to_string())
                }
                p => {
                    if let Some(bad) = p
                        .chars()
                        .find(|c| matches!(c, '{' | '}' | '*' | '?' | '#') || !c.is_ascii_graphic())
                    {
                        return Err(format!(
                            "path pattern {raw:?}: segment {p:?} contains {bad:?}; use literal text, {{name}}, * or **"
                        ));
                    }
                    Segment::Lit(p.to_string())
                }
            };
            segments.push(segment);
        }
        Ok(Self {
            raw: raw.to_string(),
            segments,
        })
    }

    /// The parameter names this pattern captures.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Matches a canonical path (no query) and returns the captured parameters.
    pub fn matches(&self, path: &str) -> Option<Params> {
        let body = path.strip_prefix('/')?;
        let mut parts = body.split('/');
        let mut params = Params::new();
        for segment in &self.segments {
            match segment {
                Segment::Rest => return Some(params),
                Segment::Lit(lit) => {
                    if parts.next()? != lit {
                        return None;
                    }
                }
                Segment::Any => {
                    parts.next().filter(|p| !p.is_empty())?;
                }
                Segment::Param(name) => {
                    let value = parts.next().filter(|p| !p.is_empty())?;
                    params.push((name.clone(), value.to_string()));
                }
            }
        }
        parts.next().is_none().then_some(params)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl TryFrom<String> for PathPattern {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<PathPattern> for String {
    fn from(p: PathPattern) -> Self {
        p.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> PathPattern {
        PathPattern::new(p).expect("valid pattern")
    }

    #[test]
    fn literal_param_any_and_rest() {
        let p = pat("/api/elections/{id}/results");
        assert_eq!(
            p.matches("/api/elections/7/results"),
            Some(vec![("id".to_string(), "7".to_string())])
        );
        assert_eq!(p.matches("/api/elections//results"), None);
        assert_eq!(p.matches("/api/elections/7/results/"), None);
        assert_eq!(p.matches("/api/elections/7"), None);
        assert!(pat("/static/*").matches("/static/a.css").is_some());
        assert!(pat("/static/*").matches("/static/a/b.css").is_none());
        assert!(pat("/assets/**").matches("/assets/").is_some());
        assert!(pat("/assets/**").matches("/assets/a/b/c").is_some());
        assert!(pat("/**").matches("/anything").is_some());
        assert!(pat("/").matches("/").is_some());
        assert!(pat("/").matches("/x").is_none());
    }

    #[test]
    fn bad_patterns_are_explained() {
        for bad in [
            "api",
            "/a/**/b",
            "/a/{}",
            "/a/{x-y}",
            "/a/{x}/{x}",
            "/a b",
            "/a?b",
            "/a*b",
        ] {
            assert!(PathPattern::new(bad).is_err(), "{bad} should be refused");
        }
    }
}
