//! Server-only half of the sources API: validation, the store calls, and
//! the reload of this node's sources after a change (other nodes see it
//! within their next refresh).

pub use crate::auth::server::require_user;
pub use inbox_core::accounts::Role;

use std::collections::{BTreeMap, HashMap};

use inbox_core::accounts::User;
use inbox_core::ingest::{ROTATION_GRACE_SECS, SecretSource, generate_secret};
use inbox_core::log_text::LogText;
use inbox_core::signature::WebhookSecret;
use inbox_core::source::{BUILTIN_SOURCE, Mapping, MappingOverrides, Preset};
pub use inbox_core::source_admin::{NewSource, RuleOverrides, SourceUpdate};
use inbox_core::source_admin::{
    SourceAdminError, create_source, rotate_source_secret, update_source,
};
use inbox_core::source_examples::{sender_example, source_url};
use inbox_core::store::StoredSource;

use super::{CreatedSource, RotatedSecret, SourceSecretSummary, SourceSummary};
use crate::callbacks::server::{now_us, store};
use crate::error::AppError;
use crate::state::AppState;
use inbox_core::micros::time_of;

const DAY_US: i64 = 24 * 60 * 60 * 1_000_000;

pub async fn source_summaries(state: &AppState) -> Result<Vec<SourceSummary>, AppError> {
    let store = store()?;
    let now = now_us();
    let stored = store.load_sources(now).await.map_err(AppError::internal)?;
    let activity = store
        .source_activity(now - DAY_US)
        .await
        .map_err(AppError::internal)?;
    let secret_activity = store
        .source_secret_activity(now - DAY_US)
        .await
        .map_err(AppError::internal)?;
    stored
        .into_iter()
        .map(|source| summary_of(state, source, &activity, &secret_activity))
        .collect()
}

fn summary_of(
    state: &AppState,
    source: StoredSource,
    activity: &HashMap<String, inbox_core::store::SourceActivity>,
    secret_activity: &HashMap<(String, String), inbox_core::store::SecretActivity>,
) -> Result<SourceSummary, AppError> {
    let row = &source.row;
    let preset = Preset::parse(&row.preset)
        .ok_or_else(|| AppError::internal(format!("source {} has no known preset", row.name)))?;
    let overrides: MappingOverrides = serde_json::from_str(&row.mapping).unwrap_or_default();
    let mapping = preset
        .mapping()
        .with_overrides(&overrides)
        .unwrap_or_else(|_| preset.mapping());
    let builtin = row.name == BUILTIN_SOURCE;
    let secret_use = |label: &str| {
        secret_activity
            .get(&(row.name.clone(), label.to_owned()))
            .copied()
            .unwrap_or_default()
    };
    let secrets = if builtin {
        state
            .webhook
            .secrets
            .current()
            .iter()
            .map(|secret| {
                let used = secret_use(secret.label());
                SourceSecretSummary {
                    label: secret.label().to_owned(),
                    masked: secret.masked(),
                    created_at: None,
                    expires_at: None,
                    last_used_at: used.last_used_at_us.map(time_of),
                    uses_24h: used.uses_24h,
                }
            })
            .collect()
    } else {
        source
            .secrets
            .iter()
            .map(|stored| {
                let used = secret_use(&stored.label);
                SourceSecretSummary {
                    label: stored.label.clone(),
                    masked: WebhookSecret::literal(&stored.secret)
                        .map(|secret| secret.masked())
                        .unwrap_or_else(|_| "••••••••".to_owned()),
                    created_at: Some(time_of(stored.created_at_us)),
                    expires_at: stored.expires_at_us.map(time_of),
                    last_used_at: used.last_used_at_us.map(time_of),
                    uses_24h: used.uses_24h,
                }
            })
            .collect()
    };
    let traffic = activity.get(&row.name).copied().unwrap_or_default();
    let url = source_url(&state.webhook.base_url, &row.name);
    let mode = if builtin {
        match state.webhook.ingest.mode {
            inbox_core::ingest::SignatureMode::Enforce => "enforce",
            inbox_core::ingest::SignatureMode::Flag => "flag",
        }
        .to_owned()
    } else {
        row.mode.clone()
    };
    Ok(SourceSummary {
        name: row.name.clone(),
        preset: preset.as_str().to_owned(),
        schemes: row.schemes.split(',').map(str::to_owned).collect(),
        example: sender_example(preset, &url),
        url,
        enabled: builtin || row.enabled,
        mode,
        token_header: row.token_header.clone(),
        mapping: rules_of(&mapping),
        overrides: overrides_of(&overrides),
        secrets,
        callbacks_24h: traffic.callbacks_24h,
        last_received_at: traffic.last_received_at_us.map(time_of),
        secrets_from_environment: builtin
            && state.webhook.secrets.source() == SecretSource::Configured,
    })
}

