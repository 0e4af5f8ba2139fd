//! The Sources section of the Settings page: every source with its URL,
//! traffic, secrets (masked, revealed on request, rotated), the mapping
//! rules in effect and a ready example; and the form that adds one.
//!
//! Its resource and actions come from `SettingsPage`: a resource made inside
//! a `<Transition>`'s children takes another hydration id on the server than
//! in the browser. Signals made here may be remade when the settings reload;
//! what must outlive that (the secret just shown once) lives in the actions.

use leptos::prelude::*;

use super::{
    CreateSource, CreatedSource, RotateSourceSecret, RotatedSecret, SourceList,
    SourceSecretSummary, SourceSummary, UpdateSource, reveal_source_secret,
};
use crate::error::AppError;
use crate::settings::clipboard::CopyButton;
use crate::settings::format::plural;
use crate::settings::page::{CodeExample, local_time_view};
use inbox_core::source::BUILTIN_SOURCE;
use inbox_core::source_examples::{SECRET_VARIABLE, TOKEN_VARIABLE};

/// Each preset, who sends that way, and what it means for the sender.
const PRESETS: &[(&str, &str, &str)] = &[
    (
        "llm-callback",
        "your LLM job service",
        "Callbacks with job_id and event, signed with X-Webhook-Signature or Standard Webhooks, like the built-in source.",
    ),
    (
        "openai",
        "OpenAI, Gemini, Anthropic agents",
        "Standard Webhooks with a whsec_ secret; a job is the response or batch in data.id.",
    ),
    (
        "replicate",
        "Replicate predictions",
        "Standard Webhooks with a whsec_ secret; a job is the prediction, its event its status.",
    ),
    (
        "github",
        "GitHub webhooks",
        "X-Hub-Signature-256; a job is the repository, the event comes from X-GitHub-Event.",
    ),
    (
        "stripe",
        "Stripe events",
        "Stripe-Signature; a job is the object the event is about.",
    ),
    (
        "claude-code",
        "Claude Code hooks",
        "A bearer token in Authorization; a job is the session, one callback per hook event.",
    ),
    (
        "generic",
        "anything else",
        "X-Webhook-Signature (hex HMAC-SHA256 of the body); ids from Idempotency-Key or the body's hash.",
    ),
];

/// The mapping rules, in the form's order, with an example of each.
const RULES: &[(&str, &str, &str)] = &[
    ("id_from", "Delivery id", "header:Idempotency-Key,sha256"),
    ("group_from", "Job or session", "json:/data/id"),
    ("event_from", "Event", "json:/type"),
    ("workflow_from", "Workflow", "json:/model"),
    ("error_from", "Error", "json:/error"),
];

fn preset_hint(preset: &str) -> &'static str {
    PRESETS
        .iter()
        .find(|(name, _, _)| *name == preset)
        .map_or("", |(_, _, hint)| hint)
}

/// The shell variable a preset's example reads the secret from.
fn secret_variable(preset: &str) -> &'static str {
    if preset == "claude-code" {
        TOKEN_VARIABLE
    } else {
        SECRET_VARIABLE
    }
}

fn example_title(preset: &str) -> &'static str {
    if preset == "claude-code" {
        "The hooks block of Claude Code's settings.json"
    } else {
        "A signed test callback with curl"
    }
}

/// The section: the list, what the last change did, and the new-source form.
#[component]
pub fn SourcesSection(
    sources: Resource<Result<SourceList, AppError>>,
    create: ServerAction<CreateSource>,
    update: ServerAction<UpdateSource>,
    rotate: ServerAction<RotateSourceSecret>,
) -> impl IntoView {
    // The button whose click reloaded the list: it takes the focus back
    // once its card is drawn again, so the keyboard does not lose its place.
    let refocus = RwSignal::new(None::<String>);
    let update_feedback = move || {
        update.value().get().map(|result| match result {
            Ok(source) => {
                let state = if source.enabled {
                    "enabled"
                } else {
                    "disabled: its URL answers 404"
                };
                view! {
                    <p class="tokens-feedback" role="status">
                        {format!("The source {} is {state}.", source.name)}
                    </p>
                }
                .into_any()
            }
            Err(err) => view! {
                <p class="form-error" role="alert">{format!("Could not change the source: {err}")}</p>
            }
            .into_any(),
        })
    };
    let rotate_error = move || {
        rotate.value().get().and_then(Result::err).map(|err| {
            view! {
                <p class="form-error" role="alert">{format!("Could not rotate the secret: {err}")}</p>
            }
        })
    };
    view! {
        <section class="settings-section" aria-labelledby="sources-title" data-testid="sources">
            <h2 id="sources-title" class="section-title">"Sources"</h2>
            <p class="muted">
                "Each kind of sender has its own URL, credentials and field mapping. "
                <code class="nowrap">{BUILTIN_SOURCE}</code> " is built in."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading the sources…"</p> }>
                {move || {
                    sources.get().map(|result| match result {
                        Ok(list) => view! {
                            <ul class="source-list">
                                {list
                                    .items
                                    .into_iter()
                                    .map(|source| view! { <SourceCard source update rotate refocus /> })
                                    .collect_view()}
                            </ul>
                        }
                        .into_any(),
                        Err(err) => view! {
                            <p class="form-error" role="alert">{format!("Could not load the sources: {err}")}</p>
                        }
                        .into_any(),
                    })
                }}
            </Transition>
            {update_feedback}
            {rotate_error}
            <NewSourceForm create />
        </section>
    }
}

