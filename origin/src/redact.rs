//! The one redaction for connection strings and anything that may quote one: the password in
//! a URL's user-info, secret query parameters (`?password=…`, `sslpassword`, `token`, …) and
//! secret `key=value` pairs (`host=db password=…`), in any text. Health reports, error
//! messages and `Debug` output all go through it.

/// What a hidden value is replaced with.
pub const HIDDEN: &str = "***";

/// Parameter names whose values are secrets (compared case-insensitively).
const SECRET_NAMES: [&str; 9] = [
    "password",
    "passwd",
    "pass",
    "pwd",
    "sslpassword",
    "token",
    "secret",
    "auth",
    "api_key",
];

fn is_secret_name(name: &str) -> bool {
    let name = name.trim().trim_start_matches(['?', '&', ' ']);
    SECRET_NAMES.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// `text` with every password and secret parameter replaced by [`HIDDEN`].
pub fn redact(text: &str) -> String {
    let userinfo = hide_userinfo_passwords(text);
    hide_secret_pairs(&userinfo)
}

/// `scheme://user:password@host` → `scheme://user:***@host`, wherever it appears.
fn hide_userinfo_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first '/', '?', '#', whitespace, ',' or ';'.
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | ',' | ';') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at_sign) => {
                let userinfo = &authority[..at_sign];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str(HIDDEN);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `name=value` with a secret `name` → `name=***`, for query strings (`&`-separated) and
/// libpq key-value strings (space-separated, values optionally single-quoted).
fn hide_secret_pairs(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while let Some(eq) = text[i..].find('=').map(|p| p + i) {
        let name_start = text[..eq]
            .rfind(|c: char| matches!(c, '?' | '&' | ';' | ',') || c.is_whitespace())
            .map_or(0, |p| p + 1);
        let name = &text[name_start..eq];
        let value_start = eq + 1;
        let value_end = if bytes.get(value_start) == Some(&b'\'') {
            // A quoted libpq value: up to the closing quote (backslash escapes it).
            let mut j = value_start + 1;
            while j < bytes.len() && bytes[j] != b'\'' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(bytes.len())
        } else {
            text[value_start..]
                .find(|c: char| matches!(c, '&' | '#' | ';' | ',') || c.is_whitespace())
                .map_or(text.len(), |p| p + value_start)
        };
        if is_secret_name(name) && value_end > value_start {
            out.push_str(&text[copied..value_start]);
            out.push_str(HIDDEN);
            copied = value_end;
        }
        i = value_end.max(value_start);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_hidden() {
        let cases = [
            (
                "postgres://app:secret@db:5432/votes",
                "postgres://app:***@db:5432/votes",
            ),
            (
                "postgres://app@db/votes?sslmode=require&password=secret",
                "postgres://app@db/votes?sslmode=require&password=***",
            ),
            (
                "host=db user=app password=secret dbname=votes",
                "host=db user=app password=*** dbname=votes",
            ),
            (
                "host=db password='se cr\\'et' dbname=votes",
                "host=db password=*** dbname=votes",
            ),
            (
                "rediss://default:hunter2@r1:6380,rediss://default:hunter2@r2:6380",
                "rediss://default:***@r1:6380,rediss://default:***@r2:6380",
            ),
            (
                "error connecting to postgres://u:p@h/db: refused",
                "error connecting to postgres://u:***@h/db: refused",
            ),
            (
                "https://api.example/v4?TOKEN=abc&x=1",
                "https://api.example/v4?TOKEN=***&x=1",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        for text in [
            "postgres://app@db:5432/votes?sslmode=require",
            "redis://127.0.0.1:6379",
            "host=db user=app dbname=votes",
            "a = b, passwordless=yes",
            "",
        ] {
            assert_eq!(redact(text), text);
        }
    }
}
