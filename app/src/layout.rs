//! The frame of every admin page: header with product name and tabs, the
//! theme toggle, desktop notifications and account menu, the footer, and
//! the live parts (feed, toasts, callback window) that every admin page has.

use leptos::prelude::*;
use leptos_router::hooks::{use_location, use_query_map};

use crate::about::ServerInfoFooter;
use crate::auth::AccountMenu;
use crate::callbacks::attention::{NotificationsToggle, show_unread_count};
use crate::callbacks::feed::LiveFeed;
use crate::callbacks::live::provide_live_state;
use crate::callbacks::toasts::ToastStack;
use crate::callbacks::window::CallbackWindow;
use crate::theme::ThemeToggle;

/// The admin tabs, in order. Each is a real page.
const TABS: &[(&str, &str)] = &[
    ("/admin/callbacks", "Callbacks"),
    ("/admin/deliveries", "Deliveries"),
    ("/admin/users", "Users"),
    ("/admin/settings", "Settings"),
];

#[component]
pub fn AdminLayout(children: Children) -> impl IntoView {
    let location = use_location();
    let live = provide_live_state();

    // `?callback=<id>` opens that callback's window once the page is live.
    let query = use_query_map();
    Effect::new(move |_| {
        if let Some(id) = query
            .read_untracked()
            .get("callback")
            .and_then(|id| id.parse().ok())
        {
            live.open.set(Some(id));
        }
    });
    // The tab title and the favicon carry the unread count: "(3) callback-inbox".
    show_unread_count(live);

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
                    <NotificationsToggle />
                    <AccountMenu />
                </div>
            </header>
            <main id="main" class="app-main" tabindex="-1">
                <crate::settings::banner::InboxWarningsBanner />
                {children()}
            </main>
            <ServerInfoFooter />
            <ToastStack />
            <CallbackWindow />
            <LiveFeed />
        </div>
    }
}
