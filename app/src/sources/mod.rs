//! Sources: the senders the inbox accepts, each with its own URL,
//! signature scheme, secrets and field mapping (admin only).
//!
//! Every server function here starts with `require_user(Role::Admin)`. No
//! answer carries a whole secret, except the one just created or rotated
//! (shown once) and an admin's explicit reveal.

// `create_source` and `update_source` take the endpoints' form fields as
// arguments; the server macro's generated client code does not carry a
// function-level allow.
#![allow(clippy::too_many_arguments)]

#[cfg(feature = "ssr")]
pub mod server;
pub mod settings;

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::AppError;

/// One source as the Settings page and `source list` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub name: String,
    pub preset: String,
    pub schemes: Vec<String>,
    /// Where its sender POSTs.
    pub url: String,
    pub enabled: bool,
    /// `enforce` or `flag`.
    pub mode: String,
    /// The header that carries the token (token scheme only).
    pub token_header: Option<String>,
    /// The rules in effect (`id_from`, `group_from`, …), the preset's
    /// unless overridden; a rule the preset leaves out is absent.
    pub mapping: BTreeMap<String, String>,
    /// The rules this source overrides.
    pub overrides: BTreeMap<String, String>,
    pub secrets: Vec<SourceSecretSummary>,
    pub callbacks_24h: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_received_at: Option<OffsetDateTime>,
    /// Whether its secrets come from the environment (the built-in source
    /// with `LLM_WEBHOOK_SECRET`): they cannot be rotated here.
    pub secrets_from_environment: bool,
    /// A ready example: a signed curl, or for Claude Code the hooks block
    /// of `settings.json`. Secrets appear as shell variables, never inlined.
    pub example: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSecretSummary {
    pub label: String,
    /// Enough to tell secrets apart, never enough to sign with.
    pub masked: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    /// Set once rotated out: it still verifies until then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    pub uses_24h: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceList {
    pub items: Vec<SourceSummary>,
}

/// A source just created, with its secret (shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedSource {
    #[serde(flatten)]
    pub source: SourceSummary,
    pub secret: String,
}

/// A secret just added by a rotation (shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotatedSecret {
    pub name: String,
    pub label: String,
    pub secret: String,
}

/// Every source, by name.
#[server(prefix = "/api", endpoint = "admin/sources")]
pub async fn list_sources() -> Result<SourceList, AppError> {
    use self::server::*;
    require_user(Role::Admin).await?;
    let state = crate::state::app_state()?;
    Ok(SourceList {
        items: source_summaries(&state).await?,
    })
}

/// Creates a source from a preset; the mapping rules given override the
/// preset's. Without `secret` one is generated. The answer holds the
/// secret: the only time it is shown without an explicit reveal.
#[server(prefix = "/api", endpoint = "admin/sources/create")]
#[allow(clippy::too_many_arguments)]
pub async fn create_source(
    name: String,
    preset: String,
    secret: Option<String>,
    token_header: Option<String>,
    id_from: Option<String>,
    group_from: Option<String>,
    event_from: Option<String>,
    workflow_from: Option<String>,
    error_from: Option<String>,
) -> Result<CreatedSource, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    let state = crate::state::app_state()?;
    let request = NewSource {
        name,
        preset,
        secret,
        token_header,
        overrides: RuleOverrides {
            id_from,
            group_from,
            event_from,
            workflow_from,
            error_from,
        },
    };
    create(&admin, &state, request).await
}

/// Changes a source's mode, enabled state, token header or mapping rules;
/// a rule given as an empty string goes back to the preset's.
#[server(prefix = "/api", endpoint = "admin/sources/update")]
#[allow(clippy::too_many_arguments)]
pub async fn update_source(
    name: String,
    mode: Option<String>,
    enabled: Option<bool>,
    token_header: Option<String>,
    id_from: Option<String>,
    group_from: Option<String>,
    event_from: Option<String>,
    workflow_from: Option<String>,
    error_from: Option<String>,
) -> Result<SourceSummary, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    let state = crate::state::app_state()?;
    let request = SourceUpdate {
        name,
        mode,
        enabled,
        token_header,
        overrides: RuleOverrides {
            id_from,
            group_from,
            event_from,
            workflow_from,
            error_from,
        },
    };
    update(&admin, &state, request).await
}

/// Adds a new secret to a source (`secret` when the provider issued one,
/// else generated); the previous ones stay valid for 24 h.
#[server(prefix = "/api", endpoint = "admin/sources/rotate-secret")]
pub async fn rotate_source_secret(
    name: String,
    secret: Option<String>,
) -> Result<RotatedSecret, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    rotate(&admin, &crate::state::app_state()?, &name, secret).await
}

/// One whole secret of a source, by its label: only on an admin's explicit
/// request, and logged (without the secret).
#[server(prefix = "/api", endpoint = "admin/sources/reveal-secret")]
pub async fn reveal_source_secret(name: String, label: String) -> Result<String, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    reveal(&admin, &crate::state::app_state()?, &name, &label)
}
