//! The frame of every admin page: header with product name and tabs, the
//! theme toggle, and the footer.

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::about::ServerInfoFooter;
use crate::auth::AccountMenu;
use crate::theme::ThemeToggle;

/// The admin tabs, in order. Each is a real page.
const TABS: &[(&str, &str)] = &[("/admin/callbacks", "Callbacks")];

#[component]
pub fn AdminLayout(children: Children) -> impl IntoView {
    let location = use_location();
    view! {
        <div class="app">
            <a class="skip-link" href="#main">"Skip to content"</a>
            <header class="app-header">
                <a class="brand" href="/admin/callbacks">
                    <span class="brand-mark" aria-hidden="true"></span>
                    "callback-inbox"
                </a>
                <nav class="tabs" aria-label="Sections">
                    {TABS
                        .iter()
                        .map(|(href, label)| {
                            let current = move || {
                                (location.pathname.get() == *href).then_some("page")
                            };
                            view! {
                                <a class="tab" href=*href aria-current=current>
                                    {*label}
                                </a>
                            }
                        })
                        .collect_view()}
                </nav>
                <div class="header-actions">
                    <ThemeToggle />
                    <AccountMenu />
                </div>
            </header>
            <main id="main" class="app-main" tabindex="-1">
                {children()}
            </main>
            <ServerInfoFooter />
        </div>
    }
}
