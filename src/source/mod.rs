//! Sources: the kinds of senders the inbox accepts, each with its own URL
//! (`/api/webhooks/{name}`), credentials and field mapping.
//!
//! Pure logic only (no database, no web framework), shared by the server,
//! the CLI and the browser: name rules, signature schemes, mapping rules and
//! presets.

pub mod headers;
pub mod mapping;
pub mod name;
pub mod preset;
pub mod scheme;

pub use headers::RequestHeaders;
pub use mapping::{
    FieldRule, MappedFields, Mapping, MappingError, MappingField, MappingOverrides, Part, Place,
    map_callback,
};
pub use name::{BUILTIN_SOURCE, MAX_SOURCE_NAME_CHARS, SourceName, SourceNameError};
pub use preset::{AnswerKind, Preset, UnknownPreset, status_of};
pub use scheme::{
    DEFAULT_TOKEN_HEADER, SourceScheme, SourceSchemeError, check_source_form, parse_source_secret,
    sign_github, sign_stripe, token_header_or_default, verify_source_signature,
};
