//! `callback-inbox source …`: sources on the server's database (like
//! `token` and `admin`). A running server reloads them within a second.
//!
//! The checks are the admin API's (`inbox_core::source_admin`), and `list
//! --json` has the admin API's shape (`app::sources::SourceList`), so the
//! command line and the Settings page never disagree. A whole secret is
//! printed only when created or rotated, alone on stdout.

use std::collections::{BTreeMap, HashMap};

use app::sources::{SourceList, SourceSecretSummary, SourceSummary};
use inbox_core::ingest::{SignatureMode, unix_micros};
use inbox_core::signature::{SecretError, WebhookSecret, parse_secret_file, parse_secret_list};
use inbox_core::source::{BUILTIN_SOURCE, MappingField, MappingOverrides, Preset, SourceName};
use inbox_core::source_admin::{
    NewSource, RuleOverrides, SourceAdminError, SourceUpdate, create_source, rotate_source_secret,
    update_source,
};
use inbox_core::source_examples::{TOKEN_VARIABLE, claude_code_hooks, sender_example, source_url};
use inbox_core::store::{SecretActivity, SourceActivity, Store, StoreError, StoredSource};
use inbox_server::config::{Config, RuleArgs, SourceCommand};
use time::OffsetDateTime;

use super::manage::open_store;
use super::output::{TerminalText, json_line, rfc3339};
use super::parse_url;
use inbox_core::micros::time_of;

const DAY_US: i64 = 24 * 60 * 60 * 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum SourceCommandError {
    #[error("{0} (`callback-inbox source list` shows the sources)")]
    NotFound(String),
    #[error(transparent)]
    Admin(SourceAdminError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Opening the database: the message says what to fix.
    #[error("{0}")]
    Open(String),
    #[error("--name: {0}")]
    Name(String),
    #[error("--url: {0}")]
    Url(String),
    #[error(
        "nothing to change: pass --id-from, --group-from, --event-from, --workflow-from, --error-from, --mode or --token-header"
    )]
    NothingToChange,
    #[error("the llm-callback secrets from this environment cannot be read: {0}")]
    BuiltinSecrets(String),
}

impl From<SourceAdminError> for SourceCommandError {
    fn from(err: SourceAdminError) -> Self {
        match err {
            err @ SourceAdminError::NotFound(_) => Self::NotFound(err.to_string()),
            err => Self::Admin(err),
        }
    }
}

pub async fn run(command: SourceCommand, config: &Config) -> Result<(), SourceCommandError> {
    // The only command that needs no database: it may run on a laptop.
    if let SourceCommand::Hooks {
        name,
        url,
        through_cli,
    } = command
    {
        return hooks(&name, &url, through_cli);
    }
    let store = open_store(config).await.map_err(SourceCommandError::Open)?;
    let now_us = unix_micros(OffsetDateTime::now_utc());
    match command {
        SourceCommand::Create {
            name,
            preset,
            secret,
            token_header,
            rules,
        } => {
            let kind = Preset::parse(preset.trim());
            let created = create_source(
                &store,
                NewSource {
                    name,
                    preset,
                    secret,
                    token_header,
                    overrides: overrides_of(rules),
                },
                now_us,
            )
            .await?;
            let url = source_url(&config.base_url(), &created.name);
            // The secret alone on stdout, so `SECRET=$(… source create …)` works.
            eprintln!("{}", created_note(&created.name, &url, kind));
            println!("{}", created.secret);
        }
        SourceCommand::List { json } => {
            let items = summaries(&store, config, now_us).await?;
            if json {
                let list = serde_json::to_value(SourceList { items }).unwrap_or_default();
                println!("{}", json_line(&list));
            } else {
                print_table(&items);
            }
        }
        SourceCommand::Rotate { name, secret } => {
            let rotated = rotate_source_secret(&store, &name, secret, now_us).await?;
            eprintln!(
                "new secret {} of source {} (shown once, store it now); the previous ones stay valid for 24 hours:",
                TerminalText(&rotated.label),
                name.trim()
            );
            println!("{}", rotated.secret);
        }
        SourceCommand::Disable { name } => {
            let name = set_enabled(&store, &name, false, now_us).await?;
            println!("disabled source {name}: its URL answers 404 within a second");
        }
        SourceCommand::Enable { name } => {
            let name = set_enabled(&store, &name, true, now_us).await?;
            println!("enabled source {name}");
        }
        SourceCommand::Set {
            name,
            rules,
            mode,
            token_header,
        } => {
            if rules.is_empty() && mode.is_none() && token_header.is_none() {
                return Err(SourceCommandError::NothingToChange);
            }
            let name = update_source(
                &store,
                SourceUpdate {
                    name,
                    mode,
                    enabled: None,
                    token_header,
                    overrides: overrides_of(rules),
                },
                now_us,
            )
            .await?;
            println!("updated source {name}");
            if let Some(source) = summaries(&store, config, now_us)
                .await?
                .into_iter()
                .find(|source| source.name == name)
            {
                for (rule, places) in &source.mapping {
                    println!("  {rule}: {}", TerminalText(places));
                }
                println!("  mode: {}", source.mode);
            }
        }
        SourceCommand::Hooks { .. } => unreachable!("answered above"),
    }
    Ok(())
}

