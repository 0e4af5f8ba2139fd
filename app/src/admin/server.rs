//! Server-only half of the admin API: account changes with their rules,
//! and the mapping of store errors to status codes.

pub use crate::auth::server::require_user;
pub use crate::callbacks::server::store;
pub use inbox_core::accounts::Role;

use inbox_core::accounts::{AccountError, User, normalize_email, random_password};
use inbox_core::ingest::{SignatureMode, unix_micros};
use inbox_core::log_text::LogText;
use time::OffsetDateTime;

use super::{InboxWarnings, Invitation, SecretSummary, SettingsSummary, UserSummary};
use crate::callbacks::server::now_us;
use crate::error::AppError;
use crate::state::AppState;
use inbox_core::micros::time_of;

/// The status code of each account error: what the admin can fix is a 400
/// with the store's message; the rest is logged and hidden.
pub fn account_error(err: AccountError) -> AppError {
    match err {
        AccountError::UnknownUser(_) => AppError::NotFound(err.to_string()),
        AccountError::DuplicateEmail(_)
        | AccountError::InvalidEmail(_)
        | AccountError::LastAdmin(_)
        | AccountError::PasswordTooShort => AppError::BadRequest(err.to_string()),
        AccountError::Hashing(_) | AccountError::Store(_) => AppError::internal(err),
    }
}

pub fn parse_role(raw: &str) -> Result<Role, AppError> {
    raw.trim().parse().map_err(AppError::BadRequest)
}

pub fn user_summary(user: User) -> UserSummary {
    UserSummary {
        email: user.email,
        role: user.role.as_str().to_owned(),
        disabled: user.disabled,
        created_at: time_of(user.created_at_us),
        last_login_at: user.last_login_at_us.map(time_of),
    }
}

/// Whether `email` names the signed-in admin's own account.
fn is_self(admin: &User, email: &str) -> Result<bool, AppError> {
    let email = normalize_email(email).map_err(account_error)?;
    Ok(email == admin.email)
}

pub async fn invite(admin: &User, email: &str, role: Role) -> Result<Invitation, AppError> {
    let state = crate::state::app_state()?;
    // Checked before the (slow) hash, so a typo is answered at once.
    let email = normalize_email(email).map_err(account_error)?;
    let password = random_password();
    let hash = state.hasher.hash(&password).await.map_err(account_error)?;
    let user = state
        .store
        .create_user(&email, &hash, role, now_us())
        .await
        .map_err(account_error)?;
    tracing::info!(
        admin = %admin.email,
        user = %LogText::new(&user.email),
        role = role.as_str(),
        "user invited"
    );
    Ok(Invitation {
        email: user.email,
        role: user.role.as_str().to_owned(),
        password,
    })
}

pub async fn change_role(admin: &User, email: &str, role: Role) -> Result<UserSummary, AppError> {
    if role != Role::Admin && is_self(admin, email)? {
        return Err(AppError::BadRequest(
            "you cannot remove your own admin role; another admin can".into(),
        ));
    }
    let user = store()?
        .set_role(email, role)
        .await
        .map_err(account_error)?;
    tracing::info!(
        admin = %admin.email,
        user = %LogText::new(&user.email),
        role = role.as_str(),
        "role changed"
    );
    Ok(user_summary(user))
}

pub async fn change_disabled(
    admin: &User,
    email: &str,
    disabled: bool,
) -> Result<UserSummary, AppError> {
    if disabled && is_self(admin, email)? {
        return Err(AppError::BadRequest(
            "you cannot disable your own account; another admin can".into(),
        ));
    }
    let user = store()?
        .set_disabled(email, disabled, now_us())
        .await
        .map_err(account_error)?;
    tracing::info!(
        admin = %admin.email,
        user = %LogText::new(&user.email),
        disabled,
        "account {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(user_summary(user))
}

pub async fn settings_summary(state: &AppState) -> Result<SettingsSummary, AppError> {
    let webhook = &state.webhook;
    let now = OffsetDateTime::now_utc();
    let uses = state
        .store
        .secret_uses(unix_micros(now))
        .await
        .map_err(AppError::internal)?;
    let webhook_url = format!(
        "{}/api/webhooks/llm-callback",
        webhook.base_url.trim_end_matches('/')
    );
    Ok(SettingsSummary {
        signature_mode: match webhook.ingest.mode {
            SignatureMode::Enforce => "enforce",
            SignatureMode::Flag => "flag",
        }
        .to_owned(),
        max_body_bytes: u64::try_from(webhook.max_body_bytes).unwrap_or(u64::MAX),
        timestamp_tolerance_secs: webhook.ingest.timestamp_tolerance_secs,
        poll_interval_secs: state.settings.poll_interval_secs,
        retention_days: state.settings.retention_days,
        secrets: webhook
            .secrets
            .current()
            .iter()
            .map(|secret| {
                let used = uses.iter().find(|used| used.label == secret.label());
                SecretSummary {
                    label: secret.label().to_owned(),
                    masked: secret.masked(),
                    last_used_at: used.map(|used| time_of(used.last_used_at_us)),
                    uses_24h: used.map_or(0, |used| used.uses_24h),
                }
            })
            .collect(),
        curl_example: inbox_core::ingest::curl_example(&webhook.base_url),
        send_example: format!(
            "echo '{{\"job_id\":\"job_demo\",\"event\":\"workflow.completed\"}}' | \\\n  callback-inbox send - --url {webhook_url} --secret \"$LLM_WEBHOOK_SECRET\""
        ),
        webhook_url,
    })
}

/// The whole secret with `label`; logged (without the secret) as an admin action.
pub fn reveal(admin: &User, state: &AppState, label: &str) -> Result<String, AppError> {
    let secrets = state.webhook.secrets.current();
    let secret = secrets
        .iter()
        .find(|secret| secret.label() == label)
        .ok_or_else(|| AppError::NotFound(format!("no secret labelled {label:?}")))?;
    tracing::info!(admin = %admin.email, label = %LogText::new(label), "webhook secret revealed");
    Ok(secret.reveal().to_owned())
}

/// Asked by every admin page of every viewer: the secret uses come from the
/// node's shared computation, up to 5 s old.
pub async fn warnings(state: &AppState) -> Result<InboxWarnings, AppError> {
    let uses = state
        .store
        .secret_uses_cached(unix_micros(OffsetDateTime::now_utc()))
        .await
        .map_err(AppError::internal)?;
    let secrets = state.webhook.secrets.current();
    Ok(InboxWarnings {
        flag_mode: state.webhook.ingest.mode == SignatureMode::Flag,
        secret_unused: !secrets
            .iter()
            .any(|secret| uses.iter().any(|used| used.label == secret.label())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_errors_get_the_status_an_admin_can_act_on() {
        let status = |err| account_error(err).status_code();
        assert_eq!(status(AccountError::UnknownUser("a@b".into())), 404);
        assert_eq!(status(AccountError::DuplicateEmail("a@b".into())), 400);
        assert_eq!(status(AccountError::InvalidEmail("ab".into())), 400);
        assert_eq!(status(AccountError::PasswordTooShort), 400);
        assert_eq!(status(AccountError::Hashing("x".into())), 500);
    }

    #[test]
    fn roles_are_admin_or_viewer() {
        assert_eq!(parse_role(" admin").unwrap(), Role::Admin);
        assert_eq!(parse_role("viewer").unwrap(), Role::Viewer);
        assert_eq!(parse_role("owner").unwrap_err().status_code(), 400);
    }
}
