//! Signed login cookies (the token format is `surge_shared::session`'s, so the edge verifies
//! them too). The newest key signs; every configured key verifies, so keys rotate without
//! logging voters out (add the new key first, drop the old one a session-TTL later).

use std::time::Duration;

use surge_shared::session::{self, TokenError};

/// Why a cookie was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No cookie at all.
    #[error("not logged in: POST /api/login first")]
    Missing,
    /// The cookie is not in the expected shape or its signature does not verify.
    #[error("the auth_token cookie is invalid: log in again")]
    Invalid,
    /// The cookie verified but has expired.
    #[error("the session has expired: log in again")]
    Expired,
    /// The voter id or the voting code is wrong (which one is never said).
    #[error("the voter id or the voting code is wrong")]
    BadCredentials,
}

/// Signing and verifying keys, newest first.
#[derive(Clone)]
pub struct SessionKeys {
    keys: Vec<Vec<u8>>,
    ttl: Duration,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("keys", &self.keys.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl SessionKeys {
    /// Keys newest first; with none, one random key for this process. Fails when the
    /// operating system has no randomness: there is no weaker fallback.
    pub fn new(keys: Vec<Vec<u8>>, ttl: Duration) -> Result<Self, getrandom::Error> {
        let keys = if keys.is_empty() {
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key)?;
            vec![key]
        } else {
            keys
        };
        Ok(Self { keys, ttl })
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed token for `voter` valid until `now + ttl` (Unix seconds).
    pub fn issue(&self, voter: &str, now: u64) -> String {
        session::issue(&self.keys[0], voter, now + self.ttl.as_secs())
    }

    /// The voter a token belongs to, if it verifies under any key and has not expired.
    pub fn verify(&self, token: &str, now: u64) -> Result<String, SessionError> {
        session::verify(&self.keys, token, now)
            .map(str::to_string)
            .map_err(|e| match e {
                TokenError::Invalid => SessionError::Invalid,
                TokenError::Expired => SessionError::Expired,
            })
    }

    /// The `Set-Cookie` value for a new session: `__Host-auth_token` with `Secure`, or
    /// `auth_token` without (plain-HTTP local runs).
    pub fn set_cookie(&self, token: &str, secure: bool) -> String {
        let name = session::cookie_name(secure);
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{name}={token}; Path=/; Max-Age={}; HttpOnly{secure}; SameSite=Lax",
            self.ttl.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn keys(k: &[&str]) -> SessionKeys {
        SessionKeys::new(k.iter().map(|k| k.as_bytes().to_vec()).collect(), HOUR)
            .expect("keys given")
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let s = keys(&["k1-0123456789abcdef0123456789abcdef"]);
        let token = s.issue("voter-1", 1000);
        assert_eq!(s.verify(&token, 1000).as_deref(), Ok("voter-1"));
        assert_eq!(s.verify(&token, 1000 + 3599).as_deref(), Ok("voter-1"));
        assert_eq!(s.verify(&token, 1000 + 3600), Err(SessionError::Expired));
    }

    #[test]
    fn tampering_is_refused() {
        let s = keys(&["k1-0123456789abcdef0123456789abcdef"]);
        let token = s.issue("voter-1", 1000);
        let forged = token.replace("voter-1", "voter-2");
        assert_eq!(s.verify(&forged, 1000), Err(SessionError::Invalid));
        let longer = token.replace(".4600.", ".9999999.");
        assert_eq!(s.verify(&longer, 1000), Err(SessionError::Invalid));
        let mut flipped = token.clone();
        let last = flipped.pop().map(|c| if c == '0' { '1' } else { '0' });
        flipped.extend(last);
        assert_eq!(s.verify(&flipped, 1000), Err(SessionError::Invalid));
        for junk in ["", "v1", "v1.a.b.c", "v2.voter-1.4600.00", "v1.a b.4600.00"] {
            assert_eq!(s.verify(junk, 1000), Err(SessionError::Invalid), "{junk:?}");
        }
    }

    #[test]
    fn rotation_accepts_old_tokens_and_signs_with_the_new_key() {
        let old = keys(&["old-0123456789abcdef0123456789abcdef"]);
        let token = old.issue("voter-1", 1000);
        let rotating = keys(&[
            "new-0123456789abcdef0123456789abcdef",
            "old-0123456789abcdef0123456789abcdef",
        ]);
        assert_eq!(rotating.verify(&token, 1000).as_deref(), Ok("voter-1"));
        let fresh = rotating.issue("voter-1", 1000);
        assert_eq!(old.verify(&fresh, 1000), Err(SessionError::Invalid));
        let rotated = keys(&["new-0123456789abcdef0123456789abcdef"]);
        assert_eq!(rotated.verify(&token, 1000), Err(SessionError::Invalid));
        assert_eq!(rotated.verify(&fresh, 1000).as_deref(), Ok("voter-1"));
    }

    #[test]
    fn the_cookie_is_locked_down() {
        let s = keys(&["k1-0123456789abcdef0123456789abcdef"]);
        let c = s.set_cookie("t", true);
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=3600",
        ] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        assert!(!s.set_cookie("t", false).contains("Secure"));
    }
}
