//! The auth-bypass rule: a request that carries credentials is never answered from, nor stored
//! in, a shared cache. Also the `Cookie` header reader both tiers use.

use serde::{Deserialize, Serialize};

/// Longest `Cookie` header examined (bytes); a longer header counts as carrying credentials.
pub const MAX_COOKIE_HEADER_LEN: usize = 16 * 1024;

/// Which request credentials force a cache bypass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthBypass {
    /// Cookie names that mark an authenticated request.
    #[serde(default = "default_cookies")]
    pub cookies: Vec<String>,
    /// Whether an `Authorization` header marks an authenticated request.
    #[serde(default = "yes")]
    pub authorization: bool,
}

fn default_cookies() -> Vec<String> {
    crate::session::COOKIES
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn yes() -> bool {
    true
}

impl Default for AuthBypass {
    fn default() -> Self {
        Self {
            cookies: default_cookies(),
            authorization: true,
        }
    }
}

impl AuthBypass {
    /// Checks the cookie names; the error says which is bad and why.
    pub fn validate(&self) -> Result<(), String> {
        for name in &self.cookies {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(format!(
                    "cookie name {name:?} is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)"
                ));
            }
        }
        Ok(())
    }

    /// Whether the request must bypass shared caches. `cookie` is the `Cookie` header (all
    /// values), `authorization` whether an `Authorization` header is present. Detection errs on
    /// the side of bypassing: names are trimmed, and an oversized header counts as credentials.
    pub fn applies(&self, cookie: Option<&str>, authorization: bool) -> bool {
        if authorization && self.authorization {
            return true;
        }
        let Some(header) = cookie else {
            return false;
        };
        if header.len() > MAX_COOKIE_HEADER_LEN {
            return true;
        }
        cookie_pairs(header).any(|(name, _)| self.cookies.iter().any(|c| c == name))
    }
}

/// RFC 6265 token bytes (cookie names).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The `name=value` pairs of a `Cookie` header, names and values trimmed, leniently: pieces
/// without `=` are skipped, a quoted value loses its quotes.
pub fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|piece| {
        let (name, value) = piece.split_once('=')?;
        let name = name.trim();
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!name.is_empty()).then_some((name, value))
    })
}

/// The value of cookie `name`, if the header has it (the first one wins, as browsers send the
/// most specific first).
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    cookie_pairs(header)
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_cookie_or_authorization_bypasses() {
        let rule = AuthBypass::default();
        assert!(rule.applies(Some("theme=dark; auth_token=abc"), false));
        assert!(rule.applies(Some(" auth_token =abc"), false));
        assert!(rule.applies(None, true));
        assert!(!rule.applies(Some("theme=dark; not_auth_token=1"), false));
        assert!(!rule.applies(None, false));
        assert!(rule.applies(Some(&"a=b; ".repeat(5000)), false));
        let no_header_rule = AuthBypass {
            authorization: false,
            ..AuthBypass::default()
        };
        assert!(!no_header_rule.applies(None, true));
    }

    #[test]
    fn cookie_values_are_read_leniently() {
        assert_eq!(cookie_value("a=1; b=\"two\"; junk; c=", "b"), Some("two"));
        assert_eq!(cookie_value("a=1; a=2", "a"), Some("1"));
        assert_eq!(cookie_value("a=1", "z"), None);
        assert_eq!(cookie_value("c=", "c"), Some(""));
    }

    #[test]
    fn bad_cookie_names_are_refused() {
        let rule = AuthBypass {
            cookies: vec!["has space".into()],
            authorization: true,
        };
        assert!(rule.validate().is_err());
        assert!(AuthBypass::default().validate().is_ok());
    }
}
