//! Cascade rules: purging a parent tag also purges its declared children
//! (`election:{id}` → `ballot:{id}`, `results:{id}`), transitively.

use serde::{Deserialize, Serialize};

use crate::tag::{Tag, TagSet};
use crate::template::{TagTemplate, TemplateError};

/// Most tags one expansion may produce; a larger expansion is refused, not truncated.
pub const MAX_EXPANSION: usize = 10_000;

/// One rule: a tag matching `parent` also purges every rendered `children` template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CascadeRule {
    /// The parent template, e.g. `election:{id}`.
    pub parent: TagTemplate,
    /// Child templates; they may only use the parent's placeholders.
    pub children: Vec<TagTemplate>,
}

/// Why a cascade could not be built or expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CascadeError {
    /// A child uses a placeholder its parent does not capture.
    #[error(
        "cascade rule {index}: child {child:?} uses {{{var}}}, which parent {parent:?} does not capture"
    )]
    UnboundVar {
        /// Rule position.
        index: usize,
        /// The parent template.
        parent: String,
        /// The child template.
        child: String,
        /// The unbound placeholder.
        var: String,
    },
    /// A rule has no children.
    #[error("cascade rule {0} has no children; list at least one child template")]
    NoChildren(usize),
    /// A rendered child is not a valid tag.
    #[error("cascade produced an invalid tag: {0}")]
    Render(#[from] TemplateError),
    /// The expansion grew past [`MAX_EXPANSION`] tags (likely a rule that feeds itself).
    #[error("cascade expansion exceeded {MAX_EXPANSION} tags; check the rules for a cycle")]
    TooLarge,
}

/// A validated set of cascade rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<CascadeRule>", into = "Vec<CascadeRule>")]
pub struct Cascade(Vec<CascadeRule>);

impl Cascade {
    /// Validates the rules.
    pub fn new(rules: Vec<CascadeRule>) -> Result<Self, CascadeError> {
        for (index, rule) in rules.iter().enumerate() {
            if rule.children.is_empty() {
                return Err(CascadeError::NoChildren(index));
            }
            let bound: Vec<&str> = rule.parent.vars().collect();
            for child in &rule.children {
                if let Some(var) = child.vars().find(|v| !bound.contains(v)) {
                    return Err(CascadeError::UnboundVar {
                        index,
                        parent: rule.parent.to_string(),
                        child: child.to_string(),
                        var: var.to_string(),
                    });
                }
            }
        }
        Ok(Self(rules))
    }

    /// The rules.
    pub fn rules(&self) -> &[CascadeRule] {
        &self.0
    }

    /// `tags` plus every tag their cascades reach, each once, parents first.
    pub fn expand(&self, tags: &TagSet) -> Result<TagSet, CascadeError> {
        let mut out = tags.clone();
        let mut next = 0;
        while next < out.len() {
            let tag: Tag = out
                .iter()
                .nth(next)
                .cloned()
                .ok_or(CascadeError::TooLarge)?;
            next += 1;
            for rule in &self.0 {
                let Some(params) = rule.parent.capture(&tag) else {
                    continue;
                };
                for child in &rule.children {
                    out.insert(child.render(&params)?);
                    if out.len() > MAX_EXPANSION {
                        return Err(CascadeError::TooLarge);
                    }
                }
            }
        }
        Ok(out)
    }
}

impl TryFrom<Vec<CascadeRule>> for Cascade {
    type Error = CascadeError;
    fn try_from(rules: Vec<CascadeRule>) -> Result<Self, Self::Error> {
        Self::new(rules)
    }
}

impl From<Cascade> for Vec<CascadeRule> {
    fn from(c: Cascade) -> Self {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(parent: &str, children: &[&str]) -> CascadeRule {
        CascadeRule {
            parent: TagTemplate::new(parent).expect("parent"),
            children: children
                .iter()
                .map(|c| TagTemplate::new(c).expect("child"))
                .collect(),
        }
    }

    fn tags(list: &[&str]) -> TagSet {
        list.iter().map(|t| Tag::new(t).expect("tag")).collect()
    }

    #[test]
    fn parent_reaches_children_transitively() {
        let cascade = Cascade::new(vec![
            rule("election:{id}", &["ballot:{id}", "results:{id}"]),
            rule("results:{id}", &["results-page:{id}"]),
        ])
        .expect("valid");
        let out = cascade
            .expand(&tags(&["election:7", "other"]))
            .expect("expands");
        assert_eq!(
            out,
            tags(&[
                "election:7",
                "other",
                "ballot:7",
                "results:7",
                "results-page:7"
            ])
        );
    }

    #[test]
    fn unbound_placeholders_and_empty_rules_are_refused() {
        assert!(matches!(
            Cascade::new(vec![rule("election:{id}", &["ballot:{other}"])]),
            Err(CascadeError::UnboundVar { .. })
        ));
        assert!(matches!(
            Cascade::new(vec![rule("election:{id}", &[])]),
            Err(CascadeError::NoChildren(0))
        ));
    }

    #[test]
    fn a_self_feeding_rule_is_bounded() {
        let cascade = Cascade::new(vec![rule("a:{x}", &["a:{x}:b"])]).expect("valid");
        assert!(matches!(
            cascade.expand(&tags(&["a:1"])),
            Err(CascadeError::Render(_)) | Err(CascadeError::TooLarge)
        ));
    }
}
