//! Administration: managing users and the settings page's data.
//!
//! Every server function under `/api/admin/` starts with
//! `require_user(Role::Admin)`: 401 without a session, 403 for a viewer.
//! No answer ever carries a password hash or a whole webhook secret; the one
//! password that leaves the server is an invited user's generated password,
//! once, to the admin who invited them.

#[cfg(feature = "ssr")]
pub mod server;
pub mod users;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::AppError;

/// One account, as the Users page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub email: String,
    /// `admin` or `viewer`.
    pub role: String,
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
}

/// A new account and its generated password, shown once to the inviting admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub email: String,
    pub role: String,
    pub password: String,
}

/// What the settings page shows: the webhook's configuration, read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsSummary {
    /// Where senders POST their callbacks.
    pub webhook_url: String,
    /// `enforce` or `flag`.
    pub signature_mode: String,
    pub max_body_bytes: u64,
    pub timestamp_tolerance_secs: u64,
    pub poll_interval_secs: u64,
    /// Callbacks and audit rows older than this many days are deleted; 0 keeps all.
    pub retention_days: u64,
    /// The secrets that verify signatures, current first; never the secrets themselves.
    pub secrets: Vec<SecretSummary>,
    /// A signed test request, ready to paste; it reads the secret from `$LLM_WEBHOOK_SECRET`.
    pub curl_example: String,
    /// The same with the companion CLI.
    pub send_example: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSummary {
    /// Where the secret came from.
    pub label: String,
    /// Enough of it to tell secrets apart, never enough to sign with.
    pub masked: String,
    /// When it last verified a request, if it ever did.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Requests it verified in the last 24 hours.
    pub uses_24h: i64,
}

/// Conditions every admin page warns about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxWarnings {
    /// `INBOX_SIGNATURE_MODE=flag`: unsigned callbacks are stored.
    pub flag_mode: bool,
    /// No sender has used any current secret yet.
    pub secret_unused: bool,
}

/// Every account, by email.
#[server(prefix = "/api", endpoint = "admin/users")]
pub async fn list_users() -> Result<Vec<UserSummary>, AppError> {
    use self::server::*;
    require_user(Role::Admin).await?;
    let users = store()?.list_users().await.map_err(account_error)?;
    Ok(users.into_iter().map(user_summary).collect())
}

/// Creates an account with a generated password and returns that password.
#[server(prefix = "/api", endpoint = "admin/users/invite")]
pub async fn invite_user(email: String, role: String) -> Result<Invitation, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    invite(&admin, &email, parse_role(&role)?).await
}

/// Makes an account an admin or a viewer. Admins cannot demote themselves,
/// so there is always an admin left to undo a mistake.
#[server(prefix = "/api", endpoint = "admin/users/set-role")]
pub async fn set_user_role(email: String, role: String) -> Result<UserSummary, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    change_role(&admin, &email, parse_role(&role)?).await
}

/// Disables an account (its sessions end with their next request) or
/// enables it again. Admins cannot disable themselves.
#[server(prefix = "/api", endpoint = "admin/users/set-disabled")]
pub async fn set_user_disabled(email: String, disabled: bool) -> Result<UserSummary, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    change_disabled(&admin, &email, disabled).await
}

/// The webhook's configuration for the settings page, secrets masked.
#[server(prefix = "/api", endpoint = "admin/settings")]
pub async fn load_settings() -> Result<SettingsSummary, AppError> {
    use self::server::*;
    require_user(Role::Admin).await?;
    settings_summary(&crate::state::app_state()?).await
}

/// One whole secret, by its label: only on an admin's explicit request.
#[server(prefix = "/api", endpoint = "admin/settings/reveal-secret")]
pub async fn reveal_secret(label: String) -> Result<String, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    reveal(&admin, &crate::state::app_state()?, &label)
}

/// What every admin page warns about (any signed-in user may ask).
#[server(prefix = "/api", endpoint = "inbox/warnings")]
pub async fn load_warnings() -> Result<InboxWarnings, AppError> {
    use self::server::*;
    require_user(Role::Viewer).await?;
    warnings(&crate::state::app_state()?).await
}
