//! Accounts, sessions, the role guard, CSRF protection and security headers,
//! over real HTTP.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use inbox_core::accounts::{PasswordHasherPool, Role};
use serde_json::Value;
use support::{ADMIN_EMAIL, ADMIN_PASSWORD, TestServer, session_cookie};

const VIEWER_EMAIL: &str = "viewer@example.com";
const VIEWER_PASSWORD: &str = "viewer password 12345";

async fn add_viewer(server: &TestServer) {
    let store = server.store().await;
    let hash = PasswordHasherPool::default()
        .hash(VIEWER_PASSWORD)
        .await
        .unwrap();
    store
        .create_user(VIEWER_EMAIL, &hash, Role::Viewer, 0)
        .await
        .unwrap();
}

/// What `/api/auth/me` answers for this session cookie.
async fn me_status(server: &TestServer, cookie: &str) -> reqwest::StatusCode {
    server
        .call("/api/auth/me", Some(cookie), &[])
        .await
        .status()
}

/// Valid arguments for every server function, by endpoint. The guard tests
/// fail when a server function exists that is not listed here.
fn valid_arguments() -> BTreeMap<&'static str, Vec<(&'static str, &'static str)>> {
    let id = "0190f2b4-7a51-7cc2-9a5e-3f1f4b2c9d10";
    BTreeMap::from([
        (
            "/api/auth/login",
            vec![("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        ),
        ("/api/auth/logout", vec![]),
        ("/api/auth/me", vec![]),
        ("/api/server-status", vec![]),
        ("/api/callbacks/poll", vec![("after", ""), ("limit", "5")]),
        ("/api/callbacks/detail", vec![("id", id)]),
        ("/api/callbacks/mark-viewed", vec![("id", id)]),
        ("/api/callbacks/mark-all-viewed", vec![]),
        ("/api/callbacks/history", vec![("q", "job")]),
        ("/api/callbacks/sources", vec![]),
        ("/api/admin/users", vec![]),
        (
            "/api/admin/users/invite",
            vec![("email", "invited@example.com"), ("role", "viewer")],
        ),
        (
            "/api/admin/users/set-role",
            vec![("email", VIEWER_EMAIL), ("role", "viewer")],
        ),
        (
            "/api/admin/users/set-disabled",
            vec![("email", VIEWER_EMAIL), ("disabled", "false")],
        ),
        ("/api/admin/settings", vec![]),
        (
            "/api/admin/settings/reveal-secret",
            vec![("label", "LLM_WEBHOOK_SECRET #1")],
        ),
        // Called in path order, so the admin's revoke finds the token its
        // create made just before.
        ("/api/admin/tokens", vec![]),
        ("/api/admin/tokens/create", vec![("name", "guard-check")]),
        (
            "/api/admin/tokens/revoke",
            vec![("email", ADMIN_EMAIL), ("name", "guard-check")],
        ),
        // In path order again: create, then reveal, rotate and update what
        // it made.
        ("/api/admin/sources", vec![]),
        (
            "/api/admin/sources/create",
            vec![("name", "guard-check"), ("preset", "generic")],
        ),
        (
            "/api/admin/sources/reveal-secret",
            vec![("name", "guard-check"), ("label", "guard-check #1")],
        ),
        (
            "/api/admin/sources/rotate-secret",
            vec![("name", "guard-check")],
        ),
        (
            "/api/admin/sources/update",
            vec![("name", "guard-check"), ("mode", "flag")],
        ),
        ("/api/inbox/warnings", vec![]),
        (
            "/api/deliveries/list",
            vec![("outcome", "accepted"), ("limit", "5")],
        ),
        ("/api/deliveries/summary", vec![("window", "1h")]),
    ])
}

/// Server functions under this prefix need the admin role; all others the viewer role.
const ADMIN_PREFIX: &str = "/api/admin/";

/// Every server function the app registers (leptos's registry, not a list
/// kept by hand), with its valid arguments. Logout comes last, as it ends
/// the session the others are called with.
fn registered_server_functions() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let known = valid_arguments();
    let mut registered: Vec<&'static str> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path)
        .collect();
    registered.sort_unstable();
    registered.dedup();
    for path in &registered {
        assert!(
            known.contains_key(path),
            "new server function {path}: add it to valid_arguments()"
        );
    }
    for path in known.keys() {
        assert!(
            registered.contains(path),
            "{path} is in valid_arguments() but not registered: {registered:?}"
        );
    }
    registered.sort_by_key(|path| *path == "/api/auth/logout");
    registered
        .into_iter()
        .map(|path| (path, known[path].clone()))
        .collect()
}

#[tokio::test]
async fn every_server_function_but_login_answers_401_without_a_session() {
    let server = TestServer::start().await;
    for (path, fields) in registered_server_functions() {
        if path == "/api/auth/login" {
            continue;
        }
        let response = server.call(path, None, &fields).await;
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "sign in to continue", "{path}");
    }
}

