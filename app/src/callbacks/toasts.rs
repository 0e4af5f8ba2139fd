//! The toast stack: one toast per new callback, announced politely to
//! screen readers, dismissed by hand or after a while (never while the
//! pointer or focus is on it).

use leptos::prelude::*;

use super::live::{Toast, ToastKind, age_secs, live_state, relative_time};

/// Toasts shown at once; the rest are counted in a "+N more" link.
pub const VISIBLE_TOASTS: usize = 5;
const AUTO_DISMISS_MS: f64 = 15_000.0;

#[component]
pub fn ToastStack() -> impl IntoView {
    let live = live_state();
    let visible = move || {
        let toasts = live.toasts.get();
        let skip = toasts.len().saturating_sub(VISIBLE_TOASTS);
        toasts.into_iter().skip(skip).collect::<Vec<_>>()
    };
    let hidden = move || {
        live.toasts
            .with(|toasts| toasts.len().saturating_sub(VISIBLE_TOASTS))
    };
    view! {
        <section class="toast-stack" aria-live="polite" aria-label="Notifications">
            <Show when=move || { hidden() > 0 }>
                <a class="toast-more" href="/admin/callbacks?viewed=false">
                    {move || format!("+{} more", hidden())}
                </a>
            </Show>
            <For each=visible key=|toast| toast.key let:toast>
                <ToastCard toast />
            </For>
        </section>
    }
}

#[component]
fn ToastCard(toast: Toast) -> impl IntoView {
    let live = live_state();
    let key = toast.key;
    let held = RwSignal::new(false);
    start_auto_dismiss(key, held);
    let body = match toast.kind {
        ToastKind::Arrived(item) => {
            let failed = item
                .event_type
                .as_deref()
                .is_some_and(|e| e.ends_with(".failed"));
            let id = item.id;
            let created_at = item.created_at;
            let when = RwSignal::new(String::new());
            Effect::new(move |_| when.set(relative_time(age_secs(created_at))));
            view! {
                <p class="toast-title">"New LLM callback received"</p>
                <p class="toast-line">
                    <span class="toast-workflow">{item.workflow_name.unwrap_or_else(|| "(no workflow)".into())}</span>
                    " · "
                    <span class="toast-event" class:failed=failed>
                        {item.event_type.unwrap_or_else(|| "(no event)".into())}
                    </span>
                </p>
                <p class="toast-time muted">{move || when.get()}</p>
                <div class="toast-actions">
                    <button
                        type="button"
                        class="button primary small"
                        on:click=move |_| {
                            live.open.set(Some(id));
                            live.dismiss(key);
                        }
                    >
                        "View details"
                    </button>
                </div>
            }
            .into_any()
        }
        ToastKind::Backlog(count) => view! {
            <p class="toast-title">{format!("{count} unviewed callbacks")}</p>
            <div class="toast-actions">
                <a class="button primary small" href="/admin/callbacks?viewed=false">"Show them"</a>
            </div>
        }
        .into_any(),
    };
    view! {
        <div
            class="toast"
            role="status"
            on:mouseenter=move |_| held.set(true)
            on:mouseleave=move |_| held.set(false)
            on:focusin=move |_| held.set(true)
            on:focusout=move |_| held.set(false)
        >
            <button
                type="button"
                class="toast-close"
                aria-label="Dismiss notification"
                on:click=move |_| live.dismiss(key)
            >
                "×"
            </button>
            {body}
        </div>
    }
}

/// Removes the toast after it has been shown, un-held, for a while.
fn start_auto_dismiss(key: u64, held: RwSignal<bool>) {
    #[cfg(feature = "hydrate")]
    {
        let live = live_state();
        leptos::task::spawn_local(async move {
            let mut shown_ms = 0.0;
            while shown_ms < AUTO_DISMISS_MS {
                gloo_timers::future::TimeoutFuture::new(250).await;
                match held.try_get_untracked() {
                    None => return, // already gone
                    Some(true) => {}
                    Some(false) => shown_ms += 250.0,
                }
            }
            live.dismiss(key);
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (key, held, AUTO_DISMISS_MS);
}
