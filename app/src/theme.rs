//! Light and dark theme.
//!
//! The choice lives in a `theme` cookie so the server renders the page in
//! the right theme (no flash, no inline script). Without the cookie the CSS
//! follows the operating system (`prefers-color-scheme`).

use leptos::prelude::*;

pub const THEME_COOKIE: &str = "theme";

/// The theme the request asked for via its cookie: `Some("light" | "dark")`.
pub fn requested_theme() -> Option<&'static str> {
    #[cfg(feature = "ssr")]
    {
        crate::state::request_cookie(THEME_COOKIE).and_then(|value| match value.as_str() {
            "light" => Some("light"),
            "dark" => Some("dark"),
            _ => None,
        })
    }
    #[cfg(not(feature = "ssr"))]
    {
        None
    }
}

/// Switches between light and dark and remembers the choice.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    view! {
        <button
            type="button"
            class="icon-button theme-toggle"
            aria-label="Switch between light and dark theme"
            title="Switch theme"
            on:click=move |_| toggle_theme()
        >
            <span class="theme-icon" aria-hidden="true"></span>
        </button>
    }
}

fn toggle_theme() {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let Some(window) = web_sys::window() else {
            return;
        };
        let Some(document) = window.document() else {
            return;
        };
        let Some(root) = document.document_element() else {
            return;
        };
        let current = match root.get_attribute("data-theme").as_deref() {
            Some("dark") => "dark",
            Some("light") => "light",
            _ => {
                let prefers_dark = window
                    .match_media("(prefers-color-scheme: dark)")
                    .ok()
                    .flatten()
                    .is_some_and(|query| query.matches());
                if prefers_dark { "dark" } else { "light" }
            }
        };
        let next = if current == "dark" { "light" } else { "dark" };
        let _ = root.set_attribute("data-theme", next);
        if let Ok(html) = document.dyn_into::<web_sys::HtmlDocument>() {
            let _ = html.set_cookie(&format!(
                "{THEME_COOKIE}={next}; Path=/; Max-Age=31536000; SameSite=Lax"
            ));
        }
    }
}