/// One source: what it is, where it posts, its traffic, secrets, rules and example.
#[component]
fn SourceCard(
    source: SourceSummary,
    update: ServerAction<UpdateSource>,
    rotate: ServerAction<RotateSourceSecret>,
    refocus: RwSignal<Option<String>>,
) -> impl IntoView {
    let SourceSummary {
        name,
        preset,
        schemes,
        url,
        enabled,
        mode,
        token_header,
        mapping,
        overrides,
        secrets,
        callbacks_24h,
        last_received_at,
        secrets_from_environment,
        example,
    } = source;
    let builtin = name == BUILTIN_SOURCE;
    let title_id = format!("source-{name}-title");
    let toggle_ref = NodeRef::<leptos::html::Button>::new();
    let rotate_ref = NodeRef::<leptos::html::Button>::new();
    {
        let (toggle_key, rotate_key) = (format!("toggle:{name}"), format!("rotate:{name}"));
        Effect::new(move |_| {
            let wanted = refocus.get_untracked();
            let target = match wanted.as_deref() {
                Some(key) if key == toggle_key => toggle_ref.get_untracked(),
                Some(key) if key == rotate_key => rotate_ref.get_untracked(),
                _ => return,
            };
            if let Some(button) = target {
                let _ = button.focus();
                refocus.set(None);
            }
        });
    }
    let toggle = (!builtin).then(|| {
        let name = name.clone();
        let verb = if enabled { "Disable" } else { "Enable" };
        let label = format!("{verb} the source {name}");
        view! {
            <button
                type="button"
                class="button small"
                aria-label=label
                node_ref=toggle_ref
                disabled=move || update.pending().get()
                on:click=move |_| {
                    refocus.set(Some(format!("toggle:{name}")));
                    update.dispatch(UpdateSource {
                        name: name.clone(),
                        mode: None,
                        enabled: Some(!enabled),
                        token_header: None,
                        id_from: None,
                        group_from: None,
                        event_from: None,
                        workflow_from: None,
                        error_from: None,
                    });
                }
            >
                {verb}
            </button>
        }
    });
    let url_copy = Signal::stored(Some(url.clone()));
    let traffic = view! {
        <p class="source-traffic">
            <span class:muted=callbacks_24h == 0>
                {format!("{} in 24 h", plural(u64::try_from(callbacks_24h).unwrap_or(0), "callback"))}
            </span>
            <span>
                "Last received: "
                {match last_received_at {
                    Some(at) => local_time_view(at).into_any(),
                    None => view! { <span class="muted">"never"</span> }.into_any(),
                }}
            </span>
        </p>
    };
    let scheme_text = match token_header.as_deref() {
        Some(header) if schemes.iter().any(|s| s == "token") => {
            format!("{} (header {header})", schemes.join(", "))
        }
        _ => schemes.join(", "),
    };
    let rotated = {
        let name = name.clone();
        move || {
            let rotated = rotate.value().get()?.ok()?;
            (rotated.name == name).then(|| view! { <RotatedSecretNote rotated rotate /> })
        }
    };
    let rotate_button = (!secrets_from_environment).then(|| {
        let name = name.clone();
        view! {
            <button
                type="button"
                class="button small"
                aria-label=format!("Rotate the secret of {name}")
                node_ref=rotate_ref
                disabled=move || rotate.pending().get()
                on:click=move |_| {
                    refocus.set(Some(format!("rotate:{name}")));
                    rotate.dispatch(RotateSourceSecret {
                        name: name.clone(),
                        secret: None,
                    });
                }
            >
                "Rotate"
            </button>
        }
    });
    let environment_note = secrets_from_environment.then(|| {
        view! {
            <p class="muted source-note">
                "Its secrets come from " <code>"LLM_WEBHOOK_SECRET"</code>
                ": change them there and restart."
            </p>
        }
    });
    let secret_items = secrets
        .into_iter()
        .map(|secret| view! { <SourceSecretItem source=name.clone() secret /> })
        .collect_view();
    let variable = secret_variable(&preset);
    let (mode_class, mode_title) = if mode == "flag" {
        (
            "badge danger",
            "Unsigned callbacks are stored, marked invalid",
        )
    } else {
        (
            "badge neutral",
            "Requests without a valid signature are refused",
        )
    };
    let (card_name, heading_id) = (name.clone(), title_id.clone());
    view! {
        <li class="source-card" data-source=card_name aria-labelledby=title_id>
            <div class="source-head">
                <h3 id=heading_id class="source-name">{name.clone()}</h3>
                <span class="badge info">
                    <span class="visually-hidden">"preset "</span>
                    {preset.clone()}
                </span>
                {if enabled {
                    view! { <span class="badge ok">"enabled"</span> }.into_any()
                } else {
                    view! { <span class="badge danger">"disabled"</span> }.into_any()
                }}
                <span class=mode_class title=mode_title>{mode}</span>
                <span class="source-head-actions">{toggle}</span>
            </div>
            <div class="source-url-row">
                <code class="settings-url" data-testid="source-url">{url}</code>
                <CopyButton text=url_copy label=format!("Copy the URL of {name}") />
            </div>
            {traffic}
            <p class="source-scheme muted">"Verified by: " {scheme_text}</p>
            <div class="source-secrets-head">
                <h4 class="source-subtitle">"Secrets"</h4>
                {rotate_button}
            </div>
            {environment_note}
            <ul class="secret-list">{secret_items}</ul>
            {rotated}
            <h4 class="source-subtitle">"Mapping in effect"</h4>
            <MappingRules mapping overrides />
            <details class="source-example">
                <summary>"Ready example"</summary>
                <p class="muted">
                    "Set " <code>{format!("${variable}")}</code> " to one of its secrets first."
                </p>
                <CodeExample title=example_title(&preset) code=example testid="source-example" />
            </details>
        </li>
    }
}

