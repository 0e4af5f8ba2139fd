//! The read side under abuse, each flood measured against the same server
//! at rest in the same run: memory during never-read and full-speed exports
//! of large callbacks, CPU and dashboard latency with 1,500 open streams
//! while callbacks arrive, `/healthz` beside 1,100 idle connections at a
//! 1,024 open-file limit, and a real sender beside 64 stalled bodies.
//!
//!     cargo build --release -p callback-inbox --bin callback-inbox --example read_side_bench
//!     target/release/examples/read_side_bench
//!
//! `INBOX_BENCH_SERVER=path/to/callback-inbox` measures another build (an
//! older release, for a before/after comparison on the same machine).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const SECRET: &str = "bench-secret-0123456789";
const ADMIN: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "admin password 1234";
const ENDPOINT: &str = "/api/webhooks/llm-callback";

struct Server {
    child: tokio::process::Child,
    base: String,
    addr: SocketAddr,
    database_url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(env: &[(&str, &str)], file_limit: Option<u64>) -> Self {
        let binary = std::env::var("INBOX_BENCH_SERVER").unwrap_or_else(|_| {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .unwrap()
                .join("../callback-inbox")
                .display()
                .to_string()
        });
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let database_url = format!("sqlite://{}/bench.db", dir.path().display());
        let mut command = tokio::process::Command::new(&binary);
        command
            .env("DATABASE_URL", &database_url)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("LLM_WEBHOOK_SECRET", SECRET)
            .env("INBOX_ADMIN_EMAIL", ADMIN)
            .env("INBOX_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        if let Some(limit) = file_limit {
            // SAFETY: only setrlimit runs between fork and exec.
            unsafe {
                command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, limit, limit));
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let base = format!("http://{addr}");
        let client = fresh_client();
        for _ in 0..400 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            base,
            addr,
            database_url,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A client that keeps no idle connection (each measurement opens its own).
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// (peak, current) resident memory in MiB.
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds the process has used (user + system).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line (11, 12 here).
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// `/healthz` p50 and p99 in ms over `samples` requests on new connections,
/// and how many got no answer within 5 s.
async fn health(server: &Server, samples: usize) -> (f64, f64, usize) {
    let client = fresh_client();
    let mut times = Vec::new();
    let mut failed = 0;
    for _ in 0..samples {
        let started = Instant::now();
        match client
            .get(server.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(response) if response.status() == 200 => times.push(started.elapsed()),
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    times.sort();
    (percentile(&times, 50.0), percentile(&times, 99.0), failed)
}

async fn post_signed(client: &reqwest::Client, server: &Server, body: String) -> u16 {
    let signature = sign_hex(&WebhookSecret::parse(SECRET).unwrap(), body.as_bytes());
    client
        .post(server.url(ENDPOINT))
        .header("x-webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

async fn token(server: &Server, name: &str) -> String {
    let store = inbox_core::store::Store::open(&server.database_url)
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
    store.create_token(ADMIN, name, now).await.unwrap().0
}

#[tokio::main]
async fn main() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    exports().await;
    streams().await;
    idle_connections().await;
    stalled_bodies().await;
}

async fn exports() {
    println!("== exports of 40 callbacks of 900 KB");
    let server = Server::start(&[("INBOX_WRITE_TIMEOUT_SECS", "10")], None).await;
    let client = fresh_client();
    let pad = "x".repeat(900_000);
    for n in 0..40 {
        let body = format!(r#"{{"job_id":"big-{n}","event":"workflow.completed","pad":"{pad}"}}"#);
        assert_eq!(post_signed(&client, &server, body).await, 200);
    }
    let token = token(&server, "bench").await;
    let (_, rest) = memory_mib(server.pid());
    let (rest_p50, rest_p99, _) = health(&server, 100).await;
    println!("at rest: RSS {rest} MiB, healthz p50/p99 {rest_p50:.2}/{rest_p99:.2} ms");

    // Six exports nobody reads.
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /api/callbacks/export?format=ndjson HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    let (p50, p99, failed) = health(&server, 200).await;
    let (peak, now) = memory_mib(server.pid());
    println!(
        "6 never-read exports: peak RSS {peak} MiB (now {now}), healthz p50/p99 {p50:.2}/{p99:.2} ms, {failed} unanswered"
    );
    drop(stalled);
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "after the clients closed: RSS {} MiB",
        memory_mib(server.pid()).1
    );

    // One export read at full speed.
    let started = Instant::now();
    let bytes = client
        .get(server.url("/api/callbacks/export?format=ndjson"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    println!(
        "one export read at full speed: {} MB in {:.2} s, peak RSS so far {} MiB\n",
        bytes / 1_000_000,
        started.elapsed().as_secs_f64(),
        memory_mib(server.pid()).0
    );
}

async fn streams() {
    println!("== 1,500 streams of one token while 20 callbacks/s arrive");
    // The per-user cap (10) would refuse all but ten; lift it to measure
    // what 1,500 open streams cost.
    let server = Server::start(
        &[
            ("INBOX_MAX_STREAMS_PER_USER", "2000"),
            ("INBOX_MAX_CONNECTIONS_PER_ADDRESS", "4000"),
        ],
        None,
    )
    .await;
    let client = fresh_client();
    for n in 0..200 {
        let body = format!(r#"{{"job_id":"seed-{n}","event":"workflow.completed"}}"#);
        post_signed(&client, &server, body).await;
    }
    let token = token(&server, "streams").await;
    let history = |client: reqwest::Client, base: String, token: String| async move {
        let mut times = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let _ = client
                .post(format!("{base}/api/callbacks/history"))
                .header("authorization", format!("Bearer {token}"))
                .form(&[("limit", "50")])
                .send()
                .await;
            times.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        times.sort();
        (percentile(&times, 50.0), percentile(&times, 99.0))
    };
    let sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let sending = sending.clone();
        let base = server.base.clone();
        tokio::spawn(async move {
            let client = fresh_client();
            let mut n = 0;
            while sending.load(Ordering::Relaxed) {
                let body = format!(r#"{{"job_id":"live-{n}","event":"llm.step.completed"}}"#);
                let signature = sign_hex(&WebhookSecret::parse(SECRET).unwrap(), body.as_bytes());
                let _ = client
                    .post(format!("{base}{ENDPOINT}"))
                    .header("x-webhook-signature", signature)
                    .body(body)
                    .send()
                    .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = cpu_secs(server.pid());
    let started = Instant::now();
    let (rest_p50, rest_p99) = history(fresh_client(), server.base.clone(), token.clone()).await;
    let rest_cpu = (cpu_secs(server.pid()) - cpu_before) / started.elapsed().as_secs_f64();
    println!(
        "no stream open: CPU {:.0} %, history p50/p99 {rest_p50:.1}/{rest_p99:.1} ms",
        rest_cpu * 100.0
    );

    let readers = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..1500 {
        match readers
            .get(server.url("/api/callbacks/stream"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
        {
            Ok(response) if response.status() == 200 => open.push(response),
            _ => refused += 1,
        }
    }
    // Read every stream in the background, as browsers would.
    let drains: Vec<_> = open
        .into_iter()
        .map(|mut response| {
            tokio::spawn(async move { while let Ok(Some(_)) = response.chunk().await {} })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = cpu_secs(server.pid());
    let started = Instant::now();
    let (p50, p99) = history(fresh_client(), server.base.clone(), token.clone()).await;
    let cpu = (cpu_secs(server.pid()) - cpu_before) / started.elapsed().as_secs_f64();
    println!(
        "{} streams open ({refused} refused): CPU {:.0} %, history p50/p99 {p50:.1}/{p99:.1} ms, RSS {} MiB\n",
        drains.len(),
        cpu * 100.0,
        memory_mib(server.pid()).1
    );
    sending.store(false, Ordering::Relaxed);
    let _ = sender.await;
    for drain in drains {
        drain.abort();
    }
}

async fn idle_connections() {
    println!("== 1,100 idle connections, server at a 1,024 open-file limit");
    let server = Server::start(&[], Some(1024)).await;
    let (rest_p50, rest_p99, _) = health(&server, 100).await;
    println!("at rest: healthz p50/p99 {rest_p50:.2}/{rest_p99:.2} ms");
    let mut idle = Vec::new();
    for n in 0..1100 {
        let socket = TcpSocket::new_v4().unwrap();
        let source: std::net::IpAddr = format!("127.0.2.{}", n % 250 + 1).parse().unwrap();
        if socket.bind(SocketAddr::new(source, 0)).is_err() {
            continue;
        }
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(1), socket.connect(server.addr)).await
        {
            idle.push(stream);
        }
    }
    let (p50, p99, failed) = health(&server, 100).await;
    println!(
        "beside {} idle connections: healthz p50/p99 {p50:.2}/{p99:.2} ms, {failed} of 100 unanswered within 5 s\n",
        idle.len()
    );
}

async fn stalled_bodies() {
    println!("== 64 stalled 1 MiB bodies with a made-up signature, from one address");
    let server = Server::start(&[], None).await;
    let fake = format!("sha256={}", "0".repeat(64));
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new("127.0.0.2".parse().unwrap(), 0))
            .unwrap();
        let mut stream = socket.connect(server.addr).await.unwrap();
        let head = format!(
            "POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nX-Webhook-Signature: {fake}\r\n\r\n{{"
        );
        let _ = stream.write_all(head.as_bytes()).await;
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = fresh_client();
    let mut statuses = std::collections::BTreeMap::new();
    for n in 0..20 {
        let body = format!(r#"{{"job_id":"real-{n}","event":"workflow.completed"}}"#);
        *statuses
            .entry(post_signed(&client, &server, body).await)
            .or_insert(0) += 1;
    }
    println!("a real sender from another address, 20 callbacks: statuses {statuses:?}\n");
}
