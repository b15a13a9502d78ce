//! The words every tier uses to say what happened: cache status, cache layer, and the response
//! headers that carry them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Response header naming the cache status ([`CacheStatus`]).
pub const CACHE_STATUS_HEADER: &str = "x-surge-cache";
/// Response header naming the tier that answered ([`Tier`]).
pub const TIER_HEADER: &str = "x-surge-tier";
/// Response header naming the origin region the edge used.
pub const REGION_HEADER: &str = "x-surge-region";

/// What a cache did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CacheStatus {
    /// Served from cache, fresh.
    Hit,
    /// Not in cache; fetched and (if cacheable) stored.
    Miss,
    /// Served from cache past its freshness (while revalidating, or because the origin failed).
    Stale,
    /// The cache was not consulted (credentials, uncacheable route or method).
    Bypass,
    /// Found but too old to serve; fetched anew.
    Expired,
}

impl CacheStatus {
    /// The header spelling (`HIT`, `MISS`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Bypass => "BYPASS",
            CacheStatus::Expired => "EXPIRED",
        }
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CacheStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "HIT" => Ok(CacheStatus::Hit),
            "MISS" => Ok(CacheStatus::Miss),
            "STALE" => Ok(CacheStatus::Stale),
            "BYPASS" => Ok(CacheStatus::Bypass),
            "EXPIRED" => Ok(CacheStatus::Expired),
            _ => Err(format!(
                "unknown cache status {s:?}; expected HIT, MISS, STALE, BYPASS or EXPIRED"
            )),
        }
    }
}

/// Who answered a request: a cache tier, or the origin computing it anew. Every tier names
/// itself with this in the [`TIER_HEADER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// An origin process's memory ([`Layer::L1`]).
    L1,
    /// Redis ([`Layer::L2`]).
    L2,
    /// The CDN edge ([`Layer::L3`]).
    Edge,
    /// The origin, computing the answer anew.
    Origin,
}

impl Tier {
    /// The header spelling (`l1`, `l2`, `edge`, `origin`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::L2 => "l2",
            Tier::Edge => "edge",
            Tier::Origin => "origin",
        }
    }
}

impl From<Layer> for Tier {
    fn from(layer: Layer) -> Self {
        match layer {
            Layer::L1 => Tier::L1,
            Layer::L2 => Tier::L2,
            Layer::L3 => Tier::Edge,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cache tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Layer {
    /// In-process memory on each origin pod.
    L1,
    /// Redis (single node or cluster), shared by the origin pods.
    L2,
    /// The CDN (Cloudflare's edge cache).
    L3,
}

impl Layer {
    /// Every layer, nearest first.
    pub const ALL: [Layer; 3] = [Layer::L1, Layer::L2, Layer::L3];

    /// The lower-case name (`l1`, `l2`, `l3`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Layer::L1 => "l1",
            Layer::L2 => "l2",
            Layer::L3 => "l3",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "l1" => Ok(Layer::L1),
            "l2" => Ok(Layer::L2),
            "l3" => Ok(Layer::L3),
            _ => Err(format!("unknown layer {s:?}; expected l1, l2, l3 or all")),
        }
    }
}

/// A set of layers, written as a list such as `["l1", "l2"]` or `["all"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Layers {
    bits: u8,
}

impl Layers {
    /// No layer.
    pub const NONE: Layers = Layers { bits: 0 };
    /// Every layer.
    pub const ALL: Layers = Layers { bits: 0b111 };

    fn bit(layer: Layer) -> u8 {
        match layer {
            Layer::L1 => 1,
            Layer::L2 => 2,
            Layer::L3 => 4,
        }
    }

    /// These layers plus `layer`.
    pub fn with(self, layer: Layer) -> Self {
        Self {
            bits: self.bits | Self::bit(layer),
        }
    }

    /// Whether `layer` is included.
    pub fn contains(&self, layer: Layer) -> bool {
        self.bits & Self::bit(layer) != 0
    }

    /// Whether no layer is included.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The included layers, nearest first.
    pub fn iter(&self) -> impl Iterator<Item = Layer> + '_ {
        Layer::ALL.into_iter().filter(|l| self.contains(*l))
    }
}

impl TryFrom<Vec<String>> for Layers {
    type Error = String;
    fn try_from(names: Vec<String>) -> Result<Self, Self::Error> {
        names.iter().try_fold(Layers::NONE, |acc, name| {
            if name.eq_ignore_ascii_case("all") {
                Ok(Layers::ALL)
            } else {
                name.parse().map(|l| acc.with(l))
            }
        })
    }
}

impl From<Layers> for Vec<String> {
    fn from(layers: Layers) -> Self {
        layers.iter().map(|l| l.as_str().to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_header_spelling() {
        for s in [
            CacheStatus::Hit,
            CacheStatus::Miss,
            CacheStatus::Stale,
            CacheStatus::Bypass,
            CacheStatus::Expired,
        ] {
            assert_eq!(s.as_str().parse::<CacheStatus>(), Ok(s));
        }
        assert!("WARM".parse::<CacheStatus>().is_err());
    }

    #[test]
    fn layers_parse_from_lists() {
        let l = Layers::try_from(vec!["l1".to_string(), "L3".to_string()]).expect("valid");
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![Layer::L1, Layer::L3]);
        assert_eq!(Layers::try_from(vec!["all".to_string()]), Ok(Layers::ALL));
        assert!(Layers::try_from(vec!["l4".to_string()]).is_err());
    }
}
