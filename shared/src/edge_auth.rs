//! Origin requests the edge signs, so an origin can refuse everything that did not come
//! through the edge (a direct hit on an origin host skips the edge's caching, limits and
//! WAF). The edge adds [`HEADER`]: `v1 <key id> <unix seconds> <hmac>`, the HMAC-SHA256 in
//! lower-case hex over `v1`, the key id, the time, the method and the path with its query,
//! one per line. Keys are `id:secret` pairs, newest first: the edge signs with the first,
//! the origin accepts any listed id, so keys rotate without a refused request. A signature
//! is good for [`MAX_SKEW_SECS`] either side of the origin's clock; it binds the method and
//! the target, not the body (a replay inside the window can only repeat the same request).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The request header that carries the signature.
pub const HEADER: &str = "x-surge-signature";
/// How far a signature's time may be from the origin's clock (seconds).
pub const MAX_SKEW_SECS: u64 = 60;
/// Shortest secret accepted (bytes).
pub const MIN_SECRET_LEN: usize = 32;
const VERSION: &str = "v1";

/// One signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct EdgeKey {
    /// Its id, sent with each signature (1–32 of `a-z 0-9 -`).
    pub id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for EdgeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EdgeKey({}, <redacted>)", self.id)
    }
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("the request was not signed by the edge")]
    Missing,
    /// Not in the expected shape.
    #[error("the edge signature is malformed")]
    Malformed,
    /// Signed with a key id this origin does not hold.
    #[error("the edge signature names an unknown key")]
    UnknownKey,
    /// Signed too long ago, or too far ahead.
    #[error("the edge signature is outside the {MAX_SKEW_SECS} s window")]
    Stale,
    /// The HMAC does not verify.
    #[error("the edge signature does not verify")]
    Forged,
}

/// Reads a key list: `id:secret` pairs separated by commas, newest first.
pub fn parse_keys(text: &str) -> Result<Vec<EdgeKey>, String> {
    let mut keys: Vec<EdgeKey> = Vec::new();
    for pair in text.split(',').map(str::trim) {
        let Some((id, secret)) = pair.split_once(':') else {
            return Err(
                "write each key as id:secret (e.g. `2026-11:$(openssl rand -hex 32)`), separated by commas, newest first"
                    .into(),
            );
        };
        let id_ok = (1..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(format!(
                "key id {id:?}: use 1 to 32 lower-case letters, digits or '-'"
            ));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "key {id:?}: the secret needs at least {MIN_SECRET_LEN} characters (e.g. `openssl rand -hex 32`)"
            ));
        }
        if keys.iter().any(|k| k.id == id) {
            return Err(format!("key id {id:?} appears twice"));
        }
        keys.push(EdgeKey {
            id: id.to_string(),
            secret: secret.as_bytes().to_vec(),
        });
    }
    Ok(keys)
}

fn mac(key: &EdgeKey, at: u64, method: &str, target: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(format!("{VERSION}\n{}\n{at}\n{method}\n{target}", key.id).as_bytes());
    mac
}

/// The [`HEADER`] value for `method` on `target` (path and query) at `now` (Unix seconds).
pub fn sign(key: &EdgeKey, now: u64, method: &str, target: &str) -> String {
    let tag = mac(key, now, method, target).finalize().into_bytes();
    format!("{VERSION} {} {now} {}", key.id, crate::hex::encode(&tag))
}

