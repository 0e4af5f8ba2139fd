//! The public surface under attack, measured against itself at rest in the
//! same run: memory and `/healthz` latency while 300 connections flood 1 MiB
//! bodies, how cheap rejecting unsigned requests stays next to the no-op
//! route, and the owner's sign-in time during a burst of 120 guesses.
//!
//!     cargo build --release -p callback-inbox --example surface_bench
//!     target/release/examples/surface_bench
//!
//! It starts `target/release/callback-inbox` itself (build it first, e.g.
//! with `./x bench`).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "bench-secret-0123456789";
const OWNER: &str = "owner@example.com";
const OWNER_PASSWORD: &str = "owner password 1234";

#[tokio::main]
async fn main() {
    let exe = std::env::current_exe().unwrap();
    let server_bin = exe.parent().unwrap().join("../callback-inbox");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new(&server_bin)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/bench.db", dir.path().display()),
        )
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LLM_WEBHOOK_SECRET", SECRET)
        .env("INBOX_ADMIN_EMAIL", OWNER)
        .env("INBOX_ADMIN_PASSWORD", OWNER_PASSWORD)
        .env("INBOX_BENCH_NOOP_ROUTE", "true")
        // Attacker and owner come from different addresses through this "proxy".
        .env("INBOX_TRUSTED_PROXIES", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", server_bin.display()));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = server.id().unwrap();
    println!("server pid {pid}\n");

    // --- memory and health during a flood of large bodies -----------------
    let (rest_p50, rest_p99) = health_latency(&client, &base, None).await;
    let rest_rss = memory_kib(pid).1;
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let flooding = flooding.clone();
        tokio::spawn(async move {
            let forged = format!("sha256={}", "0".repeat(64));
            let mut tasks = Vec::new();
            for n in 0..300 {
                let signature = (n % 2 == 0).then(|| forged.clone());
                tasks.push(tokio::spawn(send_large_body(addr, signature)));
            }
            for task in tasks {
                let _ = task.await;
            }
            flooding.store(false, Ordering::Relaxed);
        })
    };
    let (flood_p50, flood_p99) = health_latency(&client, &base, Some(&flooding)).await;
    flood.await.unwrap();
    let (peak_rss, _) = memory_kib(pid);
    println!("300 connections x 1 MiB (half unsigned, half with a forged signature)");
    println!("  /healthz p50 / p99 at rest:       {rest_p50:.2} / {rest_p99:.2} ms");
    println!("  /healthz p50 / p99 during flood:  {flood_p50:.2} / {flood_p99:.2} ms");
    println!(
        "  RSS at rest {} MiB, peak {} MiB (300 bodies held at once would be 300 MiB)\n",
        rest_rss / 1024,
        peak_rss / 1024
    );

    // --- cheap rejection --------------------------------------------------
    let body = vec![b' '; 1024];
    let noop = closed_loop(&client, &format!("{base}/bench/noop"), &body, 64).await;
    let rejected = closed_loop(
        &client,
        &format!("{base}/api/webhooks/llm-callback"),
        &body,
        64,
    )
    .await;
    println!("unsigned 1 KiB webhooks, 64 connections, 5 s each");
    println!("  no-op route (ceiling):   {noop:.0} req/s");
    println!(
        "  rejected with 401:       {rejected:.0} req/s = {:.0} % of the ceiling\n",
        100.0 * rejected / noop
    );

    // --- the owner's sign-in during a burst of guesses --------------------
    let mut alone = Vec::new();
    let mut attacked = Vec::new();
    for round in 0..5 {
        alone.push(
            sign_in(&client, &base, "198.51.100.7", OWNER_PASSWORD)
                .await
                .1,
        );
        let attacker = format!("203.0.113.{}", 10 + round);
        let burst: Vec<_> = (0..120)
            .map(|n| {
                let client = client.clone();
                let base = base.clone();
                let attacker = attacker.clone();
                tokio::spawn(async move {
                    sign_in(&client, &base, &attacker, &format!("guess number {n:04}")).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (status, took) = sign_in(&client, &base, "198.51.100.7", OWNER_PASSWORD).await;
        assert_eq!(status, 200, "the owner was refused during the burst");
        attacked.push(took);
        let mut checked = 0;
        for task in burst {
            if task.await.unwrap().0 == 401 {
                checked += 1;
            }
        }
        if round == 0 {
            println!("a burst of 120 guesses from one address: {checked} passwords checked");
        }
    }
    let median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    println!(
        "owner sign-in, median of 5: alone {:.0} ms, during the burst {:.0} ms",
        median(&mut alone),
        median(&mut attacked)
    );

    // --- memory per open live stream --------------------------------------
    let cookie = sign_in_cookie(&client, &base).await;
    let before = memory_kib(pid).1;
    let mut streams = Vec::new();
    for _ in 0..500 {
        let response = client
            .get(format!("{base}/api/callbacks/stream"))
            .header("cookie", &cookie)
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = memory_kib(pid).1;
    println!(
        "500 open live streams: RSS {} -> {} MiB, {:.1} KiB per stream",
        before / 1024,
        after / 1024,
        (after.saturating_sub(before)) as f64 / 500.0
    );
    drop(streams);
    let _ = server.kill().await;
}

async fn sign_in_cookie(client: &reqwest::Client, base: &str) -> String {
    let response = client
        .post(format!("{base}/api/auth/login"))
        .header("x-forwarded-for", "198.51.100.7")
        .form(&[("email", OWNER), ("password", OWNER_PASSWORD)])
        .send()
        .await
        .unwrap();
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("inbox_session="))
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    address: &str,
    password: &str,
) -> (u16, f64) {
    let started = Instant::now();
    let status = client
        .post(format!("{base}/api/auth/login"))
        .header("x-forwarded-for", address)
        .form(&[("email", OWNER), ("password", password)])
        .send()
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or(0);
    (status, started.elapsed().as_secs_f64() * 1000.0)
}

/// `/healthz` latencies (p50, p99 in ms): 200 requests, or for as long as
/// `while_flag` stays set.
async fn health_latency(
    client: &reqwest::Client,
    base: &str,
    while_flag: Option<&AtomicBool>,
) -> (f64, f64) {
    let mut times = Vec::new();
    loop {
        let started = Instant::now();
        let ok = client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200);
        assert!(ok, "/healthz failed");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        match while_flag {
            Some(flag) if flag.load(Ordering::Relaxed) => {}
            Some(_) => break,
            None if times.len() >= 200 => break,
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// Announces 1 MiB, sends it in 64 KiB pieces, reads the answer.
async fn send_large_body(addr: std::net::SocketAddr, signature: Option<String>) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let mut head =
        "POST /api/webhooks/llm-callback HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n"
            .to_owned();
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
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
}

/// Requests per second over 5 s with `connections` concurrent senders.
async fn closed_loop(client: &reqwest::Client, url: &str, body: &[u8], connections: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let client = client.clone();
            let url = url.to_owned();
            let body = body.to_vec();
            let done = done.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    if client.post(&url).body(body.clone()).send().await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / 5.0
}

/// Peak and current resident memory of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
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
