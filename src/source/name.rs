//! Source names: the last segment of a source's URL (`/api/webhooks/{name}`).
//!
//! The grammar is narrow on purpose: a name lands in URLs, metric labels,
//! file names of exports and CLI arguments, so it must need no escaping in
//! any of them.

use std::fmt;
use std::str::FromStr;

/// The source that always exists: the original webhook, configured from the
/// environment.
pub const BUILTIN_SOURCE: &str = "llm-callback";

/// Longest name, in characters (all ASCII, so also in bytes).
pub const MAX_SOURCE_NAME_CHARS: usize = 40;

/// A valid source name: `^[a-z0-9][a-z0-9-]{0,39}$`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct SourceName(String);

impl SourceName {
    /// Checks `raw` against the grammar. Nothing is trimmed or lowercased:
    /// a name that needs fixing is reported, not silently changed.
    pub fn parse(raw: &str) -> Result<Self, SourceNameError> {
        let Some(first) = raw.chars().next() else {
            return Err(SourceNameError::Empty);
        };
        let chars = raw.chars().count();
        if chars > MAX_SOURCE_NAME_CHARS {
            return Err(SourceNameError::TooLong { chars });
        }
        if let Some(found) = raw
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(SourceNameError::InvalidChar { found });
        }
        if first == '-' {
            return Err(SourceNameError::StartsWithDash);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The built-in source's name.
    pub fn builtin() -> Self {
        Self(BUILTIN_SOURCE.to_owned())
    }

    pub fn is_builtin(&self) -> bool {
        self.0 == BUILTIN_SOURCE
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SourceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for SourceName {
    type Err = SourceNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for SourceName {
    type Error = SourceNameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SourceName> for String {
    fn from(name: SourceName) -> Self {
        name.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceNameError {
    #[error("the source name is empty; use lowercase letters, digits and `-`, e.g. `github-ci`")]
    Empty,
    #[error(
        "the source name has {chars} characters; at most 40 are allowed, so pick a shorter one"
    )]
    TooLong { chars: usize },
    #[error(
        "the source name contains {found:?}; only lowercase letters a-z, digits and `-` are allowed, e.g. `github-ci`"
    )]
    InvalidChar { found: char },
    #[error("the source name starts with `-`; start it with a lowercase letter or a digit")]
    StartsWithDash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_accepted() {
        for name in [
            "a",
            "0",
            "llm-callback",
            "github-ci",
            "stripe2",
            "a-",
            "9-lives",
            &"x".repeat(40),
        ] {
            assert_eq!(SourceName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn invalid_names_say_what_is_wrong() {
        assert_eq!(SourceName::parse(""), Err(SourceNameError::Empty));
        assert_eq!(
            SourceName::parse(&"x".repeat(41)),
            Err(SourceNameError::TooLong { chars: 41 })
        );
        assert_eq!(
            SourceName::parse("-github"),
            Err(SourceNameError::StartsWithDash)
        );
        for (name, found) in [
            ("GitHub", 'G'),
            ("git_hub", '_'),
            ("git hub", ' '),
            ("git.hub", '.'),
            ("gït", 'ï'),
            ("a/b", '/'),
            ("a\0", '\0'),
            (" github", ' '),
        ] {
            assert_eq!(
                SourceName::parse(name),
                Err(SourceNameError::InvalidChar { found }),
                "{name:?}"
            );
        }
        let message = SourceName::parse("Git").unwrap_err().to_string();
        assert!(
            message.contains("'G'") && message.contains("github-ci"),
            "{message}"
        );
    }

    #[test]
    fn the_builtin_name_is_valid() {
        let builtin = SourceName::parse(BUILTIN_SOURCE).unwrap();
        assert!(builtin.is_builtin());
        assert_eq!(builtin, SourceName::builtin());
        assert!(!SourceName::parse("github").unwrap().is_builtin());
    }

    #[test]
    fn serde_is_a_plain_string_validated_on_the_way_in() {
        let name = SourceName::parse("github-ci").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"github-ci\"");
        assert_eq!(
            serde_json::from_str::<SourceName>("\"github-ci\"").unwrap(),
            name
        );
        let err = serde_json::from_str::<SourceName>("\"GitHub\"").unwrap_err();
        assert!(err.to_string().contains("only lowercase"), "{err}");
        assert!(serde_json::from_str::<SourceName>("\"\"").is_err());
        assert_eq!(
            "stripe".parse::<SourceName>().unwrap().to_string(),
            "stripe"
        );
    }
}
