//! Request headers read the same way whether hyper parsed them into a `HeaderMap` (the router's
//! path) or the connection front parsed them in place (`serve::front`, fresh L1 hits).

use axum::http::HeaderMap;

/// A request's headers, looked up by lower-case name.
pub trait HeaderSource {
    /// The values of header `name` (lower-case), in the order they came.
    fn values_of<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]>;

    /// The first value of `name`, when it is [`text`].
    fn text_of(&self, name: &str) -> Option<&str> {
        text(self.values_of(name).next()?)
    }
}

/// A header value as text: visible ASCII, spaces and tabs only, as `HeaderValue::to_str`
/// reads it.
pub fn text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

impl HeaderSource for HeaderMap {
    fn values_of<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name).iter().map(|v| v.as_bytes())
    }
}

impl HeaderSource for [httparse::Header<'_>] {
    fn values_of<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_give_the_same_values_in_order_whatever_the_case_of_the_name() {
        let mut map = HeaderMap::new();
        map.append("x-a", "1".parse().expect("value"));
        map.append("x-a", "2".parse().expect("value"));
        map.insert("host", "h".parse().expect("value"));
        let parsed = [
            httparse::Header {
                name: "X-A",
                value: b"1",
            },
            httparse::Header {
                name: "Host",
                value: b"h",
            },
            httparse::Header {
                name: "x-a",
                value: b"2",
            },
        ];
        for name in ["x-a", "host", "absent"] {
            let from_map: Vec<_> = map.values_of(name).collect();
            let from_parse: Vec<_> = parsed[..].values_of(name).collect();
            assert_eq!(from_map, from_parse, "{name}");
        }
        assert_eq!(parsed[..].text_of("host"), Some("h"));
        assert_eq!(map.text_of("absent"), None);
        assert_eq!(text("caf\u{e9}".as_bytes()), None, "as HeaderValue::to_str");
        assert_eq!(text(b"a\tb c"), Some("a\tb c"));
    }
}
