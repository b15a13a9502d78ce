//! The policy document: route table (path pattern → cache class, TTLs, layers, tags, limits),
//! the auth-bypass rule, key scheme, named rate-limit quotas and tag cascades. Loaded from TOML
//! or JSON; every error names the field to fix, e.g. `routes[2].ttl`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::AuthBypass;
use crate::cascade::Cascade;
use crate::duration;
use crate::key::{CanonicalUrl, KeyConfig};
use crate::rate::Quota;
use crate::route::PathPattern;
use crate::status::Layers;
use crate::tag::TagSet;
use crate::template::{Params, TagTemplate, TemplateError};

/// The policy Surge ships with: the election reference workload.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../policy/default.toml");

/// [`DEFAULT_POLICY_TOML`] converted to JSON at build time (by `build.rs`), so loading the
/// shipped policy needs no TOML parser.
pub const DEFAULT_POLICY_JSON: &str =
    include_str!(concat!(env!("OUT_DIR"), "/default_policy.json"));

/// Longest TTL a micro-cache route may have.
pub const MAX_MICRO_CACHE_TTL: Duration = Duration::from_secs(10);
/// Longest lock timeout a route may ask for.
pub const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// How a route's responses may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheClass {
    /// Shared caches may store it for its TTL.
    Public,
    /// Shared caches may store it for a very short TTL (hot, fast-changing content).
    MicroCache,
    /// Only the user's browser may keep it; never a shared cache.
    Private,
    /// Nobody stores it.
    NoStore,
}

impl CacheClass {
    /// Whether a shared cache (edge, L1, L2) may store responses of this class.
    pub fn is_shared_cacheable(&self) -> bool {
        matches!(self, CacheClass::Public | CacheClass::MicroCache)
    }
}

/// HTTP methods a route can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

impl Method {
    /// Parses a method name (case-sensitive, as HTTP methods are).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }
}

fn default_methods() -> Vec<Method> {
    vec![Method::Get, Method::Head]
}

fn default_lock_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_body() -> u64 {
    64 * 1024
}

/// One row of the route table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A unique name, used in metrics and errors.
    pub name: String,
    /// The path pattern.
    pub pattern: PathPattern,
    /// Allowed methods; others are answered 405.
    #[serde(default = "default_methods")]
    pub methods: Vec<Method>,
    /// How responses may be cached.
    pub class: CacheClass,
    /// Freshness in shared caches (public and micro-cache only).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
    /// How long past `ttl` a stale copy may be served while it is refreshed.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub stale_while_revalidate: Option<Duration>,
    /// How long past `ttl` a stale copy may be served when the origin fails.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub stale_if_error: Option<Duration>,
    /// The cache layers used; defaults to all for shared-cacheable classes, none otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Layers>,
    /// Tag templates, filled from the pattern's parameters.
    #[serde(default)]
    pub tags: Vec<TagTemplate>,
    /// How long concurrent misses wait for the one fetch in flight.
    #[serde(default = "default_lock_timeout", with = "duration")]
    pub lock_timeout: Duration,
    /// Name of the quota (in `limits`) applied to this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// A per-IP quota counted as well when `limit` is per voter, so many voters' sessions
    /// from one network stay bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_limit: Option<String>,
    /// Largest request body accepted (bytes).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// The query parameters that belong to this route's key (and reach the origin through a
    /// shared cache); every other parameter is dropped, so `?r=<random>` cannot bust the
    /// cache. None by default: the election routes read no query.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<String>,
}

impl Route {
    /// `canonical` as this route keys it (and fetches it through a shared cache): only the
    /// query parameters named in [`Route::query`].
    pub fn keyed_url(&self, canonical: &CanonicalUrl) -> CanonicalUrl {
        canonical.keeping(&self.query)
    }

    /// The layers this route uses.
    pub fn layers(&self) -> Layers {
        match self.layers {
            Some(layers) => layers,
            None if self.class.is_shared_cacheable() => Layers::ALL,
            None => Layers::NONE,
        }
    }

    /// Whether `method` is allowed.
    pub fn allows(&self, method: Method) -> bool {
        self.methods.contains(&method)
    }

