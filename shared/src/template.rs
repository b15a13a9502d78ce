//! Tag templates such as `election:{id}`: rendered from route parameters, and matched against
//! tags to capture those parameters again (for cascades).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::tag::{Tag, TagError};

/// Captured or supplied template parameters, in order.
pub type Params = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

/// A tag with `{name}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TagTemplate {
    raw: String,
    parts: Vec<Part>,
}

impl TagTemplate {
    /// Parses a template; placeholders are `{name}` with a name of letters, digits and `_`,
    /// and two placeholders must be separated by literal text.
    pub fn new(raw: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("template {raw:?} has an unclosed '{{'"))?;
                let name = &after[..end];
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!(
                        "template {raw:?} has a bad placeholder {{{name}}}: use letters, digits and '_'"
                    ));
                }
                if matches!(parts.last(), Some(Part::Var(_))) {
                    return Err(format!(
                        "template {raw:?} has two placeholders in a row; separate them with text such as ':'"
                    ));
                }
                parts.push(Part::Var(name.to_string()));
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let lit = &rest[..end];
                if lit.contains('}') {
                    return Err(format!(
                        "template {raw:?} has a '}}' without a matching '{{'"
                    ));
                }
                // The literal text must itself be valid inside a tag.
                Tag::new(lit).map_err(|e| format!("template {raw:?}: {e}"))?;
                parts.push(Part::Lit(lit.to_ascii_lowercase()));
                rest = &rest[end..];
            }
        }
        if parts.is_empty() {
            return Err("empty tag template".into());
        }
        Ok(Self {
            raw: raw.to_string(),
            parts,
        })
    }

    /// The placeholder names, in order.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Renders the template; every placeholder must have a value.
    pub fn render(&self, params: &[(String, String)]) -> Result<Tag, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Var(v) => {
                    let value = params
                        .iter()
                        .find(|(k, _)| k == v)
                        .map(|(_, val)| val)
                        .ok_or_else(|| TemplateError::MissingParam {
                            template: self.raw.clone(),
                            param: v.clone(),
                        })?;
                    out.push_str(value);
                }
            }
        }
        Tag::new(&out).map_err(TemplateError::Tag)
    }

    /// Matches a tag and captures the placeholders; each capture is non-empty and a
    /// placeholder followed by text stops at the first occurrence of that text.
    pub fn capture(&self, tag: &Tag) -> Option<Params> {
        let mut rest = tag.as_str();
        let mut params = Params::new();
        let mut parts = self.parts.iter().peekable();
        while let Some(part) = parts.next() {
            match part {
                Part::Lit(l) => rest = rest.strip_prefix(l.as_str())?,
                Part::Var(v) => {
                    let end = match parts.peek() {
                        Some(Part::Lit(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    if end == 0 {
                        return None;
                    }
                    params.push((v.clone(), rest[..end].to_string()));
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(params)
    }
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder had no value.
    #[error("tag template {template:?} needs a value for {{{param}}}")]
    MissingParam {
        /// The template.
        template: String,
        /// The missing placeholder.
        param: String,
    },
    /// The rendered text is not a valid tag.
    #[error("rendered tag is invalid: {0}")]
    Tag(TagError),
}

impl fmt::Display for TagTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl TryFrom<String> for TagTemplate {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<TagTemplate> for String {
    fn from(t: TagTemplate) -> Self {
        t.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_and_captures() {
        let t = TagTemplate::new("results:{id}:{lang}").map_err(|e| e.to_string());
        let t = t.as_ref().ok();
        let tag = t.and_then(|t| t.render(&params(&[("id", "7"), ("lang", "fr")])).ok());
        assert_eq!(tag.as_ref().map(Tag::as_str), Some("results:7:fr"));
        assert_eq!(
            t.zip(tag.as_ref()).and_then(|(t, tag)| t.capture(tag)),
            Some(params(&[("id", "7"), ("lang", "fr")]))
        );
    }

    #[test]
    fn rejects_malformed_templates() {
        assert!(TagTemplate::new("").is_err());
        assert!(TagTemplate::new("a:{id").is_err());
        assert!(TagTemplate::new("a:{}").is_err());
        assert!(TagTemplate::new("a:{x}{y}").is_err());
        assert!(TagTemplate::new("a b:{x}").is_err());
        assert!(TagTemplate::new("a}:{x}").is_err());
    }

    #[test]
    fn missing_params_are_reported() {
        let t = TagTemplate::new("ballot:{id}");
        assert!(matches!(
            t.map(|t| t.render(&[])),
            Ok(Err(TemplateError::MissingParam { .. }))
        ));
    }

    #[test]
    fn capture_needs_the_whole_tag() {
        let t = TagTemplate::new("election:{id}").ok();
        let tag = Tag::new("ballot:1").ok();
        assert_eq!(
            t.as_ref().zip(tag.as_ref()).and_then(|(t, g)| t.capture(g)),
            None
        );
        let empty = Tag::new("election:").ok();
        assert_eq!(
            t.as_ref()
                .zip(empty.as_ref())
                .and_then(|(t, g)| t.capture(g)),
            None
        );
    }
}