#[tokio::test]
async fn viewers_get_403_from_every_admin_function_and_not_from_the_rest() {
    let server = TestServer::start().await;
    add_viewer(&server).await;
    let cookie = server.login(VIEWER_EMAIL, VIEWER_PASSWORD).await.unwrap();
    let functions = registered_server_functions();
    let admin_functions = functions
        .iter()
        .filter(|(path, _)| path.starts_with(ADMIN_PREFIX))
        .count();
    assert!(admin_functions >= 5, "{functions:?}");
    for (path, fields) in functions {
        // Signing in again would replace the viewer's session.
        if path == "/api/auth/login" {
            continue;
        }
        let response = server.call(path, Some(&cookie), &fields).await;
        let status = response.status();
        if path.starts_with(ADMIN_PREFIX) {
            assert_eq!(status, 403, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "forbidden", "{path}");
        } else {
            assert_ne!(status, 401, "{path}");
            assert_ne!(status, 403, "{path}");
        }
    }
}

#[tokio::test]
async fn admins_get_2xx_from_every_admin_function() {
    let server = TestServer::start().await;
    add_viewer(&server).await;
    let cookie = server.login_admin().await;
    for (path, fields) in registered_server_functions() {
        if !path.starts_with(ADMIN_PREFIX) {
            continue;
        }
        let response = server.call(path, Some(&cookie), &fields).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
    }
}

async fn admin_call(
    server: &TestServer,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let response = server.call(path, Some(cookie), fields).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn invited_users_sign_in_with_the_password_shown_once_and_duplicates_are_400() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let invite = [("email", " New.User@Example.com"), ("role", "viewer")];
    let (status, invitation) =
        admin_call(&server, &admin, "/api/admin/users/invite", &invite).await;
    assert_eq!(status, 200, "{invitation}");
    assert_eq!(invitation["email"], "new.user@example.com");
    assert_eq!(invitation["role"], "viewer");
    let password = invitation["password"].as_str().unwrap();
    assert!(password.len() >= 12, "{invitation}");
    assert_eq!(invitation.as_object().unwrap().len(), 3, "{invitation}");

    let cookie = server
        .login("new.user@example.com", password)
        .await
        .unwrap();
    let me: Value = server
        .call("/api/auth/me", Some(&cookie), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "viewer");

    let (status, duplicate) = admin_call(
        &server,
        &admin,
        "/api/admin/users/invite",
        &[("email", "NEW.USER@example.com"), ("role", "admin")],
    )
    .await;
    assert_eq!(status, 400, "{duplicate}");
    assert!(
        duplicate["error"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{duplicate}"
    );
    for bad in [
        [("email", "not-an-email"), ("role", "viewer")],
        [("email", "other@example.com"), ("role", "owner")],
    ] {
        let (status, body) = admin_call(&server, &admin, "/api/admin/users/invite", &bad).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
    }

    let response = server.call("/api/admin/users", Some(&admin), &[]).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("argon2") && !text.contains(password),
        "{text}"
    );
    let users: Value = serde_json::from_str(&text).unwrap();
    let emails: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, [ADMIN_EMAIL, "new.user@example.com"]);
    let invited = &users[1];
    assert_eq!(invited["role"], "viewer");
    assert_eq!(invited["disabled"], false);
    assert!(invited["created_at"].is_string(), "{invited}");
    assert!(invited["last_login_at"].is_string(), "{invited}");
    assert!(users[0].get("password").is_none(), "{users}");
}

