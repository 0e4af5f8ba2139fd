//! "Mark all viewed" against ingest (review finding 7): a sender's latency
//! while a user clicks "Mark all viewed" with N callbacks stored, SQLite.
//!
//!     cargo build [--release] -p callback-inbox --bins --example mark_all_bench
//!     target/<profile>/examples/mark_all_bench [--rows 1000000] [--rate 100]
//!
//! It starts `target/<profile>/callback-inbox` on a fresh SQLite file seeded
//! with `rows` callbacks and sends signed callbacks open-loop at `rate` per
//! second (latency from each request's scheduled time, so a stall counts for
//! every request it delays) in three phases of 12 s, after a warm-up:
//!
//! 1. nothing else happening (the baseline);
//! 2. a user clicks "Mark all viewed" 2 s in (`POST /api/callbacks/mark-all-viewed`:
//!    one mark at the feed's head);
//! 3. the statement the click used to run before the mark (a view row per
//!    callback in one `INSERT … SELECT`), run 2 s in on its own connection as
//!    the server's pool ran it, for another user, on the schema it ran on (the
//!    marks' index and trigger on the views table are dropped first).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex};
use inbox_core::store::{Db, Store};

const SECRET: &str = "bench-secret-0123456789";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "bench password 1234";
const PHASE: Duration = Duration::from_secs(12);
const CLICK_AT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rows = arg("--rows", 1_000_000);
    let rate = arg("--rate", 100);
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("../callback-inbox");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db", dir.path().display());

    let started = Instant::now();
    let store = Store::open(&url).await.unwrap();
    seed(&store, rows).await;
    drop(store);
    println!(
        "seeded {rows} callbacks in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new(&bin)
        .env("DATABASE_URL", &url)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LLM_WEBHOOK_SECRET", SECRET)
        .env("INBOX_ADMIN_EMAIL", EMAIL)
        .env("INBOX_ADMIN_PASSWORD", PASSWORD)
        .env("INBOX_RETENTION_DAYS", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    for _ in 0..600 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let login = client
        .post(format!("{base}/api/auth/login"))
        .form(&[("email", EMAIL), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("inbox_session="))
        .and_then(|v| v.split(';').next())
        .expect("signed in")
        .to_owned();

    println!(
        "\nsigned callbacks open-loop at {rate}/s, {} s per phase; latency from the scheduled send time",
        PHASE.as_secs()
    );
    let warm = send_for(&client, &base, "warm", rate, async {}).await;
    report("warm-up (connections, caches)", &warm, None);
    let alone = send_for(&client, &base, "alone", rate, async {}).await;
    report("alone", &alone, None);

    let click = {
        let (client, base, cookie) = (client.clone(), base.clone(), cookie.clone());
        async move {
            tokio::time::sleep(CLICK_AT).await;
            let started = Instant::now();
            let answer = client
                .post(format!("{base}/api/callbacks/mark-all-viewed"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            (started.elapsed(), format!("{status} {body}"))
        }
    };
    let (mark, clicked) = send_for_with(&client, &base, "mark", rate, click).await;
    report("mark (now)", &mark, Some(&clicked));

    let legacy = {
        let url = url.clone();
        async move {
            let store = Store::open(&url).await.unwrap();
            let Db::Sqlite(pool) = store.db() else {
                unreachable!("SQLite only");
            };
            for undo in [
                "DROP TRIGGER llm_callback_views_feed_seq",
                "DROP INDEX llm_callback_views_admin_feed",
            ] {
                sqlx::query(undo).execute(pool).await.unwrap();
            }
            let user = uuid::Uuid::now_v7();
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, role, created_at)
                 VALUES ($1, 'legacy@example.com', 'x', 'viewer', 0)",
            )
            .bind(user)
            .execute(pool)
            .await
            .unwrap();
            tokio::time::sleep(CLICK_AT).await;
            let started = Instant::now();
            let result = sqlx::query(
                "INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at)
                 SELECT c.id, $1, $2 FROM llm_callbacks c WHERE true
                 ON CONFLICT (callback_id, admin_user_id) DO NOTHING",
            )
            .bind(user)
            .bind(1_i64)
            .execute(pool)
            .await;
            let outcome = match result {
                Ok(done) => format!("{} rows", done.rows_affected()),
                Err(err) => format!("failed: {err}"),
            };
            (started.elapsed(), outcome)
        }
    };
    let (old, clicked) = send_for_with(&client, &base, "legacy", rate, legacy).await;
    report("mark (before: a row per callback)", &old, Some(&clicked));
    let _ = server.kill().await;
}

/// One request: (when it was due, how long after that it was answered, status).
type Sent = (Duration, Duration, Result<u16, String>);

async fn send_for(
    client: &reqwest::Client,
    base: &str,
    tag: &str,
    rate: u64,
    beside: impl std::future::Future<Output = ()>,
) -> Vec<Sent> {
    send_for_with(client, base, tag, rate, beside).await.0
}

/// Sends for [`PHASE`] at `rate` per second while `beside` runs.
async fn send_for_with<T>(
    client: &reqwest::Client,
    base: &str,
    tag: &str,
    rate: u64,
    beside: impl std::future::Future<Output = T>,
) -> (Vec<Sent>, T) {
    let secret = Arc::new(WebhookSecret::parse(SECRET).unwrap());
    let url = format!("{base}/api/webhooks/llm-callback");
    let start = tokio::time::Instant::now();
    let total = rate * PHASE.as_secs();
    let sending = async {
        let mut tasks = Vec::with_capacity(total as usize);
        for n in 0..total {
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            tokio::time::sleep_until(start + due).await;
            let body = format!(r#"{{"job_id":"{tag}-{n}","event":"workflow.completed"}}"#);
            let request = client
                .post(&url)
                .header("x-webhook-signature", sign_hex(&secret, body.as_bytes()))
                .body(body)
                .send();
            tasks.push(tokio::spawn(async move {
                let status = request
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string());
                (due, start.elapsed().saturating_sub(due), status)
            }));
        }
        let mut sent = Vec::with_capacity(tasks.len());
        for task in tasks {
            sent.push(task.await.unwrap());
        }
        sent
    };
    tokio::join!(sending, beside)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn report(phase: &str, sent: &[Sent], click: Option<&(Duration, String)>) {
    let mut latencies: Vec<Duration> = sent.iter().map(|(_, took, _)| *took).collect();
    latencies.sort();
    let failed: Vec<String> = sent
        .iter()
        .filter_map(|(_, _, status)| match status {
            Ok(200..=299) => None,
            Ok(code) => Some(code.to_string()),
            Err(err) => Some(err.clone()),
        })
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {phase:<36} {} requests, {} not 2xx; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sent.len(),
        failed.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
    );
    if let Some((took, outcome)) = click {
        println!("  {:<36} the click took {:.1} ms: {outcome}", "", ms(*took));
    }
    if !failed.is_empty() {
        let mut kinds = failed.clone();
        kinds.sort();
        kinds.dedup();
        println!("  {:<36} failures: {kinds:?}", "");
    }
}

/// `rows` callbacks in one statement, an hour old, none viewed.
async fn seed(store: &Store, rows: u64) {
    let base =
        (time::OffsetDateTime::now_utc() - time::Duration::hours(1)).unix_timestamp() * 1_000_000;
    let Db::Sqlite(pool) = store.db() else {
        unreachable!("SQLite only");
    };
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO llm_callbacks (id, callback_id, signature_valid, payload, payload_preview,
             external_job_id, workflow_name, event_type, status, created_at, updated_at, feed_seq)
         SELECT randomblob(16), 'job:seed-' || i || ':workflow.completed', 1,
                '{\"job_id\":\"seed-' || i || '\",\"event\":\"workflow.completed\",\"result\":\"' || hex(randomblob(100)) || '\"}',
                'seed-' || i, 'seed-' || i, 'wf', 'workflow.completed', 'completed',
                ?2 + i, ?2 + i, i
         FROM n",
    )
    .bind(rows as i64)
    .bind(base)
    .execute(pool)
    .await
    .unwrap();
}
