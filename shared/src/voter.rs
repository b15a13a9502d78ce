//! Voter ids: what the origin registers, the login cookie names and the edge counts quotas
//! against.

/// Longest voter id accepted.
pub const MAX_VOTER_ID_LEN: usize = 64;

/// [`validate_voter_id`]'s rule as a regular expression, for the OpenAPI schema.
pub const VOTER_ID_REGEX: &str = "^[A-Za-z0-9_-]{1,64}$";

/// Checks a voter id: 1–64 of `A-Z a-z 0-9 - _`.
pub fn validate_voter_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_VOTER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "voter_id must be 1 to {MAX_VOTER_ID_LEN} letters, digits, '-' or '_'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voter_ids_are_checked() {
        assert!(validate_voter_id("voter-42_a").is_ok());
        for bad in ["", "a b", "é", "a;b", &"x".repeat(65)] {
            assert!(validate_voter_id(bad).is_err(), "{bad:?}");
        }
    }
}
