//! Server-side state that every server function and page can reach through
//! Leptos context (provided per request by the server crate).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use inbox_core::accounts::{ArgonTurns, LoginThrottle, PasswordHasherPool};
use inbox_core::ingest::{IngestSettings, SecretRing};
use inbox_core::source_registry::SourceRegistry;
use inbox_core::store::Store;
use leptos::config::LeptosOptions;

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub hasher: PasswordHasherPool,
    pub settings: Arc<DashboardSettings>,
    /// The webhook's secrets and settings, for the settings page.
    pub webhook: WebhookView,
    pub started_at: Instant,
}

/// What the settings page shows of the webhook.
#[derive(Clone)]
pub struct WebhookView {
    pub secrets: SecretRing,
    /// Every source; admins' changes reload it at once.
    pub sources: SourceRegistry,
    pub ingest: IngestSettings,
    pub max_body_bytes: usize,
    /// The URL senders use, e.g. `http://127.0.0.1:3000`.
    pub base_url: String,
}

/// The client's address as the server decided it (trusted proxies applied),
/// put into every request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

/// Dashboard behaviour the operator configures.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    /// Per-address turns for password checks.
    pub argon_turns: Arc<ArgonTurns>,
    pub poll_interval_secs: u64,
    /// Callbacks and audit rows older than this are deleted (0 keeps all).
    pub retention_days: u64,
    /// Absolute session lifetime, whatever the activity.
    pub session_max_secs: u64,
    pub login_throttle: LoginThrottle,
}

impl axum::extract::FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The state of the current request, or an internal error when the server
/// forgot to provide it.
pub fn app_state() -> Result<AppState, crate::error::AppError> {
    leptos::prelude::use_context::<AppState>()
        .ok_or_else(|| crate::error::AppError::internal("AppState missing from context"))
}

/// The value of cookie `name` on the request being served, if it carries one.
pub fn request_cookie(name: &str) -> Option<String> {
    let parts = leptos::prelude::use_context::<http::request::Parts>()?;
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value.to_owned())
}
