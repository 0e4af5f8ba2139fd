//! A real server on a loopback port with a real database, for tests: a
//! SQLite file, or a fresh database on a real PostgreSQL server when the run
//! sets `INBOX_TEST_BACKEND=postgres` (see `inbox_core::store::test_database`).

#![allow(dead_code)] // each test file uses a different part of this

pub mod live;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use inbox_core::signature::{WebhookSecret, sign_hex, sign_standard};
pub use inbox_core::store::test_database::{TestBackend, TestDatabase};
use inbox_server::config::Cli;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const SECRET: &str = "test-secret-0123456789abcdef";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    /// Shared by every node started on it.
    pub database: Arc<TestDatabase>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts with the test secret and a known admin configured.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with extra command-line flags.
    pub async fn start_with(flags: &[&str]) -> Self {
        Self::start_on(Arc::new(TestDatabase::fresh().await), flags).await
    }

    /// Starts a node on an existing database (several nodes share one).
    pub async fn start_on(database: Arc<TestDatabase>, flags: &[&str]) -> Self {
        let database_url = database.url.clone();
        let mut args = vec![
            "callback-inbox",
            "--database-url",
            &database_url,
            "--site-addr",
            "127.0.0.1:0",
            "--admin-email",
            ADMIN_EMAIL,
            "--admin-password",
            ADMIN_PASSWORD,
            "--login-delay-ms",
            "0",
        ];
        if !flags.contains(&"--webhook-secret") && !flags.contains(&"--no-secret") {
            args.extend_from_slice(&["--webhook-secret", SECRET]);
        }
        args.extend(flags.iter().filter(|flag| **flag != "--no-secret"));
        let cli = Cli::try_parse_from(args).expect("valid flags");
        let server = inbox_server::build_server(&cli.config)
            .await
            .expect("server builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            inbox_server::serve(server, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            addr,
            base: format!("http://{addr}"),
            database,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server gracefully (pending audit rows are flushed).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn database_url(&self) -> &str {
        &self.database.url
    }

    pub fn backend(&self) -> TestBackend {
        self.database.backend
    }

    /// The SQLite file (for tests of SQLite's files; panics on PostgreSQL).
    pub fn sqlite_path(&self) -> &std::path::Path {
        self.database
            .sqlite_path
            .as_deref()
            .expect("a SQLite database")
    }

    /// A separate connection to the server's database, for statements
    /// written to run on both backends (`$N` parameters).
    pub async fn db(&self) -> sqlx::AnyPool {
        any_pool(&self.database.url).await
    }

    pub async fn post_signed(&self, body: &str) -> reqwest::Response {
        self.post_signed_with(body, SECRET).await
    }

    pub async fn post_signed_with(&self, body: &str, secret: &str) -> reqwest::Response {
        let secret = WebhookSecret::parse(secret).expect("secret");
        self.client
            .post(self.url("/api/webhooks/llm-callback"))
            .header("content-type", "application/json")
            .header("x-webhook-signature", sign_hex(&secret, body.as_bytes()))
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_standard(
        &self,
        id: &str,
        timestamp: i64,
        body: &str,
        secret: &str,
    ) -> reqwest::Response {
        let secret = WebhookSecret::parse(secret).expect("secret");
        self.client
            .post(self.url("/api/webhooks/llm-callback"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign_standard(&secret, id, timestamp, body.as_bytes()),
            )
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent")
    }
}

impl TestServer {
    /// Signs in and returns the session cookie (`name=value`).
    pub async fn login(&self, email: &str, password: &str) -> Result<String, reqwest::Response> {
        let response = self
            .client
            .post(self.url("/api/auth/login"))
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .expect("request sent");
        if response.status() != 200 {
            return Err(response);
        }
        session_cookie(&response).ok_or(response)
    }

    pub async fn login_admin(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .expect("admin signs in")
    }

    /// Calls a server function with form fields, as the given session.
    pub async fn call(
        &self,
        endpoint: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(endpoint)).form(fields);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.expect("request sent")
    }

    /// Opens the server's database as a second process would.
    pub async fn store(&self) -> inbox_core::store::Store {
        inbox_core::store::Store::open(&self.database.url)
            .await
            .expect("store opens")
    }
}

/// The value of one series in Prometheus text (`name{labels}` as printed),
/// 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

impl TestServer {
    /// The server's `/metrics` page.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }

    /// The value of one series on the server's `/metrics` page (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        metric(&self.metrics_text().await, series)
    }
}

/// A pool on either backend, for tests' own statements.
pub async fn any_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .expect("open db")
}

