//! The login session token in the `__Host-auth_token` cookie (`auth_token` on plain-HTTP
//! local runs, where the `__Host-` prefix cannot be used): `v1.<voter>.<expiry>.<hmac>`, with
//! HMAC-SHA256 over the first three fields in lower-case hex. The origin issues it; the origin
//! and the edge verify it with the same keys (newest first: the first signs, all verify, so
//! keys rotate without logging anyone out).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::voter::validate_voter_id;

/// The cookie's name without `Secure` (plain-HTTP local runs).
pub const COOKIE: &str = "auth_token";
/// The cookie's name with `Secure`: the `__Host-` prefix makes browsers refuse it unless it
/// is `Secure`, `Path=/` and has no `Domain`, so no sibling subdomain can plant one.
pub const SECURE_COOKIE: &str = "__Host-auth_token";
/// Both names, as the shared policy's auth cookies list them.
pub const COOKIES: [&str; 2] = [SECURE_COOKIE, COOKIE];

/// The cookie's name when cookies are (`secure`) or are not `Secure`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { COOKIE }
}
const VERSION: &str = "v1";
/// Shortest signing key accepted (bytes).
pub const MIN_KEY_LEN: usize = 32;
/// Longest a token may still be valid for (seconds): the longest session the origin issues
/// (7 days). A token claiming more is refused, whichever key signed it.
pub const MAX_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not in the expected shape, or its signature does not verify under any key.
    #[error("the auth_token cookie is invalid: log in again")]
    Invalid,
    /// It verified but has expired.
    #[error("the session has expired: log in again")]
    Expired,
}

fn mac(key: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(payload.as_bytes());
    mac
}

/// A token for `voter` valid until `expiry` (Unix seconds), signed with `key`.
pub fn issue(key: &[u8], voter: &str, expiry: u64) -> String {
    let payload = format!("{VERSION}.{voter}.{expiry}");
    let tag = mac(key, &payload).finalize().into_bytes();
    format!("{payload}.{}", crate::hex::encode(&tag))
}

/// The voter `token` names, if it verifies under any of `keys` and has not expired at `now`
/// (Unix seconds).
pub fn verify<'t, K: AsRef<[u8]>>(
    keys: &[K],
    token: &'t str,
    now: u64,
) -> Result<&'t str, TokenError> {
    let (payload, sig) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
    let sig = crate::hex::decode(sig).ok_or(TokenError::Invalid)?;
    let mut parts = payload.split('.');
    let (Some(VERSION), Some(voter), Some(expiry), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Invalid);
    };
    validate_voter_id(voter).map_err(|_| TokenError::Invalid)?;
    let expiry: u64 = expiry.parse().map_err(|_| TokenError::Invalid)?;
    let verified = keys
        .iter()
        .any(|key| mac(key.as_ref(), payload).verify_slice(&sig).is_ok());
    if !verified {
        return Err(TokenError::Invalid);
    }
    if expiry <= now {
        return Err(TokenError::Expired);
    }
    if expiry - now > MAX_LIFETIME_SECS {
        return Err(TokenError::Invalid);
    }
    Ok(voter)
}

/// Reads a comma-separated key list (newest first); each key needs [`MIN_KEY_LEN`] bytes.
pub fn parse_keys(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let keys: Vec<Vec<u8>> = text
        .split(',')
        .map(|k| k.trim().as_bytes().to_vec())
        .collect();
    if keys.iter().any(|k| k.len() < MIN_KEY_LEN) {
        return Err(format!(
            "every key needs at least {MIN_KEY_LEN} characters (e.g. `openssl rand -hex 32`); separate keys with commas, newest first"
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &[u8] = b"k1-0123456789abcdef0123456789abcdef";
    const K2: &[u8] = b"k2-0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_verifies_until_it_expires_and_under_any_listed_key() {
        let token = issue(K1, "voter-1", 4600);
        assert_eq!(verify(&[K1], &token, 1000), Ok("voter-1"));
        assert_eq!(verify(&[K2, K1], &token, 4599), Ok("voter-1"));
        assert_eq!(verify(&[K1], &token, 4600), Err(TokenError::Expired));
        assert_eq!(verify(&[K2], &token, 1000), Err(TokenError::Invalid));
        let forever = issue(K1, "voter-1", 1000 + MAX_LIFETIME_SECS + 1);
        assert_eq!(
            verify(&[K1], &forever, 1000),
            Err(TokenError::Invalid),
            "a lifetime beyond the longest session is refused"
        );
    }

    #[test]
    fn tampered_or_malformed_tokens_are_invalid() {
        let token = issue(K1, "voter-1", 4600);
        for forged in [
            token.replace("voter-1", "voter-2"),
            token.replace(".4600.", ".9999999."),
            format!("{}0", &token[..token.len() - 1]),
            token.to_uppercase(),
        ] {
            assert_eq!(
                verify(&[K1], &forged, 1000),
                Err(TokenError::Invalid),
                "{forged}"
            );
        }
        for junk in [
            "",
            "v1",
            "v1.a.b.c",
            "v2.voter-1.4600.00",
            "v1.a b.4600.00",
            "v1.a.1.0",
        ] {
            assert_eq!(
                verify(&[K1], junk, 1000),
                Err(TokenError::Invalid),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(parse_keys("a".repeat(32).as_str()).map(|k| k.len()), Ok(1));
        assert!(parse_keys("short").is_err());
        assert_eq!(
            parse_keys(&format!("{},{}", "a".repeat(32), "b".repeat(40))).map(|k| k.len()),
            Ok(2)
        );
    }
}
