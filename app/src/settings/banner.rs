//! The warnings every admin page carries at its top: flag mode (unsigned
//! callbacks are being stored) and a webhook secret no sender has used yet.
//!
//! Loaded with a resource that the server awaits, so the banner arrives with
//! the page: nothing is rendered until it is known, and hydration finds the
//! same markup (no flash, no mismatch).

use leptos::prelude::*;

use crate::admin::{InboxWarnings, load_warnings};
use crate::callbacks::live::LiveState;

#[component]
pub fn InboxWarningsBanner() -> impl IntoView {
    // Arriving callbacks may answer "secret unused": look again when they do.
    let changes = use_context::<LiveState>().map(|live| live.changes);
    let warnings = Resource::new(
        move || changes.map(|changes| changes.get()),
        |_| load_warnings(),
    );
    view! {
        <Transition fallback=|| ()>
            {move || {
                warnings
                    .get()
                    .and_then(Result::ok)
                    .filter(|w| w.flag_mode || w.secret_unused)
                    .map(|warnings| view! { <WarningList warnings /> })
            }}
        </Transition>
    }
}

#[component]
fn WarningList(warnings: InboxWarnings) -> impl IntoView {
    view! {
        <aside class="inbox-warnings" aria-label="Inbox warnings">
            {warnings.flag_mode.then(|| view! {
                <p class="inbox-warning danger" data-testid="warning-flag-mode">
                    <span class="inbox-warning-mark" aria-hidden="true"></span>
                    <span>
                        <strong>"Signature mode is flag:"</strong>
                        " unsigned callbacks are stored, marked invalid."
                    </span>
                </p>
            })}
            {warnings.secret_unused.then(|| view! {
                <p class="inbox-warning info" data-testid="warning-secret-unused">
                    <span class="inbox-warning-mark" aria-hidden="true"></span>
                    <span>
                        "No sender has used the webhook secret yet. See "
                        <a href="/admin/settings">"Settings"</a>
                        " for the URL and a signed example."
                    </span>
                </p>
            })}
        </aside>
    }
}