/// SQL text for the tests' own statements where the two backends differ.
/// The Any driver binds and decodes neither uuids nor times, so uuids are
/// bound as text and times as Unix microseconds (`i64`), and these turn
/// them into (or out of) the column types: SQLite stores ids as 16-byte
/// BLOBs and times as INTEGER microseconds, PostgreSQL as `uuid` and
/// `timestamptz`.
pub mod sql {
    use super::TestBackend;

    /// Parameter `$n`, bound as a uuid's text, as a value of an id column.
    pub fn uuid(backend: TestBackend, n: u32) -> String {
        match backend {
            TestBackend::Sqlite => format!("unhex(replace(${n}, '-', ''))"),
            TestBackend::Postgres => format!("CAST(${n} AS uuid)"),
        }
    }

    /// An id column as text, hyphenated and lowercase (`Uuid::to_string`).
    pub fn uuid_text(backend: TestBackend, column: &str) -> String {
        match backend {
            TestBackend::Sqlite => format!(
                "lower(substr(hex({column}), 1, 8) || '-' || substr(hex({column}), 9, 4) || '-' || \
                 substr(hex({column}), 13, 4) || '-' || substr(hex({column}), 17, 4) || '-' || \
                 substr(hex({column}), 21))"
            ),
            TestBackend::Postgres => format!("CAST({column} AS text)"),
        }
    }

    /// Parameter `$n`, bound as Unix microseconds, as a value of a time column.
    pub fn time(backend: TestBackend, n: u32) -> String {
        match backend {
            TestBackend::Sqlite => format!("${n}"),
            TestBackend::Postgres => {
                format!("(timestamptz 'epoch' + ${n} * interval '1 microsecond')")
            }
        }
    }

    /// A time column as Unix microseconds (`bigint`, read as `i64`).
    pub fn micros(backend: TestBackend, column: &str) -> String {
        match backend {
            TestBackend::Sqlite => column.to_owned(),
            TestBackend::Postgres => {
                format!("CAST(extract(epoch FROM {column}) * 1000000 AS bigint)")
            }
        }
    }
}

/// The `inbox_session=…` pair of a response's Set-Cookie, if any.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("inbox_session="))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
}

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The real `callback-inbox` binary as a child process, its output kept.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub base: String,
    pub addr: SocketAddr,
    pub database: Arc<TestDatabase>,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    pub dir: TempDir,
}

/// What a killed server leaves for its restart: its folder and database.
pub struct Stopped {
    pub dir: TempDir,
    pub database: Arc<TestDatabase>,
}

impl ServerProcess {
    /// Starts the binary on a free port with a fresh database, the test
    /// secret and admin, plus `env`; waits until `/healthz` answers.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_on(Arc::new(TestDatabase::fresh().await), env).await
    }

    /// Starts a node on an existing database (several nodes share one).
    pub async fn start_on(database: Arc<TestDatabase>, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(Stopped { dir, database }, env).await
    }

    /// Restarts a killed server on its folder and database.
    pub async fn start_in(stopped: Stopped, env: &[(&str, &str)]) -> Self {
        Self::start_limited(stopped, env, None).await
    }

    /// Starts the binary with its open-file limit (soft and hard) set to
    /// `file_limit`, as a service manager would.
    pub async fn start_limited(
        stopped: Stopped,
        env: &[(&str, &str)],
        file_limit: Option<u64>,
    ) -> Self {
        use tokio::io::AsyncBufReadExt;
        let Stopped { dir, database } = stopped;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_callback-inbox"));
        command
            .env("DATABASE_URL", &database.url)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("LLM_WEBHOOK_SECRET", SECRET)
            .env("INBOX_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("INBOX_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("INBOX_LOGIN_DELAY_MS", "0")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        if let Some(limit) = file_limit {
            // SAFETY: only setrlimit runs between fork and exec, which is
            // async-signal-safe.
            unsafe {
                command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, limit, limit));
            }
        }
        let mut child = command.spawn().expect("server binary starts");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut all = output.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(response) = client.get(format!("{base}/healthz")).send().await
                && response.status() == 200
            {
                return Self {
                    child,
                    base,
                    addr,
                    database,
                    output,
                    dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "server exited with {status}: {}",
                    output.lock().unwrap().as_str()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("server did not become healthy: {}", output.lock().unwrap());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the process printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Peak and current resident memory of the process, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    pub fn database_url(&self) -> &str {
        &self.database.url
    }

    /// Stops the process (SIGKILL) and returns what a restart needs.
    pub async fn kill(mut self) -> Stopped {
        let _ = self.child.kill().await;
        Stopped {
            dir: self.dir,
            database: self.database,
        }
    }
}
