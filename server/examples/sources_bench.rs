//! Sources benchmark: ingest through named sources against the no-op
//! route of the same server in the same run: one source, then the same
//! source with ten configured, then each signature scheme.
//!
//!     cargo build --release -p callback-inbox --example sources_bench
//!     target/release/examples/sources_bench [--seconds 5] [--connections 64]
//!
//! SQLite (a fresh file). A source's lookup is a read of the node's
//! in-memory map, so the number of sources should not show.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex, sign_standard};
use inbox_core::source::scheme::{sign_github, sign_stripe};
use inbox_core::source_admin::{NewSource, create_source};
use inbox_core::store::Store;
use inbox_core::store::test_database::{TestBackend, TestDatabase};

const SECRET: &str = "bench-secret-0123456789";

#[derive(Clone, Copy)]
enum Scheme {
    Hex,
    Standard,
    Github,
    Stripe,
    Token,
}

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
    let duration = Duration::from_secs(flag("--seconds", 5));
    let connections = flag("--connections", 64) as usize;
    let database = TestDatabase::fresh_on(TestBackend::Sqlite).await;

    let exe = std::env::current_exe().unwrap();
    let server_bin = exe.parent().unwrap().join("../callback-inbox");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new(&server_bin)
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
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", server_bin.display()));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections * 2)
        .build()
        .unwrap();
    for _ in 0..400 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = Store::open(&database.url).await.unwrap();
    let add = |name: &'static str, preset: &'static str| {
        let store = store.clone();
        async move {
            let created = create_source(
                &store,
                NewSource {
                    name: name.to_owned(),
                    preset: preset.to_owned(),
                    secret: Some(if preset == "openai" {
                        "whsec_YmVuY2gtc2VjcmV0LTAxMjM0NTY3ODk=".to_owned()
                    } else {
                        SECRET.to_owned()
                    }),
                    ..NewSource::default()
                },
                now_us(),
            )
            .await
            .unwrap();
            WebhookSecret::parse(&created.secret).unwrap()
        }
    };
    let hex_secret = add("bench-hex", "generic").await;
    // Every node picks a change up within half a second.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    println!("SQLite, one node, {connections} connections, {duration:?} per phase, 1 KiB bodies\n");
    let noop = closed_loop(
        &client,
        &format!("{base}/bench/noop"),
        Scheme::Hex,
        &hex_secret,
        connections,
        duration,
    )
    .await;
    let builtin = closed_loop(
        &client,
        &format!("{base}/api/webhooks/llm-callback"),
        Scheme::Hex,
        &hex_secret,
        connections,
        duration,
    )
    .await;
    let one = closed_loop(
        &client,
        &format!("{base}/api/webhooks/bench-hex"),
        Scheme::Hex,
        &hex_secret,
        connections,
        duration,
    )
    .await;
    for n in 0..9 {
        add(
            ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"][n],
            "generic",
        )
        .await;
    }
    let standard_secret = add("bench-standard", "openai").await;
    let github_secret = add("bench-github", "github").await;
    let stripe_secret = add("bench-stripe", "stripe").await;
    let token_secret = add("bench-token", "claude-code").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ten = closed_loop(
        &client,
        &format!("{base}/api/webhooks/bench-hex"),
        Scheme::Hex,
        &hex_secret,
        connections,
        duration,
    )
    .await;

    println!("closed loop (requests/s, share of the no-op route):");
    let row = |what: &str, rate: f64| {
        println!("  {what:<38} {rate:>8.0}   {:>5.1} %", rate / noop * 100.0)
    };
    row("no-op POST route (ceiling)", noop);
    row("llm-callback (built-in)", builtin);
    row("one named source (hex)", one);
    row("the same source among 14", ten);
    let builtin_again = closed_loop(
        &client,
        &format!("{base}/api/webhooks/llm-callback"),
        Scheme::Hex,
        &hex_secret,
        connections,
        duration,
    )
    .await;
    row("llm-callback again (drift check)", builtin_again);
    for (name, scheme, secret) in [
        ("bench-standard", Scheme::Standard, &standard_secret),
        ("bench-github", Scheme::Github, &github_secret),
        ("bench-stripe", Scheme::Stripe, &stripe_secret),
        ("bench-token", Scheme::Token, &token_secret),
    ] {
        let rate = closed_loop(
            &client,
            &format!("{base}/api/webhooks/{name}"),
            scheme,
            secret,
            connections,
            duration,
        )
        .await;
        row(&format!("scheme {name}"), rate);
    }
    server.start_kill().ok();
}

fn now_us() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

fn body(n: u64) -> String {
    let pad = "x".repeat(860);
    format!(
        r#"{{"job_id":"bench-{n}","event":"workflow.completed","workflow_name":"bench","session_id":"s-{n}","hook_event_name":"Stop","type":"t.completed","data":{{"id":"d-{n}","object":{{"id":"o-{n}"}}}},"id":"evt-{n}","result":{{"pad":"{pad}"}}}}"#
    )
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    n: u64,
    scheme: Scheme,
    secret: &WebhookSecret,
) -> bool {
    let body = body(n);
    let bytes = body.as_bytes();
    let now = now_us() / 1_000_000;
    let request = client.post(url).header("content-type", "application/json");
    let request = match scheme {
        // Real senders name their deliveries; ids of the body's hash would
        // measure random inserts into the unique index, not the source.
        Scheme::Hex => request
            .header("x-webhook-signature", sign_hex(secret, bytes))
            .header("idempotency-key", format!("bench-{n}")),
        Scheme::Standard => {
            let id = format!("msg_{n}");
            request
                .header("webhook-signature", sign_standard(secret, &id, now, bytes))
                .header("webhook-id", id)
                .header("webhook-timestamp", now.to_string())
        }
        Scheme::Github => request
            .header("x-hub-signature-256", sign_github(secret, bytes))
            .header("x-github-delivery", format!("d-{n}"))
            .header("x-github-event", "workflow_run"),
        Scheme::Stripe => request.header("stripe-signature", sign_stripe(secret, now, bytes)),
        Scheme::Token => request
            .header("authorization", format!("Bearer {}", secret.reveal()))
            .header("idempotency-key", format!("bench-{n}")),
    };
    request
        .body(body)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Requests per second with `connections` senders, each waiting for its answer.
async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    scheme: Scheme,
    secret: &WebhookSecret,
    connections: usize,
    duration: Duration,
) -> f64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let secret = Arc::new(secret.clone());
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, done, stop, secret) = (
            client.clone(),
            url.to_owned(),
            done.clone(),
            stop.clone(),
            secret.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                if send(&client, &url, n, scheme, &secret).await {
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