    /// The route's tags for a request whose path captured `params`.
    pub fn tags(&self, params: &[(String, String)]) -> Result<TagSet, TemplateError> {
        self.tags.iter().map(|t| t.render(params)).collect()
    }

    /// The `Cache-Control` value the origin sends for this route.
    pub fn cache_control(&self) -> String {
        match self.class {
            CacheClass::Public | CacheClass::MicroCache => {
                let mut cc = format!(
                    "public, max-age=0, s-maxage={}",
                    self.ttl.unwrap_or_default().as_secs()
                );
                if let Some(swr) = self.stale_while_revalidate {
                    cc.push_str(&format!(", stale-while-revalidate={}", swr.as_secs()));
                }
                if let Some(sie) = self.stale_if_error {
                    cc.push_str(&format!(", stale-if-error={}", sie.as_secs()));
                }
                cc
            }
            CacheClass::Private => "private, no-cache".to_string(),
            CacheClass::NoStore => "no-store".to_string(),
        }
    }

    fn validate(&self, at: &str, limits: &BTreeMap<String, Quota>) -> Result<(), PolicyError> {
        let field = |name: &str| format!("{at}.{name}");
        let invalid = |name: &str, message: String| PolicyError::Invalid {
            field: field(name),
            message,
        };
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "name",
                format!(
                    "{:?} must be non-empty letters, digits, '-' or '_'",
                    self.name
                ),
            ));
        }
        if self.methods.is_empty() {
            return Err(invalid(
                "methods",
                "list at least one method, e.g. [\"GET\", \"HEAD\"]".into(),
            ));
        }
        let shared = self.class.is_shared_cacheable();
        match (shared, self.ttl) {
            (true, None) | (true, Some(Duration::ZERO)) => {
                return Err(invalid(
                    "ttl",
                    "a public or micro-cache route needs a ttl above zero, e.g. \"60s\"".into(),
                ));
            }
            (false, Some(_)) => {
                return Err(invalid("ttl", "private and no-store routes are never stored in shared caches; remove ttl or change class".into()));
            }
            _ => {}
        }
        if !shared {
            for (name, set) in [
                (
                    "stale_while_revalidate",
                    self.stale_while_revalidate.is_some(),
                ),
                ("stale_if_error", self.stale_if_error.is_some()),
                ("layers", self.layers.is_some_and(|l| !l.is_empty())),
                ("tags", !self.tags.is_empty()),
            ] {
                if set {
                    return Err(invalid(
                        name,
                        format!(
                            "only public and micro-cache routes are cached; remove {name} or change class"
                        ),
                    ));
                }
            }
        }
        if self.class == CacheClass::MicroCache && self.ttl.is_some_and(|t| t > MAX_MICRO_CACHE_TTL)
        {
            return Err(invalid(
                "ttl",
                format!(
                    "micro-cache TTLs are at most {}s; use class \"public\" for longer TTLs",
                    MAX_MICRO_CACHE_TTL.as_secs()
                ),
            ));
        }
        if shared && self.layers.is_some_and(|l| l.is_empty()) {
            return Err(invalid(
                "layers",
                "a cached route needs at least one layer: l1, l2, l3 or all".into(),
            ));
        }
        if self.lock_timeout.is_zero() || self.lock_timeout > MAX_LOCK_TIMEOUT {
            return Err(invalid(
                "lock_timeout",
                format!(
                    "must be above zero and at most {}s",
                    MAX_LOCK_TIMEOUT.as_secs()
                ),
            ));
        }
        for (i, name) in self.query.iter().enumerate() {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(invalid(
                    &format!("query[{i}]"),
                    format!(
                        "{name:?} is not a query parameter name (letters, digits, '-', '_' or '.', at most 64)"
                    ),
                ));
            }
        }
        let params: Vec<&str> = self.pattern.params().collect();
        for (i, tag) in self.tags.iter().enumerate() {
            if let Some(var) = tag.vars().find(|v| !params.contains(v)) {
                return Err(invalid(
                    &format!("tags[{i}]"),
                    format!("{{{var}}} is not a parameter of pattern {}", self.pattern),
                ));
            }
        }
        for (field, name) in [("limit", &self.limit), ("ip_limit", &self.ip_limit)] {
            if let Some(limit) = name
                && !limits.contains_key(limit)
            {
                let known: Vec<&String> = limits.keys().collect();
                return Err(invalid(
                    field,
                    format!("no quota named {limit:?} in [limits]; known: {known:?}"),
                ));
            }
        }
        if let Some(ip) = self.ip_limit.as_ref().and_then(|n| limits.get(n))
            && ip.key != crate::rate::LimitKey::Ip
        {
            return Err(invalid("ip_limit", "name a quota with key = \"ip\"".into()));
        }
        Ok(())
    }
}

