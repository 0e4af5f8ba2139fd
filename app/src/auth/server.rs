//! Server half of authentication: sessions, the role guard, throttling.

use std::net::IpAddr;

use inbox_core::accounts::{
    DeviceToken, KnownDevice, Lane, LoginReservation, LoginThrottle, Role, User,
};
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
/// role, or a valid API token (docs/api.md, "API tokens").
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

/// The device cookie: a random token by which a browser that signed in to
/// an account before is recognised at its next sign-in (see
/// [`inbox_core::accounts::LoginThrottle`]).
pub const DEVICE_COOKIE: &str = "inbox_device";

/// The device token the request's cookies carry, if any.
fn device_token() -> Option<DeviceToken> {
    crate::state::request_cookie(DEVICE_COOKIE).and_then(|value| DeviceToken::parse(&value))
}

/// Sets the device cookie: HttpOnly, SameSite=Lax, Secure when configured
/// (as the session cookie), for the device lifetime.
fn set_device_cookie(token: &DeviceToken, throttle: &LoginThrottle) -> Result<(), AppError> {
    use tower_sessions::cookie::{Cookie, SameSite, time::Duration};
    let max_age = i64::try_from(throttle.device_lifetime.as_secs()).unwrap_or(i64::MAX / 2);
    let cookie = Cookie::build((DEVICE_COOKIE, token.as_str()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(throttle.secure_cookies)
        .max_age(Duration::seconds(max_age))
        .build();
    let value = http::HeaderValue::from_str(&cookie.to_string()).map_err(AppError::internal)?;
    use_context::<leptos_axum::ResponseOptions>()
        .ok_or_else(|| AppError::internal("ResponseOptions missing from context"))?
        .append_header(http::header::SET_COOKIE, value);
    Ok(())
}

fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

pub async fn sign_in(email: &str, password: &str, next: Option<&str>) -> Result<(), AppError> {
    let state = app_state()?;
    let presented = device_token();
    let result = check_credentials(&state, email, password, presented.as_ref()).await;
    let (user, device) = match result {
        Ok(found) => found,
        Err(err) if is_plain_form_post() => {
            // Without JS the browser shows whatever we answer: send it back to the form.
            let reason = match err {
                AppError::TooManyRequests { retry_after_secs } if retry_after_secs < 60 => "busy",
                AppError::TooManyRequests { .. } => "throttled",
                _ => "invalid",
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
    // This browser is a known device of the account from now on: its next
    // sign-ins have their own budget and hashing slot. A known one keeps
    // its token (refreshed); any other gets a new one.
    let throttle = &state.settings.login_throttle;
    let token = match (device, presented) {
        (Some(_), Some(token)) => token,
        _ => DeviceToken::generate(),
    };
    state
        .store
        .remember_device(
            user.id,
            &token,
            now_us(),
            now_us() - micros(throttle.device_lifetime),
        )
        .await
        .map_err(AppError::internal)?;
    set_device_cookie(&token, throttle)?;
    tracing::info!(user = %user.email, "signed in");
    leptos_axum::redirect(safe_next(next));
    Ok(())
}

/// Checks a sign-in attempt: admitted to the hasher's queue (429 at once
/// when it is full), counted in the database (429 over any limit), and only
/// then its password checked. A known device of the account counts under
/// its own key and has its own lane and hashing slot.
async fn check_credentials(
    state: &AppState,
    email: &str,
    password: &str,
    presented: Option<&DeviceToken>,
) -> Result<(User, Option<KnownDevice>), AppError> {
    let throttle = &state.settings.login_throttle;
    let address = client_ip();
    let window_start = now_us() - micros(throttle.window);
    let device = match presented {
        Some(token) => state
            .store
            .known_device(token, email, now_us() - micros(throttle.device_lifetime))
            .await
            .map_err(AppError::internal)?,
        None => None,
    };
    let (keys, lane) = match &device {
        Some(device) => (throttle.device_keys(device), Lane::KnownDevice),
        None => (throttle.keys(email, address), Lane::Stranger),
    };
    // One check at a time per address group: a burst from one address (or
    // one IPv6 /64) waits for its own turns and cannot take the queue from
    // everyone else. A known device skips the strangers' turns.
    let _turn = match lane {
        Lane::Stranger => state.settings.argon_turns.wait_turn(address).await,
        Lane::KnownDevice => None,
    };
    // A place in the hasher's queue first: when it is full the attempt is
    // refused at once, before it costs a database write, so a crowd of
    // guessers cannot hold up the owner's sign-in in the database either.
    let Ok(ticket) = state.hasher.admit(lane) else {
        tracing::info!(email = %LogText::new(email), address = ?address, ?lane, "sign-in refused: the password checks queue is full");
        return Err(AppError::TooManyRequests {
            retry_after_secs: 1,
        });
    };
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
        tracing::info!(email = %LogText::new(email), address = ?address, ?lane, "sign-in throttled");
        return Err(AppError::TooManyRequests {
            retry_after_secs: throttle.window.as_secs(),
        });
    };
    tokio::time::sleep(throttle.delay_after(earlier_failures)).await;

    let found = state
        .store
        .user_by_email(&email.trim().to_lowercase())
        .await
        .map_err(AppError::internal)?;
    let verified = match &found {
        Some((_, hash)) => ticket.verify(password, hash).await,
        None => {
            ticket.verify_nothing(password).await;
            false
        }
    };
    match found {
        Some((user, _)) if verified && !user.disabled => {
            let forgiven = keys
                .iter()
                .find(|key| key.forgiven)
                .map_or("", |key| key.key.as_str());
            state
                .store
                .forgive_login_attempts(&ids, forgiven, window_start)
                .await
                .map_err(AppError::internal)?;
            Ok((user, device))
        }
        _ => {
            tracing::info!(email = %LogText::new(email), address = ?address, ?lane, "sign-in failed");
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
