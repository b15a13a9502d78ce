//! The geo table: which origin regions serve a country or continent, in failover order.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::policy::PolicyError;
use crate::uri::HttpUrl;

/// Continent codes Cloudflare reports in `cf.continent`.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One origin region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Base URL of the region's origin, e.g. `https://eu-west.origin.example`.
    pub origin: String,
    /// How long one attempt against this region may take before failing over.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

/// Country / continent → ordered regions. Lookup order: the country's list, then the
/// continent's, then `default`; the remaining regions of those lists follow for failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoTable {
    /// Regions by name.
    pub regions: BTreeMap<String, Region>,
    /// Country code (ISO 3166-1 alpha-2, upper case; `XX` unknown, `T1` Tor) → regions.
    #[serde(default)]
    pub countries: BTreeMap<String, Vec<String>>,
    /// Continent code → regions.
    #[serde(default)]
    pub continents: BTreeMap<String, Vec<String>>,
    /// Regions for everyone else; also the final failover order.
    pub default: Vec<String>,
}

impl GeoTable {
    /// Parses and validates a JSON geo table (e.g. the `SURGE_GEO` wrangler var).
    pub fn from_json_str(text: &str) -> Result<Self, PolicyError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let table: GeoTable =
            crate::policy::deserialize_at(de).map_err(|(field, e)| PolicyError::Syntax {
                field,
                message: e.to_string(),
            })?;
        table.validate()?;
        Ok(table)
    }

    /// Checks codes, region references and origin URLs; the error names the field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |field: String, message: String| PolicyError::Invalid { field, message };
        if self.regions.is_empty() {
            return Err(invalid(
                "regions".into(),
                "declare at least one region".into(),
            ));
        }
        for (name, region) in &self.regions {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    format!("regions.{name}"),
                    "region names are letters, digits, '-' or '_'".into(),
                ));
            }
            let url = HttpUrl::parse(&region.origin).map_err(|e| {
                invalid(
                    format!("regions.{name}.origin"),
                    format!(
                        "{:?} is not an http(s) URL ({e}); write e.g. \"https://eu.origin.example\"",
                        region.origin
                    ),
                )
            })?;
            if url.path != "/" || url.query.is_some() || url.fragment {
                return Err(invalid(
                    format!("regions.{name}.origin"),
                    "must be scheme://host[:port], without path, query or fragment (the origin sees, and the edge signs, the request's own path)".into(),
                ));
            }
            if region.timeout.is_zero() {
                return Err(invalid(
                    format!("regions.{name}.timeout"),
                    "must be above zero, e.g. \"5s\"".into(),
                ));
            }
        }
        let check_list = |field: String, list: &[String]| -> Result<(), PolicyError> {
            if list.is_empty() {
                return Err(invalid(field, "list at least one region".into()));
            }
            for (i, r) in list.iter().enumerate() {
                if !self.regions.contains_key(r) {
                    return Err(invalid(
                        format!("{field}[{i}]"),
                        format!(
                            "unknown region {r:?}; declared: {:?}",
                            self.regions.keys().collect::<Vec<_>>()
                        ),
                    ));
                }
                if list[..i].contains(r) {
                    return Err(invalid(
                        format!("{field}[{i}]"),
                        format!("region {r:?} is listed twice"),
                    ));
                }
            }
            Ok(())
        };
        check_list("default".into(), &self.default)?;
        for (code, list) in &self.countries {
            let ok = code.len() == 2
                && code
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !ok {
                return Err(invalid(
                    format!("countries.{code}"),
                    "country codes are two upper-case characters, e.g. \"DE\"".into(),
                ));
            }
            check_list(format!("countries.{code}"), list)?;
        }
        for (code, list) in &self.continents {
            if !CONTINENTS.contains(&code.as_str()) {
                return Err(invalid(
                    format!("continents.{code}"),
                    format!("unknown continent; expected one of {CONTINENTS:?}"),
                ));
            }
            check_list(format!("continents.{code}"), list)?;
        }
        Ok(())
    }

    /// Region names to try, in order, for a client in `country` / `continent` (either may be
    /// unknown). Every region in the chosen list and in `default` appears once.
    pub fn failover_order(&self, country: Option<&str>, continent: Option<&str>) -> Vec<&str> {
        let country = country.map(str::to_ascii_uppercase);
        let continent = continent.map(str::to_ascii_uppercase);
        let preferred = country
            .as_deref()
            .and_then(|c| self.countries.get(c))
            .or_else(|| continent.as_deref().and_then(|c| self.continents.get(c)));
        let mut order: Vec<&str> = Vec::new();
        for name in preferred.into_iter().flatten().chain(&self.default) {
            if !order.contains(&name.as_str()) {
                order.push(name);
            }
        }
        order
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"{
        "regions": {
            "eu-west": {"origin": "http://127.0.0.1:9001"},
            "us-east": {"origin": "http://127.0.0.1:9002", "timeout": "2s"},
            "ap-south": {"origin": "http://127.0.0.1:9003"}
        },
        "countries": {"DE": ["eu-west", "us-east"], "IN": ["ap-south"]},
        "continents": {"NA": ["us-east"], "EU": ["eu-west"]},
        "default": ["us-east", "eu-west"]
    }"#;

    #[test]
    fn country_beats_continent_beats_default() {
        let t = GeoTable::from_json_str(TABLE).expect("valid table");
        assert_eq!(
            t.failover_order(Some("de"), Some("EU")),
            ["eu-west", "us-east"]
        );
        assert_eq!(
            t.failover_order(Some("IN"), None),
            ["ap-south", "us-east", "eu-west"]
        );
        assert_eq!(
            t.failover_order(Some("FR"), Some("EU")),
            ["eu-west", "us-east"]
        );
        assert_eq!(t.failover_order(None, None), ["us-east", "eu-west"]);
        assert_eq!(
            t.region("us-east").map(|r| r.timeout),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn bad_tables_name_the_field() {
        let field = |json: &str| {
            GeoTable::from_json_str(json)
                .err()
                .map(|e| e.field().to_string())
        };
        assert_eq!(
            field(r#"{"regions":{},"default":[]}"#).as_deref(),
            Some("regions")
        );
        assert_eq!(
            field(r#"{"regions":{"a":{"origin":"ftp://x"}},"default":["a"]}"#).as_deref(),
            Some("regions.a.origin")
        );
        assert_eq!(
            field(r#"{"regions":{"a":{"origin":"http://x"}},"default":["b"]}"#).as_deref(),
            Some("default[0]")
        );
        assert_eq!(field(r#"{"regions":{"a":{"origin":"http://x"}},"default":["a"],"countries":{"de":["a"]}}"#).as_deref(), Some("countries.de"));
        assert_eq!(field(r#"{"regions":{"a":{"origin":"http://x"}},"default":["a"],"continents":{"XX":["a"]}}"#).as_deref(), Some("continents.XX"));
        assert_eq!(
            field(r#"{"regions":{"a":{"origin":"http://x","timeout":"fast"}},"default":["a"]}"#)
                .as_deref(),
            Some("regions.a.timeout")
        );
    }
}