/// A route that matched a request, with the captured path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The route.
    pub route: &'a Route,
    /// Captured parameters.
    pub params: Params,
}

/// A classification that borrows nothing, so it can travel with a request (in its
/// extensions) and be resolved again against the same policy without matching the path a
/// second time: the route's place in the policy (or the fallback) and the parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    at: Option<usize>,
    params: Params,
}

impl Classified {
    /// The parameters the path matched with.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document does not parse, or a field has the wrong type or an unknown name.
    #[error("field `{field}`: {message}")]
    Syntax {
        /// Path of the bad field (`routes[2].ttl`), or `.` for the document.
        field: String,
        /// What the parser said.
        message: String,
    },
    /// The document parses but a value is not allowed.
    #[error("field `{field}`: {message}")]
    Invalid {
        /// Path of the bad field.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl PolicyError {
    /// Path of the field the error is about.
    pub fn field(&self) -> &str {
        match self {
            PolicyError::Syntax { field, .. } | PolicyError::Invalid { field, .. } => field,
        }
    }
}

/// A whole, validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// How requests are keyed.
    #[serde(default)]
    pub key: KeyConfig,
    /// Which credentials force a bypass.
    #[serde(default)]
    pub auth: AuthBypass,
    /// Named quotas, referenced by routes.
    #[serde(default)]
    pub limits: BTreeMap<String, Quota>,
    /// The route table, matched in order; the first match wins.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Tag cascades.
    #[serde(default)]
    pub cascade: Cascade,
}

/// Deserializes `de`; an error comes with the field at fault: its path (`routes[2].ttl`, or
/// `.` for the whole document) with the `field-paths` feature (the origin, the tools and
/// `cargo xtask deploy`, which checks the edge's configuration before it ships).
#[cfg(feature = "field-paths")]
pub(crate) fn deserialize_at<'de, D, T>(de: D) -> Result<T, (String, D::Error)>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(de).map_err(|e| {
        let text = e.path().to_string();
        let field = if text.is_empty() || text == "?" {
            ".".to_string()
        } else {
            text
        };
        (field, e.into_inner())
    })
}

/// Deserializes `de`; without the `field-paths` feature (the Worker, where tracking paths
/// would double every deserializer's code) the error is the parser's own, which names
/// unknown and missing fields and the line and column.
#[cfg(not(feature = "field-paths"))]
pub(crate) fn deserialize_at<'de, D, T>(de: D) -> Result<T, (String, D::Error)>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(de).map_err(|e| (".".to_string(), e))
}

/// The route used when no route matches: allow everything, store nothing.
fn fallback_route() -> &'static Route {
    static FALLBACK: std::sync::OnceLock<Route> = std::sync::OnceLock::new();
    FALLBACK.get_or_init(|| Route {
        name: "unmatched".into(),
        pattern: PathPattern::new("/**").unwrap_or_else(|e| unreachable!("{e}")),
        methods: vec![
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
            Method::Options,
        ],
        class: CacheClass::NoStore,
        ttl: None,
        stale_while_revalidate: None,
        stale_if_error: None,
        layers: None,
        tags: Vec::new(),
        lock_timeout: default_lock_timeout(),
        limit: None,
        ip_limit: None,
        max_body_bytes: default_max_body(),
        query: Vec::new(),
    })
}

