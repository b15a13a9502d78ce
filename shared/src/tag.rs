//! Cache tags: validated names for groups of entries, and their `Cache-Tag` / `Surrogate-Key`
//! header encodings.
//!
//! Limits follow Cloudflare's documentation: a tag is at least one byte, the purge API takes tags
//! of up to 1,024 characters, tags are case-insensitive and may not contain spaces, and the whole
//! `Cache-Tag` header may not exceed 16 KB. Tags are printable ASCII without commas and are
//! stored lower-cased so every tier agrees on one spelling.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest tag accepted (bytes).
pub const MAX_TAG_LEN: usize = 1024;

/// [`Tag::new`]'s rule as a regular expression, for the OpenAPI schema (with `maxLength`
/// [`MAX_TAG_LEN`]): printable ASCII except the comma.
pub const TAG_REGEX: &str = r"^[!-+\x2D-~]+$";

/// Longest `Cache-Tag` / `Surrogate-Key` header value produced or accepted (bytes).
pub const MAX_TAG_HEADER_LEN: usize = 16 * 1024;

/// Why a tag or tag header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The tag is empty.
    #[error("empty tag: a tag needs at least one character")]
    Empty,
    /// The tag is longer than [`MAX_TAG_LEN`].
    #[error("tag is {0} bytes long; the limit is {MAX_TAG_LEN}")]
    TooLong(usize),
    /// The tag holds a character outside printable ASCII, a space or a comma.
    #[error(
        "tag {tag:?} contains {found:?} at byte {at}; tags are printable ASCII without spaces or commas"
    )]
    BadChar {
        /// The (possibly shortened) tag.
        tag: String,
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// An encoded header would exceed [`MAX_TAG_HEADER_LEN`].
    #[error(
        "{count} tags need {len} bytes in one header; the limit is {MAX_TAG_HEADER_LEN}: tag collections instead of each entity"
    )]
    HeaderTooLong {
        /// Number of tags.
        count: usize,
        /// Bytes the header would take.
        len: usize,
    },
}

/// A validated, lower-cased cache tag such as `election:42`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "election:42"))]
pub struct Tag(String);

