//! Signing in and out, and who is signed in.
//!
//! Every server function except [`login`] starts with
//! `require_user(Role::…)`: 401 without a valid session, 403 when the role
//! is not enough (or for an API token: tokens are read-only). The read-only
//! ones start with `require_reader()` instead, which also accepts an
//! `Authorization: Bearer` API token. The user always comes from the
//! session or the token, never from the request's fields.

#[cfg(feature = "ssr")]
pub mod server;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The signed-in user, as the browser may know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub email: String,
    pub role: String,
}

/// Checks the credentials, starts a new session and redirects to `next`
/// (same-site paths only) or the callbacks tab.
#[server(prefix = "/api", endpoint = "auth/login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    server::sign_in(&email, &password, next.as_deref()).await
}

/// Ends the session on the server and goes back to the sign-in page.
#[server(prefix = "/api", endpoint = "auth/logout")]
pub async fn logout() -> Result<(), AppError> {
    server::sign_out().await
}

/// Who is signed in.
#[server(prefix = "/api", endpoint = "auth/me")]
pub async fn current_user() -> Result<SessionUser, AppError> {
    let user = server::require_reader().await?;
    Ok(SessionUser {
        email: user.email,
        role: user.role.as_str().to_owned(),
    })
}

/// Only relative paths on this site may be a `next` target.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => "/admin/callbacks",
    }
}

/// Shown when the server refused to queue the password check (a 429 with a
/// short `Retry-After`): many sign-ins are being checked at once.
const BUSY: &str = "Many sign-ins are being checked right now. Try again in a few seconds.";

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let query_error = move || match query.read().get("error").as_deref() {
        Some("throttled") => {
            Some("Too many attempts. Wait a few minutes and try again.".to_owned())
        }
        Some("busy") => Some(BUSY.to_owned()),
        Some(_) => Some("Wrong email or password.".to_owned()),
        None => None,
    };
    let error = move || match login.value().get() {
        Some(Err(AppError::TooManyRequests { retry_after_secs })) if retry_after_secs < 60 => {
            Some(BUSY.to_owned())
        }
        Some(Err(AppError::TooManyRequests { retry_after_secs })) => Some(format!(
            "Too many attempts. Try again in {} minutes.",
            retry_after_secs.div_ceil(60)
        )),
        Some(Err(AppError::Unauthorized | AppError::BadRequest(_))) => {
            Some("Wrong email or password.".to_owned())
        }
        Some(Err(err)) => Some(err.to_string()),
        Some(Ok(())) => None,
        None => query_error(),
    };
    view! {
        <main class="login-page">
            <div class="login-card">
                <div class="brand login-brand">
                    <span class="brand-mark" aria-hidden="true"></span>
                    "callback-inbox"
                </div>
                <h1>"Sign in"</h1>
                <ActionForm action=login attr:class="login-form">
                    <input type="hidden" name="next" value=next />
                    <label for="login-email">"Email"</label>
                    <input
                        id="login-email"
                        name="email"
                        type="email"
                        autocomplete="username"
                        required
                        autofocus
                    />
                    <label for="login-password">"Password"</label>
                    <input
                        id="login-password"
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                    />
                    <p class="form-error" role="alert">{error}</p>
                    <button class="button primary" type="submit" disabled=move || login.pending().get()>
                        "Sign in"
                    </button>
                </ActionForm>
            </div>
        </main>
    }
}

/// The signed-in user's email and the sign-out control, for the header.
#[component]
pub fn AccountMenu() -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user());
    let logout = ServerAction::<Logout>::new();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                user.get()
                    .and_then(Result::ok)
                    .map(|user| view! { <span class="account-email" title=user.role.clone()>{user.email}</span> })
            }}
        </Suspense>
        <ActionForm action=logout attr:class="logout-form">
            <button class="button" type="submit">"Sign out"</button>
        </ActionForm>
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_must_be_a_path_on_this_site() {
        assert_eq!(
            safe_next(Some("/admin/callbacks?callback=1")),
            "/admin/callbacks?callback=1"
        );
        for hostile in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/admin/callbacks", "{hostile}");
        }
        assert_eq!(safe_next(None), "/admin/callbacks");
    }
}