/// `source hooks`: the `hooks` block of Claude Code's `settings.json`.
fn hooks(name: &str, url: &str, through_cli: bool) -> Result<(), SourceCommandError> {
    let name =
        SourceName::parse(name.trim()).map_err(|err| SourceCommandError::Name(err.to_string()))?;
    let base = parse_url(url, "--url").map_err(SourceCommandError::Url)?;
    let base = base.as_str().trim_end_matches('/');
    println!(
        "{}",
        claude_code_hooks(&source_url(base, name.as_str()), through_cli)
    );
    Ok(())
}

/// What to do with a source just created (its secret follows on stdout).
fn created_note(name: &str, url: &str, preset: Option<Preset>) -> String {
    let how = match preset {
        Some(Preset::ClaudeCode) => format!(
            "set {TOKEN_VARIABLE} to it where Claude Code runs, and add the hooks that\n`callback-inbox source hooks --name {name} --url <the inbox's public URL>` prints"
        ),
        Some(preset) => format!(
            "give it to the sender; a test callback (with CALLBACK_INBOX_SECRET set to it):\n{}",
            sender_example(preset, url)
        ),
        None => "give it to the sender".to_owned(),
    };
    format!(
        "source {name} created; its sender POSTs to {url}\n{how}\nits secret (shown once, store it now):"
    )
}

async fn set_enabled(
    store: &Store,
    name: &str,
    enabled: bool,
    now_us: i64,
) -> Result<String, SourceCommandError> {
    Ok(update_source(
        store,
        SourceUpdate {
            name: name.to_owned(),
            enabled: Some(enabled),
            ..SourceUpdate::default()
        },
        now_us,
    )
    .await?)
}

fn overrides_of(rules: RuleArgs) -> RuleOverrides {
    RuleOverrides {
        id_from: rules.id_from,
        group_from: rules.group_from,
        event_from: rules.event_from,
        workflow_from: rules.workflow_from,
        error_from: rules.error_from,
    }
}

/// Every source as the admin API lists it, with this command's
/// environment standing for the server's where the built-in source reads
/// it (its secrets and mode).
async fn summaries(
    store: &Store,
    config: &Config,
    now_us: i64,
) -> Result<Vec<SourceSummary>, SourceCommandError> {
    let stored = store.load_sources(now_us).await?;
    let activity = store.source_activity(now_us - DAY_US).await?;
    let secret_activity = store.source_secret_activity(now_us - DAY_US).await?;
    let builtin = builtin_secrets(store, config, now_us).await?;
    Ok(stored
        .into_iter()
        .filter_map(|source| summary_of(source, config, &builtin, &activity, &secret_activity))
        .collect())
}

/// The built-in source's secrets: the configured ones (as the server
/// reads them), else the generated ones kept in the database.
struct BuiltinSecrets {
    secrets: Vec<WebhookSecret>,
    configured: bool,
}

async fn builtin_secrets(
    store: &Store,
    config: &Config,
    now_us: i64,
) -> Result<BuiltinSecrets, SourceCommandError> {
    let bad = |err: SecretError| SourceCommandError::BuiltinSecrets(err.to_string());
    let mut secrets = Vec::new();
    if let Some(raw) = config
        .webhook_secret
        .as_deref()
        .filter(|raw| !raw.trim().is_empty())
    {
        secrets.extend(parse_secret_list(raw).map_err(bad)?);
    }
    if let Some(path) = &config.webhook_secrets_file {
        let text = std::fs::read_to_string(path).map_err(|err| {
            SourceCommandError::BuiltinSecrets(format!(
                "LLM_WEBHOOK_SECRETS_FILE {}: {err}",
                TerminalText(&path.display().to_string())
            ))
        })?;
        secrets.extend(parse_secret_file(&text).map_err(bad)?);
    }
    if !secrets.is_empty() {
        return Ok(BuiltinSecrets {
            secrets,
            configured: true,
        });
    }
    // Labelled as the server labels them, so their use is found.
    let generated = store
        .generated_secrets(now_us)
        .await?
        .iter()
        .filter_map(|stored| {
            let secret = WebhookSecret::literal(&stored.secret).ok()?;
            let created = time_of(stored.created_at_us).date();
            Some(secret.with_label(format!("generated {created}")))
        })
        .collect();
    Ok(BuiltinSecrets {
        secrets: generated,
        configured: false,
    })
}

