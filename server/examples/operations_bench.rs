//! Operations benchmark, each figure against a baseline from the same run:
//! ingest throughput while retention purges 1M old callbacks, as a ratio to
//! ingest alone; and exporting 1M callbacks: time and the exporting
//! process's peak RSS, beside its RSS for an export of 1,000.
//!
//!     cargo build --release -p callback-inbox --bins --example operations_bench
//!     target/release/examples/operations_bench [--rows 1000000]
//!
//! It runs `target/release/callback-inbox` (server, `purge`, `export`).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex};

const SECRET: &str = "bench-secret-0123456789";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("../callback-inbox");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ops.db", dir.path().display());

    // A database with `rows` callbacks 40 days old.
    let started = Instant::now();
    let store = inbox_core::store::Store::open(&url).await.unwrap();
    seed_old(&store, rows).await;
    drop(store);
    println!(
        "seeded {rows} callbacks 40 days old in {:.1} s\n",
        started.elapsed().as_secs_f64()
    );

    // --- export: time and peak RSS, 1M against 1k ----------------------------
    let small = export(&bin, &url, Some("old-1")).await;
    let all = export(&bin, &url, None).await;
    println!("export (ndjson to a file)");
    println!(
        "  1 callback:           {:.2} s, peak RSS {} MiB",
        small.0,
        small.1 / 1024
    );
    println!(
        "  {rows} callbacks: {:.2} s, peak RSS {} MiB, {} MiB written\n",
        all.0,
        all.1 / 1024,
        all.2 / 1_048_576
    );

    // --- ingest alone, then while a purge runs --------------------------------
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new(&bin)
        .env("DATABASE_URL", &url)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LLM_WEBHOOK_SECRET", SECRET)
        .env("INBOX_ADMIN_EMAIL", "bench@example.com")
        .env("INBOX_ADMIN_PASSWORD", "bench password 1234")
        .env("INBOX_RETENTION_DAYS", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alone = ingest(&client, &base, "alone", Duration::from_secs(10)).await;
    let purge_started = Instant::now();
    let purge = tokio::process::Command::new(&bin)
        .args(["purge", "--older-than-days", "30"])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let during = ingest(&client, &base, "during", Duration::from_secs(10)).await;
    let purged = purge.wait_with_output().await.unwrap();
    println!("ingest, 32 connections, 10 s each");
    println!("  alone:              {alone:.0} callbacks/s");
    println!(
        "  during the purge:   {during:.0} callbacks/s = {:.0} % of alone",
        100.0 * during / alone
    );
    println!(
        "  purge: {} ({:.1} s)",
        String::from_utf8_lossy(&purged.stdout).trim(),
        purge_started.elapsed().as_secs_f64()
    );
    let _ = server.kill().await;
}

/// Inserts `rows` old callbacks in one statement.
async fn seed_old(store: &inbox_core::store::Store, rows: u64) {
    let old =
        (time::OffsetDateTime::now_utc() - time::Duration::days(40)).unix_timestamp() * 1_000_000;
    let inbox_core::store::Db::Sqlite(pool) = store.db() else {
        unreachable!("this benchmark runs on SQLite");
    };
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO llm_callbacks (id, callback_id, signature_valid, payload, payload_preview,
             external_job_id, workflow_name, event_type, status, created_at, updated_at, feed_seq)
         SELECT randomblob(16), 'job:old-' || i || ':workflow.completed', 1,
                '{\"job_id\":\"old-' || i || '\",\"event\":\"workflow.completed\",\"result\":\"' || hex(randomblob(100)) || '\"}',
                'old-' || i, 'old-' || i, 'wf', 'workflow.completed', 'completed',
                ?2 + i, ?2 + i, i
         FROM n",
    )
    .bind(rows as i64)
    .bind(old)
    .execute(pool)
    .await
    .unwrap();
}

/// Runs `callback-inbox export` under GNU time: (seconds, peak RSS KiB, bytes).
async fn export(bin: &std::path::Path, url: &str, q: Option<&str>) -> (f64, u64, u64) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut args = vec![
        "-f".to_owned(),
        "%e %M".to_owned(),
        bin.display().to_string(),
        "export".to_owned(),
        "--format".to_owned(),
        "ndjson".to_owned(),
        "--output".to_owned(),
        out.path().display().to_string(),
    ];
    if let Some(q) = q {
        args.extend(["--q".to_owned(), q.to_owned()]);
    }
    let output = tokio::process::Command::new("/usr/bin/time")
        .args(&args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stderr);
    let last = report.lines().last().unwrap_or_default();
    let mut fields = last.split_whitespace();
    let seconds = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let rss = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let bytes = std::fs::metadata(out.path()).map(|m| m.len()).unwrap_or(0);
    (seconds, rss, bytes)
}

/// Signed 1 KiB callbacks from 32 connections for `duration`: callbacks/s.
async fn ingest(client: &reqwest::Client, base: &str, tag: &str, duration: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let secret = Arc::new(WebhookSecret::parse(SECRET).unwrap());
    let tasks: Vec<_> = (0..32)
        .map(|sender| {
            let client = client.clone();
            let url = format!("{base}/api/webhooks/llm-callback");
            let done = done.clone();
            let secret = secret.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let pad = "x".repeat(900);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let body = format!(
                        r#"{{"job_id":"{tag}-{sender}-{n}","event":"workflow.completed","pad":"{pad}"}}"#
                    );
                    n += 1;
                    let sent = client
                        .post(&url)
                        .header("x-webhook-signature", sign_hex(&secret, body.as_bytes()))
                        .body(body)
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status() == 200) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / duration.as_secs_f64()
}
