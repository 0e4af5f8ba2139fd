//! The public surface under attack: slow and flooding clients, parallel
//! password guesses, forged headers, weak secrets, odd paths. Real HTTP on
//! loopback, a real database (SQLite files, or PostgreSQL when the run asks
//! for it), the real binary where memory or logs matter.

mod support;

use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex};
use serde_json::Value;
use sqlx::Row;
use support::{ADMIN_EMAIL, ADMIN_PASSWORD, SECRET, ServerProcess, TestDatabase, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ENDPOINT: &str = "/api/webhooks/llm-callback";

/// Reads from `stream` until the peer closes it or `limit` passes; returns
/// what arrived and whether the peer closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&seen).into(), false),
        }
    }
}

// --- connections ------------------------------------------------------------

#[tokio::test]
async fn a_request_whose_headers_never_finish_is_closed_within_the_header_timeout() {
    let server = TestServer::start_with(&["--header-timeout-secs", "1"]).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "the server kept a half-sent request open");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(&["--header-timeout-secs", "1"]).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    let n = stream.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn a_webhook_body_that_never_finishes_gets_408_within_the_body_timeout() {
    let server = TestServer::start_with(&["--body-timeout-secs", "1"]).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-Webhook-Signature: sha256={}\r\n\r\n{{\"job\"",
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let mut server = server;
    server.stop().await;
    let db = server.db().await;
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM webhook_deliveries")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(outcome, "body_timeout");
}

#[tokio::test]
async fn an_unsigned_webhook_is_answered_401_before_its_body_is_read() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // A 1 MiB body is announced but never sent: the answer must not wait for it.
    stream
        .write_all(
            format!("POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.contains("invalid or missing webhook signature"),
        "{answer}"
    );
}

#[tokio::test]
async fn bodies_beyond_the_in_flight_budget_get_503_with_retry_after() {
    // Room for one 600 KB body at a time.
    let server = TestServer::start_with(&["--max-inflight-body-bytes", "1000000"]).await;
    let head = |length: usize| {
        format!(
            "POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nX-Webhook-Signature: sha256={}\r\n\r\n",
            "0".repeat(64)
        )
    };
    // The first request holds its share while its body trickles in.
    let mut holder = TcpStream::connect(server.addr).await.unwrap();
    holder.write_all(head(600_000).as_bytes()).await.unwrap();
    holder.write_all(b"{").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let response = server
        .client
        .post(server.url(ENDPOINT))
        .header("x-webhook-signature", format!("sha256={}", "0".repeat(64)))
        .body(vec![b' '; 600_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");

    // Once the first request is gone, its share is free again.
    drop(holder);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = format!(
        r#"{{"job_id":"after-flood","pad":"{}"}}"#,
        " ".repeat(500_000)
    );
    let response = server.post_signed(&body).await;
    assert_eq!(response.status(), 200);
}

/// Opens `connections` sockets that each announce a 1 MiB body and send it
/// in 64 KiB pieces; returns when every one has been answered or closed.
async fn flood(addr: std::net::SocketAddr, connections: usize, signature: Option<String>) {
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let signature = signature.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                return;
            };
            let mut head =
                format!("POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n");
            if let Some(signature) = signature {
                head.push_str(&format!("X-Webhook-Signature: {signature}\r\n"));
            }
            head.push_str("\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let piece = vec![b' '; 64 * 1024];
            for _ in 0..16 {
                if stream.write_all(&piece).await.is_err() {
                    break;
                }
            }
            let _ = read_until_closed(&mut stream, Duration::from_secs(20)).await;
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

#[tokio::test]
async fn a_flood_of_300_one_mib_bodies_keeps_memory_bounded_and_health_answering() {
    let server = ServerProcess::start(&[("INBOX_MAX_INFLIGHT_BODY_BYTES", "33554432")]).await;
    let client = reqwest::Client::new();
    let fake = Some(format!("sha256={}", "0".repeat(64)));
    let unsigned = tokio::spawn(flood(server.addr, 150, None));
    let forged = tokio::spawn(flood(server.addr, 150, fake));
    // /healthz keeps answering during the flood.
    let mut worst = Duration::ZERO;
    while !(unsigned.is_finished() && forged.is_finished()) {
        let started = Instant::now();
        let response = client
            .get(server.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("healthz answers during the flood");
        assert_eq!(response.status(), 200);
        worst = worst.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unsigned.await.unwrap();
    forged.await.unwrap();
    let (peak_kib, _) = server.memory_kib();
    // 300 bodies of 1 MiB held at once would be over 300 MiB; the budget is 32 MiB.
    assert!(
        peak_kib < 160 * 1024,
        "peak RSS {} MiB during the flood",
        peak_kib / 1024
    );
    assert!(worst < Duration::from_secs(5), "healthz took {worst:?}");
}

// --- audit rows of unauthenticated floods -------------------------------------

#[tokio::test]
async fn unsigned_requests_are_counted_in_few_rows_and_none_is_lost() {
    let mut server = TestServer::start().await;
    for _ in 0..250 {
        let response = server
            .client
            .post(server.url(ENDPOINT))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let accepted = server.post_signed(r#"{"job_id":"real"}"#).await;
    assert_eq!(accepted.status(), 200);
    server.stop().await;
    let db = server.db().await;
    let rows = sqlx::query("SELECT outcome, count FROM webhook_deliveries")
        .fetch_all(&db)
        .await
        .unwrap();
    let missing: Vec<i64> = rows
        .iter()
        .filter(|row| row.get::<String, _>(0) == "missing_signature")
        .map(|row| row.get(1))
        .collect();
    // One row per minute at most (the burst may straddle a minute).
    assert!(missing.len() <= 2, "{} rows", missing.len());
    assert_eq!(missing.iter().sum::<i64>(), 250);
    let accepted: Vec<i64> = rows
        .iter()
        .filter(|row| row.get::<String, _>(0) == "accepted")
        .map(|row| row.get(1))
        .collect();
    assert_eq!(accepted, vec![1]);
}

// --- signatures and identity --------------------------------------------------

#[tokio::test]
async fn an_unsigned_event_header_cannot_turn_a_replay_into_a_new_callback() {
    let server = TestServer::start().await;
    let body = r#"{"job_id":"job_replay","status":"completed"}"#;
    let signature = sign_hex(&WebhookSecret::parse(SECRET).unwrap(), body.as_bytes());
    let send = |event: &'static str| {
        server
            .client
            .post(server.url(ENDPOINT))
            .header("x-webhook-signature", signature.clone())
            .header("x-webhook-event", event)
            .body(body)
            .send()
    };
    let first: Value = send("workflow.completed")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let replay: Value = send("workflow.failed").await.unwrap().json().await.unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(replay["duplicate"], true, "{replay}");
    assert_eq!(replay["id"], first["id"]);
    let db = server.db().await;
    let rows = sqlx::query("SELECT event_type, status FROM llm_callbacks")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let event: Option<String> = rows[0].get(0);
    assert_eq!(
        event, None,
        "the unsigned header must not be stored as the event"
    );
    assert_eq!(rows[0].get::<String, _>(1), "completed");
}

#[tokio::test]
async fn weak_secrets_are_refused_at_start_with_a_way_to_make_one() {
    for weak in ["a", "whsec_AA==", "short-secret"] {
        let database = TestDatabase::fresh().await;
        let cli = <inbox_server::config::Cli as clap::Parser>::try_parse_from([
            "callback-inbox",
            "--database-url",
            &database.url,
            "--webhook-secret",
            weak,
        ])
        .unwrap();
        let Err(err) = inbox_server::build_server(&cli.config).await else {
            panic!("{weak:?} was accepted");
        };
        let message = err.to_string();
        assert!(message.contains("too short"), "{message}");
        assert!(message.contains("openssl rand -hex 32"), "{message}");
    }
}

#[tokio::test]
async fn a_whsec_secret_shared_verbatim_verifies_hex_signatures() {
    let whsec = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let server = TestServer::start_with(&["--webhook-secret", whsec]).await;
    let body = r#"{"job_id":"verbatim"}"#;
    // The original sender signs with the bytes of the string it was given.
    let verbatim = WebhookSecret::from_bytes(whsec.as_bytes().to_vec());
    let response = server
        .client
        .post(server.url(ENDPOINT))
        .header("x-webhook-signature", sign_hex(&verbatim, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_secret_with_commas_works_from_the_secrets_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets");
    let with_commas = "part one, part two, and three";
    std::fs::write(&file, format!("{with_commas}\n\nanother-secret-entirely\n")).unwrap();
    let server = TestServer::start_with(&[
        "--no-secret",
        "--webhook-secrets-file",
        file.to_str().unwrap(),
    ])
    .await;
    let body = r#"{"job_id":"commas"}"#;
    let response = server.post_signed_with(body, with_commas).await;
    assert_eq!(response.status(), 200);
    let response = server
        .post_signed_with(r#"{"job_id":"second"}"#, "another-secret-entirely")
        .await;
    assert_eq!(response.status(), 200);
    let response = server
        .post_signed_with(r#"{"job_id":"bad"}"#, "part one, part two")
        .await;
    assert_eq!(response.status(), 401);
}

// --- sign-in ------------------------------------------------------------------

async fn guess(server: &TestServer, address: &str, password: &str) -> reqwest::StatusCode {
    server
        .client
        .post(server.url("/api/auth/login"))
        .header("x-forwarded-for", address)
        .form(&[("email", ADMIN_EMAIL), ("password", password)])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn sixty_parallel_guesses_get_at_most_the_cap_checked() {
    let server =
        std::sync::Arc::new(TestServer::start_with(&["--trusted-proxies", "127.0.0.1"]).await);
    let mut tasks = Vec::new();
    for n in 0..60 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            guess(&server, "203.0.113.9", &format!("wrong password {n:03}")).await
        }));
    }
    let mut checked = 0;
    let mut throttled = 0;
    for task in tasks {
        match task.await.unwrap().as_u16() {
            401 => checked += 1,
            429 => throttled += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(checked, 10, "guesses whose password was checked");
    assert_eq!(throttled, 50);
}

#[tokio::test]
async fn the_owner_signs_in_from_another_address_during_an_attack() {
    let server = TestServer::start_with(&["--trusted-proxies", "127.0.0.1"]).await;
    for n in 0..40 {
        guess(&server, "203.0.113.9", &format!("wrong password {n:03}")).await;
    }
    assert_eq!(guess(&server, "203.0.113.9", ADMIN_PASSWORD).await, 429);
    assert_eq!(guess(&server, "198.51.100.7", ADMIN_PASSWORD).await, 200);
}

#[tokio::test]
async fn a_burst_of_guesses_from_one_address_runs_one_password_check_at_a_time() {
    // Two hashing slots in all; one address may use only one of them, so the
    // owner's check never waits behind a whole burst.
    let server =
        std::sync::Arc::new(TestServer::start_with(&["--trusted-proxies", "127.0.0.1"]).await);
    let mut burst = Vec::new();
    for n in 0..10 {
        let server = server.clone();
        burst.push(tokio::spawn(async move {
            guess(&server, "203.0.113.9", &format!("wrong password {n:03}")).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    assert_eq!(guess(&server, "198.51.100.7", ADMIN_PASSWORD).await, 200);
    let owner = started.elapsed();
    let burst_started = Instant::now();
    for task in burst {
        assert_eq!(task.await.unwrap(), 401);
    }
    let burst_rest = burst_started.elapsed() + owner;
    // The owner finished while most of the burst still queued behind its own address.
    assert!(owner < burst_rest, "owner {owner:?}, burst {burst_rest:?}");
}

#[tokio::test]
async fn a_newline_in_the_sign_in_email_cannot_forge_a_log_line() {
    let server = ServerProcess::start(&[]).await;
    let forged = "x@y.z\nINFO signed in user=admin@example.com FORGED";
    let long = "a".repeat(1_500_000);
    let client = reqwest::Client::new();
    for email in [forged, long.as_str()] {
        let response = client
            .post(server.url("/api/auth/login"))
            .form(&[("email", email), ("password", "wrong password!")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let output = server.output();
    assert!(output.contains("x@y.z\\nINFO"), "{output}");
    assert!(
        !output
            .lines()
            .any(|line| line.starts_with("INFO signed in")),
        "a forged line reached the log"
    );
    let longest = output.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2_000, "a log line of {longest} bytes");
}

// --- accounts -----------------------------------------------------------------

async fn run_cli(server: &ServerProcess, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_callback-inbox"))
        .args(args)
        .env("DATABASE_URL", server.database_url())
        .env("LLM_WEBHOOK_SECRET", SECRET)
        .env_remove("INBOX_ADMIN_EMAIL")
        .env_remove("INBOX_ADMIN_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .await
        .unwrap();
    child.wait_with_output().await.unwrap()
}

async fn me(base: &str, cookie: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/api/auth/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn sign_in(base: &str, email: &str, password: &str) -> Result<String, u16> {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    Ok(support::session_cookie(&response).unwrap())
}

#[tokio::test]
async fn reset_password_from_the_cli_ends_existing_sessions() {
    let server = ServerProcess::start(&[]).await;
    let cookie = sign_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .unwrap();
    assert_eq!(me(&server.base, &cookie).await, 200);
    let output = run_cli(
        &server,
        &["admin", "reset-password", "--email", ADMIN_EMAIL],
        "a brand new password\n",
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(me(&server.base, &cookie).await, 401);
    assert!(
        sign_in(&server.base, ADMIN_EMAIL, "a brand new password")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_restart_does_not_undo_admin_disable_or_a_password_reset() {
    let server = ServerProcess::start(&[]).await;
    // A second admin, so the configured one is not the last.
    let output = run_cli(
        &server,
        &["admin", "create", "--email", "second@example.com"],
        "second admin password\n",
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let output = run_cli(&server, &["admin", "disable", "--email", ADMIN_EMAIL], "").await;
    assert!(output.status.success(), "{output:?}");
    // Restart with the same INBOX_ADMIN_EMAIL / INBOX_ADMIN_PASSWORD.
    let dir = server.kill().await;
    let server = ServerProcess::start_in(dir, &[]).await;
    assert_eq!(
        sign_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD).await,
        Err(401),
        "the configured admin was re-enabled by the restart"
    );
    let output = run_cli(&server, &["admin", "enable", "--email", ADMIN_EMAIL], "").await;
    assert!(output.status.success(), "{output:?}");
    assert!(
        sign_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .is_ok()
    );

    let output = run_cli(
        &server,
        &["admin", "reset-password", "--email", ADMIN_EMAIL],
        "the operator's own password\n",
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let dir = server.kill().await;
    let server = ServerProcess::start_in(dir, &[]).await;
    assert!(
        sign_in(&server.base, ADMIN_EMAIL, "the operator's own password")
            .await
            .is_ok(),
        "the restart put the configured password back"
    );
}

#[tokio::test]
async fn set_role_from_the_cli_changes_what_a_session_may_do() {
    let server = ServerProcess::start(&[]).await;
    let output = run_cli(
        &server,
        &[
            "admin",
            "create",
            "--email",
            "v@example.com",
            "--role",
            "viewer",
        ],
        "viewer password 123\n",
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let cookie = sign_in(&server.base, "v@example.com", "viewer password 123")
        .await
        .unwrap();
    let users = |cookie: String| {
        let base = server.base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/admin/users"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(users(cookie.clone()).await, 403);
    let output = run_cli(
        &server,
        &[
            "admin",
            "set-role",
            "--email",
            "v@example.com",
            "--role",
            "admin",
        ],
        "",
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(users(cookie).await, 200);
}

// --- files and paths ----------------------------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn sqlite_only_database_files_are_private_to_the_server_user() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let server = TestServer::start().await;
    server.post_signed(r#"{"job_id":"modes"}"#).await;
    assert_eq!(mode(server.sqlite_path().parent().unwrap()), 0o700);
    assert_eq!(mode(server.sqlite_path()), 0o600);
    let wal = server.sqlite_path().with_extension("db-wal");
    assert_eq!(mode(&wal), 0o600);

    // An existing world-readable file is tightened at the next start.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cli = <inbox_server::config::Cli as clap::Parser>::try_parse_from([
        "callback-inbox",
        "--database-url",
        &format!("sqlite://{}", db.display()),
        "--webhook-secret",
        SECRET,
    ])
    .unwrap();
    inbox_server::build_server(&cli.config).await.unwrap();
    assert_eq!(mode(&db), 0o600);
}

#[tokio::test]
async fn dot_segments_cannot_reach_an_admin_page_without_a_session() {
    let server = TestServer::start().await;
    for path in [
        "/x/../admin/callbacks",
        "/x/%2e%2e/admin/callbacks",
        "//admin/callbacks",
    ] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 308"), "{path}: {answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("location: /admin/callbacks\r\n"),
            "{path}: {answer}"
        );
        assert!(!answer.contains("<html"), "{path} rendered a page");
    }
}

#[tokio::test]
async fn an_over_long_history_search_is_a_400() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let long = "x".repeat(60_000);
    let response = server
        .call("/api/callbacks/history", Some(&cookie), &[("q", &long)])
        .await;
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("at most"),
        "{answer}"
    );
}
