//! Start-up side of accounts: the bootstrap admin and the session layer.

use crate::session_records::SessionRecords;
use inbox_core::accounts::{PasswordHasherPool, Role, random_password};
use inbox_core::ingest::unix_micros;
use inbox_core::store::Store;
use time::OffsetDateTime;
use tower_sessions::cookie::SameSite;
use tower_sessions::{ExpiredDeletion, Expiry, SessionManagerLayer};

use crate::StartupError;
use crate::config::Config;

pub const SESSION_COOKIE: &str = "inbox_session";
const DEFAULT_ADMIN: &str = "admin@localhost";

/// `INBOX_ADMIN_EMAIL` + `INBOX_ADMIN_PASSWORD` create that admin when no
/// such account exists; an existing one is left alone (the CLI manages it,
/// and a restart must not undo `admin disable` or a password reset). With
/// neither and no users, `admin@localhost` gets a random password, printed
/// once.
pub async fn bootstrap_admin(
    store: &Store,
    hasher: &PasswordHasherPool,
    config: &Config,
) -> Result<(), StartupError> {
    let now_us = unix_micros(OffsetDateTime::now_utc());
    match (&config.admin_email, &config.admin_password) {
        (Some(email), Some(password)) => {
            if store
                .user_by_email(&email.trim().to_lowercase())
                .await?
                .is_some()
            {
                tracing::info!(
                    email = %email.trim(),
                    "INBOX_ADMIN_EMAIL exists already; left as it is (manage it with `callback-inbox admin`)"
                );
                return Ok(());
            }
            let hash = hasher.hash(password).await?;
            if store.create_admin_if_missing(email, &hash, now_us).await? {
                tracing::info!(email = %email.trim(), "admin account created from the configuration");
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(StartupError::Config(
                "set INBOX_ADMIN_EMAIL and INBOX_ADMIN_PASSWORD together".to_owned(),
            ));
        }
        (None, None) if store.count_users().await? == 0 => {
            let password = random_password();
            let hash = hasher.hash(&password).await?;
            store
                .create_user(DEFAULT_ADMIN, &hash, Role::Admin, now_us)
                .await?;
            println!(
                "\n==== An admin account was created ====\nEmail:    {DEFAULT_ADMIN}\nPassword: {password}\n\
                 (shown once; change it with: callback-inbox admin reset-password --email {DEFAULT_ADMIN})\n"
            );
        }
        (None, None) => {}
    }
    Ok(())
}

/// Server-side sessions in the database: HttpOnly, SameSite=Lax cookie,
/// Secure when configured, idle expiry; expired rows are swept hourly.
pub async fn session_layer(
    store: &Store,
    config: &Config,
) -> Result<(SessionManagerLayer<SessionRecords>, SessionRecords), StartupError> {
    let session_store = SessionRecords::open(store.db())
        .await
        .map_err(StartupError::Sessions)?;
    let sweeper = session_store.clone();
    tokio::spawn(async move {
        if let Err(err) = sweeper
            .continuously_delete_expired(tokio::time::Duration::from_secs(3600))
            .await
        {
            tracing::warn!(error = %err, "expired session sweeper stopped");
        }
    });
    let idle =
        time::Duration::seconds(i64::try_from(config.session_idle_secs).unwrap_or(i64::MAX / 2));
    let layer = SessionManagerLayer::new(session_store.clone())
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure_cookies)
        .with_expiry(Expiry::OnInactivity(idle));
    Ok((layer, session_store))
}
