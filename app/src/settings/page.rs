//! The Settings tab: where senders post, the secrets that verify them (masked,
//! revealed on request) and how much each is still used, the limits in force,
//! and signed examples ready to paste, the sources, and the API tokens. The
//! configuration is read-only (it comes from the environment); sources and
//! tokens are managed here. Viewers get a plain explanation instead.

use leptos::prelude::*;

use super::clipboard::CopyButton;
use super::format::{human_bytes, human_secs, plural};
use super::tokens::{CreateToken, RevokeToken, TokenSummary, list_tokens};
use crate::admin::{SecretSummary, SettingsSummary, load_settings, reveal_secret};
use crate::browser;
use crate::error::AppError;
use crate::sources::settings::SourcesSection;
use crate::sources::{CreateSource, RotateSourceSecret, UpdateSource, list_sources};

#[component]
pub fn SettingsPage() -> impl IntoView {
    let create_source = ServerAction::<CreateSource>::new();
    let update_source = ServerAction::<UpdateSource>::new();
    let rotate_source = ServerAction::<RotateSourceSecret>::new();
    // Rotating the built-in source's generated secret changes the secrets
    // listed above the sources too.
    let builtin_rotation = Memo::new(move |_| {
        rotate_source
            .value()
            .get()
            .and_then(Result::ok)
            .filter(|rotated| rotated.name == inbox_core::source::BUILTIN_SOURCE)
            .map(|rotated| rotated.label)
    });
    let settings = Resource::new(move || builtin_rotation.get(), |_| load_settings());
    // Made here, not in `ApiTokens`: the server runs a <Transition>'s
    // children more than once (to find what they read, then to render), so
    // a resource made inside one takes another hydration id on the server
    // than in the browser, which then hydrates with a discarded copy's value.
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_tokens(),
    );
    let sources = Resource::new(
        move || {
            (
                create_source.version().get(),
                update_source.version().get(),
                rotate_source.version().get(),
            )
        },
        |_| list_sources(),
    );
    view! {
        <div class="page-head">
            <div>
                <h1 class="page-title">"Settings"</h1>
                <p class="muted">
                    "How senders reach this inbox. Change these with environment variables and a restart."
                </p>
            </div>
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading the settings…"</p> }>
            {move || {
                settings.get().map(|result| match result {
                    Ok(settings) => view! {
                        <SettingsSections settings />
                        <SourcesSection
                            sources
                            create=create_source
                            update=update_source
                            rotate=rotate_source
                        />
                        <ApiTokens create revoke tokens />
                    }
                    .into_any(),
                    Err(AppError::Forbidden(_)) => view! {
                        <div class="error-state" role="alert">
                            <p>"Only admins can see the settings."</p>
                            <p class="muted">"Ask an admin for the webhook URL and a signed example."</p>
                        </div>
                    }
                    .into_any(),
                    Err(err) => view! {
                        <div class="error-state" role="alert">
                            <p>{format!("Could not load the settings: {err}")}</p>
                            <p>"Reload the page to try again; if it keeps failing, the server log says why."</p>
                        </div>
                    }
                    .into_any(),
                })
            }}
        </Transition>
    }
}

#[component]
fn SettingsSections(settings: SettingsSummary) -> impl IntoView {
    let SettingsSummary {
        webhook_url,
        signature_mode,
        max_body_bytes,
        timestamp_tolerance_secs,
        poll_interval_secs,
        retention_days,
        secrets,
        curl_example,
        send_example,
    } = settings;
    view! {
        <WebhookUrl url=webhook_url />
        <SecretList secrets />
        <Limits
            signature_mode
            max_body_bytes
            timestamp_tolerance_secs
            poll_interval_secs
            retention_days
        />
        <section class="settings-section" aria-labelledby="examples-title">
            <h2 id="examples-title" class="section-title">"Send a signed test callback"</h2>
            <p class="muted">
                "Both read the secret from " <code>"$LLM_WEBHOOK_SECRET"</code>
                ": set it in your shell first (reveal a secret above to copy it)."
            </p>
            <CodeExample title="With curl and openssl" code=curl_example testid="curl-example" />
            <CodeExample title="With the callback-inbox CLI" code=send_example testid="send-example" />
        </section>
    }
}

#[component]
fn WebhookUrl(url: String) -> impl IntoView {
    let copy_text = Signal::stored(Some(url.clone()));
    view! {
        <section class="settings-section" aria-labelledby="url-title">
            <h2 id="url-title" class="section-title">"Webhook URL"</h2>
            <p class="muted">"Senders POST their JSON callbacks here, signed with one of the secrets below."</p>
            <div class="settings-value">
                <code class="settings-url" data-testid="webhook-url">{url}</code>
                <CopyButton text=copy_text label="Copy the webhook URL" />
            </div>
        </section>
    }
}

