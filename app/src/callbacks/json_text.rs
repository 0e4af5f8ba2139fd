//! A lazy reading of JSON text for the viewer: it finds the members of one
//! object or array at a time, as positions in the text, without building a
//! tree. Opening a 1 MiB payload costs one pass over its first level, and
//! every key and number is shown exactly as the sender wrote it (a number
//! beyond f64 precision stays intact; a parsed `serde_json::Value` would
//! round it).
//!
//! The text is the payload as the server stored it, checked to be JSON on
//! the way in; should it still not be, the reader says where, and the
//! viewer falls back to the parsed value.

/// What a JSON value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// One value: its kind and where its text is (`start..end`, in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Node {
    pub fn text(self, json: &str) -> &str {
        &json[self.start..self.end]
    }

    pub fn is_container(self) -> bool {
        matches!(self.kind, Kind::Object | Kind::Array)
    }
}

/// A member of an object (with the position of its key's string literal)
/// or an item of an array (without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub key: Option<(usize, usize)>,
    pub value: Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not JSON at byte {0}")]
pub struct Malformed(pub usize);

/// The one value the text holds.
pub fn root(json: &str) -> Result<Node, Malformed> {
    let bytes = json.as_bytes();
    let node = value_at(bytes, skip_space(bytes, 0))?;
    let rest = skip_space(bytes, node.end);
    if rest == bytes.len() {
        Ok(node)
    } else {
        Err(Malformed(rest))
    }
}

/// The members of an object or the items of an array, in order.
pub fn members(json: &str, node: Node) -> Result<Vec<Member>, Malformed> {
    let bytes = json.as_bytes();
    let close = match node.kind {
        Kind::Object => b'}',
        Kind::Array => b']',
        _ => return Ok(Vec::new()),
    };
    let mut members = Vec::new();
    let mut at = skip_space(bytes, node.start + 1);
    if bytes.get(at) == Some(&close) {
        return Ok(members);
    }
    loop {
        let key = if node.kind == Kind::Object {
            if bytes.get(at) != Some(&b'"') {
                return Err(Malformed(at));
            }
            let end = string_end(bytes, at)?;
            let key = (at, end);
            at = skip_space(bytes, end);
            if bytes.get(at) != Some(&b':') {
                return Err(Malformed(at));
            }
            at = skip_space(bytes, at + 1);
            Some(key)
        } else {
            None
        };
        let value = value_at(bytes, at)?;
        members.push(Member { key, value });
        at = skip_space(bytes, value.end);
        match bytes.get(at) {
            Some(b',') => at = skip_space(bytes, at + 1),
            Some(&byte) if byte == close => return Ok(members),
            _ => return Err(Malformed(at)),
        }
    }
}

/// The text a string literal stands for (escapes resolved).
pub fn string_value(literal: &str) -> String {
    serde_json::from_str::<String>(literal).unwrap_or_else(|_| {
        literal
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(literal)
            .to_owned()
    })
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        at += 1;
    }
    at
}

fn value_at(bytes: &[u8], at: usize) -> Result<Node, Malformed> {
    let (kind, end) = match bytes.get(at) {
        Some(b'{') => (Kind::Object, container_end(bytes, at)?),
        Some(b'[') => (Kind::Array, container_end(bytes, at)?),
        Some(b'"') => (Kind::String, string_end(bytes, at)?),
        Some(b't') => (Kind::Bool, word_end(bytes, at, b"true")?),
        Some(b'f') => (Kind::Bool, word_end(bytes, at, b"false")?),
        Some(b'n') => (Kind::Null, word_end(bytes, at, b"null")?),
        Some(b'-' | b'0'..=b'9') => {
            let mut end = at + 1;
            while matches!(
                bytes.get(end),
                Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
            ) {
                end += 1;
            }
            (Kind::Number, end)
        }
        _ => return Err(Malformed(at)),
    };
    Ok(Node {
        kind,
        start: at,
        end,
    })
}

fn word_end(bytes: &[u8], at: usize, word: &[u8]) -> Result<usize, Malformed> {
    if bytes.get(at..at + word.len()) == Some(word) {
        Ok(at + word.len())
    } else {
        Err(Malformed(at))
    }
}

/// Just past the closing quote of the string literal at `at`.
fn string_end(bytes: &[u8], at: usize) -> Result<usize, Malformed> {
    let mut i = at + 1;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'"' => return Ok(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Err(Malformed(at))
}

/// Just past the bracket that closes the container at `at` (strings
/// skipped, so brackets inside them do not count).
fn container_end(bytes: &[u8], at: usize) -> Result<usize, Malformed> {
    let mut depth = 0usize;
    let mut i = at;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'"' => {
                i = string_end(bytes, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(Malformed(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(json: &'a str, members: &[Member]) -> Vec<(Option<&'a str>, &'a str)> {
        members
            .iter()
            .map(|m| (m.key.map(|(s, e)| &json[s..e]), m.value.text(json)))
            .collect()
    }

    #[test]
    fn members_keep_their_exact_text_and_order() {
        let json = r#" {"z": 1, "a" :12345678901234567890123 , "s":"x\"}]", "n":null,
            "o":{"k":[1,{"d":"]"}]}, "t":true, "e":[], "f":-1.5e+3} "#;
        let root = root(json).unwrap();
        assert_eq!(root.kind, Kind::Object);
        let members = members(json, root).unwrap();
        assert_eq!(
            texts(json, &members),
            vec![
                (Some(r#""z""#), "1"),
                (Some(r#""a""#), "12345678901234567890123"),
                (Some(r#""s""#), r#""x\"}]""#),
                (Some(r#""n""#), "null"),
                (Some(r#""o""#), r#"{"k":[1,{"d":"]"}]}"#),
                (Some(r#""t""#), "true"),
                (Some(r#""e""#), "[]"),
                (Some(r#""f""#), "-1.5e+3"),
            ]
        );
        let kinds: Vec<Kind> = members.iter().map(|m| m.value.kind).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            vec![Number, Number, String, Null, Object, Bool, Array, Number]
        );
        let inner = members[4].value;
        let k = super::members(json, inner).unwrap();
        let items = super::members(json, k[0].value).unwrap();
        assert_eq!(
            texts(json, &items),
            vec![(None, "1"), (None, r#"{"d":"]"}"#)]
        );
        assert!(super::members(json, members[6].value).unwrap().is_empty());
        assert!(super::members(json, members[0].value).unwrap().is_empty());
    }

    #[test]
    fn strings_are_unescaped_for_display() {
        assert_eq!(string_value(r#""a\"b\u00e9\n""#), "a\"bé\n");
        assert_eq!(string_value(r#""plain""#), "plain");
    }

    #[test]
    fn malformed_text_is_refused_not_misread() {
        for bad in [
            "",
            "{",
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            "[1 2]",
            "{} x",
            r#"{"a":tru}"#,
            r#""open"#,
            "{a:1}",
        ] {
            let outcome = root(bad).and_then(|node| members(bad, node));
            assert!(outcome.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_wide_object_is_read_in_one_pass() {
        let mut json = String::from("{");
        for n in 0..68_000 {
            json.push_str(&format!("\"k{n:05}\":{n},"));
        }
        json.push_str("\"last\":12345678901234567890123}");
        let root = root(&json).unwrap();
        let members = members(&json, root).unwrap();
        assert_eq!(members.len(), 68_001);
        assert_eq!(members[68_000].value.text(&json), "12345678901234567890123");
    }
}
