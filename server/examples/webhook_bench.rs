//! Webhook benchmark: starts the release server on loopback and measures, in
//! one run, closed-loop throughput of signed 1 KiB callbacks, open-loop
//! latency at fixed rates (corrected for coordinated omission), and the same
//! server's no-op POST route as the ceiling.
//!
//!     cargo build --release -p callback-inbox --example webhook_bench
//!     target/release/examples/webhook_bench [--seconds 10] [--connections 64]
//!         [--postgres [--nodes 2]]
//!
//! SQLite (a fresh file) by default; with `--postgres`, a fresh database on
//! the server at `INBOX_TEST_POSTGRES_URL`, served by `--nodes` processes
//! that the load is spread over round-robin. (`./x bench` runs all three.)

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex};
use inbox_core::store::test_database::{TestBackend, TestDatabase};

const SECRET: &str = "bench-secret-0123456789";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = flag("--seconds", 10);
    let connections = flag("--connections", 64) as usize;

    let backend = if args.iter().any(|a| a == "--postgres") {
        TestBackend::Postgres
    } else {
        TestBackend::Sqlite
    };
    let node_count = flag("--nodes", 1).max(1) as usize;
    assert!(
        node_count == 1 || backend == TestBackend::Postgres,
        "several nodes need --postgres"
    );
    let database = TestDatabase::fresh_on(backend).await;

    let exe = std::env::current_exe().unwrap();
    let server_bin = exe.parent().unwrap().join("../callback-inbox");
    let mut nodes = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..node_count {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        nodes.push(
            tokio::process::Command::new(&server_bin)
                .env("DATABASE_URL", &database.url)
                .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
                .env("LLM_WEBHOOK_SECRET", SECRET)
                .env("INBOX_ADMIN_EMAIL", "bench@example.com")
                .env("INBOX_ADMIN_PASSWORD", "bench password 1234")
                .env("INBOX_BENCH_NOOP_ROUTE", "true")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {}: {e} (build it with --release first)",
                        server_bin.display()
                    )
                }),
        );
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections * 2)
        .build()
        .unwrap();
    for base in &bases {
        for _ in 0..400 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let urls = |path: &str| -> Vec<String> { bases.iter().map(|b| format!("{b}{path}")).collect() };
    let duration = Duration::from_secs(seconds);
    println!(
        "{backend:?}, {node_count} node(s), {connections} connections, {seconds} s per phase, 1 KiB bodies\n"
    );

    let noop = closed_loop(&client, &urls("/bench/noop"), connections, duration, false).await;
    let ingest = closed_loop(
        &client,
        &urls("/api/webhooks/llm-callback"),
        connections,
        duration,
        true,
    )
    .await;
    println!("closed loop (requests/s):");
    println!("  no-op POST route (ceiling)  {noop:>9.0}");
    println!(
        "  durable signed callbacks    {ingest:>9.0}   = {:.0} % of the ceiling",
        ingest / noop * 100.0
    );

    println!("\nopen loop, latency from the scheduled send time (ms):");
    println!("  rate/s   p50      p99      p99.9    max      errors");
    for rate in [1000u64, 2000] {
        let (mut latencies, errors) =
            open_loop(&client, &urls("/api/webhooks/llm-callback"), rate, duration).await;
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
        println!(
            "  {rate:<7}  {:<7.2}  {:<7.2}  {:<7.2}  {:<7.2}  {errors}",
            at(0.50),
            at(0.99),
            at(0.999),
            latencies.last().copied().unwrap_or_default()
        );
    }
    for node in &mut nodes {
        let pid = node.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak = status
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .unwrap_or("VmHWM: ?");
        println!(
            "server {pid} peak RSS: {}",
            peak.trim_start_matches("VmHWM:").trim()
        );
        node.start_kill().ok();
    }
}
fn body(n: u64) -> String {
    let pad = "x".repeat(860);
    format!(
        r#"{{"job_id":"bench-{n}","event":"workflow.completed","workflow_name":"bench","status":"completed","result":{{"pad":"{pad}"}},"timestamp":"2026-11-21T10:00:00Z"}}"#
    )
}

async fn send(client: &reqwest::Client, url: &str, n: u64, secret: &WebhookSecret) -> bool {
    let body = body(n);
    client
        .post(url)
        .header("x-webhook-signature", sign_hex(secret, body.as_bytes()))
        .body(body)
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Requests per second with `connections` senders, each waiting for its answer.
async fn closed_loop(
    client: &reqwest::Client,
    urls: &[String],
    connections: usize,
    duration: Duration,
    unique: bool,
) -> f64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let secret = Arc::new(WebhookSecret::parse(SECRET).unwrap());
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let (client, url, done, stop, secret) = (
            client.clone(),
            urls[connection % urls.len()].clone(),
            done.clone(),
            stop.clone(),
            secret.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = if unique {
                    NEXT.fetch_add(1, Ordering::Relaxed)
                } else {
                    0
                };
                if send(&client, &url, n, &secret).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let count = done.load(Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    count as f64 / elapsed
}

/// Sends at a fixed rate regardless of answers; each latency is measured
/// from when the request was due, so a stalled server cannot hide its stall.
async fn open_loop(
    client: &reqwest::Client,
    urls: &[String],
    rate: u64,
    duration: Duration,
) -> (Vec<f64>, u64) {
    static NEXT: AtomicU64 = AtomicU64::new(1 << 40);
    let secret = Arc::new(WebhookSecret::parse(SECRET).unwrap());
    let total = rate * duration.as_secs();
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, url, secret) = (
            client.clone(),
            urls[i as usize % urls.len()].clone(),
            secret.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ok = send(&client, &url, NEXT.fetch_add(1, Ordering::Relaxed), &secret).await;
            (due.elapsed().as_secs_f64() * 1000.0, ok)
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for task in tasks {
        let (latency, ok) = task.await.unwrap();
        latencies.push(latency);
        errors += u64::from(!ok);
    }
    (latencies, errors)
}
