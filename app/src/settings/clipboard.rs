//! Copy buttons. `navigator.clipboard` exists only in secure contexts (HTTPS
//! or localhost), so every copy checks for it ([`browser::write_clipboard`])
//! and says plainly when it is missing or refused, instead of failing silently.

use leptos::prelude::*;

use crate::browser;

/// What the last click of a copy button did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CopyStatus {
    Copied,
    Failed(String),
}

/// A "Copy" button with its outcome beside it, announced to screen readers.
/// `text` is `None` while there is nothing to copy; a click then says `missing`.
#[component]
pub fn CopyButton(
    #[prop(into)] text: Signal<Option<String>>,
    /// The button's accessible name, starting with "Copy".
    #[prop(into)]
    label: String,
    #[prop(optional, into)] missing: Option<String>,
) -> impl IntoView {
    let status = RwSignal::new(None::<CopyStatus>);
    let clicks = StoredValue::new(0u32);
    let missing = missing.unwrap_or_else(|| "Nothing to copy yet.".to_owned());
    let click = move |_| {
        let Some(value) = text.get_untracked() else {
            status.set(Some(CopyStatus::Failed(missing.clone())));
            return;
        };
        clicks.update_value(|n| *n += 1);
        let click = clicks.get_value();
        leptos::task::spawn_local(async move {
            match browser::write_clipboard(&value).await {
                Ok(()) => {
                    status.set(Some(CopyStatus::Copied));
                    // "Copied" fades after a moment, unless a newer click owns it.
                    set_timeout(
                        move || {
                            if clicks.try_get_value() == Some(click) {
                                status.try_set(None);
                            }
                        },
                        std::time::Duration::from_secs(3),
                    );
                }
                Err(message) => status.set(Some(CopyStatus::Failed(message.to_owned()))),
            }
        });
    };
    view! {
        <span class="copy">
            <button type="button" class="button small" aria-label=label on:click=click>
                "Copy"
            </button>
            <span
                class="copy-status"
                class:error-text=move || matches!(status.get(), Some(CopyStatus::Failed(_)))
                role="status"
            >
                {move || match status.get() {
                    Some(CopyStatus::Copied) => "Copied".to_owned(),
                    Some(CopyStatus::Failed(message)) => message,
                    None => String::new(),
                }}
            </span>
        </span>
    }
}
