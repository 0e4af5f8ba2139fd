//! The toast stack: one toast per new callback (or one summary for many),
//! announced politely to screen readers, dismissed by hand or after a while
//! on screen: the clock runs only while the page is visible and neither the
//! pointer nor focus is on the toast.

use leptos::prelude::*;

use super::live::{
    Toast, ToastKind, UNVIEWED_HREF, age_secs, live_state, relative_time, unviewed_text,
};

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
        <section
            class="toast-stack"
            aria-live="polite"
            aria-label="Notifications"
            data-feed=move || live.feed.get().as_str()
        >
            <Show when=move || { hidden() > 0 }>
                <a class="toast-more" href=UNVIEWED_HREF>
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
    dismiss_after_a_while(key, held);
    let summary = !matches!(toast.kind, ToastKind::Arrived(_));
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
        ToastKind::Unviewed(count) => {
            view! { <SummaryBody title=unviewed_text(count) /> }.into_any()
        }
        ToastKind::Batch(count) => {
            view! { <SummaryBody title=format!("{count} new callbacks") /> }.into_any()
        }
    };
    view! {
        <div
            class="toast"
            class:summary=summary
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

/// Many callbacks in one toast, with the way to the unviewed list.
#[component]
fn SummaryBody(title: String) -> impl IntoView {
    view! {
        <p class="toast-title">{title}</p>
        <div class="toast-actions">
            <a class="button primary small" href=UNVIEWED_HREF>"Show unviewed"</a>
        </div>
    }
}

/// Removes the toast after it has been on screen, un-held, for a while: one
/// timeout at a time, restarted when the page shows again or the pointer
/// and focus leave, paused otherwise.
fn dismiss_after_a_while(key: u64, held: RwSignal<bool>) {
    #[cfg(feature = "hydrate")]
    {
        let live = live_state();
        let mut remaining = AUTO_DISMISS_MS;
        let mut running: Option<(f64, gloo_timers::callback::Timeout)> = None;
        Effect::new(move |_| {
            let counting = live.visible.get() && !held.get();
            if let Some((started, timer)) = running.take() {
                timer.cancel();
                remaining -= crate::browser::now_ms() - started;
            }
            if counting {
                let timer =
                    gloo_timers::callback::Timeout::new(remaining.max(0.0) as u32, move || {
                        live.dismiss(key)
                    });
                running = Some((crate::browser::now_ms(), timer));
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (key, held, AUTO_DISMISS_MS);
}
