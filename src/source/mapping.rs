//! Mapping rules: where a source's callbacks keep their delivery id, group,
//! event, workflow and error.
//!
//! A rule is a list of places tried in order, separated by commas. A place is
//! `header:<Name>`, `json:<RFC 6901 pointer>`, several of those joined by `+`
//! (a composite: every part must yield a value), or `sha256` (the raw body's
//! hash, for ids only). Example:
//! `header:webhook-id,json:/job_id+json:/event,sha256`. Since `,` and `+`
//! separate places and parts, a JSON key holding either cannot be pointed at.
//!
//! Rules are typed by admins and stored, so they are parsed once, bounded,
//! and reported with a message that says how to fix them. Evaluation never
//! fails: a place that yields nothing passes to the next.

use std::borrow::Cow;
use std::fmt;
use std::io;

use serde_json::Value;

use super::headers::RequestHeaders;
use crate::delivery::{DeliveryId, escape};
use crate::fields::{MAX_ERROR_CHARS, MAX_NAME_CHARS, truncate_chars};

/// Longest rule, in characters.
pub const MAX_RULE_CHARS: usize = 512;
/// Most places in one rule.
pub const MAX_PLACES: usize = 8;
/// Most parts in one composite place.
pub const MAX_PARTS: usize = 4;
/// How much of an offending place an error message quotes.
const QUOTED_CHARS: usize = 60;

const SHA256_PLACE: &str = "sha256";
const HEADER_PREFIX: &str = "header:";
const JSON_PREFIX: &str = "json:";

/// One value-yielding part of a place.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// A request header, by name (matched ignoring case).
    Header(String),
    /// An RFC 6901 pointer into the JSON payload.
    Json(String),
}

impl Part {
    /// The letter that marks this kind of part in a delivery id, so a header
    /// value can never pass for a JSON value.
    fn kind(&self) -> char {
        match self {
            Self::Header(_) => 'h',
            Self::Json(_) => 'j',
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "{HEADER_PREFIX}{name}"),
            Self::Json(pointer) => write!(f, "{JSON_PREFIX}{pointer}"),
        }
    }
}

/// One place of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Place {
    /// The SHA-256 of the raw body (ids only): equal for identical bodies.
    Sha256,
    /// One part, or several that together make the value.
    Parts(Vec<Part>),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha256 => f.write_str(SHA256_PLACE),
            Self::Parts(parts) => {
                for (n, part) in parts.iter().enumerate() {
                    if n > 0 {
                        f.write_str("+")?;
                    }
                    write!(f, "{part}")?;
                }
                Ok(())
            }
        }
    }
}

/// A parsed rule. Serialized as its canonical text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldRule {
    places: Vec<Place>,
}

impl FieldRule {
    /// Parses a rule. Whitespace around places and parts is ignored; the
    /// canonical text ([`fmt::Display`]) has none.
    pub fn parse(raw: &str) -> Result<Self, MappingError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(MappingError::Empty);
        }
        let chars = raw.chars().count();
        if chars > MAX_RULE_CHARS {
            return Err(MappingError::TooLong { chars });
        }
        if raw.chars().any(char::is_control) {
            return Err(MappingError::ControlCharacter);
        }
        let places = raw.split(',').count();
        if places > MAX_PLACES {
            return Err(MappingError::TooManyPlaces { places });
        }
        let places = raw
            .split(',')
            .map(parse_place)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(at) = places.iter().position(|place| *place == Place::Sha256)
            && at + 1 < places.len()
        {
            return Err(MappingError::Sha256NotLast);
        }
        Ok(Self { places })
    }

    /// A rule that is only the body's hash.
    pub fn sha256() -> Self {
        Self {
            places: vec![Place::Sha256],
        }
    }

    pub fn places(&self) -> &[Place] {
        &self.places
    }

    fn has_sha256(&self) -> bool {
        self.places.contains(&Place::Sha256)
    }
}

