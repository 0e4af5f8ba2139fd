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

/// Valid arguments for every server function, by endpoint. The guard test
/// fails when a server function exists that is not listed here.
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
    ])
}

/// Server functions a viewer may not call.
const ADMIN_ONLY: &[&str] = &[];

#[tokio::test]
async fn every_server_function_but_login_answers_401_without_a_session() {
    let server = TestServer::start().await;
    let registered: Vec<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.to_owned())
        .collect();
    let known = valid_arguments();
    assert!(
        registered.len() >= known.len(),
        "registered: {registered:?}"
    );
    for path in &registered {
        assert!(
            known.contains_key(path.as_str()),
            "new server function {path}: add it to valid_arguments()"
        );
    }
    for (path, fields) in &known {
        if *path == "/api/auth/login" {
            continue;
        }
        let response = server.call(path, None, fields).await;
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "sign in to continue", "{path}");
    }
}

#[tokio::test]
async fn viewers_get_403_from_admin_only_functions_and_200_from_the_rest() {
    let server = TestServer::start().await;
    add_viewer(&server).await;
    let cookie = server.login(VIEWER_EMAIL, VIEWER_PASSWORD).await.unwrap();
    for (path, fields) in valid_arguments() {
        if path == "/api/auth/login" || path == "/api/auth/logout" {
            continue;
        }
        let status = server.call(path, Some(&cookie), &fields).await.status();
        if ADMIN_ONLY.contains(&path) {
            assert_eq!(status, 403, "{path}");
        } else {
            assert_ne!(status, 401, "{path}");
            assert_ne!(status, 403, "{path}");
        }
    }
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
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.starts_with("inbox_session="), "{set_cookie}");
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
async fn ten_failures_in_the_window_answer_429_with_retry_after() {
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
    // Another account from the same address is throttled too (per-address count).
    let other = server
        .login("someone@example.com", "whatever password")
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
        .set_disabled(VIEWER_EMAIL, true)
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
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    assert!(response.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn bootstrap_creates_a_default_admin_only_when_there_are_no_users() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("boot.db").display());
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
