//! Creating and changing sources: the checks every admin path (the admin
//! API, the CLI) applies before a change reaches the store.

use crate::ingest::{ROTATION_GRACE_SECS, generate_secret, generate_standard_secret};
use crate::source::{
    BUILTIN_SOURCE, FieldRule, MappingOverrides, Preset, SourceName, SourceScheme,
    parse_source_secret,
};
use crate::store::{SourceChange, SourceRow, Store, StoreError, UNKNOWN_SOURCE};

/// Longest header name accepted for the token scheme.
const MAX_HEADER_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SourceAdminError {
    /// Something the admin can fix; the message says what.
    #[error("{0}")]
    Invalid(String),
    #[error("no source named {0}")]
    NotFound(String),
    #[error("a source named {0} exists; pick another name")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Mapping rules as a form or the CLI sends them; `None` leaves a rule as
/// it is, an empty string returns it to the preset's.
#[derive(Debug, Clone, Default)]
pub struct RuleOverrides {
    pub id_from: Option<String>,
    pub group_from: Option<String>,
    pub event_from: Option<String>,
    pub workflow_from: Option<String>,
    pub error_from: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewSource {
    pub name: String,
    pub preset: String,
    /// `None`: one is generated.
    pub secret: Option<String>,
    pub token_header: Option<String>,
    pub overrides: RuleOverrides,
}

#[derive(Debug, Clone, Default)]
pub struct SourceUpdate {
    pub name: String,
    pub mode: Option<String>,
    pub enabled: Option<bool>,
    /// `Some("")` clears it.
    pub token_header: Option<String>,
    pub overrides: RuleOverrides,
}

/// A source just created: its name and its secret (to show once).
pub struct CreatedSource {
    pub name: String,
    pub secret: String,
}

/// A secret just added by a rotation (to show once).
pub struct RotatedSource {
    pub label: String,
    pub secret: String,
}

/// Stores a new source after checking every field.
pub async fn create_source(
    store: &Store,
    request: NewSource,
    now_us: i64,
) -> Result<CreatedSource, SourceAdminError> {
    let name = SourceName::parse(request.name.trim())
        .map_err(|err| SourceAdminError::Invalid(err.to_string()))?;
    if name.as_str() == UNKNOWN_SOURCE {
        return Err(SourceAdminError::Invalid(format!(
            "`{UNKNOWN_SOURCE}` is reserved: requests to names that are no source are counted under it"
        )));
    }
    let preset = Preset::parse(request.preset.trim()).ok_or_else(|| {
        SourceAdminError::Invalid(
            "unknown preset; use one of: llm-callback, openai, replicate, github, stripe, claude-code, generic"
                .to_owned(),
        )
    })?;
    let overrides = merged_overrides(MappingOverrides::default(), request.overrides)?;
    let secret = match request.secret.map(|s| s.trim().to_owned()) {
        Some(secret) if !secret.is_empty() => {
            parse_source_secret(preset.schemes(), &secret)
                .map_err(|err| SourceAdminError::Invalid(format!("secret: {err}")))?;
            secret
        }
        _ => generated_secret_for(preset),
    };
    let schemes: Vec<&str> = preset.schemes().iter().map(|s| s.as_str()).collect();
    let row = SourceRow {
        name: name.as_str().to_owned(),
        preset: preset.as_str().to_owned(),
        schemes: schemes.join(","),
        mode: "enforce".to_owned(),
        enabled: true,
        token_header: token_header_of(request.token_header)?
            .or_else(|| preset.default_token_header().map(str::to_owned)),
        mapping: serde_json::to_string(&overrides)
            .map_err(|err| SourceAdminError::Invalid(err.to_string()))?,
        created_at_us: now_us,
        updated_at_us: now_us,
    };
    if !store.create_source(&row, &secret).await? {
        return Err(SourceAdminError::Exists(name.into_string()));
    }
    Ok(CreatedSource {
        name: name.into_string(),
        secret,
    })
}

/// Applies an admin's change to a source. The built-in source keeps the
/// mode and state the environment gives it.
pub async fn update_source(
    store: &Store,
    request: SourceUpdate,
    now_us: i64,
) -> Result<String, SourceAdminError> {
    let name = known_name(&request.name)?;
    if name == BUILTIN_SOURCE && (request.mode.is_some() || request.enabled.is_some()) {
        return Err(SourceAdminError::Invalid(
            "the llm-callback source takes its mode from INBOX_SIGNATURE_MODE and is always enabled"
                .to_owned(),
        ));
    }
    let mode = match request.mode.as_deref().map(str::trim) {
        None => None,
        Some(mode @ ("enforce" | "flag")) => Some(mode.to_owned()),
        Some(_) => {
            return Err(SourceAdminError::Invalid(
                "mode must be \"enforce\" or \"flag\"".to_owned(),
            ));
        }
    };
    let current = store
        .load_sources(now_us)
        .await?
        .into_iter()
        .find(|source| source.row.name == name)
        .ok_or_else(|| SourceAdminError::NotFound(name.clone()))?;
    let current_overrides: MappingOverrides =
        serde_json::from_str(&current.row.mapping).unwrap_or_default();
    let overrides = merged_overrides(current_overrides, request.overrides)?;
    let change = SourceChange {
        mode,
        enabled: request.enabled,
        token_header: match request.token_header {
            Some(header) => Some(token_header_of(Some(header))?),
            None => None,
        },
        mapping: Some(
            serde_json::to_string(&overrides)
                .map_err(|err| SourceAdminError::Invalid(err.to_string()))?,
        ),
    };
    if !store.update_source(&name, &change, now_us).await? {
        return Err(SourceAdminError::NotFound(name));
    }
    Ok(name)
}

/// Adds a secret to a source that keeps its own (not the built-in one,
/// whose secrets the server manages): `secret` when the provider issued one
/// (Stripe, OpenAI and Replicate roll their own), else a generated one. The
/// others stay valid for [`ROTATION_GRACE_SECS`].
pub async fn rotate_source_secret(
    store: &Store,
    name: &str,
    secret: Option<String>,
    now_us: i64,
) -> Result<RotatedSource, SourceAdminError> {
    let name = known_name(name)?;
    if name == BUILTIN_SOURCE {
        return Err(SourceAdminError::Invalid(
            "the llm-callback secrets are rotated with `callback-inbox secret rotate`".to_owned(),
        ));
    }
    let preset = store
        .load_sources(now_us)
        .await?
        .into_iter()
        .find(|source| source.row.name == name)
        .and_then(|source| Preset::parse(&source.row.preset))
        .ok_or_else(|| SourceAdminError::NotFound(name.clone()))?;
    let secret = match secret.map(|s| s.trim().to_owned()) {
        Some(secret) if !secret.is_empty() => {
            parse_source_secret(preset.schemes(), &secret)
                .map_err(|err| SourceAdminError::Invalid(format!("secret: {err}")))?;
            secret
        }
        _ => generated_secret_for(preset),
    };
    let label = store
        .rotate_source_secret(&name, &secret, now_us, ROTATION_GRACE_SECS * 1_000_000)
        .await?
        .ok_or_else(|| SourceAdminError::NotFound(name.clone()))?;
    Ok(RotatedSource { label, secret })
}

/// A well-formed name (not necessarily an existing one); a malformed one
/// cannot exist, so it is not found.
fn known_name(raw: &str) -> Result<String, SourceAdminError> {
    SourceName::parse(raw.trim())
        .map(SourceName::into_string)
        .map_err(|_| SourceAdminError::NotFound(crate::log_text::LogText::new(raw).to_string()))
}

/// `given` applied to `current`: each rule given replaces the one there (an
/// empty one removes it), each checked first.
fn merged_overrides(
    mut current: MappingOverrides,
    given: RuleOverrides,
) -> Result<MappingOverrides, SourceAdminError> {
    let fields = [
        ("id_from", given.id_from, &mut current.id_from),
        ("group_from", given.group_from, &mut current.group_from),
        ("event_from", given.event_from, &mut current.event_from),
        (
            "workflow_from",
            given.workflow_from,
            &mut current.workflow_from,
        ),
        ("error_from", given.error_from, &mut current.error_from),
    ];
    for (name, given, slot) in fields {
        let Some(given) = given else {
            continue;
        };
        let given = given.trim();
        if given.is_empty() {
            *slot = None;
            continue;
        }
        let rule = FieldRule::parse(given)
            .map_err(|err| SourceAdminError::Invalid(format!("{name}: {err}")))?;
        let canonical = rule.to_string();
        if name != "id_from" && canonical.split(',').any(|place| place == "sha256") {
            return Err(SourceAdminError::Invalid(format!(
                "{name}: `sha256` names a delivery id only; use header: or json: places"
            )));
        }
        *slot = Some(canonical);
    }
    Ok(current)
}

fn token_header_of(raw: Option<String>) -> Result<Option<String>, SourceAdminError> {
    let Some(header) = raw.map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let valid = header.len() <= MAX_HEADER_NAME
        && header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(SourceAdminError::Invalid(format!(
            "token_header must be a header name of letters, digits and dashes, at most {MAX_HEADER_NAME} characters"
        )));
    }
    Ok(Some(header))
}

/// A fresh secret in the form the preset's sender expects: `whsec_…` for
/// Standard Webhooks, 64 hex digits otherwise.
pub fn generated_secret_for(preset: Preset) -> String {
    if preset.schemes().contains(&SourceScheme::Standard) {
        generate_standard_secret()
    } else {
        generate_secret()
    }
}
