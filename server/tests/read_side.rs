//! The read side under abuse: exports and streams that a low credential can
//! open, the body budget shared fairly between addresses, connection caps,
//! and the headers that keep private answers private.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex};
use support::live::EventStream;
use support::{ADMIN_EMAIL, SECRET, ServerProcess, Stopped, TestDatabase, TestServer, metric};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ENDPOINT: &str = "/api/webhooks/llm-callback";

fn raise_own_file_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

/// A connection from a loopback address of our choice (all of 127/8 is
/// this host), so that one test plays several clients.
async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(server).await.unwrap()
}

async fn token_for(database_url: &str, name: &str) -> String {
    let store = inbox_core::store::Store::open(database_url).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
    let (token, _) = store.create_token(ADMIN_EMAIL, name, now).await.unwrap();
    token
}

async fn revoke(database_url: &str, name: &str) {
    let store = inbox_core::store::Store::open(database_url).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
    store.revoke_token(None, name, now).await.unwrap();
}

fn signed(body: &str) -> String {
    sign_hex(&WebhookSecret::parse(SECRET).unwrap(), body.as_bytes())
}

// --- exports ------------------------------------------------------------------

/// Reads what arrives until the server closes the connection or `limit`
/// passes; returns the bytes and whether it was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut seen = Vec::new();
    let mut buffer = vec![0; 1 << 16];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return (seen, false),
            Ok(Ok(0) | Err(_)) => return (seen, true),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test]
