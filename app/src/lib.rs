//! The callback-inbox Leptos application: pages, components and server
//! functions. Rendered on the server (`ssr`) and hydrated in the browser
//! (`hydrate`).

pub mod about;
pub mod admin;
pub mod auth;
pub mod browser;
pub mod callbacks;
pub mod deliveries;
pub mod error;
pub mod layout;
pub mod settings;
pub mod sources;
#[cfg(feature = "ssr")]
pub mod state;
pub mod theme;
pub mod url;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::admin::users::UsersPage;
use crate::auth::LoginPage;
use crate::callbacks::history::CallbacksPage;
use crate::deliveries::page::DeliveriesPage;
use crate::layout::AdminLayout;
use crate::settings::page::SettingsPage;

/// The HTML document around the app; rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_page_security_policy(&options);
    let theme = theme::requested_theme();
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <meta name=crate::callbacks::poller::INTERVAL_META content=poll_interval_secs() />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// A nonce for this page's hydration script and the CSP that allows exactly
/// it, the WASM module, and nothing inline.
#[cfg(feature = "ssr")]
fn set_page_security_policy(options: &LeptosOptions) {
    leptos::nonce::provide_nonce();
    let Some(nonce) = leptos::nonce::use_nonce() else {
        return;
    };
    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    // `cargo leptos watch` reloads the page over a websocket on its own port.
    let reload = if options.env == leptos::config::Env::DEV {
        format!(
            " ws://127.0.0.1:{port} ws://localhost:{port}",
            port = options.reload_port
        )
    } else {
        String::new()
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'{reload}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The dashboard poll period, handed to the browser in a meta tag.
fn poll_interval_secs() -> String {
    #[cfg(feature = "ssr")]
    if let Some(state) = use_context::<state::AppState>() {
        return state.settings.poll_interval_secs.to_string();
    }
    "10".to_owned()
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/callback-inbox.css" />
        <Title text="callback-inbox" />
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/login") view=LoginPage />
                // Async: the history table arrives with its data, never empty first.
                <Route path=path!("/admin/callbacks") view=CallbacksRoute ssr=SsrMode::Async />
                <Route path=path!("/admin/users") view=UsersRoute ssr=SsrMode::Async />
                <Route path=path!("/admin/deliveries") view=DeliveriesRoute ssr=SsrMode::Async />
                <Route path=path!("/admin/settings") view=SettingsRoute ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}

#[component]
fn CallbacksRoute() -> impl IntoView {
    view! {
        <AdminLayout>
            <CallbacksPage />
        </AdminLayout>
    }
}

#[component]
fn UsersRoute() -> impl IntoView {
    view! {
        <AdminLayout>
            <UsersPage />
        </AdminLayout>
    }
}

#[component]
fn DeliveriesRoute() -> impl IntoView {
    view! {
        <AdminLayout>
            <DeliveriesPage />
        </AdminLayout>
    }
}

#[component]
fn SettingsRoute() -> impl IntoView {
    view! {
        <AdminLayout>
            <SettingsPage />
        </AdminLayout>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="centered-page">
            <h1>"Page not found"</h1>
            <p><a href="/admin/callbacks">"Go to the callbacks"</a></p>
        </main>
    }
}
