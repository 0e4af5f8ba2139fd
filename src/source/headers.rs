//! A read-only view of a request's headers, so the core needs no HTTP types.

use std::fmt;

/// The headers of one request as `(name, value)` pairs borrowed from it.
///
/// Lookups ignore ASCII case, as HTTP header names do, and return the first
/// value of a repeated header. Values that are not valid UTF-8 are left out
/// by whoever builds the view; no scheme or mapping rule can use them.
#[derive(Clone, Default)]
pub struct RequestHeaders<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> RequestHeaders<'a> {
    pub fn new(pairs: Vec<(&'a str, &'a str)>) -> Self {
        Self { pairs }
    }

    /// The first value of header `name`, whatever the case of either name.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }

    /// Whether header `name` is present (even with an empty value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for RequestHeaders<'a> {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

/// Names only: values carry tokens and signatures, which must not reach a log.
impl fmt::Debug for RequestHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHeaders")
            .field(
                "names",
                &self.pairs.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_takes_the_first_value() {
        let headers = RequestHeaders::new(vec![
            ("X-GitHub-Event", "workflow_run"),
            ("x-github-event", "push"),
            ("Empty", ""),
        ]);
        assert_eq!(headers.get("x-github-event"), Some("workflow_run"));
        assert_eq!(headers.get("X-GITHUB-EVENT"), Some("workflow_run"));
        assert_eq!(headers.get("empty"), Some(""));
        assert!(headers.contains("EMPTY"));
        assert_eq!(headers.get("x-github-delivery"), None);
        assert_eq!(headers.len(), 3);
        assert!(RequestHeaders::default().is_empty());
    }

    #[test]
    fn builds_from_an_iterator() {
        let owned = [("A".to_owned(), "1".to_owned())];
        let headers: RequestHeaders<'_> = owned
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(headers.get("a"), Some("1"));
    }

    #[test]
    fn debug_shows_names_but_no_values() {
        let headers = RequestHeaders::new(vec![("Authorization", "Bearer hunter2-secret")]);
        let shown = format!("{headers:?}");
        assert!(shown.contains("Authorization"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