#[tokio::test]
async fn a_promoted_viewer_can_call_admin_functions_and_admins_cannot_demote_themselves() {
    let server = TestServer::start().await;
    add_viewer(&server).await;
    let admin = server.login_admin().await;
    let viewer = server.login(VIEWER_EMAIL, VIEWER_PASSWORD).await.unwrap();
    let (status, _) = admin_call(&server, &viewer, "/api/admin/users", &[]).await;
    assert_eq!(status, 403);

    let promote = [("email", VIEWER_EMAIL), ("role", "admin")];
    let (status, user) = admin_call(&server, &admin, "/api/admin/users/set-role", &promote).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["role"], "admin");
    // The same session sees the new role at its next request.
    let (status, _) = admin_call(&server, &viewer, "/api/admin/users", &[]).await;
    assert_eq!(status, 200);

    let demote_self = [("email", ADMIN_EMAIL), ("role", "viewer")];
    let (status, body) =
        admin_call(&server, &admin, "/api/admin/users/set-role", &demote_self).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("your own admin role"),
        "{body}"
    );
    let (status, _) = admin_call(&server, &admin, "/api/admin/users", &[]).await;
    assert_eq!(status, 200, "still an admin");

    // Another admin may demote them, though.
    let (status, user) =
        admin_call(&server, &viewer, "/api/admin/users/set-role", &demote_self).await;
    assert_eq!(status, 200, "{user}");
    let (status, _) = admin_call(&server, &admin, "/api/admin/users", &[]).await;
    assert_eq!(status, 403);

    let unknown = [("email", "nobody@example.com"), ("role", "admin")];
    let (status, _) = admin_call(&server, &viewer, "/api/admin/users/set-role", &unknown).await;
    assert_eq!(status, 404);
    let bad_role = [("email", ADMIN_EMAIL), ("role", "root")];
    let (status, _) = admin_call(&server, &viewer, "/api/admin/users/set-role", &bad_role).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn disabling_through_the_api_ends_the_session_and_enabling_allows_sign_in_again() {
    let server = TestServer::start().await;
    add_viewer(&server).await;
    let admin = server.login_admin().await;
    let viewer = server.login(VIEWER_EMAIL, VIEWER_PASSWORD).await.unwrap();
    assert_eq!(me_status(&server, &viewer).await, 200);

    let disable = [("email", VIEWER_EMAIL), ("disabled", "true")];
    let (status, user) =
        admin_call(&server, &admin, "/api/admin/users/set-disabled", &disable).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["disabled"], true);
    assert_eq!(me_status(&server, &viewer).await, 401);
    let refused = server
        .login(VIEWER_EMAIL, VIEWER_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), 401);

    let enable = [("email", VIEWER_EMAIL), ("disabled", "false")];
    let (status, user) =
        admin_call(&server, &admin, "/api/admin/users/set-disabled", &enable).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["disabled"], false);
    assert_eq!(
        me_status(&server, &viewer).await,
        401,
        "enabling does not bring old sessions back"
    );
    let again = server.login(VIEWER_EMAIL, VIEWER_PASSWORD).await.unwrap();
    assert_eq!(me_status(&server, &again).await, 200);

    let disable_self = [("email", ADMIN_EMAIL), ("disabled", "true")];
    let (status, body) = admin_call(
        &server,
        &admin,
        "/api/admin/users/set-disabled",
        &disable_self,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(me_status(&server, &admin).await, 200);

    let unknown = [("email", "nobody@example.com"), ("disabled", "true")];
    let (status, _) = admin_call(&server, &admin, "/api/admin/users/set-disabled", &unknown).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn settings_show_the_configuration_with_secrets_masked() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let response = server.call("/api/admin/settings", Some(&admin), &[]).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(support::SECRET), "{text}");
    // Not even a fragment long enough to narrow the secret down.
    let secret: Vec<char> = support::SECRET.chars().collect();
    for window in secret.windows(8) {
        let fragment: String = window.iter().collect();
        assert!(!text.contains(&fragment), "{fragment} in {text}");
    }
    let settings: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(settings["signature_mode"], "enforce");
    assert_eq!(settings["max_body_bytes"], 1_048_576);
    assert_eq!(settings["timestamp_tolerance_secs"], 300);
    assert_eq!(settings["poll_interval_secs"], 10);
    assert!(
        settings["webhook_url"]
            .as_str()
            .unwrap()
            .ends_with("/api/webhooks/llm-callback"),
        "{settings}"
    );
    let secrets = settings["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1, "{settings}");
    let masked = secrets[0]["masked"].as_str().unwrap();
    let tail = &support::SECRET[support::SECRET.len() - 4..];
    assert!(masked.ends_with(tail) && masked.contains('•'), "{masked}");
    assert!(secrets[0]["label"].is_string(), "{settings}");
}