/// The rules in effect, by their field names.
fn rules_of(mapping: &Mapping) -> BTreeMap<String, String> {
    [
        ("id_from", &mapping.id_from),
        ("group_from", &mapping.group_from),
        ("event_from", &mapping.event_from),
        ("workflow_from", &mapping.workflow_from),
        ("error_from", &mapping.error_from),
    ]
    .into_iter()
    .filter_map(|(name, rule)| Some((name.to_owned(), rule.as_ref()?.to_string())))
    .collect()
}

fn overrides_of(overrides: &MappingOverrides) -> BTreeMap<String, String> {
    [
        ("id_from", &overrides.id_from),
        ("group_from", &overrides.group_from),
        ("event_from", &overrides.event_from),
        ("workflow_from", &overrides.workflow_from),
        ("error_from", &overrides.error_from),
    ]
    .into_iter()
    .filter_map(|(name, rule)| Some((name.to_owned(), rule.clone()?)))
    .collect()
}

/// The status code of each source error: what the admin can fix is a 400
/// with its message; store failures are logged and hidden.
pub fn source_error(err: SourceAdminError) -> AppError {
    match err {
        SourceAdminError::Invalid(message) => AppError::BadRequest(message),
        err @ SourceAdminError::Exists(_) => AppError::BadRequest(err.to_string()),
        err @ SourceAdminError::NotFound(_) => AppError::NotFound(err.to_string()),
        SourceAdminError::Store(err) => AppError::internal(err),
    }
}

pub async fn create(
    admin: &User,
    state: &AppState,
    request: NewSource,
) -> Result<CreatedSource, AppError> {
    let created = create_source(&store()?, request, now_us())
        .await
        .map_err(source_error)?;
    reload(state).await;
    tracing::info!(admin = %admin.email, source = %created.name, "source created");
    Ok(CreatedSource {
        source: find_summary(state, &created.name).await?,
        secret: created.secret,
    })
}

pub async fn update(
    admin: &User,
    state: &AppState,
    request: SourceUpdate,
) -> Result<SourceSummary, AppError> {
    let name = update_source(&store()?, request, now_us())
        .await
        .map_err(source_error)?;
    reload(state).await;
    tracing::info!(admin = %admin.email, source = %name, "source updated");
    find_summary(state, &name).await
}

/// The built-in source's generated secrets rotate as `secret rotate` does
/// them; configured ones cannot rotate here.
pub async fn rotate(
    admin: &User,
    state: &AppState,
    name: &str,
    secret: Option<String>,
) -> Result<RotatedSecret, AppError> {
    let store = store()?;
    if name.trim() != BUILTIN_SOURCE {
        let rotated = rotate_source_secret(&store, name, secret, now_us())
            .await
            .map_err(source_error)?;
        reload(state).await;
        tracing::info!(admin = %admin.email, source = %name.trim(), label = %rotated.label, "source secret rotated");
        return Ok(RotatedSecret {
            name: name.trim().to_owned(),
            label: rotated.label,
            secret: rotated.secret,
        });
    }
    if state.webhook.secrets.source() == SecretSource::Configured {
        return Err(AppError::BadRequest(
            "the llm-callback secrets come from LLM_WEBHOOK_SECRET or LLM_WEBHOOK_SECRETS_FILE; change them there".into(),
        ));
    }
    let secret = generate_secret();
    store
        .add_generated_secret(&secret, now_us(), ROTATION_GRACE_SECS * 1_000_000)
        .await
        .map_err(AppError::internal)?;
    state
        .webhook
        .secrets
        .refresh(&store)
        .await
        .map_err(AppError::internal)?;
    let label = state
        .webhook
        .secrets
        .current()
        .first()
        .map(|secret| secret.label().to_owned())
        .unwrap_or_default();
    tracing::info!(admin = %admin.email, source = BUILTIN_SOURCE, "source secret rotated");
    Ok(RotatedSecret {
        name: BUILTIN_SOURCE.to_owned(),
        label,
        secret,
    })
}

pub fn reveal(admin: &User, state: &AppState, name: &str, label: &str) -> Result<String, AppError> {
    let source = state
        .webhook
        .sources
        .get(name.trim())
        .ok_or_else(|| AppError::NotFound("no such source".to_owned()))?;
    let secrets = source.secrets.current();
    let secret = secrets
        .iter()
        .find(|secret| secret.label() == label)
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "source {} has no secret labelled {}",
                source.name,
                LogText::new(label)
            ))
        })?;
    tracing::info!(admin = %admin.email, source = %source.name, label = %LogText::new(label), "source secret revealed");
    Ok(secret.reveal().to_owned())
}

async fn find_summary(state: &AppState, name: &str) -> Result<SourceSummary, AppError> {
    source_summaries(state)
        .await?
        .into_iter()
        .find(|source| source.name == name)
        .ok_or_else(|| AppError::NotFound(format!("no source named {name}")))
}

/// This node sees its own change at once; the others within a second.
async fn reload(state: &AppState) {
    if let Ok(store) = store()
        && let Err(err) = state.webhook.sources.reload_now(&store).await
    {
        tracing::warn!(error = %err, "could not reload the sources after a change");
    }
}
