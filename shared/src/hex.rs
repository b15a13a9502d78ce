//! Lower-case hex, for the HMAC tags of session tokens and edge signatures.

/// `bytes` as lower-case hex.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    out
}

/// Appends `bytes` as lower-case hex to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// The bytes lower-case hex `text` spells, if it is that.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_round_trips_and_refuses_other_text() {
        assert_eq!(super::encode(&[0, 15, 255]), "000fff");
        assert_eq!(super::decode("000fff"), Some(vec![0, 15, 255]));
        for bad in ["0", "0g", "FF", "0 "] {
            assert_eq!(super::decode(bad), None, "{bad}");
        }
    }
}
