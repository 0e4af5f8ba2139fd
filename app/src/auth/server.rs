//! Server half of authentication: sessions, the role guard, throttling.

use std::net::IpAddr;

use inbox_core::accounts::{LoginReservation, PasswordHasherPool, Role, User, account_address_key};
use inbox_core::ingest::unix_micros;
use inbox_core::log_text::LogText;
use leptos::prelude::*;
use time::OffsetDateTime;
use tower_sessions::Session;
use uuid::Uuid;

use super::safe_next;
use crate::error::AppError;
use crate::state::{AppState, ClientAddress, app_state};
use crate::url::encode_query_value;

const SESSION_USER_ID: &str = "user_id";
const SESSION_LOGIN_AT: &str = "login_at_us";

fn now_us() -> i64 {
    unix_micros(OffsetDateTime::now_utc())
}

async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(|err| AppError::internal(format!("no session layer: {err}")))
}

/// The user of a session, if it is signed in, not expired and not disabled.
/// Ends sessions that are no longer valid.
pub async fn session_user(session: &Session, state: &AppState) -> Result<Option<User>, AppError> {
    let user_id = session
        .get::<Uuid>(SESSION_USER_ID)
        .await
        .map_err(AppError::internal)?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let login_at = session
        .get::<i64>(SESSION_LOGIN_AT)
        .await
        .map_err(AppError::internal)?
        .unwrap_or(0);
    let max_age_us =
        i64::try_from(state.settings.session_max_secs).unwrap_or(i64::MAX / 2) * 1_000_000;
    let user = state
        .store
        .user_by_id(user_id)
        .await
        .map_err(AppError::internal)?;
    match user {
        Some(user)
            if !user.disabled
                && login_at > user.sessions_valid_after_us
                && now_us() - login_at < max_age_us =>
        {
            Ok(Some(user))
        }
        _ => {
            session.flush().await.map_err(AppError::internal)?;
            Ok(None)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header, if the request
/// has one. A request with such a header is a script's, never a browser's
/// own: it is judged by its token alone, whatever cookie comes with it.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The user an API token reads as: `None` when it is unknown, revoked, or
/// its user is disabled.
pub async fn token_user(token: &str, state: &AppState) -> Result<Option<User>, AppError> {
    state
        .store
        .user_by_token(token, now_us())
        .await
        .map_err(AppError::internal)
}

/// The reader of a request that only reads (poll, stream, detail, history,
/// export, deliveries, `auth/me`): the bearer token's user when the request
/// carries one, else the session's. `None`: neither is valid (401).
pub async fn reader(
    headers: &http::HeaderMap,
    session: &Session,
    state: &AppState,
) -> Result<Option<User>, AppError> {
    match bearer_token(headers) {
        Some(token) => token_user(token, state).await,
        None => session_user(session, state).await,
    }
}

fn request_headers() -> http::HeaderMap {
    use_context::<http::request::Parts>()
        .map(|parts| parts.headers)
        .unwrap_or_default()
}

/// The guard of the read-only server functions: a signed-in user of any
/// role, or a valid API token (README, "Admin API").
pub async fn require_reader() -> Result<User, AppError> {
    let state = app_state()?;
    let session = session().await?;
    reader(&request_headers(), &session, &state)
        .await?
        .ok_or(AppError::Unauthorized)
}

/// The guard every other server function but `login` starts with. API
/// tokens are read-only: a valid one gets 403 here, an invalid one 401.
pub async fn require_user(min_role: Role) -> Result<User, AppError> {
    let state = app_state()?;
    if let Some(token) = bearer_token(&request_headers()) {
        return match token_user(token, &state).await? {
            Some(_) => Err(AppError::Forbidden(
                "API tokens are read-only; sign in to do this".to_owned(),
            )),
            None => Err(AppError::Unauthorized),
        };
    }
    let session = session().await?;
    let user = session_user(&session, &state)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if user.role < min_role {
        return Err(AppError::Forbidden(format!(
            "this needs the {} role",
            min_role.as_str()
        )));
    }
    Ok(user)
}

/// Whether the request is a plain HTML form post (no JS), which wants a
/// redirect rather than a JSON error.
fn is_plain_form_post() -> bool {
    use_context::<http::request::Parts>().is_some_and(|parts| {
        parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
    })
}

fn client_ip() -> Option<IpAddr> {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ClientAddress>().copied())
        .map(|address| address.0)
}

pub async fn sign_in(email: &str, password: &str, next: Option<&str>) -> Result<(), AppError> {
    let state = app_state()?;
    let result = check_credentials(&state, email, password).await;
    let user = match result {
        Ok(user) => user,
        Err(err) if is_plain_form_post() => {
            // Without JS the browser shows whatever we answer: send it back to the form.
            let reason = if matches!(err, AppError::TooManyRequests { .. }) {
                "throttled"
            } else {
                "invalid"
            };
            let next = safe_next(next);
            leptos_axum::redirect(&format!(
                "/login?error={reason}&next={}",
                encode_query_value(next)
            ));
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let session = session().await?;
    // A fresh id at login: a session id planted before sign-in is worthless.
    session.cycle_id().await.map_err(AppError::internal)?;
    session
        .insert(SESSION_USER_ID, user.id)
        .await
        .map_err(AppError::internal)?;
    session
        .insert(SESSION_LOGIN_AT, now_us())
        .await
        .map_err(AppError::internal)?;
    state
        .store
        .touch_last_login(user.id, now_us())
        .await
        .map_err(AppError::internal)?;
    tracing::info!(user = %user.email, "signed in");
    leptos_axum::redirect(safe_next(next));
    Ok(())
}

async fn check_credentials(
    state: &AppState,
    email: &str,
    password: &str,
) -> Result<User, AppError> {
    let throttle = &state.settings.login_throttle;
    let address = client_ip();
    let keys = throttle.keys(email, address);
    let window_us = i64::try_from(throttle.window.as_micros()).unwrap_or(i64::MAX);
    let window_start = now_us() - window_us;
    // The attempt is recorded before the password is checked, so parallel
    // guesses cannot all slip under the limit.
    let reservation = state
        .store
        .reserve_login_attempt(&keys, window_start, now_us())
        .await
        .map_err(AppError::internal)?;
    let LoginReservation::Reserved {
        ids,
        earlier_failures,
    } = reservation
    else {
        tracing::info!(email = %LogText::new(email), address = ?address, "sign-in throttled");
        return Err(AppError::TooManyRequests {
            retry_after_secs: throttle.window.as_secs(),
        });
    };
    // One Argon2 run at a time per address: a burst from one address cannot
    // take every hashing slot from everyone else.
    let _turn = state.settings.argon_turns.wait_turn(address).await;
    tokio::time::sleep(throttle.delay_after(earlier_failures)).await;

    let hasher: &PasswordHasherPool = &state.hasher;
    let found = state
        .store
        .user_by_email(&email.trim().to_lowercase())
        .await
        .map_err(AppError::internal)?;
    let verified = match &found {
        Some((_, hash)) => hasher.verify(password, hash).await,
        None => {
            hasher.verify_nothing(password).await;
            false
        }
    };
    match found {
        Some((user, _)) if verified && !user.disabled => {
            let address = address.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
            state
                .store
                .forgive_login_attempts(
                    &ids,
                    &account_address_key(&user.email, &address),
                    window_start,
                )
                .await
                .map_err(AppError::internal)?;
            Ok(user)
        }
        _ => {
            tracing::info!(email = %LogText::new(email), address = ?address, "sign-in failed");
            Err(AppError::Unauthorized)
        }
    }
}

pub async fn sign_out() -> Result<(), AppError> {
    require_user(Role::Viewer).await?;
    let session = session().await?;
    session.flush().await.map_err(AppError::internal)?;
    leptos_axum::redirect("/login");
    Ok(())
}