impl Policy {
    /// Parses and validates a TOML policy.
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        let de = toml::Deserializer::parse(text).map_err(|e| PolicyError::Syntax {
            field: ".".into(),
            message: e.message().to_string(),
        })?;
        let policy: Policy = deserialize_at(de).map_err(|(field, e)| PolicyError::Syntax {
            field,
            message: e.message().to_string(),
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// Parses and validates a JSON policy.
    pub fn from_json_str(text: &str) -> Result<Self, PolicyError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let policy: Policy = deserialize_at(de).map_err(|(field, e)| PolicyError::Syntax {
            field,
            message: e.to_string(),
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// The policy Surge ships with ([`DEFAULT_POLICY_TOML`], loaded from its JSON form).
    pub fn election_default() -> Self {
        Self::from_json_str(DEFAULT_POLICY_JSON)
            .unwrap_or_else(|e| unreachable!("the shipped policy is tested to load: {e}"))
    }

    /// Checks every cross-field rule; the error names the field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for variant in &self.key.variants {
            variant.validate().map_err(|message| PolicyError::Invalid {
                field: "key.variants".into(),
                message,
            })?;
        }
        self.auth
            .validate()
            .map_err(|message| PolicyError::Invalid {
                field: "auth.cookies".into(),
                message,
            })?;
        for (name, quota) in &self.limits {
            quota.validate().map_err(|e| PolicyError::Invalid {
                field: format!("limits.{name}"),
                message: e.to_string(),
            })?;
        }
        for (i, route) in self.routes.iter().enumerate() {
            route.validate(&format!("routes[{i}]"), &self.limits)?;
            if let Some(j) = self.routes[..i].iter().position(|r| r.name == route.name) {
                return Err(PolicyError::Invalid {
                    field: format!("routes[{i}].name"),
                    message: format!(
                        "{:?} is already used by routes[{j}]; names must be unique",
                        route.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// The first route whose pattern matches `path`, or the built-in no-store fallback.
    pub fn classify(&self, path: &str) -> RouteMatch<'_> {
        self.resolve(self.classified(path))
    }

    /// [`classify`](Self::classify), as a value that borrows nothing; [`resolve`](Self::resolve)
    /// it against this policy (and only this one).
    pub fn classified(&self, path: &str) -> Classified {
        self.routes
            .iter()
            .enumerate()
            .find_map(|(at, route)| {
                route.pattern.matches(path).map(|params| Classified {
                    at: Some(at),
                    params,
                })
            })
            .unwrap_or(Classified {
                at: None,
                params: Params::new(),
            })
    }

    /// The route of a classification this policy made.
    pub fn route_of(&self, classified: &Classified) -> &Route {
        classified
            .at
            .and_then(|at| self.routes.get(at))
            .unwrap_or_else(|| fallback_route())
    }

    /// A classification this policy made, as the match it stands for.
    pub fn resolve(&self, classified: Classified) -> RouteMatch<'_> {
        RouteMatch {
            route: self.route_of(&classified),
            params: classified.params,
        }
    }

    /// The quota a route uses, if any.
    pub fn quota(&self, route: &Route) -> Option<&Quota> {
        route.limit.as_ref().and_then(|name| self.limits.get(name))
    }

    /// The per-IP quota `route` counts besides a per-voter one.
    pub fn ip_quota(&self, route: &Route) -> Option<&Quota> {
        route
            .ip_limit
            .as_ref()
            .and_then(|name| self.limits.get(name))
    }
}

impl fmt::Display for CacheClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheClass::Public => "public",
            CacheClass::MicroCache => "micro-cache",
            CacheClass::Private => "private",
            CacheClass::NoStore => "no-store",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_field(toml: &str) -> String {
        Policy::from_toml_str(toml)
            .map(|_| "no error".to_string())
            .unwrap_or_else(|e| e.field().to_string())
    }

    #[test]
    fn the_shipped_policy_loads_and_classifies() {
        let policy = Policy::from_toml_str(DEFAULT_POLICY_TOML).expect("default policy is valid");
        let m = policy.classify("/api/elections/7/results");
        assert_eq!(m.route.class, CacheClass::MicroCache);
        assert_eq!(m.params, vec![("id".to_string(), "7".to_string())]);
        let tags = m.route.tags(&m.params).expect("tags render");
        assert!(tags.iter().any(|t| t.as_str() == "results:7"));
        assert_eq!(policy.classify("/nowhere").route.class, CacheClass::NoStore);
        let vote = policy.classify("/api/elections/7/votes").route;
        assert!(vote.allows(Method::Post) && !vote.allows(Method::Get));
        assert!(policy.quota(vote).is_some());
    }

    #[test]
    fn a_classification_resolves_to_the_same_match_without_matching_again() {
        let policy = Policy::election_default();
        for path in ["/api/elections/7/results", "/elections/3", "/nowhere", "/"] {
            let classified = policy.classified(path);
            assert_eq!(policy.route_of(&classified), policy.classify(path).route);
            assert_eq!(classified.params(), policy.classify(path).params, "{path}");
            assert_eq!(policy.resolve(classified), policy.classify(path), "{path}");
        }
        assert_eq!(
            policy.route_of(&policy.classified("/nowhere")).name,
            "unmatched"
        );
    }

    #[test]
    fn the_build_time_json_matches_the_toml() {
        assert_eq!(
            Policy::from_json_str(DEFAULT_POLICY_JSON),
            Policy::from_toml_str(DEFAULT_POLICY_TOML)
        );
    }

    #[test]
    fn json_and_toml_agree() {
        let toml = Policy::election_default();
        let json = serde_json::to_string(&toml).expect("serialises");
        assert_eq!(Policy::from_json_str(&json), Ok(toml));
    }

    #[test]
    fn errors_name_the_bad_field() {
        let base = "[[routes]]\nname = \"a\"\npattern = \"/a\"\n";
        assert_eq!(
            err_field(&format!("{base}class = \"public\"\n")),
            "routes[0].ttl"
        );
        assert_eq!(
            err_field(&format!("{base}class = \"public\"\nttl = \"soon\"\n")),
            "routes[0].ttl"
        );
        assert_eq!(
            err_field(&format!("{base}class = \"privat\"\n")),
            "routes[0].class"
        );
        assert_eq!(
            err_field(&format!("{base}class = \"private\"\nttl = \"1s\"\n")),
            "routes[0].ttl"
        );
        assert_eq!(
            err_field(&format!("{base}class = \"micro-cache\"\nttl = \"1m\"\n")),
            "routes[0].ttl"
        );
        assert_eq!(
            err_field(&format!("{base}class = \"no-store\"\ntags = [\"x\"]\n")),
            "routes[0].tags"
        );
        assert_eq!(
            err_field(&format!(
                "{base}class = \"public\"\nttl = \"1s\"\ntags = [\"e:{{id}}\"]\n"
            )),
            "routes[0].tags[0]"
        );
        assert_eq!(
            err_field(&format!(
                "{base}class = \"public\"\nttl = \"1s\"\nlimit = \"nope\"\n"
            )),
            "routes[0].limit"
        );
        assert_eq!(
            err_field(&format!(
                "{base}class = \"public\"\nttl = \"1s\"\nmethods = [\"FETCH\"]\n"
            )),
            "routes[0].methods[0]"
        );
        assert_eq!(
            err_field(&format!(
                "{base}class = \"public\"\nttl = \"1s\"\nbogus = 1\n"
            )),
            "routes[0].bogus"
        );
        assert_eq!(
            err_field(&format!(
                "{base}class = \"public\"\nttl = \"1s\"\n{base}class = \"public\"\nttl = \"1s\"\n"
            )),
            "routes[1].name"
        );
        assert_eq!(
            err_field("[[routes]]\nname = \"a\"\npattern = \"a\"\nclass = \"no-store\"\n"),
            "routes[0].pattern"
        );
        assert_eq!(
            err_field("[limits.x]\nrate = 0\nperiod = \"1s\"\nburst = 1\nkey = \"ip\"\n"),
            "limits.x"
        );
        assert_eq!(err_field("[auth]\ncookies = [\"a b\"]\n"), "auth.cookies");
        assert_eq!(
            err_field("[key]\ndrop_params = [\"*\"]\n"),
            "key.drop_params[0]"
        );
        assert_eq!(err_field("routes = 3"), "routes");
    }

    #[test]
    fn cache_control_reflects_the_class() {
        let policy = Policy::election_default();
        let results = policy.classify("/api/elections/7/results").route;
        assert!(
            results
                .cache_control()
                .starts_with("public, max-age=0, s-maxage=1")
        );
        let login = policy.classify("/api/login").route;
        assert_eq!(login.cache_control(), "no-store");
        assert!(login.layers().is_empty());
    }
}
