//! The Settings tab: where senders post, the secrets that verify them (masked,
//! revealed on request) and how much each is still used, the limits in force,
//! and signed examples ready to paste. Read-only: the configuration comes from
//! the environment. Viewers get a plain explanation instead.

use leptos::prelude::*;

use super::clipboard::CopyButton;
use super::format::{human_bytes, human_secs, plural};
use crate::admin::{SecretSummary, SettingsSummary, load_settings, reveal_secret};
use crate::browser;
use crate::error::AppError;

#[component]
pub fn SettingsPage() -> impl IntoView {
    let settings = Resource::new(|| (), |_| load_settings());
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
                    Ok(settings) => view! { <SettingsSections settings /> }.into_any(),
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
fn CodeExample(title: &'static str, code: String, testid: &'static str) -> impl IntoView {
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