#[component]
fn SecretList(secrets: Vec<SecretSummary>) -> impl IntoView {
    let rotation_note = (secrets.len() > 1).then(|| {
        view! {
            <p class="muted">
                "The first is current. An old secret whose uses have dropped to zero "
                "is no longer needed by any sender."
            </p>
        }
    });
    view! {
        <section class="settings-section" aria-labelledby="secrets-title">
            <h2 id="secrets-title" class="section-title">"Webhook secrets"</h2>
            {rotation_note}
            {if secrets.is_empty() {
                view! { <p class="muted">"No secret is configured."</p> }.into_any()
            } else {
                view! {
                    <ul class="secret-list">
                        {secrets.into_iter().map(|secret| view! { <SecretItem secret /> }).collect_view()}
                    </ul>
                }
                .into_any()
            }}
        </section>
    }
}

/// One secret: masked until an admin reveals it, with its recent use.
#[component]
fn SecretItem(secret: SecretSummary) -> impl IntoView {
    let SecretSummary {
        label,
        masked,
        last_used_at,
        uses_24h,
    } = secret;
    let revealed = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let toggle = {
        let label = label.clone();
        move |_| {
            if revealed.get_untracked().is_some() {
                revealed.set(None);
                return;
            }
            // Not `disabled` while asking: that would throw keyboard focus away.
            if pending.get_untracked() {
                return;
            }
            let label = label.clone();
            pending.set(true);
            leptos::task::spawn_local(async move {
                match reveal_secret(label).await {
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
    let last_used = last_used_at.map(|at| {
        let machine = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| at.to_string());
        let shown = RwSignal::new(machine.clone());
        Effect::new(move |_| shown.set(browser::local_time(at)));
        (machine, shown)
    });
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
        <li class="secret-item">
            <div class="secret-main">
                <span class="secret-label">{label.clone()}</span>
                <code class="secret-value" data-testid="secret-value" class:revealed=move || revealed.get().is_some()>
                    {move || revealed.get().unwrap_or_else(|| masked.clone())}
                </code>
            </div>
            <p class="secret-usage">
                <span>
                    "Last used: "
                    {match last_used {
                        Some((machine, shown)) => view! { <time datetime=machine>{move || shown.get()}</time> }.into_any(),
                        None => view! { <span class="muted">"never"</span> }.into_any(),
                    }}
                </span>
                <span class:muted=uses_24h == 0>
                    {format!("{} in the last 24 h", plural(u64::try_from(uses_24h).unwrap_or(0), "use"))}
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

#[component]
fn Limits(
    signature_mode: String,
    max_body_bytes: u64,
    timestamp_tolerance_secs: u64,
    poll_interval_secs: u64,
    retention_days: u64,
) -> impl IntoView {
    let mode_note = match signature_mode.as_str() {
        "enforce" => "requests without a valid signature are refused (401)",
        "flag" => "unsigned callbacks are stored, marked invalid",
        _ => "",
    };
    let retention = if retention_days == 0 {
        "kept forever".to_owned()
    } else {
        plural(retention_days, "day")
    };
    view! {
        <section class="settings-section" aria-labelledby="limits-title">
            <h2 id="limits-title" class="section-title">"Verification and limits"</h2>
            <dl class="settings-grid">
                <dt>"Signature mode"</dt>
                <dd>
                    <strong data-testid="signature-mode">{signature_mode}</strong>
                    <span class="muted">{format!(": {mode_note}")}</span>
                </dd>
                <dt>"Body limit"</dt>
                <dd>{human_bytes(max_body_bytes)} <span class="muted">" (larger bodies get 413)"</span></dd>
                <dt>"Timestamp tolerance"</dt>
                <dd>{human_secs(timestamp_tolerance_secs)} <span class="muted">" (Standard Webhooks)"</span></dd>
                <dt>"Dashboard poll"</dt>
                <dd>{format!("every {}", human_secs(poll_interval_secs))}</dd>
                <dt>"Retention"</dt>
                <dd data-testid="retention">{retention}</dd>
            </dl>
        </section>
    }
}

/// A ready-to-paste command in a `<pre>`, with a Copy button.
#[component]
pub(crate) fn CodeExample(
    title: &'static str,
    code: String,
    testid: &'static str,
) -> impl IntoView {
    let copy_text = Signal::stored(Some(code.clone()));
    view! {
        <div class="code-example">
            <div class="code-example-head">
                <h3 class="code-example-title">{title}</h3>
                <CopyButton text=copy_text label=format!("Copy the example {}", title.to_lowercase()) />
            </div>
            <pre tabindex="0" data-testid=testid aria-label=title><code>{code}</code></pre>
        </div>
    }
}

/// A time in UTC from the server, then the browser's local time once hydrated.
pub(crate) fn local_time_view(at: time::OffsetDateTime) -> impl IntoView {
    let machine = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string());
    let shown = RwSignal::new(machine.clone());
    Effect::new(move |_| shown.set(browser::local_time(at)));
    view! { <time datetime=machine>{move || shown.get()}</time> }
}

/// The API tokens of every account, a form that creates one for the signed-in
/// admin (shown once) and a Revoke button on each active token.
/// Its resource comes from `SettingsPage`: none may be made in here.
#[component]
fn ApiTokens(
    create: ServerAction<CreateToken>,
    revoke: ServerAction<RevokeToken>,
    tokens: Resource<Result<Vec<TokenSummary>, AppError>>,
) -> impl IntoView {
    let name_input = NodeRef::<leptos::html::Input>::new();
    // A created token empties the field for the next one.
    Effect::new(move |_| {
        if let Some(Ok(_)) = create.value().get()
            && let Some(input) = name_input.get_untracked()
        {
            input.set_value("");
        }
    });
    let revoke_feedback = move || {
        revoke.value().get().map(|result| match result {
            Ok(token) => view! {
                <p class="tokens-feedback" role="status">
                    {format!("The token {} of {} is revoked.", token.name, token.email)}
                </p>
            }
            .into_any(),
            Err(err) => view! {
                <p class="form-error" role="alert">{format!("Could not revoke it: {err}")}</p>
            }
            .into_any(),
        })
    };
    view! {
        <section class="settings-section" aria-labelledby="tokens-title">
            <h2 id="tokens-title" class="section-title">"API tokens"</h2>
            <p class="muted">
                "Read-only access for " <code>"callback-inbox listen"</code> ", "
                <code>"replay"</code> " and scripts, sent as "
                <code>"Authorization: Bearer <token>"</code> "."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading the tokens…"</p> }>
                {move || {
                    tokens.get().map(|result| match result {
                        Ok(tokens) if tokens.is_empty() => {
                            view! { <p class="muted" data-testid="no-tokens">"No token yet."</p> }.into_any()
                        }
                        Ok(tokens) => view! { <TokensTable tokens revoke /> }.into_any(),
                        Err(err) => view! {
                            <p class="form-error" role="alert">{format!("Could not load the tokens: {err}")}</p>
                        }
                        .into_any(),
                    })
                }}
            </Transition>
            {revoke_feedback}
            <ActionForm action=create attr:class="invite-form token-form">
                <label class="field wide">
                    <span>"Token name"</span>
                    <input
                        type="text"
                        name="name"
                        required
                        maxlength="100"
                        autocomplete="off"
                        placeholder="ci, laptop…"
                        node_ref=name_input
                    />
                </label>
                <button type="submit" class="button primary" disabled=move || create.pending().get()>
                    "Create token"
                </button>
            </ActionForm>
            {move || {
                create.value().get().map(|result| match result {
                    Ok(new_token) => {
                        let copy_text = Signal::stored(Some(new_token.token.clone()));
                        view! {
                            <div class="invite-result token-result" role="status">
                                <p>
                                    "Token " <strong>{new_token.name.clone()}</strong>
                                    " created for your account:"
                                </p>
                                <p class="invite-password">
                                    <code data-testid="new-token">{new_token.token}</code>
                                    <CopyButton text=copy_text label="Copy the new token" />
                                </p>
                                <p class="muted">
                                    "Copy it now: it will not be shown again. Only its hash is stored."
                                </p>
                                <button type="button" class="button" on:click=move |_| create.value().set(None)>
                                    "Done"
                                </button>
                            </div>
                        }
                        .into_any()
                    }
                    Err(err) => view! {
                        <p class="form-error" role="alert">{format!("Could not create the token: {err}")}</p>
                    }
                    .into_any(),
                })
            }}
        </section>
    }
}

#[component]
fn TokensTable(tokens: Vec<TokenSummary>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="history-table tokens-table">
                <caption class="visually-hidden">"API tokens"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Owner"</th>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col">"State"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {tokens.into_iter().map(|token| view! { <TokenRow token revoke /> }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn TokenRow(token: TokenSummary, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    let TokenSummary {
        email,
        name,
        created_at,
        last_used_at,
        revoked_at,
    } = token;
    let active = revoked_at.is_none();
    let data_token = name.clone();
    let action = active.then(|| {
        let label = format!("Revoke the token {name} of {email}");
        let (email, name) = (email.clone(), name.clone());
        view! {
            <button
                type="button"
                class="button small"
                aria-label=label
                disabled=move || revoke.pending().get()
                on:click=move |_| {
                    revoke.dispatch(RevokeToken {
                        email: email.clone(),
                        name: name.clone(),
                    });
                }
            >
                "Revoke"
            </button>
        }
    });
    view! {
        <tr class:revoked-token=!active data-token=data_token>
            <td>{email}</td>
            <td>{name}</td>
            <td class="nowrap">{local_time_view(created_at)}</td>
            <td class="nowrap">
                {match last_used_at {
                    Some(at) => local_time_view(at).into_any(),
                    None => view! { <span class="muted">"never"</span> }.into_any(),
                }}
            </td>
            <td>
                {if active {
                    view! { <span class="badge ok">"active"</span> }.into_any()
                } else {
                    view! { <span class="badge danger">"revoked"</span> }.into_any()
                }}
            </td>
            <td>{action}</td>
        </tr>
    }
}