/// Checks `header` (the [`HEADER`] value, if any) for `method` on `target` at `now`.
pub fn verify(
    keys: &[EdgeKey],
    header: Option<&str>,
    now: u64,
    method: &str,
    target: &str,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut parts = header.split(' ');
    let (Some(VERSION), Some(id), Some(at), Some(sig), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SignatureError::Malformed);
    };
    let at: u64 = at.parse().map_err(|_| SignatureError::Malformed)?;
    let sig = crate::hex::decode(sig)
        .filter(|s| s.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    let key = keys
        .iter()
        .find(|k| k.id == id)
        .ok_or(SignatureError::UnknownKey)?;
    if at.abs_diff(now) > MAX_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    mac(key, at, method, target)
        .verify_slice(&sig)
        .map_err(|_| SignatureError::Forged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "k2:new-0123456789abcdef0123456789abcdef";
    const OLD: &str = "k1:old-0123456789abcdef0123456789abcdef";

    fn keys(text: &str) -> Vec<EdgeKey> {
        parse_keys(text).expect("keys")
    }

    #[test]
    fn a_signature_verifies_for_its_request_inside_the_window() {
        let edge = keys(NEW);
        let origin = keys(&format!("{NEW},{OLD}"));
        let header = sign(&edge[0], 1000, "GET", "/api/elections/1?x=1");
        assert_eq!(
            verify(&origin, Some(&header), 1000, "GET", "/api/elections/1?x=1"),
            Ok(())
        );
        assert_eq!(
            verify(&origin, Some(&header), 1060, "GET", "/api/elections/1?x=1"),
            Ok(())
        );
        assert_eq!(
            verify(&origin, Some(&header), 940, "GET", "/api/elections/1?x=1"),
            Ok(())
        );
        assert_eq!(
            verify(&origin, Some(&header), 1061, "GET", "/api/elections/1?x=1"),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&origin, Some(&header), 939, "GET", "/api/elections/1?x=1"),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn any_change_to_the_request_or_the_header_is_refused() {
        let origin = keys(&format!("{NEW},{OLD}"));
        let header = sign(&origin[0], 1000, "GET", "/api/elections/1");
        let check =
            |h: &str, method: &str, target: &str| verify(&origin, Some(h), 1000, method, target);
        assert_eq!(
            check(&header, "POST", "/api/elections/1"),
            Err(SignatureError::Forged)
        );
        assert_eq!(
            check(&header, "GET", "/api/elections/2"),
            Err(SignatureError::Forged)
        );
        assert_eq!(
            check(
                &header.replace(" 1000 ", " 1001 "),
                "GET",
                "/api/elections/1"
            ),
            Err(SignatureError::Forged)
        );
        assert_eq!(
            check(&header.replace("k2", "k1"), "GET", "/api/elections/1"),
            Err(SignatureError::Forged)
        );
        assert_eq!(
            check(&header.replace("k2", "k9"), "GET", "/api/elections/1"),
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(
            check("v1 k2 1000", "GET", "/api/elections/1"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(check("1", "GET", "/"), Err(SignatureError::Malformed));
        assert_eq!(
            verify(&origin, None, 1000, "GET", "/"),
            Err(SignatureError::Missing)
        );
        let forger = keys("k2:forged-0123456789abcdef0123456789abcdef");
        let forged = sign(&forger[0], 1000, "GET", "/api/elections/1");
        assert_eq!(
            check(&forged, "GET", "/api/elections/1"),
            Err(SignatureError::Forged)
        );
    }

    #[test]
    fn keys_rotate_the_old_one_still_verifying() {
        let old_edge = keys(OLD);
        let origin = keys(&format!("{NEW},{OLD}"));
        let header = sign(&old_edge[0], 5, "GET", "/");
        assert_eq!(verify(&origin, Some(&header), 5, "GET", "/"), Ok(()));
        assert_eq!(
            verify(&keys(NEW), Some(&header), 5, "GET", "/"),
            Err(SignatureError::UnknownKey)
        );
    }

    #[test]
    fn bad_key_lists_say_what_to_fix() {
        for (text, says) in [
            ("no-colon-0123456789abcdef0123456789abcdef", "id:secret"),
            ("K1:0123456789abcdef0123456789abcdef", "lower-case"),
            ("k1:short", "at least 32"),
            (&format!("{NEW},{}", NEW) as &str, "twice"),
        ] {
            let e = parse_keys(text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(format!("{:?}", keys(NEW)).contains("<redacted>"));
        assert!(!format!("{:?}", keys(NEW)).contains("0123456789"));
    }
}
