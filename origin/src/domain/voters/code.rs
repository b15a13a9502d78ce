//! Voting codes: 130 random bits written as 26 Crockford base32 characters in groups of
//! five (`7K3QD-…`), and their stored form, a keyed SHA-256 (HMAC with a server-side
//! pepper) over the voter id and the code. Only the hash is ever stored.
//!
//! No slow KDF: a code carries 130 bits of entropy, so even a stolen table and pepper leave
//! 2^129 guesses per voter on average; a slow hash only helps low-entropy passwords, and it
//! would cost the 2,000 logins/s the reference scenario needs a core each.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Crockford's base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a code (26 × 5 = 130 bits).
pub const CODE_CHARS: usize = 26;
/// [`VotingCode::parse`]'s rule as a regular expression, for the OpenAPI schema: 26
/// characters of the alphabet in either case (`I`, `L` and `O` read as `1`, `1` and `0`),
/// with `-` or spaces anywhere.
pub const CODE_REGEX: &str = "^[- ]*([0-9A-TV-Za-tv-z][- ]*){26}$";
/// Shortest pepper accepted (bytes).
pub const MIN_PEPPER_LEN: usize = 32;

/// A voting code in canonical form (26 upper-case base32 characters, no separators).
#[derive(Clone, PartialEq, Eq)]
pub struct VotingCode(String);

impl std::fmt::Debug for VotingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VotingCode(<redacted>)")
    }
}

/// Why a code cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a voting code is {CODE_CHARS} letters and digits, optionally grouped with '-' (e.g. 7K3QD-R8M2N-…)"
)]
pub struct MalformedCode;

impl VotingCode {
    /// A fresh random code; fails only when the operating system has no randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; CODE_CHARS];
        getrandom::fill(&mut bytes)?;
        Ok(Self(
            bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                .collect(),
        ))
    }

    /// Reads a code as a person may type it: any case, `-` or spaces between groups, `O` for
    /// `0` and `I`/`L` for `1`.
    pub fn parse(text: &str) -> Result<Self, MalformedCode> {
        let mut out = String::with_capacity(CODE_CHARS);
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => return Err(MalformedCode),
            };
            out.push(c);
            if out.len() > CODE_CHARS {
                return Err(MalformedCode);
            }
        }
        if out.len() == CODE_CHARS {
            Ok(Self(out))
        } else {
            Err(MalformedCode)
        }
    }

    /// The code grouped in fives for people (`XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-X`).
    pub fn display(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars
            .chunks(5)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// Hashes codes with the server's pepper; the pepper never leaves this type.
#[derive(Clone)]
pub struct CodeHasher {
    pepper: Vec<u8>,
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(<pepper redacted>)")
    }
}

/// The stored form of a code: 32 bytes.
pub type CodeHash = [u8; 32];

impl CodeHasher {
    /// A hasher with `pepper` (at least [`MIN_PEPPER_LEN`] bytes; checked by the config).
    pub fn new(pepper: Vec<u8>) -> Self {
        Self { pepper }
    }

    /// A hasher with a random pepper, for a process whose voters live only in its memory.
    pub fn ephemeral() -> Result<Self, getrandom::Error> {
        let mut pepper = vec![0u8; MIN_PEPPER_LEN];
        getrandom::fill(&mut pepper)?;
        Ok(Self { pepper })
    }

    /// HMAC-SHA256(pepper, voter id ‖ 0 ‖ code).
    pub fn hash(&self, voter_id: &str, code: &VotingCode) -> CodeHash {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.pepper)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(voter_id.as_bytes());
        mac.update(&[0]);
        mac.update(code.0.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `code` is the voter's, comparing in constant time. With no stored hash (an
    /// unknown voter) the same work is done against a fixed value, so both answers take as
    /// long.
    pub fn verify(&self, voter_id: &str, code: &VotingCode, stored: Option<&[u8]>) -> bool {
        let computed = self.hash(voter_id, code);
        let unknown = [0u8; 32];
        let (against, known) = match stored {
            Some(s) if s.len() == 32 => (s, true),
            _ => (&unknown[..], false),
        };
        bool::from(computed.ct_eq(against)) && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_random_canonical_and_read_back_as_typed() {
        let a = VotingCode::generate().expect("randomness");
        let b = VotingCode::generate().expect("randomness");
        assert_ne!(a, b);
        assert_eq!(a.0.len(), CODE_CHARS);
        let shown = a.display();
        assert_eq!(shown.len(), CODE_CHARS + 5);
        assert_eq!(VotingCode::parse(&shown), Ok(a.clone()));
        assert_eq!(VotingCode::parse(&shown.to_lowercase()), Ok(a.clone()));
        assert_eq!(
            VotingCode::parse("oooooIIIIILLLLL00000111112"),
            VotingCode::parse("00000111111111100000111112")
        );
        for bad in [
            "",
            "short",
            &"A".repeat(27),
            "AAAAAAAAAAAAAAAAAAAAAAAAA!",
            "UUUUUUUUUUUUUUUUUUUUUUUUUU",
        ] {
            assert_eq!(VotingCode::parse(bad), Err(MalformedCode), "{bad:?}");
        }
    }

    #[test]
    fn a_code_verifies_only_for_its_voter_and_pepper() {
        let hasher = CodeHasher::new(b"pepper-0123456789abcdef0123456789ab".to_vec());
        let code = VotingCode::generate().expect("randomness");
        let stored = hasher.hash("voter-1", &code);
        assert!(hasher.verify("voter-1", &code, Some(&stored)));
        assert!(!hasher.verify("voter-2", &code, Some(&stored)));
        let other = VotingCode::generate().expect("randomness");
        assert!(!hasher.verify("voter-1", &other, Some(&stored)));
        assert!(!hasher.verify("voter-1", &code, None));
        assert!(!hasher.verify("voter-1", &code, Some(&[0u8; 32])));
        let peppered = CodeHasher::new(b"another-pepper-0123456789abcdef012".to_vec());
        assert!(!peppered.verify("voter-1", &code, Some(&stored)));
        assert!(!format!("{hasher:?}{code:?}").contains(&code.0));
    }
}
