//! Server-side state that every server function and page can reach through
//! Leptos context (provided per request by the server crate).

use std::sync::Arc;
use std::time::Instant;

use inbox_core::accounts::PasswordHasherPool;
use inbox_core::store::Store;
use leptos::config::LeptosOptions;

use crate::auth::server::LoginThrottle;

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub hasher: PasswordHasherPool,
    pub settings: Arc<DashboardSettings>,
    pub started_at: Instant,
}

/// Dashboard behaviour the operator configures.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    pub poll_interval_secs: u64,
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