fn summary_of(
    source: StoredSource,
    config: &Config,
    builtin: &BuiltinSecrets,
    activity: &HashMap<String, SourceActivity>,
    secret_activity: &HashMap<(String, String), SecretActivity>,
) -> Option<SourceSummary> {
    let row = source.row;
    let Some(preset) = Preset::parse(&row.preset) else {
        eprintln!(
            "warning: source {} has a preset this version does not know ({}); not listed",
            row.name,
            TerminalText(&row.preset)
        );
        return None;
    };
    let overrides: MappingOverrides = serde_json::from_str(&row.mapping).unwrap_or_default();
    let mapping = preset
        .mapping()
        .with_overrides(&overrides)
        .unwrap_or_else(|_| preset.mapping());
    let is_builtin = row.name == BUILTIN_SOURCE;
    let used = |label: &str| {
        secret_activity
            .get(&(row.name.clone(), label.to_owned()))
            .copied()
            .unwrap_or_default()
    };
    let secrets = if is_builtin {
        builtin
            .secrets
            .iter()
            .map(|secret| {
                let use_ = used(secret.label());
                SourceSecretSummary {
                    label: secret.label().to_owned(),
                    masked: secret.masked(),
                    created_at: None,
                    expires_at: None,
                    last_used_at: use_.last_used_at_us.map(time_of),
                    uses_24h: use_.uses_24h,
                }
            })
            .collect()
    } else {
        source
            .secrets
            .iter()
            .map(|stored| {
                let use_ = used(&stored.label);
                SourceSecretSummary {
                    label: stored.label.clone(),
                    masked: WebhookSecret::literal(&stored.secret)
                        .map(|secret| secret.masked())
                        .unwrap_or_else(|_| "••••••••".to_owned()),
                    created_at: Some(time_of(stored.created_at_us)),
                    expires_at: stored.expires_at_us.map(time_of),
                    last_used_at: use_.last_used_at_us.map(time_of),
                    uses_24h: use_.uses_24h,
                }
            })
            .collect()
    };
    let traffic = activity.get(&row.name).copied().unwrap_or_default();
    let url = source_url(&config.base_url(), &row.name);
    let mode = if is_builtin {
        match config.signature_mode {
            SignatureMode::Enforce => "enforce",
            SignatureMode::Flag => "flag",
        }
        .to_owned()
    } else {
        row.mode.clone()
    };
    let rules = |text: &dyn Fn(MappingField) -> Option<String>| -> BTreeMap<String, String> {
        MappingField::ALL
            .into_iter()
            .filter_map(|field| Some((field.as_str().to_owned(), text(field)?)))
            .collect()
    };
    Some(SourceSummary {
        preset: preset.as_str().to_owned(),
        schemes: row.schemes.split(',').map(str::to_owned).collect(),
        example: sender_example(preset, &url),
        url,
        enabled: is_builtin || row.enabled,
        mode,
        token_header: row.token_header.clone(),
        mapping: rules(&|field| mapping.rule(field).map(ToString::to_string)),
        overrides: rules(&|field| overrides.get(field).map(str::to_owned)),
        secrets,
        callbacks_24h: traffic.callbacks_24h,
        last_received_at: traffic.last_received_at_us.map(time_of),
        secrets_from_environment: is_builtin && builtin.configured,
        name: row.name,
    })
}

/// The table of `source list`: one source a line, columns aligned.
fn print_table(items: &[SourceSummary]) {
    let header = [
        "NAME",
        "PRESET",
        "ENABLED",
        "MODE",
        "URL",
        "SECRETS",
        "24H",
        "LAST RECEIVED",
    ];
    let rows: Vec<[String; 8]> = items
        .iter()
        .map(|source| {
            let secrets = source
                .secrets
                .iter()
                .map(|secret| match secret.expires_at {
                    Some(until) => format!("{} (until {})", secret.masked, rfc3339(until)),
                    None => secret.masked.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            [
                source.name.clone(),
                source.preset.clone(),
                if source.enabled { "yes" } else { "no" }.to_owned(),
                source.mode.clone(),
                source.url.clone(),
                if secrets.is_empty() {
                    "-".to_owned()
                } else {
                    secrets
                },
                source.callbacks_24h.to_string(),
                source
                    .last_received_at
                    .map_or_else(|| "never".to_owned(), rfc3339),
            ]
        })
        .collect();
    let mut widths = header.map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (at, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if at + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        // Names and URLs are checked on the way in; escaped all the same.
        TerminalText(text.trim_end()).to_string()
    };
    println!("{}", line(&header.map(str::to_owned)));
    for row in &rows {
        println!("{}", line(row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_source_says_where_to_look() {
        let err = SourceCommandError::from(SourceAdminError::NotFound("ci".to_owned()));
        assert_eq!(
            err.to_string(),
            "no source named ci (`callback-inbox source list` shows the sources)"
        );
    }
}
