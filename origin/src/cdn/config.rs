//! The CDN purge client's settings: Cloudflare's API token, zone and API base.

use crate::settings::{ConfigError, Settings, fail};

/// Cloudflare's API base.
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

/// Where the CDN's purge API is and how to call it.
#[derive(Clone)]
pub struct CloudflareConfig {
    /// API token with the Cache Purge permission (`CLOUDFLARE_API_TOKEN`).
    pub api_token: String,
    /// The zone (`CLOUDFLARE_ZONE_ID`, 32 hex digits).
    pub zone_id: String,
    /// API base (`CLOUDFLARE_API_BASE`; Cloudflare's by default, a stand-in in tests).
    pub api_base: String,
}

impl std::fmt::Debug for CloudflareConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareConfig")
            .field("api_token", &"<redacted>")
            .field("zone_id", &self.zone_id)
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// Reads the purge API settings; `None` when neither token nor zone is set.
pub fn read(s: &Settings<'_>) -> Result<Option<CloudflareConfig>, ConfigError> {
    let token = s.secret("CLOUDFLARE_API_TOKEN")?;
    let zone = s.get("CLOUDFLARE_ZONE_ID")?;
    let base = s.get("CLOUDFLARE_API_BASE")?;
    let (api_token, zone_id) = match (token, zone) {
        (None, None) => {
            if base.is_some() {
                return Err(fail(
                    "CLOUDFLARE_API_BASE",
                    "set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ZONE_ID too, or unset it",
                ));
            }
            return Ok(None);
        }
        (Some(_), None) => {
            return Err(fail(
                "CLOUDFLARE_ZONE_ID",
                "CLOUDFLARE_API_TOKEN is set but the zone is not: copy the zone ID from the dashboard's Overview page",
            ));
        }
        (None, Some(_)) => {
            return Err(fail(
                "CLOUDFLARE_API_TOKEN",
                "CLOUDFLARE_ZONE_ID is set but the token is not: create a token with the Zone › Cache Purge permission",
            ));
        }
        (Some(t), Some(z)) => (t, z),
    };
    if !api_token.bytes().all(|b| b.is_ascii_graphic()) || api_token.len() < 20 {
        return Err(fail(
            "CLOUDFLARE_API_TOKEN",
            "does not look like an API token (at least 20 printable characters, no spaces)",
        ));
    }
    if zone_id.len() != 32 || !zone_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail(
            "CLOUDFLARE_ZONE_ID",
            format!("{zone_id:?} is not a zone ID (32 hex digits)"),
        ));
    }
    let api_base = base.unwrap_or_else(|| CLOUDFLARE_API.to_string());
    let parsed = url::Url::parse(&api_base).map_err(|e| {
        fail(
            "CLOUDFLARE_API_BASE",
            format!("{api_base:?} is not a URL ({e}); default is {CLOUDFLARE_API}"),
        )
    })?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(fail(
                "CLOUDFLARE_API_BASE",
                format!(
                    "{api_base:?} must be an https URL (the token travels with every call); plain http is allowed only to a loopback stand-in such as http://127.0.0.1:8787"
                ),
            ));
        }
    }
    Ok(Some(CloudflareConfig {
        api_token,
        zone_id,
        api_base: api_base.trim_end_matches('/').to_string(),
    }))
}