impl Tag {
    /// Validates and lower-cases `raw`.
    pub fn new(raw: &str) -> Result<Self, TagError> {
        if raw.is_empty() {
            return Err(TagError::Empty);
        }
        if raw.len() > MAX_TAG_LEN {
            return Err(TagError::TooLong(raw.len()));
        }
        if let Some((at, found)) = raw
            .char_indices()
            .find(|(_, c)| !c.is_ascii_graphic() || *c == ',')
        {
            let tag: String = raw.chars().take(64).collect();
            return Err(TagError::BadChar { tag, found, at });
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// A tag for one entity: `kind:id`, e.g. `Tag::entity("ballot", 42)` is `ballot:42`.
    pub fn entity(kind: &str, id: impl fmt::Display) -> Result<Self, TagError> {
        Self::new(&format!("{kind}:{id}"))
    }

    /// A tag for a whole collection: `list:kind`, carried by list pages of that kind.
    pub fn collection(kind: &str) -> Result<Self, TagError> {
        Self::new(&format!("list:{kind}"))
    }

    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tag {
    type Err = TagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Tag {
    type Error = TagError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<Tag> for String {
    fn from(tag: Tag) -> Self {
        tag.0
    }
}

/// An ordered set of tags without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<Tag>", into = "Vec<Tag>")]
pub struct TagSet(Vec<Tag>);

impl TagSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tag` unless present; returns whether it was added.
    pub fn insert(&mut self, tag: Tag) -> bool {
        if self.0.contains(&tag) {
            false
        } else {
            self.0.push(tag);
            true
        }
    }

    /// Whether `tag` is in the set.
    pub fn contains(&self, tag: &Tag) -> bool {
        self.0.contains(tag)
    }

    /// The tags in insertion order.
    pub fn iter(&self) -> std::slice::Iter<'_, Tag> {
        self.0.iter()
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `Cache-Tag` header value (comma separated), within the header limit.
    pub fn to_cache_tag_header(&self) -> Result<String, TagError> {
        self.join(",")
    }

    /// The `Surrogate-Key` header value (space separated), within the header limit.
    pub fn to_surrogate_key_header(&self) -> Result<String, TagError> {
        self.join(" ")
    }

    fn join(&self, sep: &str) -> Result<String, TagError> {
        let len = self.0.iter().map(|t| t.0.len()).sum::<usize>()
            + sep.len() * self.0.len().saturating_sub(1);
        if len > MAX_TAG_HEADER_LEN {
            return Err(TagError::HeaderTooLong {
                count: self.0.len(),
                len,
            });
        }
        Ok(self.0.iter().map(Tag::as_str).collect::<Vec<_>>().join(sep))
    }

    /// Parses a `Cache-Tag` value the way Cloudflare reads it: whitespace around tags and
    /// empty items are ignored.
    pub fn parse_cache_tag_header(value: &str) -> Result<Self, TagError> {
        Self::parse(value, |c| c == ',')
    }

    /// Parses a `Surrogate-Key` value (tags separated by spaces).
    pub fn parse_surrogate_key_header(value: &str) -> Result<Self, TagError> {
        Self::parse(value, |c| c == ' ' || c == '\t')
    }

    fn parse(value: &str, sep: fn(char) -> bool) -> Result<Self, TagError> {
        if value.len() > MAX_TAG_HEADER_LEN {
            return Err(TagError::HeaderTooLong {
                count: 0,
                len: value.len(),
            });
        }
        let mut set = Self::new();
        for item in value.split(sep).map(str::trim).filter(|s| !s.is_empty()) {
            set.insert(Tag::new(item)?);
        }
        Ok(set)
    }
}

impl From<Vec<Tag>> for TagSet {
    fn from(tags: Vec<Tag>) -> Self {
        tags.into_iter().collect()
    }
}

impl From<TagSet> for Vec<Tag> {
    fn from(set: TagSet) -> Self {
        set.0
    }
}

impl FromIterator<Tag> for TagSet {
    fn from_iter<I: IntoIterator<Item = Tag>>(iter: I) -> Self {
        let mut set = Self::new();
        set.extend(iter);
        set
    }
}

impl Extend<Tag> for TagSet {
    fn extend<I: IntoIterator<Item = Tag>>(&mut self, iter: I) {
        for tag in iter {
            self.insert(tag);
        }
    }
}

impl<'a> IntoIterator for &'a TagSet {
    type Item = &'a Tag;
    type IntoIter = std::slice::Iter<'a, Tag>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_validated_and_lower_cased() {
        assert_eq!(
            Tag::new("Election:2026-General").map(String::from),
            Ok("election:2026-general".into())
        );
        assert_eq!(Tag::new(""), Err(TagError::Empty));
        assert!(matches!(
            Tag::new("a b"),
            Err(TagError::BadChar { found: ' ', .. })
        ));
        assert!(matches!(
            Tag::new("a,b"),
            Err(TagError::BadChar { found: ',', .. })
        ));
        assert!(matches!(Tag::new("a\u{7}"), Err(TagError::BadChar { .. })));
        assert!(matches!(Tag::new("é"), Err(TagError::BadChar { .. })));
        assert!(Tag::new(&"x".repeat(MAX_TAG_LEN)).is_ok());
        assert_eq!(
            Tag::new(&"x".repeat(MAX_TAG_LEN + 1)),
            Err(TagError::TooLong(MAX_TAG_LEN + 1))
        );
    }

    #[test]
    fn builders_make_entity_and_collection_tags() {
        assert_eq!(
            Tag::entity("ballot", 42).map(String::from),
            Ok("ballot:42".into())
        );
        assert_eq!(
            Tag::collection("election").map(String::from),
            Ok("list:election".into())
        );
        assert!(Tag::entity("ballot", "has space").is_err());
    }

    #[test]
    fn headers_round_trip_and_deduplicate() {
        let set = TagSet::parse_cache_tag_header(" a , b,,A, c ,").unwrap_or_default();
        assert_eq!(set.to_cache_tag_header().as_deref(), Ok("a,b,c"));
        assert_eq!(set.to_surrogate_key_header().as_deref(), Ok("a b c"));
        let back = TagSet::parse_surrogate_key_header("a  b c").unwrap_or_default();
        assert_eq!(back, set);
    }

    #[test]
    fn header_limit_is_enforced() {
        let many: TagSet = (0..2000)
            .filter_map(|i| Tag::new(&format!("entity-with-long-name:{i:08}")).ok())
            .collect();
        assert!(matches!(
            many.to_cache_tag_header(),
            Err(TagError::HeaderTooLong { count: 2000, .. })
        ));
        let exact: TagSet = [Tag::new(&"a".repeat(MAX_TAG_LEN))]
            .into_iter()
            .flatten()
            .collect();
        assert!(exact.to_cache_tag_header().is_ok());
    }

    #[test]
    fn a_bad_tag_in_a_header_is_an_error() {
        assert!(matches!(
            TagSet::parse_cache_tag_header("ok,bad\u{1}"),
            Err(TagError::BadChar { .. })
        ));
    }
}
