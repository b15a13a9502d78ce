//! Platform-neutral HTTP messages: what the adapters translate to and from.

use surge_shared::key::HeaderLookup;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus `host`: never forwarded in either direction.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers that some frameworks honour to rewrite the URL, scheme, host or method.
/// They are unkeyed, so they are dropped before a request reaches the origin: they can
/// neither change a stored response nor be reflected into one.
pub const UNKEYED_OVERRIDES: [&str; 7] = [
    "x-forwarded-host",
    "x-forwarded-scheme",
    "x-forwarded-proto",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-method-override",
];

/// An ordered header list with case-insensitive names (stored lower-case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` joined with `", "` (`Cookie` values with `"; "`).
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let sep = if name.eq_ignore_ascii_case("cookie") {
            "; "
        } else {
            ", "
        };
        let mut values = self.get_all(name);
        let first = values.next()?.to_string();
        Some(values.fold(first, |mut acc, v| {
            acc.push_str(sep);
            acc.push_str(v);
            acc
        }))
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a value, keeping existing ones.
    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.append(name, value);
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// All (name, value) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Drops hop-by-hop headers, including any named in `Connection`.
    pub fn strip_hop_by_hop(&mut self) {
        let named: Vec<String> = self
            .get_all("connection")
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        self.0.retain(|(n, _)| {
            !HOP_BY_HOP.contains(&n.as_str()) && n != "host" && !named.contains(n)
        });
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (k, v) in iter {
            h.append(&k.into(), v);
        }
        h
    }
}

impl HeaderLookup for Headers {
    fn header(&self, name: &str) -> Option<String> {
        self.header_joined(name)
    }
}

/// Who sent a request, as the platform reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// The connecting IP (`CF-Connecting-IP` on Cloudflare; never `X-Forwarded-For`).
    pub ip: Option<String>,
    /// ISO country code (`cf.country`).
    pub country: Option<String>,
    /// Continent code (`cf.continent`).
    pub continent: Option<String>,
}

/// A request entering the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeRequest {
    /// Method, as sent.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers.
    pub headers: Headers,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Client facts from the platform.
    pub client: Client,
}

/// A response leaving the edge (or coming back from an origin or the cache).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Headers,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl EdgeResponse {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        let mut headers = Headers::new();
        headers.set("content-type", "application/json");
        headers.set("cache-control", "no-store");
        Self {
            status,
            headers,
            body: value.to_string().into_bytes(),
        }
    }

    /// A JSON error: `{"error": code, "message": message}`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({ "error": code, "message": message }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_values_ordered() {
        let mut h: Headers = [("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("X-A", "x")]
            .into_iter()
            .collect();
        assert_eq!(h.get("SET-COOKIE"), Some("a=1"));
        assert_eq!(h.get_all("set-cookie").collect::<Vec<_>>(), ["a=1", "b=2"]);
        h.set("x-a", "y");
        assert_eq!(h.get("X-A"), Some("y"));
        assert_eq!(h.header("set-cookie").as_deref(), Some("a=1, b=2"));
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_stripped() {
        let mut h: Headers = [
            ("Connection", "keep-alive, X-Secret"),
            ("Keep-Alive", "timeout=5"),
            ("X-Secret", "1"),
            ("Host", "a"),
            ("Transfer-Encoding", "chunked"),
            ("Accept", "*/*"),
        ]
        .into_iter()
        .collect();
        h.strip_hop_by_hop();
        assert_eq!(h.iter().collect::<Vec<_>>(), [("accept", "*/*")]);
    }
}