fn parse_place(raw: &str) -> Result<Place, MappingError> {
    let place = raw.trim();
    if place.is_empty() {
        return Err(MappingError::EmptyPlace);
    }
    if place == SHA256_PLACE {
        return Ok(Place::Sha256);
    }
    let parts = place.split('+').count();
    if parts > MAX_PARTS {
        return Err(MappingError::TooManyParts { parts });
    }
    place
        .split('+')
        .map(|part| {
            let part = part.trim();
            if part == SHA256_PLACE {
                Err(MappingError::Sha256InComposite)
            } else if part.is_empty() {
                Err(MappingError::EmptyPart)
            } else if let Some(name) = part.strip_prefix(HEADER_PREFIX) {
                parse_header_name(name.trim()).map(Part::Header)
            } else if let Some(pointer) = part.strip_prefix(JSON_PREFIX) {
                parse_pointer(pointer.trim()).map(Part::Json)
            } else {
                Err(MappingError::UnknownPlace {
                    place: quoted(part),
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Place::Parts)
}

/// A header name is an HTTP token (RFC 9110): letters, digits and
/// ``!#$%&'*-.^_`|~`` (`+` separates parts here, so it cannot appear).
fn parse_header_name(name: &str) -> Result<String, MappingError> {
    if name.is_empty() {
        return Err(MappingError::EmptyHeaderName);
    }
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*-.^_`|~".contains(c);
    if let Some(found) = name.chars().find(|c| !is_tchar(*c)) {
        return Err(MappingError::InvalidHeaderName {
            name: quoted(name),
            found,
        });
    }
    Ok(name.to_owned())
}

/// An RFC 6901 pointer: `/`-separated tokens, `~` only as `~0` or `~1`. The
/// empty pointer (the whole document) is refused: a whole payload is no id
/// or name.
fn parse_pointer(pointer: &str) -> Result<String, MappingError> {
    let invalid = |reason| MappingError::InvalidPointer {
        pointer: quoted(pointer),
        reason,
    };
    if pointer.is_empty() {
        return Err(invalid(
            "it is empty; point at a value, e.g. `json:/job_id` or `json:/data/id`",
        ));
    }
    if !pointer.starts_with('/') {
        return Err(invalid("it must start with `/`, e.g. `json:/job_id`"));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(invalid(
                "`~` must be written `~0`, and `/` inside a key `~1`",
            ));
        }
    }
    Ok(pointer.to_owned())
}

fn quoted(text: &str) -> String {
    let mut shown = truncate_chars(text, QUOTED_CHARS);
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

impl fmt::Display for FieldRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, place) in self.places.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{place}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldRule {
    type Err = MappingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for FieldRule {
    type Error = MappingError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<FieldRule> for String {
    fn from(rule: FieldRule) -> Self {
        rule.to_string()
    }
}

/// The five rules of a mapping, by the names the API, the form and the CLI
/// (`--id-from`, …) use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingField {
    Id,
    Group,
    Event,
    Workflow,
    Error,
}

impl MappingField {
    pub const ALL: [Self; 5] = [
        Self::Id,
        Self::Group,
        Self::Event,
        Self::Workflow,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id_from",
            Self::Group => "group_from",
            Self::Event => "event_from",
            Self::Workflow => "workflow_from",
            Self::Error => "error_from",
        }
    }

    /// Longest value kept, in characters (the id is bounded by hashing instead).
    fn max_chars(self) -> usize {
        match self {
            Self::Error => MAX_ERROR_CHARS,
            _ => MAX_NAME_CHARS,
        }
    }
}

impl fmt::Display for MappingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "the rule is empty; write places such as `json:/job_id` or `header:X-Request-Id`, separated by commas"
    )]
    Empty,
    #[error("the rule is {chars} characters long; at most 512 are allowed")]
    TooLong { chars: usize },
    #[error("the rule has {places} places; at most 8 are allowed")]
    TooManyPlaces { places: usize },
    #[error("a composite place has {parts} parts joined by `+`; at most 4 are allowed")]
    TooManyParts { parts: usize },
    #[error("the rule contains a control character; type it on one line")]
    ControlCharacter,
    #[error("a place between commas is empty; remove the extra comma (e.g. `json:/id,sha256`)")]
    EmptyPlace,
    #[error(
        "a part of a composite is empty; remove the extra `+` (e.g. `json:/job_id+json:/event`)"
    )]
    EmptyPart,
    #[error("`{place}` is not a place; write `header:<Name>`, `json:/<pointer>` or `sha256`")]
    UnknownPlace { place: String },
    #[error("`header:` needs a header name, e.g. `header:X-Request-Id`")]
    EmptyHeaderName,
    #[error(
        "`{name}` is not a header name ({found:?} is not allowed); use letters, digits and `-`, e.g. `X-Request-Id`"
    )]
    InvalidHeaderName { name: String, found: char },
    #[error("`json:{pointer}` is not a JSON pointer: {reason}")]
    InvalidPointer {
        pointer: String,
        reason: &'static str,
    },
    #[error(
        "`sha256` stands alone: it cannot be part of a `+` composite; put it as its own place after a comma"
    )]
    Sha256InComposite,
    #[error("`sha256` always yields a value, so places after it are never tried; put it last")]
    Sha256NotLast,
    #[error(
        "`sha256` (the body's hash) only identifies a delivery; use it in id_from, not in {field}"
    )]
    Sha256OutsideId { field: MappingField },
    #[error("{field}: {reason}")]
    InField {
        field: MappingField,
        reason: Box<MappingError>,
    },
}

/// A source's five rules. Absent rules yield nothing (the delivery id then
/// falls back to the body's hash).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "MappingRules")]
pub struct Mapping {
    pub id_from: Option<FieldRule>,
    pub group_from: Option<FieldRule>,
    pub event_from: Option<FieldRule>,
    pub workflow_from: Option<FieldRule>,
    pub error_from: Option<FieldRule>,
}

/// What a stored or submitted mapping deserializes from before it is checked.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct MappingRules {
    id_from: Option<FieldRule>,
    group_from: Option<FieldRule>,
    event_from: Option<FieldRule>,
    workflow_from: Option<FieldRule>,
    error_from: Option<FieldRule>,
}

impl TryFrom<MappingRules> for Mapping {
    type Error = MappingError;

    fn try_from(rules: MappingRules) -> Result<Self, Self::Error> {
        let mapping = Self {
            id_from: rules.id_from,
            group_from: rules.group_from,
            event_from: rules.event_from,
            workflow_from: rules.workflow_from,
            error_from: rules.error_from,
        };
        mapping.validate()?;
        Ok(mapping)
    }
}

impl Mapping {
    pub fn rule(&self, field: MappingField) -> Option<&FieldRule> {
        match field {
            MappingField::Id => self.id_from.as_ref(),
            MappingField::Group => self.group_from.as_ref(),
            MappingField::Event => self.event_from.as_ref(),
            MappingField::Workflow => self.workflow_from.as_ref(),
            MappingField::Error => self.error_from.as_ref(),
        }
    }

    fn rule_mut(&mut self, field: MappingField) -> &mut Option<FieldRule> {
        match field {
            MappingField::Id => &mut self.id_from,
            MappingField::Group => &mut self.group_from,
            MappingField::Event => &mut self.event_from,
            MappingField::Workflow => &mut self.workflow_from,
            MappingField::Error => &mut self.error_from,
        }
    }

    /// Checks what a single rule cannot: `sha256` belongs to `id_from` only.
    /// (Evaluation ignores it elsewhere; this reports the mistake.)
    pub fn validate(&self) -> Result<(), MappingError> {
        for field in MappingField::ALL {
            if field != MappingField::Id && self.rule(field).is_some_and(FieldRule::has_sha256) {
                return Err(MappingError::Sha256OutsideId { field });
            }
        }
        Ok(())
    }

    /// This mapping (a preset's) with a source's overrides: a rule given
    /// replaces the default, an empty one removes it.
    pub fn with_overrides(&self, overrides: &MappingOverrides) -> Result<Self, MappingError> {
        let mut mapping = self.clone();
        for field in MappingField::ALL {
            let Some(raw) = overrides.get(field) else {
                continue;
            };
            *mapping.rule_mut(field) = if raw.trim().is_empty() {
                None
            } else {
                Some(
                    FieldRule::parse(raw).map_err(|reason| MappingError::InField {
                        field,
                        reason: Box::new(reason),
                    })?,
                )
            };
        }
        mapping.validate()?;
        Ok(mapping)
    }
}

/// A source's own rules, as configured: `None` keeps the preset's rule,
/// `Some("")` removes it, anything else replaces it (checked by
/// [`Mapping::with_overrides`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MappingOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_from: Option<String>,
}

impl MappingOverrides {
    pub fn get(&self, field: MappingField) -> Option<&str> {
        match field {
            MappingField::Id => self.id_from.as_deref(),
            MappingField::Group => self.group_from.as_deref(),
            MappingField::Event => self.event_from.as_deref(),
            MappingField::Workflow => self.workflow_from.as_deref(),
            MappingField::Error => self.error_from.as_deref(),
        }
    }

    fn slot(&mut self, field: MappingField) -> &mut Option<String> {
        match field {
            MappingField::Id => &mut self.id_from,
            MappingField::Group => &mut self.group_from,
            MappingField::Event => &mut self.event_from,
            MappingField::Workflow => &mut self.workflow_from,
            MappingField::Error => &mut self.error_from,
        }
    }

    /// True when the source uses its preset's rules unchanged.
    pub fn is_empty(&self) -> bool {
        MappingField::ALL
            .into_iter()
            .all(|field| self.get(field).is_none())
    }

    /// Takes every rule `newer` gives, keeping the others (an update that
    /// names one rule leaves the rest alone).
    pub fn update(&mut self, newer: &MappingOverrides) {
        for field in MappingField::ALL {
            if let Some(rule) = newer.get(field) {
                *self.slot(field) = Some(rule.to_owned());
            }
        }
    }
}

/// What a source's mapping found in one callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFields {
    /// Always present: the body's hash when no place yielded.
    pub delivery_id: DeliveryId,
    /// The job or session the callback belongs to.
    pub group: Option<String>,
    pub event: Option<String>,
    pub workflow: Option<String>,
    pub error: Option<String>,
}

/// Applies `mapping` to one callback.
///
/// Values: a string trimmed and non-empty, a number as its JSON text, a
/// boolean as `true`/`false`; objects and arrays only for the error (its
/// `message`, else its compact JSON). Text is kept verbatim except U+0000,
/// which PostgreSQL's text cannot hold, and is bounded like the built-in
/// fields (255 characters, the error 1,000). A composite's parts are joined
/// by `:`.
///
/// The delivery id uses the first place that yields, marked by the kinds of
/// its parts (`h:<header>`, `j:<json>`, `jj:<a>:<b>` with `%` and `:`
/// escaped in composites) so values from different kinds of places never
/// collide; too long or holding U+0000, it is replaced by its hash
/// (`<kinds>-sha256:<hex>`). With no place yielding, `sha256:<hex>` of the body.
pub fn map_callback(
    mapping: &Mapping,
    headers: &RequestHeaders<'_>,
    payload: &Value,
    body: &[u8],
) -> MappedFields {
    let delivery_id = mapping
        .id_from
        .as_ref()
        .and_then(|rule| delivery_id(rule, headers, payload, body))
        .unwrap_or_else(|| DeliveryId::of_body(body));
    let text = |field: MappingField| {
        mapping
            .rule(field)
            .and_then(|rule| field_text(rule, field, headers, payload))
    };
    MappedFields {
        delivery_id,
        group: text(MappingField::Group),
        event: text(MappingField::Event),
        workflow: text(MappingField::Workflow),
        error: text(MappingField::Error),
    }
}

fn delivery_id(
    rule: &FieldRule,
    headers: &RequestHeaders<'_>,
    payload: &Value,
    body: &[u8],
) -> Option<DeliveryId> {
    rule.places.iter().find_map(|place| match place {
        Place::Sha256 => Some(DeliveryId::of_body(body)),
        Place::Parts(parts) => {
            let values = part_values(parts, headers, payload, false)?;
            let kinds: String = parts.iter().map(Part::kind).collect();
            let rest = match values.as_slice() {
                [single] => single.to_string(),
                several => several
                    .iter()
                    .map(|value| escape(value))
                    .collect::<Vec<_>>()
                    .join(":"),
            };
            Some(DeliveryId::bounded(&kinds, &rest))
        }
    })
}

fn field_text(
    rule: &FieldRule,
    field: MappingField,
    headers: &RequestHeaders<'_>,
    payload: &Value,
) -> Option<String> {
    let structured = field == MappingField::Error;
    rule.places.iter().find_map(|place| {
        let Place::Parts(parts) = place else {
            return None;
        };
        let values = part_values(parts, headers, payload, structured)?;
        let joined = values.join(":");
        let cleaned = without_nul(&joined);
        let cleaned = cleaned.trim();
        (!cleaned.is_empty()).then(|| truncate_chars(cleaned, field.max_chars()))
    })
}

/// Every part's value, or `None` when one of them yields nothing.
fn part_values<'v>(
    parts: &[Part],
    headers: &RequestHeaders<'v>,
    payload: &'v Value,
    structured: bool,
) -> Option<Vec<Cow<'v, str>>> {
    parts
        .iter()
        .map(|part| match part {
            Part::Header(name) => headers.get(name).and_then(non_empty).map(Cow::Borrowed),
            Part::Json(pointer) => json_text(payload.pointer(pointer)?, structured),
        })
        .collect()
}

fn json_text(value: &Value, structured: bool) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => non_empty(s).map(Cow::Borrowed),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null => None,
        Value::Object(_) | Value::Array(_) if structured => Some(
            match value
                .get("message")
                .and_then(Value::as_str)
                .and_then(non_empty)
            {
                Some(message) => Cow::Borrowed(message),
                None => Cow::Owned(compact_json_prefix(value, MAX_ERROR_CHARS)),
            },
        ),
        Value::Object(_) | Value::Array(_) => None,
    }
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

fn without_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// The first `max_chars` characters of `value`'s compact JSON, without
/// serializing the rest (an error object may be most of a 1 MiB body).
fn compact_json_prefix(value: &Value, max_chars: usize) -> String {
    /// Keeps the first `limit` bytes, then fails the write to stop serde.
    struct Prefix {
        bytes: Vec<u8>,
        limit: usize,
    }
    impl io::Write for Prefix {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = self.limit - self.bytes.len();
            if buf.len() > room {
                self.bytes.extend_from_slice(&buf[..room]);
                return Err(io::Error::other("enough"));
            }
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    // Four bytes a character at most: the prefix holds `max_chars` whole ones.
    let mut prefix = Prefix {
        bytes: Vec::new(),
        limit: max_chars.saturating_mul(4),
    };
    // An error only means the limit was reached.
    let _ = serde_json::to_writer(&mut prefix, value);
    let text = match std::str::from_utf8(&prefix.bytes) {
        Ok(text) => text,
        // Cut inside a character: keep the whole ones before it.
        Err(err) => std::str::from_utf8(&prefix.bytes[..err.valid_up_to()]).unwrap_or_default(),
    };
    truncate_chars(text, max_chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(raw: &str) -> FieldRule {
        FieldRule::parse(raw).unwrap()
    }

    fn mapping(pairs: &[(MappingField, &str)]) -> Mapping {
        let mut mapping = Mapping::default();
        for (field, raw) in pairs {
            *mapping.rule_mut(*field) = Some(rule(raw));
        }
        mapping
    }

    fn map(mapping: &Mapping, pairs: &[(&str, &str)], payload: &Value) -> MappedFields {
        let body = payload.to_string();
        map_callback(
            mapping,
            &RequestHeaders::new(pairs.to_vec()),
            payload,
            body.as_bytes(),
        )
    }

    fn id_of(rule_text: &str, pairs: &[(&str, &str)], payload: Value) -> String {
        map(&mapping(&[(MappingField::Id, rule_text)]), pairs, &payload)
            .delivery_id
            .into_string()
    }

    fn body_hash(payload: &Value) -> String {
        DeliveryId::of_body(payload.to_string().as_bytes()).into_string()
    }

    // --- parsing -------------------------------------------------------------

    #[test]
    fn rules_parse_and_print_canonically() {
        for (raw, canonical) in [
            ("header:webhook-id", "header:webhook-id"),
            (
                " header:webhook-id , json:/job_id + json:/event ,sha256 ",
                "header:webhook-id,json:/job_id+json:/event,sha256",
            ),
            ("json:/data/object/id", "json:/data/object/id"),
            ("json:/a~1b/~0c/0", "json:/a~1b/~0c/0"),
            ("sha256", "sha256"),
            ("header:X-GitHub-Delivery", "header:X-GitHub-Delivery"),
            ("json:/with space", "json:/with space"),
            ("json:/", "json:/"),
        ] {
            let parsed = rule(raw);
            assert_eq!(parsed.to_string(), canonical, "{raw:?}");
            assert_eq!(rule(canonical), parsed);
        }
        assert_eq!(
            rule("header:a,json:/b+header:c,sha256").places(),
            [
                Place::Parts(vec![Part::Header("a".into())]),
                Place::Parts(vec![Part::Json("/b".into()), Part::Header("c".into())]),
                Place::Sha256,
            ]
        );
        assert_eq!(FieldRule::sha256().to_string(), "sha256");
    }

    #[test]
    fn bad_rules_say_what_to_fix() {
        let err = |raw: &str| FieldRule::parse(raw).unwrap_err();
        assert_eq!(err(""), MappingError::Empty);
        assert_eq!(err("  "), MappingError::Empty);
        assert_eq!(err("json:/a,,json:/b"), MappingError::EmptyPlace);
        assert_eq!(err("json:/a,"), MappingError::EmptyPlace);
        assert_eq!(err("json:/a++json:/b"), MappingError::EmptyPart);
        assert_eq!(err("json:/a+sha256"), MappingError::Sha256InComposite);
        assert_eq!(err("sha256,json:/a"), MappingError::Sha256NotLast);
        assert_eq!(err("header:"), MappingError::EmptyHeaderName);
        assert_eq!(
            err("header:X Request"),
            MappingError::InvalidHeaderName {
                name: "X Request".into(),
                found: ' '
            }
        );
        assert!(matches!(
            err("header:Ünïcode"),
            MappingError::InvalidHeaderName { found: 'Ü', .. }
        ));
        assert_eq!(
            err("body:/id"),
            MappingError::UnknownPlace {
                place: "body:/id".into()
            }
        );
        assert!(matches!(err("HEADER:x"), MappingError::UnknownPlace { .. }));
        assert!(matches!(err("SHA256"), MappingError::UnknownPlace { .. }));
        for pointer in ["json:", "json:job_id", "json:/a~2", "json:/a~"] {
            assert!(
                matches!(err(pointer), MappingError::InvalidPointer { .. }),
                "{pointer}"
            );
        }
        assert_eq!(err("json:/a\u{7}b"), MappingError::ControlCharacter);
        assert_eq!(err("json:/a\0"), MappingError::ControlCharacter);
        let nine = ["json:/a"; 9].join(",");
        assert_eq!(err(&nine), MappingError::TooManyPlaces { places: 9 });
        assert!(FieldRule::parse(&["json:/a"; 8].join(",")).is_ok());
        let five = ["json:/a"; 5].join("+");
        assert_eq!(err(&five), MappingError::TooManyParts { parts: 5 });
        assert!(FieldRule::parse(&["json:/a"; 4].join("+")).is_ok());
        let long = format!("json:/{}", "a".repeat(507));
        assert_eq!(err(&long), MappingError::TooLong { chars: 513 });
        assert!(FieldRule::parse(&format!("json:/{}", "a".repeat(506))).is_ok());

        // The messages say how to write it instead.
        let message = err("body:/id").to_string();
        assert!(
            message.contains("`body:/id`") && message.contains("header:<Name>"),
            "{message}"
        );
        let message = err("json:job_id").to_string();
        assert!(message.contains("start with `/`"), "{message}");
        // A hostile place is quoted only in part.
        let message = err(&format!("x{}", "y".repeat(400))).to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn a_trailing_newline_is_trimmed_not_a_control_character() {
        assert_eq!(rule("json:/a\n").to_string(), "json:/a");
        assert_eq!(
            FieldRule::parse("json:/a\nb").unwrap_err(),
            MappingError::ControlCharacter
        );
    }

    #[test]
    fn rules_serialize_as_their_text() {
        let parsed = rule("header:webhook-id, sha256");
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            "\"header:webhook-id,sha256\""
        );
        assert_eq!(
            serde_json::from_str::<FieldRule>("\"json:/id\"").unwrap(),
            rule("json:/id")
        );
        let err = serde_json::from_str::<FieldRule>("\"json:id\"").unwrap_err();
        assert!(err.to_string().contains("start with `/`"), "{err}");
    }

    // --- mapping and overrides -----------------------------------------------

    #[test]
    fn mapping_serializes_as_an_object_of_rule_strings() {
        let m = mapping(&[
            (MappingField::Id, "header:webhook-id,sha256"),
            (MappingField::Group, "json:/data/id"),
        ]);
        let value = serde_json::to_value(&m).unwrap();
        assert_eq!(
            value,
            json!({"id_from": "header:webhook-id,sha256", "group_from": "json:/data/id",
                   "event_from": null, "workflow_from": null, "error_from": null})
        );
        assert_eq!(serde_json::from_value::<Mapping>(value).unwrap(), m);
        assert_eq!(
            serde_json::from_value::<Mapping>(json!({"event_from": "json:/type"})).unwrap(),
            mapping(&[(MappingField::Event, "json:/type")])
        );
        let err = serde_json::from_value::<Mapping>(json!({"group_from": "sha256"})).unwrap_err();
        assert!(
            err.to_string().contains("only identifies a delivery"),
            "{err}"
        );
        assert!(serde_json::from_value::<Mapping>(json!({"id_from": "nope"})).is_err());
    }

    #[test]
    fn overrides_replace_remove_or_keep_rules() {
        let preset = mapping(&[
            (MappingField::Id, "header:webhook-id"),
            (MappingField::Group, "json:/id"),
            (MappingField::Error, "json:/error"),
        ]);
        let overrides = MappingOverrides {
            id_from: Some("json:/job_id+json:/event, sha256".into()),
            error_from: Some("  ".into()),
            event_from: Some("json:/type".into()),
            ..MappingOverrides::default()
        };
        let applied = preset.with_overrides(&overrides).unwrap();
        assert_eq!(
            applied.id_from.as_ref().unwrap().to_string(),
            "json:/job_id+json:/event,sha256"
        );
        assert_eq!(applied.group_from, preset.group_from);
        assert_eq!(applied.event_from, Some(rule("json:/type")));
        assert_eq!(applied.error_from, None);
        assert_eq!(
            preset.with_overrides(&MappingOverrides::default()).unwrap(),
            preset
        );

        let bad = MappingOverrides {
            workflow_from: Some("json:workflow".into()),
            ..MappingOverrides::default()
        };
        let err = preset.with_overrides(&bad).unwrap_err();
        assert!(matches!(
            err,
            MappingError::InField {
                field: MappingField::Workflow,
                ..
            }
        ));
        assert!(
            err.to_string()
                .starts_with("workflow_from: `json:workflow`"),
            "{err}"
        );
        let misplaced = MappingOverrides {
            group_from: Some("json:/id,sha256".into()),
            ..MappingOverrides::default()
        };
        assert_eq!(
            preset.with_overrides(&misplaced).unwrap_err(),
            MappingError::Sha256OutsideId {
                field: MappingField::Group
            }
        );
    }

    #[test]
    fn overrides_round_trip_as_json_and_merge() {
        let mut stored = MappingOverrides::default();
        assert!(stored.is_empty());
        assert_eq!(serde_json::to_string(&stored).unwrap(), "{}");
        assert_eq!(
            serde_json::from_str::<MappingOverrides>("{}").unwrap(),
            stored
        );
        stored.update(&MappingOverrides {
            group_from: Some("json:/session_id".into()),
            ..MappingOverrides::default()
        });
        stored.update(&MappingOverrides {
            error_from: Some(String::new()),
            ..MappingOverrides::default()
        });
        assert!(!stored.is_empty());
        let text = serde_json::to_string(&stored).unwrap();
        assert_eq!(text, r#"{"group_from":"json:/session_id","error_from":""}"#);
        assert_eq!(
            serde_json::from_str::<MappingOverrides>(&text).unwrap(),
            stored
        );
        let with_null: MappingOverrides =
            serde_json::from_str(r#"{"group_from":null,"id_from":"sha256"}"#).unwrap();
        assert_eq!(with_null.group_from, None);
        assert_eq!(with_null.get(MappingField::Id), Some("sha256"));
    }

    // --- evaluation ----------------------------------------------------------

    #[test]
    fn values_are_trimmed_text_numbers_and_booleans() {
        let m = mapping(&[
            (MappingField::Group, "json:/group"),
            (MappingField::Event, "json:/event"),
            (MappingField::Workflow, "json:/flag"),
            (MappingField::Error, "json:/error"),
        ]);
        let fields = map(
            &m,
            &[],
            &json!({"group": "  job_1 ", "event": 42.5, "flag": false, "error": "  boom  "}),
        );
        assert_eq!(fields.group.as_deref(), Some("job_1"));
        assert_eq!(fields.event.as_deref(), Some("42.5"));
        assert_eq!(fields.workflow.as_deref(), Some("false"));
        assert_eq!(fields.error.as_deref(), Some("boom"));
        let fields = map(
            &m,
            &[],
            &json!({"group": "   ", "event": null, "flag": {"a": 1}, "error": []}),
        );
        assert_eq!(fields.group, None);
        assert_eq!(fields.event, None);
        assert_eq!(fields.workflow, None);
        assert_eq!(fields.error.as_deref(), Some("[]"));
    }

    #[test]
    fn places_are_tried_in_order() {
        let m = mapping(&[(MappingField::Event, "json:/event,header:X-Event,json:/type")]);
        let headers = [("x-event", "from.header")];
        assert_eq!(
            map(&m, &headers, &json!({"event": "a.b", "type": "t"}))
                .event
                .as_deref(),
            Some("a.b")
        );
        assert_eq!(
            map(&m, &headers, &json!({"event": "", "type": "t"}))
                .event
                .as_deref(),
            Some("from.header")
        );
        assert_eq!(
            map(&m, &[], &json!({"type": "t"})).event.as_deref(),
            Some("t")
        );
        assert_eq!(map(&m, &[], &json!({})).event, None);
        // A payload that is not an object (or no JSON at all) yields only headers.
        assert_eq!(
            map(&m, &headers, &Value::Null).event.as_deref(),
            Some("from.header")
        );
    }

    #[test]
    fn structured_errors_give_their_message_or_compact_json() {
        let m = mapping(&[
            (MappingField::Error, "json:/error"),
            (MappingField::Group, "json:/error"),
        ]);
        let fields = map(
            &m,
            &[],
            &json!({"error": {"message": " rate limited ", "code": 429}}),
        );
        assert_eq!(fields.error.as_deref(), Some("rate limited"));
        // Only the error takes structured values.
        assert_eq!(fields.group, None);
        let fields = map(
            &m,
            &[],
            &json!({"error": {"code": 429, "type": "overloaded"}}),
        );
        assert_eq!(
            fields.error.as_deref(),
            Some(r#"{"code":429,"type":"overloaded"}"#)
        );
        let fields = map(&m, &[], &json!({"error": {"message": {"nested": true}}}));
        assert_eq!(
            fields.error.as_deref(),
            Some(r#"{"message":{"nested":true}}"#)
        );
    }

    #[test]
    fn composite_values_need_every_part() {
        let m = mapping(&[
            (MappingField::Group, "json:/repo+json:/run"),
            (MappingField::Id, "json:/repo+json:/run,json:/repo"),
        ]);
        let both = map(&m, &[], &json!({"repo": "acme/app", "run": 7}));
        assert_eq!(both.group.as_deref(), Some("acme/app:7"));
        assert_eq!(both.delivery_id.as_str(), "jj:acme/app:7");
        let one = map(&m, &[], &json!({"repo": "acme/app"}));
        assert_eq!(one.group, None);
        assert_eq!(one.delivery_id.as_str(), "j:acme/app");
    }

    #[test]
    fn ids_are_marked_by_the_kinds_of_their_places() {
        let payload = json!({"id": "evt_1", "a": "x:y", "b": "z", "c": "x", "d": "y:z"});
        assert_eq!(
            id_of(
                "header:Idempotency-Key",
                &[("idempotency-key", " k1 ")],
                json!({})
            ),
            "h:k1"
        );
        assert_eq!(id_of("json:/id", &[], payload.clone()), "j:evt_1");
        // A header and a JSON value that are equal are different ids.
        assert_ne!(
            id_of("header:X-Id", &[("x-id", "evt_1")], json!({})),
            id_of("json:/id", &[], json!({"id": "evt_1"}))
        );
        // Parts cannot be confused: "x:y"+"z" is not "x"+"y:z".
        let ab = id_of("json:/a+json:/b", &[], payload.clone());
        let cd = id_of("json:/c+json:/d", &[], payload.clone());
        assert_eq!(ab, "jj:x%3Ay:z");
        assert_eq!(cd, "jj:x:y%3Az");
        assert_ne!(ab, cd);
        // One part holding a colon is not a composite of two.
        assert_ne!(
            id_of("json:/a", &[], payload.clone()),
            id_of("json:/c+json:/b", &[], json!({"c": "x", "b": "y"}))
        );
        assert_eq!(
            id_of(
                "header:X-Event+json:/id",
                &[("x-event", "push")],
                payload.clone()
            ),
            "hj:push:evt_1"
        );
        // A mapped id never looks like the body-hash id or a built-in one.
        for id in [&ab, &cd] {
            assert!(
                !id.starts_with("sha256:") && !id.starts_with("wh:") && !id.starts_with("job:")
            );
        }
    }

    #[test]
    fn without_a_yielding_place_the_id_is_the_body_hash() {
        let payload = json!({"other": 1});
        assert_eq!(
            id_of("json:/id,header:X-Id", &[], payload.clone()),
            body_hash(&payload)
        );
        assert_eq!(
            id_of("json:/id,sha256", &[], payload.clone()),
            body_hash(&payload)
        );
        assert_eq!(
            map(&Mapping::default(), &[], &payload)
                .delivery_id
                .into_string(),
            body_hash(&payload)
        );
        assert!(body_hash(&payload).starts_with("sha256:"));
    }

    #[test]
    fn long_ids_are_hashed_within_255_bytes() {
        let long = "x".repeat(300);
        let id = id_of("json:/id", &[], json!({ "id": long }));
        assert!(id.starts_with("j-sha256:"), "{id}");
        assert!(id.len() <= 255);
        assert_ne!(id, id_of("json:/id", &[], json!({ "id": "x".repeat(301) })));
        let id = id_of("json:/id+json:/id", &[], json!({ "id": "é".repeat(200) }));
        assert!(id.starts_with("jj-sha256:") && id.len() <= 255, "{id}");
    }

    #[test]
    fn nul_is_stripped_from_fields_and_hashed_in_ids() {
        let m = mapping(&[
            (MappingField::Id, "json:/id"),
            (MappingField::Group, "json:/group"),
            (MappingField::Event, "json:/only_nul,json:/event"),
        ]);
        let fields = map(
            &m,
            &[],
            &json!({"id": "a\u{0}b", "group": "jo\u{0}b", "only_nul": "\u{0}", "event": "e"}),
        );
        assert_eq!(fields.group.as_deref(), Some("job"));
        // A value that is only NUL yields nothing, so the next place is tried.
        assert_eq!(fields.event.as_deref(), Some("e"));
        assert!(fields.delivery_id.as_str().starts_with("j-sha256:"));
        assert!(!fields.delivery_id.as_str().contains('\0'));
        let other = map(&m, &[], &json!({"id": "ab"}));
        assert_ne!(fields.delivery_id, other.delivery_id);
    }

    #[test]
    fn hostile_values_are_kept_verbatim_but_bounded() {
        let hostile = "</script><img src=x onerror=alert(1)>\u{1b}[31m\r\n";
        let m = mapping(&[
            (MappingField::Group, "json:/v"),
            (MappingField::Error, "json:/e"),
            (MappingField::Workflow, "json:/big"),
        ]);
        let big_error: Vec<Value> = (0..100_000).map(|n| json!({"n": n, "s": "ß"})).collect();
        let fields = map(
            &m,
            &[],
            &json!({"v": hostile, "e": big_error, "big": "漢".repeat(10_000)}),
        );
        assert_eq!(fields.group.as_deref(), Some(hostile.trim()));
        let error = fields.error.unwrap();
        assert_eq!(error.chars().count(), MAX_ERROR_CHARS);
        assert!(error.starts_with(r#"[{"n":0,"s":"ß"},{"n":1"#), "{error}");
        assert_eq!(fields.workflow.unwrap(), "漢".repeat(255));
        let long_error = map(&m, &[], &json!({"e": "ß".repeat(5_000)}))
            .error
            .unwrap();
        assert_eq!(long_error.chars().count(), MAX_ERROR_CHARS);
    }

    #[test]
    fn compact_json_prefix_never_splits_a_character() {
        let value = json!(["ééééé"]);
        for max in 0..12 {
            let prefix = compact_json_prefix(&value, max);
            assert!(value.to_string().starts_with(&prefix), "{max}: {prefix}");
            assert_eq!(
                prefix.chars().count(),
                max.min(value.to_string().chars().count())
            );
        }
    }

    #[test]
    fn deep_pointers_and_arrays_are_followed() {
        let m = mapping(&[
            (MappingField::Group, "json:/a/b/0/c~1d/e~0f"),
            (MappingField::Event, "json:/list/01,json:/list/1"),
        ]);
        let fields = map(
            &m,
            &[],
            &json!({"a": {"b": [{"c/d": {"e~f": "deep"}}]}, "list": ["zero", "one"]}),
        );
        assert_eq!(fields.group.as_deref(), Some("deep"));
        // `01` is no array index (RFC 6901), so the second place is used.
        assert_eq!(fields.event.as_deref(), Some("one"));
        // A pointer deeper than the document yields nothing and does not panic.
        let deep = format!("json:{}", "/a".repeat(250));
        let m = mapping(&[(MappingField::Group, &deep)]);
        let mut nested = json!("bottom");
        for _ in 0..120 {
            nested = json!({ "a": nested });
        }
        assert_eq!(map(&m, &[], &nested).group, None);
    }

    #[test]
    fn sha256_outside_the_id_yields_nothing() {
        let m = Mapping {
            group_from: Some(rule("json:/missing,sha256")),
            ..Mapping::default()
        };
        assert_eq!(map(&m, &[], &json!({})).group, None);
        assert_eq!(
            m.validate(),
            Err(MappingError::Sha256OutsideId {
                field: MappingField::Group
            })
        );
    }
}