/// The rules the source maps callbacks with; overridden ones say so.
#[component]
fn MappingRules(
    mapping: std::collections::BTreeMap<String, String>,
    overrides: std::collections::BTreeMap<String, String>,
) -> impl IntoView {
    let rows = RULES
        .iter()
        .map(|(rule, label, _)| {
            let value = mapping.get(*rule).cloned();
            let overridden = overrides.contains_key(*rule);
            view! {
                <dt>{*label}</dt>
                <dd>
                    {match value {
                        Some(value) => view! { <code>{value}</code> }.into_any(),
                        None => view! { <span class="muted">"—"</span> }.into_any(),
                    }}
                    {overridden.then(|| view! { <span class="muted">" (overridden)"</span> })}
                </dd>
            }
        })
        .collect_view();
    view! { <dl class="settings-grid mapping-grid">{rows}</dl> }
}

/// One secret of a source: masked until revealed, with its age and use.
#[component]
fn SourceSecretItem(source: String, secret: SourceSecretSummary) -> impl IntoView {
    let SourceSecretSummary {
        label,
        masked,
        created_at,
        expires_at,
        last_used_at,
        uses_24h,
    } = secret;
    let revealed = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let toggle = {
        let (source, label) = (source.clone(), label.clone());
        move |_| {
            if revealed.get_untracked().is_some() {
                revealed.set(None);
                return;
            }
            // Not `disabled` while asking: that would throw keyboard focus away.
            if pending.get_untracked() {
                return;
            }
            let (source, label) = (source.clone(), label.clone());
            pending.set(true);
            leptos::task::spawn_local(async move {
                match reveal_source_secret(source, label).await {
                    Ok(secret) => {
                        revealed.set(Some(secret));
                        error.set(None);
                    }
                    Err(err) => error.set(Some(format!("Could not reveal it: {err}"))),
                }
                pending.set(false);
            });
        }
    };
    let reveal_label = {
        let label = label.clone();
        move || {
            let verb = if revealed.get().is_some() {
                "Hide"
            } else {
                "Reveal"
            };
            format!("{verb} the secret {label}")
        }
    };
    view! {
        <li class="secret-item" class:expiring=expires_at.is_some()>
            <div class="secret-main">
                <span class="secret-label">{label.clone()}</span>
                <code class="secret-value" data-testid="source-secret-value" class:revealed=move || revealed.get().is_some()>
                    {move || revealed.get().unwrap_or_else(|| masked.clone())}
                </code>
            </div>
            <p class="secret-usage">
                {created_at.map(|at| view! { <span>"Added " {local_time_view(at)}</span> })}
                {expires_at.map(|at| {
                    view! {
                        <span>
                            <span class="badge neutral">"rotated out"</span>
                            " valid until "
                            {local_time_view(at)}
                        </span>
                    }
                })}
                <span>
                    "Last used: "
                    {match last_used_at {
                        Some(at) => local_time_view(at).into_any(),
                        None => view! { <span class="muted">"never"</span> }.into_any(),
                    }}
                </span>
                <span class:muted=uses_24h == 0>
                    {format!("{} in 24 h", plural(u64::try_from(uses_24h).unwrap_or(0), "use"))}
                </span>
            </p>
            <div class="secret-actions">
                <button
                    type="button"
                    class="button small"
                    aria-label=reveal_label
                    aria-busy=move || pending.get().then_some("true")
                    on:click=toggle
                >
                    {move || if revealed.get().is_some() { "Hide" } else { "Reveal" }}
                </button>
                <CopyButton
                    text=revealed
                    label=format!("Copy the secret {label}")
                    missing="Reveal the secret first, then copy it."
                />
            </div>
            {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
        </li>
    }
}

/// The secret a rotation just added, shown this once.
#[component]
fn RotatedSecretNote(
    rotated: RotatedSecret,
    rotate: ServerAction<RotateSourceSecret>,
) -> impl IntoView {
    let copy_text = Signal::stored(Some(rotated.secret.clone()));
    view! {
        <div class="invite-result source-result" role="status">
            <p>
                "New secret " <strong>{rotated.label}</strong> " of " <strong>{rotated.name}</strong> ":"
            </p>
            <p class="invite-password">
                <code data-testid="rotated-secret">{rotated.secret}</code>
                <CopyButton text=copy_text label="Copy the new secret" />
            </p>
            <p class="muted">
                "Give it to the sender now. The previous one stays valid 24 h, so nothing is refused meanwhile."
            </p>
            <button type="button" class="button" on:click=move |_| rotate.value().set(None)>
                "Done"
            </button>
        </div>
    }
}

/// Name, preset, optional secret and optional rule overrides; on success
/// the secret (shown once) and the ready example.
#[component]
fn NewSourceForm(create: ServerAction<CreateSource>) -> impl IntoView {
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let preset = RwSignal::new(PRESETS[0].0.to_owned());
    // A created source empties the form for the next one.
    Effect::new(move |_| {
        if let Some(Ok(_)) = create.value().get()
            && let Some(form) = form_ref.get_untracked()
        {
            form.reset();
            preset.set(PRESETS[0].0.to_owned());
        }
    });
    let preset_options = PRESETS
        .iter()
        .map(|(name, who, _)| view! { <option value=*name>{format!("{name} · {who}")}</option> })
        .collect_view();
    let rule_fields = RULES
        .iter()
        .map(|(rule, label, example)| {
            view! {
                <label class="field">
                    <span>{*label} " " <code class="field-code">{*rule}</code></span>
                    <input type="text" name=*rule autocomplete="off" spellcheck="false" placeholder=*example />
                </label>
            }
        })
        .collect_view();
    view! {
        <div class="new-source">
            <h3 class="source-subtitle" id="new-source-title">"New source"</h3>
            <ActionForm action=create node_ref=form_ref attr:class="invite-form new-source-form" attr:aria-labelledby="new-source-title">
                // Each hint sits under its field, outside the <label>, so it
                // describes the field without becoming part of its name.
                <div class="field-group name-group">
                    <label class="field">
                        <span>"Name"</span>
                        <input
                            type="text"
                            name="name"
                            required
                            maxlength="40"
                            pattern="[a-z0-9][a-z0-9\\-]{0,39}"
                            autocomplete="off"
                            spellcheck="false"
                            placeholder="claude-code"
                            aria-describedby="source-name-hint"
                        />
                    </label>
                    <p class="field-hint muted" id="source-name-hint">
                        "Lowercase letters, digits and dashes; the URL becomes "
                        <code>"/api/webhooks/<name>"</code> "."
                    </p>
                </div>
                <div class="field-group">
                    <label class="field">
                        <span>"Preset"</span>
                        <select
                            name="preset"
                            aria-describedby="source-preset-hint"
                            on:change=move |ev| preset.set(event_target_value(&ev))
                        >
                            {preset_options}
                        </select>
                    </label>
                    <p class="field-hint muted" id="source-preset-hint" aria-live="polite">
                        {move || preset_hint(&preset.get())}
                    </p>
                </div>
                <div class="field-group">
                    <label class="field">
                        <span>"Secret (optional)"</span>
                        <input
                            type="text"
                            name="secret"
                            autocomplete="off"
                            spellcheck="false"
                            placeholder="generated when empty"
                            aria-describedby="source-secret-hint"
                        />
                    </label>
                    <p class="field-hint muted" id="source-secret-hint">
                        "The sender's own (a whsec_… from OpenAI or Replicate, GitHub's or Stripe's signing secret), or empty for a new one."
                    </p>
                </div>
                <details class="mapping-overrides">
                    <summary>"Mapping overrides (optional)"</summary>
                    <fieldset>
                        <legend class="visually-hidden">"Mapping overrides"</legend>
                        <p class="muted field-hint">
                            "Where each field is read from, instead of the preset's rule: places tried in order, "
                            "separated by commas: " <code>"header:Name"</code> ", " <code>"json:/pointer"</code>
                            ", several joined by " <code>"+"</code> ", and " <code>"sha256"</code> " (ids only)."
                        </p>
                        <div class="rule-fields">
                            {rule_fields}
                            <label class="field">
                                <span>"Token header " <code class="field-code">"token_header"</code></span>
                                <input
                                    type="text"
                                    name="token_header"
                                    autocomplete="off"
                                    spellcheck="false"
                                    placeholder="Authorization (Bearer)"
                                />
                            </label>
                        </div>
                    </fieldset>
                </details>
                <div class="new-source-actions">
                    <button type="submit" class="button primary" disabled=move || create.pending().get()>
                        "Create source"
                    </button>
                </div>
            </ActionForm>
            {move || {
                create.value().get().map(|result| match result {
                    Ok(created) => view! { <CreatedSourceNote created create /> }.into_any(),
                    Err(err) => view! {
                        <p class="form-error" role="alert">{format!("Could not create the source: {err}")}</p>
                    }
                    .into_any(),
                })
            }}
        </div>
    }
}

/// A source just created: its URL, its secret (this once) and the example.
#[component]
fn CreatedSourceNote(created: CreatedSource, create: ServerAction<CreateSource>) -> impl IntoView {
    let CreatedSource { source, secret } = created;
    let secret_copy = Signal::stored(Some(secret.clone()));
    let variable = secret_variable(&source.preset);
    let title = example_title(&source.preset);
    view! {
        <div class="invite-result source-result" role="status" data-testid="created-source">
            <p>
                "Source " <strong>{source.name.clone()}</strong> " created. Senders post to "
                <code>{source.url.clone()}</code> "."
            </p>
            <p class="invite-password">
                <code data-testid="created-secret">{secret}</code>
                <CopyButton text=secret_copy label=format!("Copy the secret of {}", source.name) />
            </p>
            <p class="muted">
                "Copy it now: it is not shown again unless an admin reveals it. "
                "Set " <code>{format!("${variable}")}</code> " to it where the sender runs."
            </p>
            <CodeExample title code=source.example testid="created-example" />
            <button type="button" class="button" on:click=move |_| create.value().set(None)>
                "Done"
            </button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inbox_core::source::{Preset, SourceName};

    #[test]
    fn the_form_offers_every_preset_with_a_hint() {
        let offered: Vec<&str> = PRESETS.iter().map(|(name, _, _)| *name).collect();
        let known: Vec<&str> = Preset::ALL.iter().map(|preset| preset.as_str()).collect();
        assert_eq!(offered, known);
        assert!(
            PRESETS
                .iter()
                .all(|(name, _, _)| !preset_hint(name).is_empty())
        );
    }

    #[test]
    fn claude_code_reads_a_token_and_the_rest_a_secret() {
        assert_eq!(secret_variable("claude-code"), TOKEN_VARIABLE);
        assert_eq!(secret_variable("github"), SECRET_VARIABLE);
    }

    #[test]
    fn placeholder_rules_name_real_places() {
        for (rule, _, example) in RULES {
            assert!(
                inbox_core::source::FieldRule::parse(example).is_ok(),
                "{rule}: {example}"
            );
        }
        assert!(SourceName::parse(BUILTIN_SOURCE).is_ok());
    }
}