async fn six_never_read_exports_of_large_callbacks_keep_memory_bounded_and_are_dropped() {
    let server = ServerProcess::start(&[("INBOX_WRITE_TIMEOUT_SECS", "3")]).await;
    // No kept-alive connections of our own: the server's count is the exports'.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // 40 callbacks of 900 KB: a 500-row page of them would be 36 MB read
    // at once, and copied again into one chunk, for every export.
    let pad = "x".repeat(900_000);
    for n in 0..40 {
        let body = format!(r#"{{"job_id":"big-{n}","event":"workflow.completed","pad":"{pad}"}}"#);
        let response = client
            .post(server.url(ENDPOINT))
            .header("x-webhook-signature", signed(&body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let token = token_for(server.database_url(), "export").await;
    let (_, before_kib) = server.memory_kib();

    let mut readers = Vec::new();
    for _ in 0..6 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /api/callbacks/export?format=ndjson HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        readers.push(stream);
    }
    // The exports run until the sockets' buffers are full, then wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (peak_kib, _) = server.memory_kib();
    let grown_mib = peak_kib.saturating_sub(before_kib) / 1024;
    println!(
        "RSS before the exports {} MiB, peak {} MiB",
        before_kib / 1024,
        peak_kib / 1024
    );
    // Each export holds about one 1 MiB group of payloads and what the
    // kernel buffers; reading whole pages would hold 6 × 2 × 36 MB.
    assert!(
        grown_mib < 100,
        "RSS grew by {grown_mib} MiB during six stalled exports"
    );

    // A client that makes no progress is dropped after the write timeout:
    // the server's open connections go down to the one asking, and what a
    // client finally reads ends before the whole export.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let open = metric(&metrics, "callback_inbox_open_connections");
        if open <= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections still open 30 s after the exports stalled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let whole = 40 * 900_000;
    for mut stream in readers {
        let (seen, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(closed, "the stalled export was closed");
        assert!(
            seen.len() < whole,
            "only part of the export arrived: {}",
            seen.len()
        );
        assert!(
            !seen.ends_with(b"0\r\n\r\n"),
            "the response was cut, not finished"
        );
    }
    // And /healthz answered all along.
    assert_eq!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn an_export_read_at_full_speed_is_whole_and_in_order() {
    let server = TestServer::start().await;
    let pad = "y".repeat(300_000);
    for n in 0..12 {
        let body =
            format!(r#"{{"job_id":"job-{n:02}","event":"workflow.completed","pad":"{pad}"}}"#);
        assert_eq!(server.post_signed(&body).await.status(), 200);
    }
    let cookie = server.login_admin().await;
    let text = server
        .client
        .get(server.url("/api/callbacks/export?format=ndjson"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jobs: Vec<String> = text
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(record["payload"]["pad"].as_str().unwrap().len(), 300_000);
            record["external_job_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..12).rev().map(|n| format!("job-{n:02}")).collect();
    assert_eq!(jobs, expected, "newest first, every record once");
    let json: serde_json::Value = server
        .client
        .get(server.url("/api/callbacks/export?format=json"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 12);
}

// --- streams --------------------------------------------------------------------

async fn open_stream(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .client
        .get(server.url("/api/callbacks/stream"))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
}

/// Posts a callback every 100 ms until aborted.
fn steady_sender(server: &TestServer) -> tokio::task::JoinHandle<()> {
    let base = server.base.clone();
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        for n in 0.. {
            let body = format!(r#"{{"job_id":"steady-{n}","event":"llm.step.completed"}}"#);
            let _ = client
                .post(format!("{base}{ENDPOINT}"))
                .header("x-webhook-signature", signed(&body))
                .body(body)
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test]
async fn a_stream_ends_within_five_seconds_of_sign_out_while_callbacks_keep_arriving() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let mut stream = EventStream::open(&server.client, &server.base, &cookie, None).await;
    let sender = steady_sender(&server);
    stream.next_callback().await;
    let response = server.call("/api/auth/logout", Some(&cookie), &[]).await;
    assert_eq!(response.status(), 200);
    assert!(
        stream.ends_within(Duration::from_secs(5)).await,
        "the stream outlived its session by 5 s"
    );
    sender.abort();
}

#[tokio::test]
async fn a_stream_ends_within_five_seconds_of_revocation_while_callbacks_keep_arriving() {
    let server = TestServer::start().await;
    let token = token_for(server.database_url(), "watch").await;
    let mut stream = EventStream::from_response(open_stream(&server, &token).await);
    // Callbacks every 100 ms, before and after the revocation.
    let sender = steady_sender(&server);
    stream.next_callback().await;
    revoke(server.database_url(), "watch").await;
    let revoked = Instant::now();
    assert!(
        stream.ends_within(Duration::from_secs(5)).await,
        "the stream outlived its token by 5 s"
    );
    println!("stream ended {:?} after the revocation", revoked.elapsed());
    sender.abort();
}

#[tokio::test]
async fn the_eleventh_stream_of_a_user_is_refused_and_the_first_ten_stay() {
    let server = TestServer::start().await;
    let token = token_for(server.database_url(), "many").await;
    let mut open = Vec::new();
    for _ in 0..10 {
        let response = open_stream(&server, &token).await;
        assert_eq!(response.status(), 200);
        open.push(EventStream::from_response(response));
    }
    let refused = open_stream(&server, &token).await;
    assert_eq!(refused.status(), 429);
    let answer: serde_json::Value = refused.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("at most 10"),
        "{answer}"
    );
    // The first ten still deliver.
    assert_eq!(
        server
            .post_signed(r#"{"job_id":"to-all","event":"workflow.completed"}"#)
            .await
            .status(),
        200
    );
    for stream in &mut open {
        let (_, item) = stream.next_callback().await;
        assert_eq!(item["event_type"], "workflow.completed");
    }
    // Closing one makes room for another.
    drop(open.pop());
    let mut reopened = None;
    for _ in 0..50 {
        let response = open_stream(&server, &token).await;
        if response.status() == 200 {
            reopened = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "a closed stream gives its place back");
}

#[tokio::test]
async fn a_thousand_streams_cost_one_feed_query_per_commit() {
    raise_own_file_limit();
    let server = TestServer::start_with(&[
        "--max-streams-per-user",
        "1000",
        "--max-connections-per-address",
        "2000",
    ])
    .await;
    let token = token_for(server.database_url(), "crowd").await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut streams = Vec::new();
    for _ in 0..1000 {
        let response = client
            .get(server.url("/api/callbacks/stream"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        streams.push(EventStream::from_response(response));
    }
    let metrics_before = server.metrics_text().await;
    let commits = 3;
    for n in 0..commits {
        let body = format!(r#"{{"job_id":"crowd-{n}","event":"workflow.completed"}}"#);
        assert_eq!(server.post_signed(&body).await.status(), 200);
        for stream in &mut streams {
            let (_, item) = stream.next_callback_within(Duration::from_secs(20)).await;
            assert_eq!(item["event_type"], "workflow.completed");
        }
    }
    let metrics_after = server.metrics_text().await;
    let reads = |metrics: &str| {
        metric(metrics, "callback_inbox_feed_reads_total{reader=\"hub\"}")
            + metric(
                metrics,
                "callback_inbox_feed_reads_total{reader=\"stream\"}",
            )
    };
    let queries = reads(&metrics_after) - reads(&metrics_before);
    assert!(
        metrics_after.contains("callback_inbox_feed_reads_total{reader=\"hub\"}"),
        "{metrics_after}"
    );
    // One read per commit by the hub (a commit's notice may come twice);
    // a thousand streams reading for themselves would be 3,000.
    assert!(
        queries >= f64::from(commits) && queries <= f64::from(commits * 3),
        "{queries} feed queries for {commits} commits to 1,000 streams"
    );
}

// --- the body budget ------------------------------------------------------------

#[tokio::test]
async fn stalled_requests_of_one_address_leave_room_for_a_real_sender() {
    // The default budget: 64 MiB in all, 8 MiB for one address.
    let server = TestServer::start_with(&["--trusted-proxies", "127.0.0.9"]).await;
    let fake = format!("sha256={}", "0".repeat(64));
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut stream = connect_from("127.0.0.2", server.addr).await;
        let head = format!(
            "POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nX-Webhook-Signature: {fake}\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    // Requests whose signature cannot be valid never hold any budget.
    for malformed in ["sha256=123", "not-a-signature", &"f".repeat(300)] {
        let mut stream = connect_from("127.0.0.3", server.addr).await;
        let head = format!(
            "POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nX-Webhook-Signature: {malformed}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0; 512];
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut answer))
            .await
            .expect("answered without the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    // The real sender, from another address, is answered at once.
    let body = r#"{"job_id":"real","event":"workflow.completed"}"#;
    let real = reqwest::Client::builder()
        .local_address("127.0.0.1".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let response = real
        .post(server.url(ENDPOINT))
        .header("x-webhook-signature", signed(body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The stalling address got its share and then 503s.
    let mut refused = 0;
    for mut stream in stalled {
        let mut answer = vec![0; 256];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), stream.read(&mut answer)).await
            && String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 503")
        {
            refused += 1;
        }
    }
    assert!(
        refused >= 56,
        "only {refused} of 64 stalled requests were refused"
    );
}

// --- connections ------------------------------------------------------------------

#[tokio::test]
async fn eleven_hundred_idle_connections_leave_healthz_answering() {
    raise_own_file_limit();
    let database = std::sync::Arc::new(TestDatabase::fresh().await);
    let dir = tempfile::tempdir().unwrap();
    // A service's usual open-file limit, which the server cannot raise.
    let server = ServerProcess::start_limited(Stopped { dir, database }, &[], Some(1024)).await;
    let mut idle = Vec::new();
    for n in 0..1100 {
        let source = format!("127.0.1.{}", n % 200 + 1);
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(source.parse().unwrap(), 0))
            .unwrap();
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(2), socket.connect(server.addr)).await
        {
            idle.push(stream);
        }
    }
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let response = client
            .get(server.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("healthz answers beside 1,100 idle connections");
        assert_eq!(response.status(), 200);
    }
    // The oldest idle connections were closed to make room.
    let mut closed = 0;
    for stream in &mut idle[..200] {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(closed > 0, "no idle connection was closed");
    assert!(
        server.output().contains("connection limits"),
        "{}",
        server.output()
    );
}

// --- private answers and origins ------------------------------------------------

#[tokio::test]
async fn private_answers_are_never_cached() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    for path in ["/admin/callbacks", "/login"] {
        let response = server
            .client
            .get(server.url(path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    let response = server.call("/api/admin/users", Some(&cookie), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn an_origin_matching_a_spoofed_host_is_still_cross_origin() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let forged = server
        .client
        .post(server.url("/api/callbacks/mark-all-viewed"))
        .header("cookie", &cookie)
        .header("host", "evil.example")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let own = server
        .client
        .post(server.url("/api/callbacks/mark-all-viewed"))
        .header("cookie", &cookie)
        .header("origin", server.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
}

#[tokio::test]
async fn a_backslash_never_reaches_a_redirect_location() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /./\\evil.example HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let location = answer
        .lines()
        .find_map(|line| line.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("a redirect: {answer}"));
    assert!(!location.contains('\\'), "{location}");
    assert!(!location.starts_with("//"), "{location}");
}
