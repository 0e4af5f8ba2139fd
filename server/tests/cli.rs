//! The companion CLI against the real thing: the `callback-inbox` binary as
//! child processes (`send` with its spool, `listen`, `replay`, `token`),
//! the real server on loopback with its database (SQLite, or PostgreSQL
//! when the run asks for it), and small local
//! receivers that record what reaches them.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderMap, StatusCode};
use inbox_core::signature::{WebhookSecret, sign_hex, sign_standard};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sqlx::Row;
use support::{ADMIN_EMAIL, ADMIN_PASSWORD, SECRET, TestDatabase};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_callback-inbox");
const WEBHOOK: &str = "/api/webhooks/llm-callback";
/// The secret a developer's local app verifies forwarded callbacks with.
const LOCAL_SECRET: &str = "local-dev-secret";
const EXIT_TEMPFAIL: i32 = 75;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// Collects a child's output lines as they come.
fn collect(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn joined(lines: &Arc<Mutex<Vec<String>>>) -> String {
    lines.lock().unwrap().join("\n")
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// --- the server -----------------------------------------------------------------

/// The real server on a port and data folder of the test's choosing, so it
/// can be stopped and started again where its clients expect it.
struct Inbox {
    child: tokio::process::Child,
    port: u16,
    database: Arc<TestDatabase>,
}

impl Inbox {
    /// Starts on a fresh database.
    async fn start(data: &Path, port: u16) -> Self {
        Self::start_on(data, &Arc::new(TestDatabase::fresh().await), port).await
    }

    /// Starts on an existing database (again, or as a second instance).
    async fn start_on(data: &Path, database: &Arc<TestDatabase>, port: u16) -> Self {
        let mut child = tokio::process::Command::new(BIN)
            .env("DATABASE_URL", &database.url)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("LLM_WEBHOOK_SECRET", SECRET)
            .env("INBOX_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("INBOX_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("INBOX_LOGIN_DELAY_MS", "0")
            .env("RUST_LOG", "warn")
            .current_dir(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("server starts");
        let output = collect(child.stderr.take().unwrap());
        let _stdout = collect(child.stdout.take().unwrap());
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                && response.status() == 200
            {
                return Self {
                    child,
                    port,
                    database: database.clone(),
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("server exited with {status}: {}", joined(&output));
            }
            assert!(
                Instant::now() < deadline,
                "server not healthy: {}",
                joined(&output)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn webhook_url(&self) -> String {
        format!("{}{WEBHOOK}", self.base())
    }

    fn database_url(&self) -> String {
        self.database.url.clone()
    }

    /// SIGKILL: the harshest stop there is.
    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    async fn db(&self) -> sqlx::AnyPool {
        support::any_pool(&self.database.url).await
    }

    /// POSTs a callback signed as a sender would; returns the stored id.
    async fn post(&self, body: &str) -> String {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let response = reqwest::Client::new()
            .post(self.webhook_url())
            .header("content-type", "application/json")
            .header("x-webhook-signature", sign_hex(&secret, body.as_bytes()))
            .body(body.to_owned())
            .send()
            .await
            .expect("webhook answers");
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        answer["id"].as_str().unwrap().to_owned()
    }

    /// `token create` on this server's database; returns the token.
    async fn create_token(&self, email: &str, name: &str) -> String {
        let ran = run(
            &["token", "create", "--email", email, "--name", name],
            &[("DATABASE_URL", &self.database_url())],
            None,
        )
        .await;
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let token = ran.stdout.trim().to_owned();
        assert!(token.starts_with("cbi_"), "{token}");
        token
    }
}

// --- the CLI --------------------------------------------------------------------

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The binary with a clean environment (nothing inherited that it reads),
/// in an empty folder (so no `.env` is found).
fn cli(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .current_dir(std::env::temp_dir())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in [
        "LLM_WEBHOOK_SECRET",
        "INBOX_SPOOL",
        "INBOX_TOKEN",
        "INBOX_SERVER",
        "INBOX_FORWARD_SECRET",
        "DATABASE_URL",
        "INBOX_PUBLIC_URL",
        "CALLBACK_INBOX_TOKEN",
        "XDG_STATE_HOME",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

async fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Ran {
    let mut command = cli(args, env);
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("cli starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("cli finishes")
        .unwrap();
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `send` of `body` (written to a file) to `url` with the test secret.
async fn send(dir: &Path, spool: &Path, url: &str, body: &str, extra: &[&str]) -> Ran {
    let file = dir.join(format!("{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, body).unwrap();
    let spool = spool.to_str().unwrap();
    let file = file.to_str().unwrap();
    let mut args = vec![
        "send", file, "--url", url, "--secret", SECRET, "--spool", spool,
    ];
    args.extend_from_slice(extra);
    run(&args, &[], None).await
}

async fn flush(spool: &Path, extra: &[&str]) -> Ran {
    let mut args = vec!["send", "--flush", "--spool", spool.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args, &[("LLM_WEBHOOK_SECRET", SECRET)], None).await
}

/// The spool's entry files (not temporary files, not `failed/`).
fn spooled(spool: &Path) -> Vec<PathBuf> {
    let Ok(listing) = std::fs::read_dir(spool) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = listing
        .flatten()
        .map(|item| item.path())
        .filter(|path| {
            path.is_file()
                && path.extension().is_some_and(|ext| ext == "json")
                && !path.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .collect();
    paths.sort();
    paths
}

/// A spool file's entry: the JSON after its check line.
fn spool_entry(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|err| err.to_string())?;
    let (check, content) = text
        .split_once('\n')
        .ok_or_else(|| format!("no check line: {text:?}"))?;
    if !check.starts_with("callback-inbox-spool 2 hmac-sha256=") {
        return Err(format!("no check line: {text:?}"));
    }
    serde_json::from_str(content).map_err(|err| format!("{err}: {text:?}"))
}

fn temp_files(spool: &Path) -> usize {
    std::fs::read_dir(spool).map_or(0, |listing| {
        listing
            .flatten()
            .filter(|item| item.file_name().to_string_lossy().ends_with(".tmp"))
            .count()
    })
}

// --- a local receiver -----------------------------------------------------------

#[derive(Clone)]
struct Hit {
    at: Instant,
    headers: HeaderMap,
    body: String,
    /// Whether the signature matched, when the receiver checks one.
    signed: Option<bool>,
}

/// An answer of a receiver: status and `Retry-After` seconds.
type Answer = (u16, Option<u64>);

/// A local webhook receiver answering from a script (status, Retry-After),
/// then 200, and recording every request.
#[derive(Clone)]
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    secret: Option<Arc<WebhookSecret>>,
    /// How long each answer takes.
    delay: Duration,
}

impl Receiver {
    async fn start(script: &[Answer], secret: Option<&str>) -> Self {
        Self::start_slow(script, secret, Duration::ZERO).await
    }

    async fn start_slow(script: &[Answer], secret: Option<&str>, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Self {
            url: format!("http://{addr}/hook"),
            hits: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            secret: secret.map(|s| Arc::new(WebhookSecret::from_bytes(s.as_bytes().to_vec()))),
            delay,
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let signed = receiver.secret.as_ref().map(|secret| {
        headers
            .get("x-webhook-signature")
            .and_then(|value| value.to_str().ok())
            == Some(sign_hex(secret, body.as_bytes()).as_str())
    });
    receiver.hits.lock().unwrap().push(Hit {
        at: Instant::now(),
        headers,
        body,
        signed,
    });
    tokio::time::sleep(receiver.delay).await;
    if signed == Some(false) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let (status, retry_after) = receiver
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, None));
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(serde_json::json!({ "status": status })),
    )
        .into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    response
}

fn header<'a>(hit: &'a Hit, name: &str) -> &'a str {
    hit.headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

// --- send and the spool ---------------------------------------------------------

#[tokio::test]
async fn send_to_a_closed_port_is_spooled_and_flush_delivers_each_exactly_once() {
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}{WEBHOOK}");
    let bodies = [
        (
            r#"{"job_id":"job-a","event":"workflow.completed","workflow_name":"cli"}"#,
            "hex",
        ),
        (
            "{\"job_id\": \"job-b\",\n \"event\": \"workflow.failed\", \"error\": {\"message\": \"boom\"}}\n",
            "hex",
        ),
        (
            r#"{"job_id":"job-c","event":"llm.step.completed","step_id":"s1"}"#,
            "standard",
        ),
    ];
    for (body, scheme) in bodies {
        let ran = send(
            work.path(),
            &spool,
            &url,
            body,
            &["--attempts", "2", "--scheme", scheme],
        )
        .await;
        assert_eq!(
            ran.code,
            Some(EXIT_TEMPFAIL),
            "{}{}",
            ran.stdout,
            ran.stderr
        );
        assert!(ran.stdout.contains("spooled"), "{}", ran.stdout);
        assert!(
            ran.stderr.contains("not delivered after 2 attempts"),
            "{}",
            ran.stderr
        );
    }
    assert_eq!(spooled(&spool).len(), 3);

    // What waits, and why; the secret is nowhere in the spool.
    let listed = run(
        &[
            "send",
            "--list",
            "--json",
            "--spool",
            spool.to_str().unwrap(),
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let lines: Vec<Value> = listed
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", listed.stdout);
    for line in &lines {
        assert_eq!(line["state"], "waiting");
        assert_eq!(line["attempts"], 2);
        assert_eq!(line["due"], false);
        assert!(
            line["last_error"].as_str().unwrap().contains("refused"),
            "{line}"
        );
    }
    for path in spooled(&spool) {
        assert!(!std::fs::read_to_string(path).unwrap().contains(SECRET));
    }

    // Not due yet: `--due` leaves them alone.
    let early = flush(&spool, &["--due"]).await;
    assert_eq!(early.code, Some(0), "{}", early.stderr);
    assert!(early.stderr.contains("3 not due yet"), "{}", early.stderr);
    assert_eq!(spooled(&spool).len(), 3);

    let inbox = Inbox::start(work.path(), port).await;
    let flushed = flush(&spool, &[]).await;
    assert_eq!(
        flushed.code,
        Some(0),
        "{}{}",
        flushed.stdout,
        flushed.stderr
    );
    assert_eq!(
        flushed.stdout.matches("delivered").count(),
        3,
        "{}",
        flushed.stdout
    );
    assert!(spooled(&spool).is_empty());

    // A second flush finds nothing, and sends nothing.
    let again = flush(&spool, &[]).await;
    assert_eq!(again.code, Some(0));
    assert!(
        again.stderr.contains("nothing to flush"),
        "{}",
        again.stderr
    );

    let db = inbox.db().await;
    let rows = sqlx::query(
        "SELECT external_job_id, delivery_count, callback_id, payload FROM llm_callbacks ORDER BY external_job_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let jobs: Vec<(String, i64, String, String)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    for (index, (job, count, callback_id, payload)) in jobs.iter().enumerate() {
        assert_eq!(job, ["job-a", "job-b", "job-c"][index]);
        assert_eq!(*count, 1, "{job} delivered {count} times");
        assert_eq!(payload, bodies[index].0, "stored byte for byte");
        if job == "job-c" {
            assert!(callback_id.starts_with("wh:msg_"), "{callback_id}");
        }
    }
    let accepted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE outcome = 'accepted'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(accepted, 3);
    inbox.kill().await;
}

#[tokio::test]
async fn flush_killed_at_random_points_loses_nothing_and_delivers_each_once() {
    const CALLBACKS: usize = 200;
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}{WEBHOOK}");

    // 200 callbacks that could not be delivered (the server is not up yet).
    let mut pending = Vec::new();
    for n in 0..CALLBACKS {
        let body = format!(r#"{{"job_id":"job-{n:03}","event":"workflow.completed","n":{n}}}"#);
        let (dir, spool, url) = (work.path().to_owned(), spool.clone(), url.clone());
        pending.push(tokio::spawn(async move {
            send(&dir, &spool, &url, &body, &["--attempts", "1"]).await
        }));
        if pending.len() == 8 || n == CALLBACKS - 1 {
            for task in pending.drain(..) {
                let ran = task.await.unwrap();
                assert_eq!(ran.code, Some(EXIT_TEMPFAIL), "{}", ran.stderr);
            }
        }
    }
    assert_eq!(spooled(&spool).len(), CALLBACKS);

    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = 0;
    let mut leftovers = 0;
    // Flushes killed at random instants: first while the server is still
    // down (each rewrites the attempt it made), then while it is up.
    let mut inbox = None;
    for round in 0..150 {
        if round == 10 {
            inbox = Some(Inbox::start(work.path(), port).await);
        }
        if spooled(&spool).is_empty() {
            break;
        }
        let mut child = cli(
            &[
                "send",
                "--flush",
                "--quiet",
                "--spool",
                spool.to_str().unwrap(),
            ],
            &[("LLM_WEBHOOK_SECRET", SECRET)],
        )
        .spawn()
        .unwrap();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(2..50))).await;
        if child.try_wait().unwrap().is_none() {
            child.start_kill().unwrap();
            kills += 1;
        }
        child.wait().await.unwrap();
        // Whatever the instant of the kill: every spool file is whole.
        let files = spooled(&spool);
        assert!(files.len() <= CALLBACKS);
        for path in files {
            let entry = spool_entry(&path).unwrap_or_else(|err| {
                panic!("seed {seed}: {} is half-written ({err})", path.display())
            });
            let body: Value = serde_json::from_str(entry["body"].as_str().unwrap()).unwrap();
            assert!(body["job_id"].as_str().unwrap().starts_with("job-"));
        }
        leftovers += temp_files(&spool);
    }
    let inbox = inbox.expect("the server was started");
    // The last flush runs to its end.
    let last = flush(&spool, &[]).await;
    assert_eq!(
        last.code,
        Some(0),
        "seed {seed}: {}{}",
        last.stdout,
        last.stderr
    );
    assert!(spooled(&spool).is_empty(), "seed {seed}");
    assert_eq!(temp_files(&spool), 0, "temporary files were not cleaned");

    let db = inbox.db().await;
    let jobs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT external_job_id, delivery_count FROM llm_callbacks ORDER BY external_job_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let expected: Vec<String> = (0..CALLBACKS).map(|n| format!("job-{n:03}")).collect();
    let stored: Vec<String> = jobs.iter().map(|(job, _)| job.clone()).collect();
    assert_eq!(
        stored, expected,
        "seed {seed}: each callback exactly once as a row"
    );
    let deliveries: i64 = jobs.iter().map(|(_, count)| count).sum();
    eprintln!(
        "seed {seed}: {kills} kills, {leftovers} temporary files seen, {deliveries} deliveries for {CALLBACKS} rows, {:?}",
        started.elapsed()
    );
    assert!(kills >= 10, "seed {seed}: only {kills} flushes were killed");
    inbox.kill().await;
}

#[tokio::test]
async fn retry_after_on_429_and_503_is_respected() {
    let work = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&[(429, Some(1)), (503, Some(1))], None).await;
    let ran = send(
        work.path(),
        &work.path().join("spool"),
        &receiver.url,
        r#"{"job_id":"job-ra","event":"workflow.completed"}"#,
        &["--attempts", "5"],
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3);
    for pair in hits.windows(2) {
        let waited = pair[1].at - pair[0].at;
        // Without Retry-After the next attempt comes after 250 or 500 ms.
        assert!(
            waited >= Duration::from_millis(950),
            "waited only {waited:?}"
        );
        assert!(waited < Duration::from_secs(4), "waited {waited:?}");
    }
    assert!(ran.stderr.contains("(Retry-After)"), "{}", ran.stderr);
    assert!(spooled(&work.path().join("spool")).is_empty());
}

#[tokio::test]
async fn a_400_is_final_and_not_spooled() {
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let receiver = Receiver::start(&[(400, None)], None).await;
    let ran = send(
        work.path(),
        &spool,
        &receiver.url,
        r#"{"job_id":"job-400","event":"workflow.completed"}"#,
        &["--attempts", "5"],
    )
    .await;
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("400"), "{}", ran.stderr);
    assert!(ran.stderr.contains("not spooled"), "{}", ran.stderr);
    assert_eq!(receiver.count(), 1, "a 400 was retried");
    assert!(spooled(&spool).is_empty(), "a refused callback was spooled");
    assert_eq!(temp_files(&spool), 0);

    // A 401 (wrong secret) is just as final; a 500 is not.
    let receiver = Receiver::start(&[(401, None)], None).await;
    let ran = send(work.path(), &spool, &receiver.url, r#"{"job_id":"j"}"#, &[]).await;
    assert_eq!((ran.code, receiver.count()), (Some(1), 1));
    let receiver = Receiver::start(&[(500, None), (500, None), (422, None)], None).await;
    let ran = send(
        work.path(),
        &spool,
        &receiver.url,
        r#"{"job_id":"j"}"#,
        &["--attempts", "2"],
    )
    .await;
    assert_eq!((ran.code, receiver.count()), (Some(EXIT_TEMPFAIL), 2));
    assert_eq!(spooled(&spool).len(), 1);

    // A final refusal at flush time moves it to failed/, and says so.
    let flushed = flush(&spool, &[]).await;
    assert_eq!(
        flushed.code,
        Some(1),
        "{}{}",
        flushed.stdout,
        flushed.stderr
    );
    assert!(flushed.stderr.contains("422"), "{}", flushed.stderr);
    assert!(flushed.stderr.contains("failed"), "{}", flushed.stderr);
    assert!(spooled(&spool).is_empty());
    assert_eq!(spooled(&spool.join("failed")).len(), 1);
    assert_eq!(receiver.count(), 3);
    let listed = run(
        &[
            "send",
            "--list",
            "--json",
            "--spool",
            spool.to_str().unwrap(),
        ],
        &[],
        None,
    )
    .await;
    let entry: Value = serde_json::from_str(listed.stdout.trim()).unwrap();
    assert_eq!(entry["state"], "failed");
    assert_eq!(entry["last_status"], 422);
    assert_eq!(entry["attempts"], 3);
    // A flush does not send failed callbacks again.
    let again = flush(&spool, &[]).await;
    assert_eq!(again.code, Some(0));
    assert_eq!(receiver.count(), 3);
}

#[tokio::test]
async fn concurrent_flushes_never_send_the_same_callback() {
    const CALLBACKS: usize = 40;
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    let mut pending = Vec::new();
    for n in 0..CALLBACKS {
        let (dir, spool, url) = (work.path().to_owned(), spool.clone(), closed.clone());
        pending.push(tokio::spawn(async move {
            let body = format!(r#"{{"job_id":"job-{n:02}","event":"workflow.completed"}}"#);
            send(&dir, &spool, &url, &body, &["--attempts", "1"]).await
        }));
    }
    for task in pending {
        assert_eq!(task.await.unwrap().code, Some(EXIT_TEMPFAIL));
    }
    // Three flushes at once, to a receiver slow enough for them to overlap
    // (and to another URL than the one they were sent to).
    let receiver = Receiver::start_slow(&[], None, Duration::from_millis(15)).await;
    let flushes: Vec<_> = (0..3)
        .map(|_| {
            let (spool, url) = (spool.clone(), receiver.url.clone());
            tokio::spawn(async move { flush(&spool, &["--url", &url]).await })
        })
        .collect();
    let mut taken = 0;
    for task in flushes {
        let ran = task.await.unwrap();
        assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
        taken += ran.stdout.matches("delivered").count();
    }
    let mut bodies: Vec<String> = receiver.hits().into_iter().map(|hit| hit.body).collect();
    bodies.sort();
    let before = bodies.len();
    bodies.dedup();
    assert_eq!(before, bodies.len(), "a callback was sent twice");
    assert_eq!(bodies.len(), CALLBACKS);
    assert_eq!(taken, CALLBACKS);
    assert!(spooled(&spool).is_empty());
}

#[tokio::test]
async fn standard_webhooks_retries_keep_one_webhook_id() {
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    // 503 with Retry-After (so the next timestamp differs), 500, then the
    // spool; the flush gets a 200.
    let receiver = Receiver::start(&[(503, Some(1)), (500, None)], None).await;
    let body = r#"{"job_id":"job-std","event":"workflow.completed"}"#;
    let ran = send(
        work.path(),
        &spool,
        &receiver.url,
        body,
        &["--scheme", "standard", "--attempts", "2"],
    )
    .await;
    assert_eq!(
        ran.code,
        Some(EXIT_TEMPFAIL),
        "{}{}",
        ran.stdout,
        ran.stderr
    );
    let flushed = flush(&spool, &[]).await;
    assert_eq!(
        flushed.code,
        Some(0),
        "{}{}",
        flushed.stdout,
        flushed.stderr
    );

    let hits = receiver.hits();
    assert_eq!(hits.len(), 3);
    let id = header(&hits[0], "webhook-id").to_owned();
    assert!(id.starts_with("msg_"), "{id}");
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let mut stamps = Vec::new();
    for hit in &hits {
        assert_eq!(
            header(hit, "webhook-id"),
            id,
            "a retry changed the webhook-id"
        );
        assert_eq!(hit.body, body);
        let stamp: i64 = header(hit, "webhook-timestamp").parse().unwrap();
        assert_eq!(
            header(hit, "webhook-signature"),
            sign_standard(&secret, &id, stamp, body.as_bytes()),
            "each attempt is signed with its own timestamp"
        );
        assert!(hit.headers.get("x-webhook-signature").is_none());
        stamps.push(stamp);
    }
    assert!(
        stamps[1] > stamps[0],
        "the timestamp was not fresh: {stamps:?}"
    );
    assert!(spooled(&spool).is_empty());
}

#[tokio::test]
async fn bad_input_exits_1_and_sends_nothing() {
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let receiver = Receiver::start(&[], None).await;
    let url = receiver.url.clone();
    let not_json = work.path().join("note.txt");
    std::fs::write(&not_json, "job done").unwrap();
    let array = work.path().join("array.json");
    std::fs::write(&array, r#"[{"job_id":"j"}]"#).unwrap();
    let good = work.path().join("good.json");
    std::fs::write(&good, r#"{"job_id":"j","event":"workflow.completed"}"#).unwrap();
    let missing = work.path().join("missing.json");
    let spool_arg = spool.to_str().unwrap();
    let cases: [(&str, Vec<&str>, Option<&str>, &str); 6] = [
        (
            "not JSON",
            vec![not_json.to_str().unwrap(), "--secret", SECRET],
            None,
            "is not JSON",
        ),
        (
            "an array",
            vec![array.to_str().unwrap(), "--secret", SECRET],
            None,
            "holds an array",
        ),
        (
            "a missing file",
            vec![missing.to_str().unwrap(), "--secret", SECRET],
            None,
            "no such file",
        ),
        ("no secret", vec![good.to_str().unwrap()], None, "no secret"),
        (
            "a short secret",
            vec![good.to_str().unwrap(), "--secret", "short"],
            None,
            "secret",
        ),
        (
            "an array on stdin",
            vec!["-", "--secret", SECRET],
            Some("[]"),
            "holds an array",
        ),
    ];
    for (what, file_args, stdin, message) in cases {
        let mut args = vec!["send"];
        args.extend(file_args);
        args.extend(["--url", &url, "--spool", spool_arg]);
        let ran = run(&args, &[], stdin).await;
        assert_eq!(ran.code, Some(1), "{what}: {}{}", ran.stdout, ran.stderr);
        assert!(ran.stderr.contains(message), "{what}: {}", ran.stderr);
        assert!(ran.stderr.contains("error:"), "{what}: {}", ran.stderr);
    }
    assert_eq!(receiver.count(), 0, "bad input reached the receiver");
    assert!(!spool.exists(), "bad input created the spool");

    // The same good file does go out with a secret from the environment.
    let ran = run(
        &[
            "send",
            good.to_str().unwrap(),
            "--url",
            &url,
            "--spool",
            spool_arg,
        ],
        &[(
            "LLM_WEBHOOK_SECRET",
            &format!("an-old-secret-0123456789,{SECRET}"),
        )],
        None,
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(receiver.count(), 1);
    let hit = &receiver.hits()[0];
    let newest = WebhookSecret::parse(SECRET).unwrap();
    assert_eq!(
        header(hit, "x-webhook-signature"),
        sign_hex(&newest, hit.body.as_bytes()),
        "signed with the newest secret of the list"
    );
}

// --- listen and replay ------------------------------------------------------------

fn callback(job: &str, event: &str) -> String {
    format!(
        "{{\"job_id\": \"{job}\", \"event\": \"{event}\", \"workflow_name\": \"cli-test\",\n  \"n\": 12345678901234567890123}}"
    )
}

#[tokio::test]
async fn listen_forwards_each_callback_once_across_a_dropped_connection() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let inbox = Inbox::start(data.path(), port).await;
    let token = inbox.create_token(ADMIN_EMAIL, "listen-test").await;
    let receiver = Receiver::start(&[], Some(LOCAL_SECRET)).await;
    let before = callback("job-before", "workflow.started");
    inbox.post(&before).await;

    let base = inbox.base();
    let mut listen = cli(
        &[
            "listen",
            "--server",
            &base,
            "--token",
            &token,
            "--forward",
            &receiver.url,
            "--secret",
            LOCAL_SECRET,
            "--json",
        ],
        &[],
    )
    .spawn()
    .unwrap();
    let stdout = collect(listen.stdout.take().unwrap());
    let stderr = collect(listen.stderr.take().unwrap());
    wait_until("listen to connect", Duration::from_secs(15), || {
        joined(&stderr).contains("(connected)")
    })
    .await;

    // A callback that arrives after it started.
    let first = callback("job-live", "workflow.completed");
    inbox.post(&first).await;
    wait_until("the first forward", Duration::from_secs(10), || {
        receiver.count() == 1
    })
    .await;

    // The connection drops; a callback arrives while it is down (through
    // another instance on the same database); the inbox comes back.
    let database = inbox.database.clone();
    inbox.kill().await;
    wait_until("listen to notice", Duration::from_secs(10), || {
        joined(&stderr).contains("disconnected")
    })
    .await;
    let other = Inbox::start_on(data.path(), &database, free_port()).await;
    let second = callback("job-while-down", "workflow.failed");
    other.post(&second).await;
    other.kill().await;
    let inbox = Inbox::start_on(data.path(), &database, port).await;
    wait_until("the second forward", Duration::from_secs(30), || {
        receiver.count() == 2
    })
    .await;
    // Nothing more comes: no repeats after the reconnect.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let hits = receiver.hits();
    assert_eq!(
        hits.len(),
        2,
        "{:?}",
        hits.iter().map(|h| &h.body).collect::<Vec<_>>()
    );
    assert_eq!(hits[0].body, first, "forwarded byte for byte");
    assert_eq!(hits[1].body, second);
    assert_eq!(header(&hits[0], "x-webhook-event"), "workflow.completed");
    assert_eq!(header(&hits[1], "x-webhook-event"), "workflow.failed");
    assert!(
        hits.iter().all(|hit| hit.signed == Some(true)),
        "a forward was not signed with --secret"
    );
    assert!(
        hits.iter().all(|hit| hit.body != before),
        "the backlog before listen was replayed"
    );

    let lines: Vec<Value> = joined(&stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["event"], "workflow.completed");
    assert_eq!(lines[0]["workflow"], "cli-test");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[1]["event"], "workflow.failed");
    assert!(lines[1]["ms"].is_u64());

    // Revoking the token ends it: the stream closes, the reconnect gets 401.
    let revoked = run(
        &["token", "revoke", "--name", "listen-test"],
        &[("DATABASE_URL", &inbox.database_url())],
        None,
    )
    .await;
    assert_eq!(revoked.code, Some(0), "{}", revoked.stderr);
    let status = tokio::time::timeout(Duration::from_secs(20), listen.wait())
        .await
        .expect("listen stops once its token is revoked")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    // The process has exited, but the reader of its stderr may not have
    // taken the last line from the pipe yet.
    let said_401 = tokio::time::timeout(Duration::from_secs(5), async {
        while !joined(&stderr).contains("401") {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await;
    assert!(said_401.is_ok(), "{}", joined(&stderr));
    inbox.kill().await;
}

#[tokio::test]
async fn replay_forwards_one_stored_callback_byte_for_byte() {
    let data = tempfile::tempdir().unwrap();
    let inbox = Inbox::start(data.path(), free_port()).await;
    let token = inbox.create_token(ADMIN_EMAIL, "replay").await;
    let body = "{\"job_id\":\"job-replay\",  \"event\":\"workflow.completed\",\n \"amount\": 1.50, \"big\": 123456789012345678901234567890}\n";
    let id = inbox.post(body).await;
    let receiver = Receiver::start(&[], Some(LOCAL_SECRET)).await;
    let base = inbox.base();
    let args = |id: &str, token: &str| -> Vec<String> {
        [
            "replay",
            id,
            "--server",
            &base,
            "--token",
            token,
            "--to",
            &receiver.url,
            "--secret",
            LOCAL_SECRET,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let replay = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, &[], None).await
    };

    let ran = replay(args(&id, &token)).await;
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("workflow.completed"), "{}", ran.stdout);
    assert!(ran.stdout.contains("200 OK"), "{}", ran.stdout);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].body, body);
    assert_eq!(hits[0].signed, Some(true));
    assert_eq!(header(&hits[0], "x-webhook-event"), "workflow.completed");
    assert_eq!(header(&hits[0], "x-callback-inbox-id"), id);

    let unknown = replay(args("0190f2b4-7a51-7cc2-9a5e-3f1f4b2c9d10", &token)).await;
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stderr.contains("no callback"), "{}", unknown.stderr);
    let refused = replay(args(&id, "cbi_not-a-token")).await;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("refused the token"),
        "{}",
        refused.stderr
    );
    assert_eq!(receiver.count(), 1);
    inbox.kill().await;
}

// --- tokens ---------------------------------------------------------------------

/// Arguments for every server function a token may call, or is refused.
fn arguments(id: &str) -> BTreeMap<&'static str, Vec<(&'static str, String)>> {
    let owned = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    };
    BTreeMap::from([
        ("/api/auth/logout", vec![]),
        ("/api/auth/me", vec![]),
        (
            "/api/callbacks/poll",
            owned(&[("after", ""), ("limit", "5")]),
        ),
        ("/api/callbacks/detail", owned(&[("id", id)])),
        ("/api/callbacks/mark-viewed", owned(&[("id", id)])),
        ("/api/callbacks/mark-all-viewed", vec![]),
        ("/api/callbacks/history", owned(&[("q", "job")])),
        ("/api/admin/users", vec![]),
        (
            "/api/admin/users/invite",
            owned(&[("email", "invited@example.com"), ("role", "viewer")]),
        ),
        (
            "/api/admin/users/set-role",
            owned(&[("email", ADMIN_EMAIL), ("role", "admin")]),
        ),
        (
            "/api/admin/users/set-disabled",
            owned(&[("email", ADMIN_EMAIL), ("disabled", "false")]),
        ),
        ("/api/admin/settings", vec![]),
        (
            "/api/admin/settings/reveal-secret",
            owned(&[("label", "LLM_WEBHOOK_SECRET #1")]),
        ),
        ("/api/deliveries/list", owned(&[("limit", "5")])),
        ("/api/deliveries/summary", owned(&[("window", "1h")])),
    ])
}

/// What a token may do: read.
const READERS: [&str; 7] = [
    "/api/auth/me",
    "/api/callbacks/poll",
    "/api/callbacks/detail",
    "/api/callbacks/history",
    "/api/callbacks/sources",
    "/api/deliveries/list",
    "/api/deliveries/summary",
];

async fn call(base: &str, path: &str, token: &str, fields: &[(&str, String)]) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .form(fields)
        .send()
        .await
        .unwrap()
}

async fn get(base: &str, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn tokens_read_cannot_change_anything_and_stop_when_revoked_or_disabled() {
    let data = tempfile::tempdir().unwrap();
    let inbox = Inbox::start(data.path(), free_port()).await;
    let base = inbox.base();
    let id = inbox
        .post(&callback("job-token", "workflow.completed"))
        .await;
    let token = inbox.create_token(ADMIN_EMAIL, "ci").await;

    // Every server function the app registers (but login) is either a
    // reader, which the token may call, or answers it 403.
    let known = arguments(&id);
    let mut registered: Vec<&'static str> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path)
        .filter(|path| *path != "/api/auth/login")
        .collect();
    registered.sort_unstable();
    registered.dedup();
    for path in &registered {
        let fields = known.get(path).cloned().unwrap_or_default();
        let status = call(&base, path, &token, &fields).await.status();
        if READERS.contains(path) {
            assert!(status.is_success(), "{path}: {status}");
        } else if known.contains_key(path) {
            assert_eq!(status, 403, "{path}");
        } else {
            // Added since: arguments unknown here, but a token never passes.
            assert!(matches!(status.as_u16(), 400 | 403), "{path}: {status}");
        }
    }
    let me: Value = call(&base, "/api/auth/me", &token, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], ADMIN_EMAIL);
    let detail: Value = call(
        &base,
        "/api/callbacks/detail",
        &token,
        &[("id", id.clone())],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        detail["payload_text"],
        callback("job-token", "workflow.completed")
    );
    let refused: Value = call(
        &base,
        "/api/callbacks/mark-viewed",
        &token,
        &[("id", id.clone())],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(refused["code"], "forbidden");
    let db = inbox.db().await;
    let views: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_callback_views")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(views, 0, "a token marked a callback viewed");
    let export = get(&base, "/api/callbacks/export?format=ndjson", &token).await;
    assert_eq!(export.status(), 200);
    assert!(export.text().await.unwrap().contains("job-token"));
    let stream = get(&base, "/api/callbacks/stream", &token).await;
    assert_eq!(stream.status(), 200);
    drop(stream);

    // Unknown tokens get 401 everywhere, readers and writers alike.
    for path in [
        "/api/callbacks/poll",
        "/api/callbacks/mark-viewed",
        "/api/auth/me",
    ] {
        let fields = known.get(path).cloned().unwrap_or_default();
        let status = call(&base, path, "cbi_unknown", &fields).await.status();
        assert_eq!(status, 401, "{path}");
    }
    assert_eq!(
        get(&base, "/api/callbacks/stream", "cbi_unknown")
            .await
            .status(),
        401
    );

    // Revoked: 401 at once.
    let env = [("DATABASE_URL", inbox.database_url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let revoked = run(&["token", "revoke", "--name", "ci"], &env, None).await;
    assert_eq!(revoked.code, Some(0), "{}", revoked.stderr);
    let poll = &known["/api/callbacks/poll"];
    assert_eq!(
        call(&base, "/api/callbacks/poll", &token, poll)
            .await
            .status(),
        401
    );
    assert_eq!(
        get(&base, "/api/callbacks/stream", &token).await.status(),
        401
    );
    assert_eq!(
        get(&base, "/api/callbacks/export", &token).await.status(),
        401
    );
    let listen = run(
        &[
            "listen",
            "--server",
            &base,
            "--token",
            &token,
            "--forward",
            "http://127.0.0.1:9/x",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(listen.code, Some(1));
    assert!(
        listen.stderr.contains("refused the token (401)"),
        "{}",
        listen.stderr
    );

    // A disabled account's tokens stop working; enabled again, they work.
    let created = run(
        &[
            "admin",
            "create",
            "--email",
            "viewer@example.com",
            "--role",
            "viewer",
        ],
        &env,
        Some("viewer password 12345\n"),
    )
    .await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let viewer = inbox.create_token("viewer@example.com", "ci").await;
    assert_eq!(
        call(&base, "/api/callbacks/poll", &viewer, poll)
            .await
            .status(),
        200
    );
    let disabled = run(
        &["admin", "disable", "--email", "viewer@example.com"],
        &env,
        None,
    )
    .await;
    assert_eq!(disabled.code, Some(0), "{}", disabled.stderr);
    assert_eq!(
        call(&base, "/api/callbacks/poll", &viewer, poll)
            .await
            .status(),
        401
    );
    run(
        &["admin", "enable", "--email", "viewer@example.com"],
        &env,
        None,
    )
    .await;
    assert_eq!(
        call(&base, "/api/callbacks/poll", &viewer, poll)
            .await
            .status(),
        200
    );

    // Names are unique per account; the list shows both, one revoked.
    let duplicate = run(
        &[
            "token",
            "create",
            "--email",
            "viewer@example.com",
            "--name",
            "ci",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(duplicate.code, Some(1));
    assert!(
        duplicate.stderr.contains("already has a token"),
        "{}",
        duplicate.stderr
    );
    let listed = run(&["token", "list"], &env, None).await;
    assert_eq!(listed.code, Some(0));
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", listed.stdout);
    assert!(lines[0].starts_with("admin@example.com\tci\t") && lines[0].contains("revoked"));
    assert!(lines[1].starts_with("viewer@example.com\tci\t") && lines[1].ends_with("active"));
    assert!(!listed.stdout.contains(&viewer), "a token was listed");
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|hash| hash.len() == 64 && !hash.contains("cbi_"))
    );
    inbox.kill().await;
}

// --- what reaches the terminal --------------------------------------------------

/// Whether a terminal would act on `ch` (C0 but the line end, DEL, C1,
/// bidirectional controls).
fn acts_on_terminal(ch: char) -> bool {
    ch.is_control() || matches!(ch, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An event that tries to forge a forward line and rewrite the terminal.
const FORGED_EVENT: &str =
    "x\u{1b}[2K\r\n06:05:08  workflow.completed  summarize  → 200 OK  3 ms\u{1b}]0;pwned\u{7}";

#[tokio::test]
async fn listen_prints_payload_text_escaped_and_still_forwards_it() {
    let data = tempfile::tempdir().unwrap();
    let inbox = Inbox::start(data.path(), free_port()).await;
    let token = inbox.create_token(ADMIN_EMAIL, "escape").await;
    let receiver = Receiver::start(&[], None).await;
    let base = inbox.base();
    let mut listen = cli(
        &["listen", "--server", &base, "--forward", &receiver.url],
        &[("INBOX_TOKEN", &token)],
    )
    .spawn()
    .unwrap();
    let stdout = collect(listen.stdout.take().unwrap());
    let stderr = collect(listen.stderr.take().unwrap());
    wait_until("listen to connect", Duration::from_secs(15), || {
        joined(&stderr).contains("(connected)")
    })
    .await;

    let body = serde_json::json!({
        "job_id": "job-forged",
        "event": FORGED_EVENT,
        "workflow_name": "wf\u{9b}31m\u{202e}gnp.exe",
    })
    .to_string();
    inbox.post(&body).await;
    wait_until("the forward line", Duration::from_secs(15), || {
        !stdout.lock().unwrap().is_empty()
    })
    .await;
    // Anything more it would print comes with the same write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = stdout.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "a line was forged: {lines:#?}");
    let line = &lines[0];
    assert!(
        !line.chars().any(acts_on_terminal),
        "raw control characters reached stdout: {line:?}"
    );
    assert!(line.contains("x\\u{1b}[2K\\r\\n06:05:08"), "{line}");
    assert!(line.contains("wf\\u{9b}31m\\u{202e}gnp.exe"), "{line}");
    assert!(
        !joined(&stderr)
            .chars()
            .any(|ch| ch != '\n' && acts_on_terminal(ch)),
        "{:?}",
        joined(&stderr)
    );

    // And the callback went out, byte for byte, the event encoded.
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].body, body);
    assert_eq!(
        header(&hits[0], "x-webhook-event"),
        "x%1B[2K%0D%0A06:05:08  workflow.completed  summarize  %E2%86%92 200 OK  3 ms%1B]0;pwned%07"
    );
    let _ = listen.kill().await;
    inbox.kill().await;
}

#[tokio::test]
async fn replay_forwards_a_callback_whose_event_holds_control_characters() {
    let data = tempfile::tempdir().unwrap();
    let inbox = Inbox::start(data.path(), free_port()).await;
    let token = inbox.create_token(ADMIN_EMAIL, "replay-controls").await;
    let body =
        "{\"job_id\":\"job-ctl\",\"event\":\"step\\r\\nX-Injected: yes\\u0001\\u007f\\u009b\"}";
    let id = inbox.post(body).await;
    let receiver = Receiver::start(&[], Some(LOCAL_SECRET)).await;
    let base = inbox.base();
    let env = [("INBOX_TOKEN", token.as_str())];
    let ran = run(
        &[
            "replay",
            &id,
            "--server",
            &base,
            "--to",
            &receiver.url,
            "--secret",
            LOCAL_SECRET,
            "--json",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "not forwarded: {}", ran.stderr);
    assert_eq!(hits[0].body, body, "forwarded byte for byte");
    assert_eq!(hits[0].signed, Some(true));
    assert_eq!(
        header(&hits[0], "x-webhook-event"),
        "step%0D%0AX-Injected: yes%01%7F%C2%9B"
    );
    assert!(hits[0].headers.get("x-injected").is_none());

    // The JSON line is the same event, and inert on a terminal.
    assert!(
        !ran.stdout.trim_end().chars().any(acts_on_terminal),
        "{:?}",
        ran.stdout
    );
    let line: Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    assert_eq!(line["event"], "step\r\nX-Injected: yes\u{1}\u{7f}\u{9b}");
    assert_eq!(line["status"], 200);

    // The text line too.
    let text = run(
        &["replay", &id, "--server", &base, "--to", &receiver.url],
        &[
            ("INBOX_TOKEN", &token),
            ("INBOX_FORWARD_SECRET", LOCAL_SECRET),
        ],
        None,
    )
    .await;
    assert_eq!(text.code, Some(0), "{}{}", text.stdout, text.stderr);
    assert_eq!(text.stdout.lines().count(), 1, "{:?}", text.stdout);
    assert!(
        !text.stdout.trim_end().chars().any(acts_on_terminal),
        "{:?}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("step\\r\\nX-Injected: yes\\u{1}\\u{7f}\\u{9b}"),
        "{}",
        text.stdout
    );
    inbox.kill().await;
}

// --- a hostile event stream -----------------------------------------------------

/// Reads one request's head (and its small body); returns the head.
async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&bytes);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return text[..end].to_owned();
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Not an inbox: its live feed's first event never ends (`data:` lines
/// until `flood` bytes were written), then a real one follows, whose
/// callback its detail call describes. Later streams stay silent.
async fn hostile_inbox(
    flood: usize,
    callback: Uuid,
    payload: String,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        let mut streams = 0;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let head = read_request(&mut stream).await;
            if head.starts_with("POST /api/callbacks/detail") {
                let detail = serde_json::json!({
                    "id": callback,
                    "event_type": "workflow.completed",
                    "workflow_name": "after-the-flood",
                    "payload_text": payload,
                })
                .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{detail}",
                    detail.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                continue;
            }
            streams += 1;
            let first = streams == 1;
            let counter = counter.clone();
            tokio::spawn(async move {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                if first {
                    let line = format!("data: {}\n", "x".repeat(1017));
                    let block = line.repeat(64);
                    let _ = stream.write_all(b"id: 666\nevent: callback\n").await;
                    while counter.load(Ordering::SeqCst) < flood {
                        if stream.write_all(block.as_bytes()).await.is_err() {
                            return;
                        }
                        counter.fetch_add(block.len(), Ordering::SeqCst);
                    }
                    let next =
                        format!("\nevent: callback\nid: 667\ndata: {{\"id\":\"{callback}\"}}\n\n");
                    let _ = stream.write_all(next.as_bytes()).await;
                }
                loop {
                    if stream.write_all(b": quiet\n\n").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
        }
    });
    (base, written)
}

/// Peak resident memory of a process, in KiB.
fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn listen_skips_an_endless_event_with_bounded_memory_and_goes_on() {
    const FLOOD: usize = 160 << 20;
    let callback = Uuid::now_v7();
    let payload = r#"{"job_id":"job-after","event":"workflow.completed"}"#.to_owned();
    let (base, written) = hostile_inbox(FLOOD, callback, payload.clone()).await;
    let receiver = Receiver::start(&[], None).await;
    let mut listen = cli(
        &[
            "listen",
            "--server",
            &base,
            "--token",
            "cbi_any",
            "--forward",
            &receiver.url,
        ],
        &[],
    )
    .spawn()
    .unwrap();
    let pid = listen.id().unwrap();
    let stdout = collect(listen.stdout.take().unwrap());
    let stderr = collect(listen.stderr.take().unwrap());
    wait_until(
        "the oversized event's warning",
        Duration::from_secs(60),
        || joined(&stderr).contains("larger than 1 MiB"),
    )
    .await;
    wait_until("the flood to be read", Duration::from_secs(120), || {
        written.load(Ordering::SeqCst) >= FLOOD
    })
    .await;
    // What comes after the endless event is still handled.
    wait_until("the next event's forward", Duration::from_secs(30), || {
        receiver.count() == 1
    })
    .await;
    let peak_mib = peak_memory_kib(pid) / 1024;
    assert!(
        peak_mib < 64,
        "listen peaked at {peak_mib} MiB reading a {} MiB event",
        FLOOD >> 20
    );
    assert_eq!(receiver.hits()[0].body, payload);
    assert!(
        listen.try_wait().unwrap().is_none(),
        "listen ended: {}",
        joined(&stderr)
    );
    let warnings = joined(&stderr).matches("larger than 1 MiB").count();
    assert_eq!(warnings, 1, "{}", joined(&stderr));
    // The forward's line may reach the pipe reader after the receiver saw it.
    wait_until("the forward's line", Duration::from_secs(15), || {
        joined(&stdout).contains("after-the-flood")
    })
    .await;
    let _ = listen.kill().await;
}

// --- a spool only sends what it wrote ---------------------------------------------

/// A spool entry file as the spool writes it, for `entry`, signed with the
/// key of the spool in `dir` (as only someone who can read the key can).
fn signed_entry_text(dir: &Path, entry: &Value) -> String {
    use hmac::Mac;
    let key = std::fs::read_to_string(dir.join(".spool-key")).unwrap();
    let key = hex::decode(key.trim()).unwrap();
    let content = format!("{}\n", serde_json::to_string_pretty(entry).unwrap());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(b"callback-inbox spool entry\n");
    mac.update(content.as_bytes());
    let check = hex::encode(mac.finalize().into_bytes());
    format!("callback-inbox-spool 2 hmac-sha256={check}\n{content}")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn flush_refuses_entries_this_spool_did_not_write_and_sends_them_nowhere() {
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    // Where the planted entries want their signed callbacks to go.
    let trap = Receiver::start(&[], None).await;
    let receiver = Receiver::start(&[(503, None)], None).await;
    let legit = r#"{"job_id":"job-legit","event":"workflow.completed"}"#;
    let ran = send(
        work.path(),
        &spool,
        &receiver.url,
        legit,
        &["--attempts", "1"],
    )
    .await;
    assert_eq!(
        ran.code,
        Some(EXIT_TEMPFAIL),
        "{}{}",
        ran.stdout,
        ran.stderr
    );
    assert_eq!(mode_of(&spool), 0o700);
    assert_eq!(mode_of(&spool.join(".spool-key")), 0o600);
    let mine = spooled(&spool).pop().unwrap();
    assert_eq!(mode_of(&mine), 0o600);
    let real = spool_entry(&mine).unwrap();
    let planted_entry = |n: u32| {
        let mut entry = real.clone();
        let id = Uuid::now_v7();
        entry["id"] = Value::String(id.to_string());
        entry["url"] = Value::String(trap.url.clone());
        entry["body"] = Value::String(format!(r#"{{"job_id":"planted-{n}"}}"#));
        (id, entry)
    };
    let plant = |name: String, text: &str, mode: u32| {
        let path = spool.join(name);
        std::fs::write(&path, text).unwrap();
        set_mode(&path, mode);
        path
    };
    let mut planted = Vec::new();
    // As the first format wrote them: plain JSON, no check.
    let (id, entry) = planted_entry(1);
    let v1 = serde_json::to_string_pretty(&entry).unwrap();
    planted.push(plant(format!("{id}.json"), &v1, 0o600));
    // A real entry's check over other content.
    let (id, entry) = planted_entry(2);
    let check = std::fs::read_to_string(&mine).unwrap();
    let check = check.lines().next().unwrap();
    let forged = format!(
        "{check}\n{}\n",
        serde_json::to_string_pretty(&entry).unwrap()
    );
    planted.push(plant(format!("{id}.json"), &forged, 0o600));
    // Written by another spool, with its own key.
    let elsewhere = work.path().join("elsewhere");
    let _ = send(
        work.path(),
        &elsewhere,
        &format!("http://127.0.0.1:{}/hook", free_port()),
        legit,
        &["--attempts", "1"],
    )
    .await;
    let (id, entry) = planted_entry(3);
    let theirs = signed_entry_text(&elsewhere, &entry);
    planted.push(plant(format!("{id}.json"), &theirs, 0o600));
    // Correctly signed (someone read the key), but open to others.
    let (id, entry) = planted_entry(4);
    let open = signed_entry_text(&spool, &entry);
    planted.push(plant(format!("{id}.json"), &open, 0o644));
    // Correctly signed, but a symbolic link to a file elsewhere.
    let (id, entry) = planted_entry(5);
    let outside = work.path().join("outside.json");
    std::fs::write(&outside, signed_entry_text(&spool, &entry)).unwrap();
    set_mode(&outside, 0o600);
    let link = spool.join(format!("{id}.json"));
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    planted.push(link);
    // Correctly signed, but another user's file (needs root to make).
    let (id, entry) = planted_entry(6);
    let foreign = plant(
        format!("{id}.json"),
        &signed_entry_text(&spool, &entry),
        0o600,
    );
    let as_root = std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).is_ok();
    if as_root {
        planted.push(foreign);
    } else {
        std::fs::remove_file(&foreign).unwrap();
        eprintln!("not root: the other-owner case is covered by the unit tests only");
    }

    let listed = run(
        &["send", "--list", "--spool", spool.to_str().unwrap()],
        &[],
        None,
    )
    .await;
    assert_eq!(listed.stdout.lines().count(), 1, "{}", listed.stdout);
    assert_eq!(
        listed.stderr.matches("not written by this spool").count(),
        planted.len(),
        "{}",
        listed.stderr
    );

    let flushed = flush(&spool, &[]).await;
    assert_eq!(
        flushed.code,
        Some(1),
        "{}{}",
        flushed.stdout,
        flushed.stderr
    );
    assert_eq!(trap.count(), 0, "a planted entry was sent");
    assert_eq!(receiver.count(), 2, "the real entry was not flushed");
    assert_eq!(receiver.hits()[1].body, legit);
    assert!(
        flushed.stdout.contains("delivered job-legit"),
        "{}",
        flushed.stdout
    );
    for reason in [
        "carries no check of this spool",
        "its check does not match this spool's key",
        "group or others have access to it (mode 0644",
        "it is a symbolic link",
    ] {
        assert!(
            flushed.stderr.contains(reason),
            "{reason}: {}",
            flushed.stderr
        );
    }
    if as_root {
        assert!(
            flushed
                .stderr
                .contains("belongs to another user (uid 65534)"),
            "{}",
            flushed.stderr
        );
    }
    assert!(
        flushed.stderr.contains(&format!(
            "{} refused (not written by this spool",
            planted.len()
        )),
        "{}",
        flushed.stderr
    );
    // Refused files are left as they were; the delivered one is gone.
    for path in &planted {
        assert!(
            std::fs::symlink_metadata(path).is_ok(),
            "{} was moved",
            path.display()
        );
    }
    assert!(!mine.exists());
    assert!(outside.exists());

    // A folder others may write to: nothing in it is sent, not even an
    // entry that passes every other check (once the folder is private
    // again, it goes out: the folder was the only thing wrong).
    for path in &planted {
        let _ = std::fs::remove_file(path);
    }
    let (id, entry) = planted_entry(7);
    plant(
        format!("{id}.json"),
        &signed_entry_text(&spool, &entry),
        0o600,
    );
    set_mode(&spool, 0o777);
    let flushed = flush(&spool, &[]).await;
    assert_eq!(flushed.code, Some(1));
    assert!(
        flushed.stderr.contains("can be written by group or others"),
        "{}",
        flushed.stderr
    );
    assert_eq!(trap.count(), 0, "sent from a folder others can write to");
    set_mode(&spool, 0o700);
    let flushed = flush(&spool, &[]).await;
    assert_eq!(
        flushed.code,
        Some(0),
        "{}{}",
        flushed.stdout,
        flushed.stderr
    );
    assert_eq!(trap.count(), 1);
}

// --- export --output --------------------------------------------------------------

#[tokio::test]
async fn export_output_is_a_new_private_file_and_never_follows_a_symlink() {
    let data = tempfile::tempdir().unwrap();
    let inbox = Inbox::start(data.path(), free_port()).await;
    inbox
        .post(&callback("job-export", "workflow.completed"))
        .await;
    let database_url = inbox.database_url();
    let env = [("DATABASE_URL", database_url.as_str())];
    let work = tempfile::tempdir().unwrap();
    let export = |path: &Path, force: bool| {
        let mut args = vec![
            "export".to_owned(),
            "--format".to_owned(),
            "ndjson".to_owned(),
            "--output".to_owned(),
            path.to_str().unwrap().to_owned(),
        ];
        if force {
            args.push("--force".to_owned());
        }
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args, &env, None).await
        }
    };

    let out = work.path().join("out.ndjson");
    let ran = export(&out, false).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(mode_of(&out), 0o600, "the export is readable by others");
    let first = std::fs::read_to_string(&out).unwrap();
    assert!(first.contains("job-export"), "{first}");

    // An existing file is refused, and left as it was.
    std::fs::write(&out, "keep me").unwrap();
    let ran = export(&out, false).await;
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("exists already"), "{}", ran.stderr);
    assert!(ran.stderr.contains("--force"), "{}", ran.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
    // With --force it is replaced by a new private file.
    set_mode(&out, 0o644);
    let ran = export(&out, true).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(mode_of(&out), 0o600);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first);

    // A symbolic link is never followed: not to a file, not to a new one.
    let victim = work.path().join("victim.txt");
    std::fs::write(&victim, "victim").unwrap();
    set_mode(&victim, 0o644);
    let link = work.path().join("link.ndjson");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let dangling_target = work.path().join("created-through-link.txt");
    let dangling = work.path().join("dangling.ndjson");
    std::os::unix::fs::symlink(&dangling_target, &dangling).unwrap();
    for path in [&link, &dangling] {
        let ran = export(path, false).await;
        assert_eq!(ran.code, Some(1), "{}", ran.stderr);
        assert!(ran.stderr.contains("exists already"), "{}", ran.stderr);
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
    assert_eq!(mode_of(&victim), 0o644);
    assert!(
        !dangling_target.exists(),
        "a file was created through a link"
    );
    let ran = export(&link, true).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        std::fs::symlink_metadata(&link).unwrap().is_file(),
        "the link is still there"
    );
    assert_eq!(mode_of(&link), 0o600);
    assert_eq!(std::fs::read_to_string(&link).unwrap(), first);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
    inbox.kill().await;
}

// --- a password reset and the account's tokens ----------------------------------

#[tokio::test]
async fn reset_password_says_whether_tokens_still_work_and_can_revoke_them() {
    let data = tempfile::tempdir().unwrap();
    let inbox = Inbox::start(data.path(), free_port()).await;
    let base = inbox.base();
    let laptop = inbox.create_token(ADMIN_EMAIL, "laptop").await;
    let ci = inbox.create_token(ADMIN_EMAIL, "ci").await;
    let database_url = inbox.database_url();
    let env = [("DATABASE_URL", database_url.as_str())];
    let poll = [("after", String::new())];
    let status = |token: String| {
        let base = base.clone();
        let poll = poll.clone();
        async move {
            call(&base, "/api/callbacks/poll", &token, &poll)
                .await
                .status()
        }
    };

    let kept = run(
        &["admin", "reset-password", "--email", ADMIN_EMAIL],
        &env,
        Some("a brand new password 1\n"),
    )
    .await;
    assert_eq!(kept.code, Some(0), "{}", kept.stderr);
    assert!(
        kept.stdout
            .contains("password of admin@example.com changed"),
        "{}",
        kept.stdout
    );
    assert!(
        kept.stdout
            .contains("2 API tokens still work; pass --revoke-tokens to revoke them"),
        "{}",
        kept.stdout
    );
    assert_eq!(status(laptop.clone()).await, 200);
    assert_eq!(status(ci.clone()).await, 200);

    let revoked = run(
        &[
            "admin",
            "reset-password",
            "--email",
            ADMIN_EMAIL,
            "--revoke-tokens",
        ],
        &env,
        Some("another new password 2\n"),
    )
    .await;
    assert_eq!(revoked.code, Some(0), "{}", revoked.stderr);
    assert!(
        revoked.stdout.contains("revoked 2 API tokens"),
        "{}",
        revoked.stdout
    );
    assert_eq!(status(laptop).await, 401);
    assert_eq!(status(ci).await, 401);

    let none = run(
        &["admin", "reset-password", "--email", ADMIN_EMAIL],
        &env,
        Some("a third new password 3\n"),
    )
    .await;
    assert!(none.stdout.contains("no API tokens"), "{}", none.stdout);
    inbox.kill().await;
}

// --- secrets off the command line -------------------------------------------------

#[tokio::test]
async fn listen_and_replay_read_the_token_and_secret_from_the_environment() {
    // The examples show no secret or token on a command line.
    for command in ["send", "listen", "replay"] {
        let help = run(&[command, "--help"], &[], None).await;
        assert_eq!(help.code, Some(0));
        let examples = help.stdout.split("Examples:").nth(1).unwrap_or_default();
        assert!(!examples.is_empty(), "{command}: no examples");
        for flag in ["--secret", "--token"] {
            assert!(!examples.contains(flag), "{command} --help: {examples}");
        }
    }

    let data = tempfile::tempdir().unwrap();
    let inbox = Inbox::start(data.path(), free_port()).await;
    let token = inbox.create_token(ADMIN_EMAIL, "env").await;
    let body = callback("job-env", "workflow.completed");
    let id = inbox.post(&body).await;
    let receiver = Receiver::start(&[], Some(LOCAL_SECRET)).await;
    let base = inbox.base();
    let env = [
        ("INBOX_SERVER", base.as_str()),
        ("INBOX_TOKEN", token.as_str()),
        ("INBOX_FORWARD_SECRET", LOCAL_SECRET),
    ];
    let ran = run(&["replay", &id, "--to", &receiver.url], &env, None).await;
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].signed,
        Some(true),
        "not signed with INBOX_FORWARD_SECRET"
    );

    let mut listen = cli(&["listen", "--forward", &receiver.url, "--json"], &env)
        .spawn()
        .unwrap();
    let stderr = collect(listen.stderr.take().unwrap());
    wait_until("listen to connect", Duration::from_secs(15), || {
        joined(&stderr).contains("(connected)")
    })
    .await;
    inbox
        .post(&callback("job-env-live", "workflow.completed"))
        .await;
    wait_until("the forward", Duration::from_secs(15), || {
        receiver.count() == 2
    })
    .await;
    assert_eq!(receiver.hits()[1].signed, Some(true));
    let _ = listen.kill().await;
    inbox.kill().await;
}

// --- sources ----------------------------------------------------------------------

/// POSTs `body` to a source that signs with the hex scheme; the status.
async fn post_hex(inbox: &Inbox, source: &str, secret: &str, body: &str) -> u16 {
    let secret = WebhookSecret::parse(secret).unwrap();
    reqwest::Client::new()
        .post(format!("{}/api/webhooks/{source}", inbox.base()))
        .header("content-type", "application/json")
        .header("x-webhook-signature", sign_hex(&secret, body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .expect("webhook answers")
        .status()
        .as_u16()
}

/// Posts fresh callbacks (`make(n)` for n = 0, 1, …) until one is answered
/// `status`: a running server sees a source's change within a second.
async fn post_until(
    inbox: &Inbox,
    source: &str,
    secret: &str,
    status: u16,
    make: impl Fn(usize) -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for n in 0.. {
        let got = post_hex(inbox, source, secret, &make(n)).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{source} still answers {got}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rows of one source: (group, event, delivery_count), oldest first.
async fn rows_of_source(inbox: &Inbox, source: &str) -> Vec<(Option<String>, Option<String>, i64)> {
    sqlx::query(
        "SELECT external_job_id, event_type, delivery_count FROM llm_callbacks
          WHERE source = $1 ORDER BY feed_seq",
    )
    .bind(source)
    .fetch_all(&inbox.db().await)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.get(0), row.get(1), row.get(2)))
    .collect()
}

/// `source list --json`'s output.
async fn source_list_json(env: &[(&str, &str)]) -> String {
    let ran = run(&["source", "list", "--json"], env, None).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    ran.stdout
}

#[tokio::test]
async fn source_commands_create_list_rotate_disable_enable_and_set() {
    let data = tempfile::tempdir().unwrap();
    let inbox = Inbox::start(data.path(), free_port()).await;
    let database_url = inbox.database_url();
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("LLM_WEBHOOK_SECRET", SECRET),
        ("INBOX_PUBLIC_URL", "https://inbox.example.com/"),
    ];

    // The secret alone on stdout, once; what to do with it on stderr.
    let created = run(
        &[
            "source", "create", "--name", "builds", "--preset", "generic",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let first = created.stdout.trim().to_owned();
    assert_eq!(created.stdout, format!("{first}\n"), "only the secret");
    assert_eq!(first.len(), 64, "{first}");
    assert!(
        created
            .stderr
            .contains("https://inbox.example.com/api/webhooks/builds"),
        "{}",
        created.stderr
    );
    assert!(!created.stderr.contains(&first), "{}", created.stderr);
    let taken = run(
        &[
            "source", "create", "--name", "builds", "--preset", "generic",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(taken.code, Some(1));
    assert!(taken.stderr.contains("exists"), "{}", taken.stderr);
    assert!(taken.stdout.is_empty());
    let bad_preset = run(
        &["source", "create", "--name", "x", "--preset", "gitlab"],
        &env,
        None,
    )
    .await;
    assert_eq!(bad_preset.code, Some(1));
    assert!(
        bad_preset.stderr.contains("unknown preset; use one of"),
        "{}",
        bad_preset.stderr
    );

    let body = |n: usize| format!(r#"{{"event":"build.done","batch":"b-{n}","n":{n}}}"#);
    post_until(&inbox, "builds", &first, 200, body).await;

    // The list: the source with its URL and masked secret, never a whole one.
    let listed = source_list_json(&env).await;
    assert!(!listed.contains(&first), "a whole secret: {listed}");
    assert!(!listed.contains(SECRET), "a whole secret: {listed}");
    let parsed: Value = serde_json::from_str(&listed).unwrap();
    let items = parsed["items"].as_array().unwrap();
    let builds = items.iter().find(|item| item["name"] == "builds").unwrap();
    assert_eq!(builds["preset"], "generic");
    assert_eq!(builds["schemes"], serde_json::json!(["hex"]));
    assert_eq!(
        builds["url"],
        "https://inbox.example.com/api/webhooks/builds"
    );
    assert_eq!(builds["enabled"], true);
    assert_eq!(builds["mode"], "enforce");
    assert_eq!(builds["mapping"]["event_from"], "json:/event,json:/type");
    assert!(builds["mapping"].get("group_from").is_none(), "{builds}");
    assert!(builds["callbacks_24h"].as_i64().unwrap() >= 1, "{builds}");
    assert!(builds["last_received_at"].is_string(), "{builds}");
    let secrets = builds["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0]["label"], "builds #1");
    assert_eq!(
        secrets[0]["masked"],
        format!("••••••••{}", &first[first.len() - 4..])
    );
    for field in ["created_at", "last_used_at", "uses_24h"] {
        assert!(secrets[0].get(field).is_some(), "{field}: {builds}");
    }
    let builtin = items
        .iter()
        .find(|item| item["name"] == "llm-callback")
        .unwrap();
    assert_eq!(builtin["secrets"][0]["label"], "LLM_WEBHOOK_SECRET #1");
    let table = run(&["source", "list"], &env, None).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    assert!(!table.stdout.contains(&first), "{}", table.stdout);
    let row = table
        .stdout
        .lines()
        .find(|line| line.starts_with("builds "))
        .unwrap_or_else(|| panic!("no row: {}", table.stdout));
    for cell in [
        "generic",
        "yes",
        "enforce",
        "/api/webhooks/builds",
        "••••••••",
    ] {
        assert!(row.contains(cell), "{cell}: {row}");
    }

    // A rotation: a new secret, once; the old one keeps working meanwhile.
    let rotated = run(&["source", "rotate", "--name", "builds"], &env, None).await;
    assert_eq!(rotated.code, Some(0), "{}", rotated.stderr);
    let second = rotated.stdout.trim().to_owned();
    assert_eq!(rotated.stdout, format!("{second}\n"));
    assert_ne!(second, first);
    post_until(&inbox, "builds", &second, 200, |n| body(100 + n)).await;
    assert_eq!(post_hex(&inbox, "builds", &first, &body(200)).await, 200);
    assert_eq!(
        post_hex(&inbox, "builds", "not-the-secret-0123456789", &body(201)).await,
        401
    );
    let listed = source_list_json(&env).await;
    assert!(!listed.contains(&first) && !listed.contains(&second));
    let parsed: Value = serde_json::from_str(&listed).unwrap();
    let builds = parsed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["name"] == "builds")
        .unwrap()
        .clone();
    let secrets = builds["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2, "{builds}");
    assert_eq!(secrets[0]["label"], "builds #2");
    assert!(secrets[0]["expires_at"].is_null());
    assert!(secrets[1]["expires_at"].is_string(), "the old one expires");
    let builtin_rotation = run(&["source", "rotate", "--name", "llm-callback"], &env, None).await;
    assert_eq!(builtin_rotation.code, Some(1));
    assert!(
        builtin_rotation.stderr.contains("secret rotate"),
        "{}",
        builtin_rotation.stderr
    );
    let unknown = run(&["source", "rotate", "--name", "nope"], &env, None).await;
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("no source named nope"),
        "{}",
        unknown.stderr
    );

    // Disabled: its URL answers 404; enabled: 200 again.
    let disabled = run(&["source", "disable", "--name", "builds"], &env, None).await;
    assert_eq!(disabled.code, Some(0), "{}", disabled.stderr);
    post_until(&inbox, "builds", &second, 404, |n| body(300 + n)).await;
    let enabled = run(&["source", "enable", "--name", "builds"], &env, None).await;
    assert_eq!(enabled.code, Some(0), "{}", enabled.stderr);
    post_until(&inbox, "builds", &second, 200, |n| body(400 + n)).await;

    // A group rule: the next callbacks carry it; an empty rule undoes it.
    let nothing = run(&["source", "set", "--name", "builds"], &env, None).await;
    assert_eq!(nothing.code, Some(1));
    assert!(
        nothing.stderr.contains("nothing to change"),
        "{}",
        nothing.stderr
    );
    let bad_rule = run(
        &[
            "source",
            "set",
            "--name",
            "builds",
            "--group-from",
            "body:/x",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(bad_rule.code, Some(1));
    assert!(
        bad_rule.stderr.contains("group_from"),
        "{}",
        bad_rule.stderr
    );
    let set = run(
        &[
            "source",
            "set",
            "--name",
            "builds",
            "--group-from",
            "json:/batch",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(set.code, Some(0), "{}", set.stderr);
    assert!(
        set.stdout.contains("group_from: json:/batch"),
        "{}",
        set.stdout
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    for n in 500.. {
        assert_eq!(post_hex(&inbox, "builds", &second, &body(n)).await, 200);
        let rows = rows_of_source(&inbox, "builds").await;
        if rows.last().unwrap().0.as_deref() == Some(format!("b-{n}").as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "no group: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = run(
        &["source", "set", "--name", "builds", "--group-from", ""],
        &env,
        None,
    )
    .await;
    assert_eq!(back.code, Some(0), "{}", back.stderr);
    assert!(!back.stdout.contains("group_from"), "{}", back.stdout);
    inbox.kill().await;
}

#[tokio::test]
async fn source_hooks_prints_the_settings_block_for_the_seven_events() {
    let events = [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "Stop",
        "SessionEnd",
        "Notification",
    ];
    let url = "https://inbox.example.com/api/webhooks/claude-code";
    // No database needed: it runs wherever Claude Code does.
    let http = run(
        &[
            "source",
            "hooks",
            "--name",
            "claude-code",
            "--url",
            "https://inbox.example.com/",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(http.code, Some(0), "{}", http.stderr);
    let block: Value = serde_json::from_str(&http.stdout).unwrap();
    let hooks = block["hooks"].as_object().unwrap();
    assert_eq!(hooks.len(), 7, "{block}");
    for event in events {
        let hook = &hooks[event][0]["hooks"][0];
        assert_eq!(hook["type"], "http", "{event}");
        assert_eq!(hook["url"], url, "{event}");
        assert_eq!(
            hook["headers"]["Authorization"],
            "Bearer $CALLBACK_INBOX_TOKEN"
        );
    }

    let through = run(
        &[
            "source",
            "hooks",
            "--name",
            "claude-code",
            "--url",
            "https://inbox.example.com",
            "--through-cli",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(through.code, Some(0), "{}", through.stderr);
    let block: Value = serde_json::from_str(&through.stdout).unwrap();
    for event in events {
        let hook = &block["hooks"][event][0]["hooks"][0];
        assert_eq!(hook["type"], "command", "{event}");
        assert_eq!(
            hook["command"],
            format!("callback-inbox send --hook --url {url}")
        );
    }

    for (args, message) in [
        (
            ["--name", "Claude Code", "--url", "https://x.example"],
            "--name",
        ),
        (["--name", "cc", "--url", "inbox.example.com"], "--url"),
    ] {
        let mut all = vec!["source", "hooks"];
        all.extend(args);
        let ran = run(&all, &[], None).await;
        assert_eq!(ran.code, Some(1), "{args:?}");
        assert!(ran.stdout.is_empty());
        assert!(ran.stderr.contains(message), "{}", ran.stderr);
    }
}

// --- send --hook --------------------------------------------------------------------

/// A Claude Code hook event.
fn hook_event(session: &str, event: &str, n: usize) -> String {
    serde_json::json!({
        "session_id": session,
        "transcript_path": format!("/home/dev/.claude/projects/demo/{session}.jsonl"),
        "cwd": "/home/dev/demo",
        "hook_event_name": event,
        "tool_name": "Bash",
        "tool_input": {"command": format!("cargo test {n}")},
    })
    .to_string()
}

/// `send --hook` as Claude Code runs it: the event on stdin. Returns the
/// run and how long it took.
async fn hook(url: &str, spool: &Path, token: Option<&str>, event: &str) -> (Ran, Duration) {
    let env: Vec<(&str, &str)> = token
        .map(|token| ("CALLBACK_INBOX_TOKEN", token))
        .into_iter()
        .collect();
    let started = Instant::now();
    let ran = run(
        &[
            "send",
            "--hook",
            "--url",
            url,
            "--spool",
            spool.to_str().unwrap(),
        ],
        &env,
        Some(event),
    )
    .await;
    (ran, started.elapsed())
}

#[tokio::test]
async fn send_hook_keeps_what_the_inbox_missed_and_the_next_event_delivers_it_once() {
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("hook-spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/api/webhooks/claude-code");

    // The inbox is down: nothing on stdout, exit 0, at once; the event waits.
    let missed = hook_event("sess-1", "PreToolUse", 1);
    let (ran, took) = hook(&url, &spool, Some("not-known-yet"), &missed).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(ran.stdout, "", "a hook's stdout reaches the model");
    assert!(took < Duration::from_secs(3 + 2), "took {took:?}");
    assert!(ran.stderr.lines().count() <= 1, "{}", ran.stderr);
    assert_eq!(spooled(&spool).len(), 1);
    // Without the token: kept too, to go once it is set. The project's
    // .env (the hook's working folder) is not read.
    let project = work.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join(".env"),
        "CALLBACK_INBOX_TOKEN=from-a-project\n",
    )
    .unwrap();
    let tokenless = hook_event("sess-1", "PostToolUse", 2);
    let spool_arg = spool.to_str().unwrap();
    let mut child = cli(
        &["send", "--hook", "--url", &url, "--spool", spool_arg],
        &[],
    )
    .current_dir(&project)
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(tokenless.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("CALLBACK_INBOX_TOKEN is not set"),
        "{stderr}"
    );
    // For another inbox: never sent with this one's token.
    let elsewhere = format!("http://127.0.0.1:{}/api/webhooks/claude-code", free_port());
    let (ran, _) = hook(
        &elsewhere,
        &spool,
        Some("not-known-yet"),
        &hook_event("sess-9", "Stop", 9),
    )
    .await;
    assert_eq!((ran.code, ran.stdout.as_str()), (Some(0), ""));
    assert_eq!(spooled(&spool).len(), 3);
    // Not a hook event: nothing kept, still exit 0 and silent on stdout.
    let (ran, _) = hook(&url, &spool, Some("not-known-yet"), "[1, 2]").await;
    assert_eq!((ran.code, ran.stdout.as_str()), (Some(0), ""));
    assert_eq!(spooled(&spool).len(), 3);

    // The inbox comes up with a claude-code source.
    let inbox = Inbox::start(work.path(), port).await;
    let database_url = inbox.database_url();
    let created = run(
        &[
            "source",
            "create",
            "--name",
            "claude-code",
            "--preset",
            "claude-code",
        ],
        &[("DATABASE_URL", &database_url)],
        None,
    )
    .await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let token = created.stdout.trim().to_owned();
    assert!(
        created.stderr.contains("CALLBACK_INBOX_TOKEN"),
        "{}",
        created.stderr
    );
    // Known once it answers a request without the token 401 (not 404).
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = client.post(&url).body("{}").send().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the source is still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The next event goes, and takes the two waiting for this inbox along.
    let next = hook_event("sess-1", "Stop", 3);
    let (ran, took) = hook(&url, &spool, Some(&token), &next).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(ran.stdout, "");
    assert!(took < Duration::from_secs(3 + 2), "took {took:?}");
    let rows = rows_of_source(&inbox, "claude-code").await;
    let mut events: Vec<&str> = rows.iter().filter_map(|row| row.1.as_deref()).collect();
    events.sort_unstable();
    assert_eq!(events, ["PostToolUse", "PreToolUse", "Stop"], "{rows:?}");
    assert!(rows.iter().all(|row| row.0.as_deref() == Some("sess-1")));
    assert!(rows.iter().all(|row| row.2 == 1), "each once: {rows:?}");
    let left = spooled(&spool);
    assert_eq!(left.len(), 1, "the other inbox's event stays");
    assert_eq!(spool_entry(&left[0]).unwrap()["url"], elsewhere);

    // A byte-identical event later in the session (each Stop of a session
    // looks the same) is a callback of its own, not a retry of the first.
    let (ran, _) = hook(&url, &spool, Some(&token), &next).await;
    assert_eq!((ran.code, ran.stdout.as_str()), (Some(0), ""));
    let rows = rows_of_source(&inbox, "claude-code").await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    let stops = rows
        .iter()
        .filter(|row| row.1.as_deref() == Some("Stop"))
        .count();
    assert_eq!(stops, 2, "{rows:?}");

    // A wrong token: kept (a fix of the token sends it later), not failed.
    let (ran, _) = hook(
        &url,
        &spool,
        Some("wrong-token"),
        &hook_event("sess-2", "Stop", 4),
    )
    .await;
    assert_eq!((ran.code, ran.stdout.as_str()), (Some(0), ""));
    assert_eq!(spooled(&spool).len(), 2);
    let (ran, _) = hook(
        &url,
        &spool,
        Some(&token),
        &hook_event("sess-2", "SessionEnd", 5),
    )
    .await;
    assert_eq!((ran.code, ran.stdout.as_str()), (Some(0), ""));
    assert_eq!(rows_of_source(&inbox, "claude-code").await.len(), 6);
    assert_eq!(spooled(&spool).len(), 1);
    inbox.kill().await;
}

#[tokio::test]
async fn send_hook_ends_within_its_bound_against_a_silent_inbox_or_an_open_stdin() {
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("hook-spool");
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/webhooks/claude-code",
        listener.local_addr().unwrap()
    );
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            holder.lock().unwrap().push(stream);
        }
    });
    let args = [
        "send",
        "--hook",
        "--url",
        &url,
        "--timeout",
        "1",
        "--spool",
        spool.to_str().unwrap(),
    ];
    let env = [("CALLBACK_INBOX_TOKEN", "some-token")];
    let started = Instant::now();
    let ran = run(&args, &env, Some(&hook_event("sess-3", "Stop", 1))).await;
    let took = started.elapsed();
    assert_eq!(
        (ran.code, ran.stdout.as_str()),
        (Some(0), ""),
        "{}",
        ran.stderr
    );
    assert!(took < Duration::from_secs(1 + 2), "took {took:?}");
    assert!(!held.lock().unwrap().is_empty(), "it never connected");
    let waiting = spooled(&spool);
    assert_eq!(waiting.len(), 1);
    assert!(
        spool_entry(&waiting[0]).unwrap()["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{}",
        ran.stderr
    );

    // Claude Code never closes stdin: the bound still holds.
    let mut child = cli(&args, &env).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"{\"session_id\":").await.unwrap();
    let started = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(1 + 2), child.wait_with_output())
        .await
        .expect("ends within its bound with stdin open")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1 + 2));
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty());
    drop(stdin);
    assert_eq!(spooled(&spool).len(), 1, "half an event is not kept");
}