#[tokio::test]
async fn the_users_page_lists_users_for_admins_and_explains_itself_to_viewers() {
    let server = TestServer::start().await;
    add_viewer(&server).await;
    let page = |cookie: String| {
        let server = &server;
        async move {
            let response = server
                .client
                .get(server.url("/admin/users"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    let admin_html = page(server.login_admin().await).await;
    assert!(
        admin_html.contains("href=\"/admin/users\""),
        "the Users tab"
    );
    assert!(admin_html.contains(VIEWER_EMAIL), "{admin_html}");
    assert!(admin_html.contains("Invite a user"), "{admin_html}");
    assert!(
        admin_html.contains(&format!("aria-label=\"Role of {VIEWER_EMAIL}\"")),
        "{admin_html}"
    );
    assert!(!admin_html.contains("Only admins"), "{admin_html}");

    let viewer_html = page(server.login(VIEWER_EMAIL, VIEWER_PASSWORD).await.unwrap()).await;
    assert!(
        viewer_html.contains("Only admins can manage users."),
        "{viewer_html}"
    );
    assert!(!viewer_html.contains(ADMIN_EMAIL), "{viewer_html}");
    assert!(!viewer_html.contains("Invite a user"), "{viewer_html}");
}

#[tokio::test]
async fn sign_in_sets_an_httponly_lax_cookie_and_the_session_knows_the_user() {
    let server = TestServer::start().await;
    let response = server
        .call(
            "/api/auth/login",
            None,
            &[
                ("email", "ADMIN@example.com "),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let set_cookie = set_cookie_named(&response, "inbox_session").unwrap();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let cookie = session_cookie(&response).unwrap();

    let me = server.call("/api/auth/me", Some(&cookie), &[]).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], ADMIN_EMAIL);
    assert_eq!(me["role"], "admin");

    let again = server.login_admin().await;
    assert_ne!(again, cookie, "every sign-in gets a new session id");
}

/// The whole Set-Cookie header (attributes included) of cookie `name`.
fn set_cookie_named(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

#[tokio::test]
async fn sign_in_marks_the_browser_with_a_long_lived_httponly_device_cookie() {
    let server = TestServer::start().await;
    let response = server
        .call(
            "/api/auth/login",
            None,
            &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let set_cookie = set_cookie_named(&response, "inbox_device").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=15552000"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let device = device_cookie(&response).unwrap();
    assert_eq!(device.len(), "inbox_device=".len() + 43, "{device}");

    // Signing in again with it keeps it; without it, a new one.
    let again = server
        .call(
            "/api/auth/login",
            Some(&device),
            &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(device_cookie(&again).as_ref(), Some(&device));
    let fresh = server
        .call(
            "/api/auth/login",
            None,
            &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_ne!(device_cookie(&fresh).unwrap(), device);
    // A failed sign-in marks nothing.
    let failed = server.login(ADMIN_EMAIL, "not the password at all").await;
    assert!(device_cookie(&failed.unwrap_err()).is_none());
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let server = TestServer::start().await;
    let wrong = server
        .login(ADMIN_EMAIL, "not the password at all")
        .await
        .unwrap_err();
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown = server
        .login("nobody@example.com", "not the password at all")
        .await
        .unwrap_err();
    assert_eq!(unknown.status(), 401);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn missing_login_fields_are_a_400() {
    let server = TestServer::start().await;
    let response = server
        .call("/api/auth/login", None, &[("email", ADMIN_EMAIL)])
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid arguments"),
        "{body}"
    );
}

#[tokio::test]
async fn ten_failures_at_one_account_from_one_address_answer_429_with_retry_after() {
    let server = TestServer::start().await;
    for attempt in 0..10 {
        let response = server
            .login(ADMIN_EMAIL, "wrong password number")
            .await
            .unwrap_err();
        assert_eq!(response.status(), 401, "attempt {attempt}");
    }
    let throttled = server.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap_err();
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "900");
    // Other accounts from that address are still checked, up to the
    // per-address cap of 30 attempts in the window; then nothing is.
    for attempt in 10..30 {
        let other = server
            .login(
                &format!("someone{attempt}@example.com"),
                "whatever password",
            )
            .await
            .unwrap_err();
        assert_eq!(other.status(), 401, "attempt {attempt}");
    }
    let other = server
        .login("someone-else@example.com", "whatever password")
        .await
        .unwrap_err();
    assert_eq!(other.status(), 429);
}

#[tokio::test]
async fn sign_out_ends_the_session_on_the_server() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let response = server.call("/api/auth/logout", Some(&cookie), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["location"], "/login");
    assert_eq!(me_status(&server, &cookie).await, 401);
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_at_once() {
    let server = TestServer::start().await;
    add_viewer(&server).await;
    let cookie = server.login(VIEWER_EMAIL, VIEWER_PASSWORD).await.unwrap();
    assert_eq!(me_status(&server, &cookie).await, 200);
    server
        .store()
        .await
        .set_disabled(VIEWER_EMAIL, true, support::now_unix() * 1_000_000)
        .await
        .unwrap();
    assert_eq!(me_status(&server, &cookie).await, 401);
    let retry = server
        .login(VIEWER_EMAIL, VIEWER_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(retry.status(), 401, "a disabled user cannot sign in");
}

#[tokio::test]
async fn sessions_expire_after_the_absolute_limit() {
    let server = TestServer::start_with(&["--session-max-secs", "1"]).await;
    let cookie = server.login_admin().await;
    assert_eq!(me_status(&server, &cookie).await, 200);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(me_status(&server, &cookie).await, 401);
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let server = TestServer::start_with(&["--session-idle-secs", "1"]).await;
    let cookie = server.login_admin().await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(me_status(&server, &cookie).await, 401);
}

#[tokio::test]
async fn admin_pages_redirect_to_sign_in_without_a_session() {
    let server = TestServer::start().await;
    let root = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 302);
    assert_eq!(root.headers()["location"], "/admin/callbacks");
    let response = server
        .client
        .get(server.url("/admin/callbacks?callback=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "/login?next=/admin/callbacks%3Fcallback%3Dabc"
    );
    let cookie = server.login_admin().await;
    let page = server
        .client
        .get(server.url("/admin/callbacks"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Sign out"));
}

#[tokio::test]
async fn plain_form_sign_in_redirects_to_next_or_back_to_the_form() {
    let server = TestServer::start().await;
    let form = |password: &'static str| {
        server
            .client
            .post(server.url("/api/auth/login"))
            .header("accept", "text/html")
            .form(&[
                ("email", ADMIN_EMAIL),
                ("password", password),
                ("next", "/admin/callbacks?x=1"),
            ])
    };
    let ok = form(ADMIN_PASSWORD).send().await.unwrap();
    assert_eq!(ok.status(), 302);
    assert_eq!(ok.headers()["location"], "/admin/callbacks?x=1");
    assert!(session_cookie(&ok).is_some());
    let failed = form("definitely wrong pw").send().await.unwrap();
    assert_eq!(failed.status(), 302);
    assert_eq!(
        failed.headers()["location"],
        "/login?error=invalid&next=/admin/callbacks%3Fx%3D1"
    );
    assert!(session_cookie(&failed).is_none());
    let offsite = server
        .client
        .post(server.url("/api/auth/login"))
        .header("accept", "text/html")
        .form(&[
            ("email", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(offsite.headers()["location"], "/admin/callbacks");
}

#[tokio::test]
async fn cross_origin_state_changes_are_rejected_but_the_webhook_is_not() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let host = server.addr.to_string();
    let cases: &[(&[(&str, &str)], u16)] = &[
        (&[("origin", "https://evil.example")], 403),
        (&[("sec-fetch-site", "cross-site")], 403),
        (&[("sec-fetch-site", "same-site")], 403),
        (&[("sec-fetch-site", "same-origin")], 200),
        (&[], 200),
    ];
    for (headers, expected) in cases {
        let mut request = server
            .client
            .post(server.url("/api/callbacks/mark-all-viewed"))
            .header("cookie", &cookie);
        for (name, value) in *headers {
            request = request.header(*name, *value);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            *expected,
            "{headers:?}"
        );
    }
    let own_origin = server
        .client
        .post(server.url("/api/callbacks/mark-all-viewed"))
        .header("cookie", &cookie)
        .header("origin", format!("http://{host}"))
        .send()
        .await
        .unwrap();
    assert_eq!(own_origin.status(), 200);
    let login_from_elsewhere = server
        .client
        .post(server.url("/api/auth/login"))
        .header("origin", "https://evil.example")
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        login_from_elsewhere.status(),
        403,
        "login CSRF is blocked too"
    );

    let webhook = server
        .client
        .post(server.url("/api/webhooks/llm-callback"))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        webhook.status(),
        401,
        "the webhook is judged by its signature, not its origin"
    );
}

#[tokio::test]
async fn pages_carry_a_nonce_csp_and_the_security_headers() {
    let server = TestServer::start().await;
    let page = server
        .client
        .get(server.url("/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("'wasm-unsafe-eval'") && csp.contains("'nonce-"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("'unsafe-inline' 'self'") && !csp.contains("script-src 'unsafe-inline'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert!(!headers.contains_key("strict-transport-security"));
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the nonce"
    );
    assert!(html.contains("<label for=\"login-email\">Email"));
    assert!(html.contains("<label for=\"login-password\">Password"));
    let password_labels = html
        .split("<label")
        .skip(1)
        .filter(|label| {
            label
                .split("</label>")
                .next()
                .unwrap_or_default()
                .to_lowercase()
                .contains("password")
        })
        .count();
    assert_eq!(
        password_labels, 1,
        "only the password field is labelled password"
    );

    let api = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    );
}

#[tokio::test]
async fn secure_cookies_mode_marks_cookies_secure_and_sends_hsts() {
    let server = TestServer::start_with(&["--secure-cookies"]).await;
    let response = server
        .call(
            "/api/auth/login",
            None,
            &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    for name in ["inbox_session", "inbox_device"] {
        let set_cookie = set_cookie_named(&response, name).unwrap();
        assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    }
    assert!(response.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn bootstrap_creates_a_default_admin_only_when_there_are_no_users() {
    let database = support::TestDatabase::fresh().await;
    let url = database.url.clone();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callback-inbox"))
        .args(["admin", "list"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "", "no users yet");

    let create = std::process::Command::new(env!("CARGO_BIN_EXE_callback-inbox"))
        .args([
            "admin",
            "create",
            "--email",
            "ops@example.com",
            "--role",
            "viewer",
        ])
        .env("DATABASE_URL", &url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    create
        .stdin
        .as_ref()
        .unwrap()
        .write_all(b"a long enough password\n")
        .unwrap();
    let created = create.wait_with_output().unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );

    let short = std::process::Command::new(env!("CARGO_BIN_EXE_callback-inbox"))
        .args(["admin", "reset-password", "--email", "ops@example.com"])
        .env("DATABASE_URL", &url)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    short
        .stdin
        .as_ref()
        .unwrap()
        .write_all(b"too short\n")
        .unwrap();
    let short = short.wait_with_output().unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));

    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_callback-inbox"))
        .args(["admin", "list"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "ops@example.com\tviewer\tactive\n"
    );
}

// --- guesses from many addresses ------------------------------------------------

/// The address the owner signs in from in the tests below.
const OWNER_ADDRESS: &str = "198.51.100.7";

/// Guesser `n`'s address: IPv4 for even `n`, IPv6 in a /64 of its own for
/// odd `n`, all distinct.
fn stranger_address(n: u32) -> String {
    if n.is_multiple_of(2) {
        format!("203.0.113.{n}")
    } else {
        format!("2001:db8:{n:x}::1")
    }
}

/// A sign-in as seen from `address` (the test server trusts loopback's
/// `X-Forwarded-For`), with a `Cookie` header when given.
async fn sign_in_from(
    server: &TestServer,
    address: &str,
    email: &str,
    password: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(server.url("/api/auth/login"))
        .header("x-forwarded-for", address)
        .form(&[("email", email), ("password", password)]);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.expect("request sent")
}

/// The `inbox_device=…` pair of a response's Set-Cookie, if any.
fn device_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("inbox_device="))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
}

/// How many guesses had their password checked (401) and how many were
/// refused unchecked (429); any other answer fails the test.
async fn tally(guesses: Vec<tokio::task::JoinHandle<u16>>) -> (usize, usize) {
    let (mut checked, mut refused) = (0, 0);
    for guess in guesses {
        match guess.await.unwrap() {
            401 => checked += 1,
            429 => refused += 1,
            other => panic!("a guess answered {other}"),
        }
    }
    (checked, refused)
}

/// 120 guesses at the admin from 120 addresses, `in_flight` at a time.
fn guess_from_120_addresses(
    server: &std::sync::Arc<TestServer>,
    in_flight: usize,
) -> Vec<tokio::task::JoinHandle<u16>> {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    (0..120)
        .map(|n| {
            let server = server.clone();
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                let address = stranger_address(n);
                let password = format!("guess number {n:03}");
                sign_in_from(&server, &address, ADMIN_EMAIL, &password, None)
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect()
}

#[tokio::test]
async fn guesses_at_one_account_from_120_addresses_get_40_checks_and_a_known_browser_still_signs_in()
 {
    let server =
        std::sync::Arc::new(TestServer::start_with(&["--trusted-proxies", "127.0.0.1"]).await);
    add_viewer(&server).await;
    let first = sign_in_from(&server, OWNER_ADDRESS, ADMIN_EMAIL, ADMIN_PASSWORD, None).await;
    assert_eq!(first.status(), 200);
    let device = device_cookie(&first);

    // A few at a time, so that only the per-account bound refuses guesses.
    let burst = guess_from_120_addresses(&server, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let owner = sign_in_from(
        &server,
        OWNER_ADDRESS,
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        device.as_deref(),
    )
    .await;
    let (checked, refused) = tally(burst).await;
    assert_eq!((checked, refused), (40, 80), "guesses checked and refused");
    assert!(device.is_some(), "a sign-in marks the browser as known");
    assert_eq!(owner.status(), 200, "the known browser during the burst");

    // The account's budget is spent for strangers: even its right password
    // from an unknown browser is refused unchecked ...
    let stranger = sign_in_from(&server, "192.0.2.1", ADMIN_EMAIL, ADMIN_PASSWORD, None).await;
    assert_eq!(stranger.status(), 429);
    // ... also with a known browser of another account ...
    let viewer = sign_in_from(&server, "192.0.2.2", VIEWER_EMAIL, VIEWER_PASSWORD, None).await;
    assert_eq!(viewer.status(), 200, "other accounts are not affected");
    let viewer_device = device_cookie(&viewer);
    let borrowed = sign_in_from(
        &server,
        "192.0.2.2",
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        viewer_device.as_deref(),
    )
    .await;
    assert_eq!(borrowed.status(), 429, "a device cookie is one account's");
    // ... while the owner's known browser still gets in, from anywhere.
    let owner = sign_in_from(
        &server,
        "192.0.2.3",
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        device.as_deref(),
    )
    .await;
    assert_eq!(owner.status(), 200, "the known browser after the burst");
}

#[tokio::test]
async fn a_known_browser_signs_in_during_a_parallel_burst_from_120_addresses() {
    let server =
        std::sync::Arc::new(TestServer::start_with(&["--trusted-proxies", "127.0.0.1"]).await);
    let first = sign_in_from(&server, OWNER_ADDRESS, ADMIN_EMAIL, ADMIN_PASSWORD, None).await;
    assert_eq!(first.status(), 200);
    let device = device_cookie(&first);

    let burst = guess_from_120_addresses(&server, 120);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let owner = sign_in_from(
        &server,
        OWNER_ADDRESS,
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        device.as_deref(),
    )
    .await;
    let latency = started.elapsed();
    let burst_started = std::time::Instant::now();
    let (checked, refused) = tally(burst).await;
    println!(
        "owner's sign-in during a burst of 120 guesses from 120 addresses: {} ms \
         (status {}, known browser: {}); guesses checked {checked}, refused {refused}, \
         the burst ended {} ms after the owner's answer",
        latency.as_millis(),
        owner.status(),
        device.is_some(),
        burst_started.elapsed().as_millis()
    );
    assert_eq!(owner.status(), 200);
    assert!(checked <= 40, "{checked} guesses checked");
    assert_eq!(checked + refused, 120);
}
