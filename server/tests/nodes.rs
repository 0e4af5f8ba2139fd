//! Several nodes on one PostgreSQL: two real `callback-inbox` processes
//! share a fresh database and serve any request for each other. These
//! tests always use PostgreSQL (`INBOX_TEST_POSTGRES_URL`, which `./x test`
//! sets); they fail, never skip, without it.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use inbox_core::signature::{WebhookSecret, sign_hex};
use serde_json::Value;
use sqlx::Connection;
use support::live::{EventStream, SlowSender};
use support::{
    ADMIN_EMAIL, ADMIN_PASSWORD, SECRET, ServerProcess, TestBackend, TestDatabase, session_cookie,
};

const ENDPOINT: &str = "/api/webhooks/llm-callback";

/// One node seen from outside: its base URL and an HTTP client.
struct Node {
    process: ServerProcess,
    client: reqwest::Client,
}

impl Node {
    async fn start(database: &Arc<TestDatabase>) -> Self {
        Self {
            process: ServerProcess::start_on(database.clone(), &[]).await,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    async fn post_signed(&self, body: &str) -> reqwest::Response {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        self.client
            .post(self.url(ENDPOINT))
            .header("content-type", "application/json")
            .header("x-webhook-signature", sign_hex(&secret, body.as_bytes()))
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/auth/login"))
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    async fn login_admin(&self) -> String {
        let response = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(response.status(), 200);
        session_cookie(&response).unwrap()
    }

    async fn call(&self, endpoint: &str, cookie: &str, fields: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(endpoint))
            .header("cookie", cookie)
            .form(fields)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn poll(&self, cookie: &str, after: &str) -> Value {
        let (status, page) = self
            .call(
                "/api/callbacks/poll",
                cookie,
                &[("after", after), ("limit", "100")],
            )
            .await;
        assert_eq!(status, 200, "{page}");
        page
    }
}

async fn two_nodes() -> (Arc<TestDatabase>, Node, Node) {
    let database = Arc::new(TestDatabase::fresh_on(TestBackend::Postgres).await);
    let a = Node::start(&database).await;
    let b = Node::start(&database).await;
    (database, a, b)
}

fn callback_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["callback_id"].as_str().unwrap().to_owned())
        .collect()
}

fn body(job: &str) -> String {
    format!(r#"{{"job_id":"{job}","event":"workflow.completed"}}"#)
}

#[tokio::test]
async fn a_webhook_to_node_a_appears_in_node_bs_poll_and_stream() {
    let (_database, a, b) = two_nodes().await;
    let cookie = b.login_admin().await;
    let head = b.call("/api/callbacks/poll", &cookie, &[]).await.1["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = EventStream::open(&b.client, &b.process.base, &cookie, None).await;
    // Let the stream read the head before the callback arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(a.post_signed(&body("from-a")).await.status(), 200);
    let sent = Instant::now();
    let event = stream.next_callback_within(Duration::from_secs(5)).await.1;
    let latency = sent.elapsed();
    assert_eq!(event["callback_id"], "job:from-a:workflow.completed");
    assert!(
        latency < Duration::from_secs(1),
        "node B's stream showed node A's callback after {latency:?}"
    );
    let page = b.poll(&cookie, &head).await;
    assert_eq!(callback_ids(&page), ["job:from-a:workflow.completed"]);
}

#[tokio::test]
async fn a_session_made_on_one_node_works_on_the_other_and_views_are_shared() {
    let (_database, a, b) = two_nodes().await;
    let cookie = a.login_admin().await;
    let stored: Value = a.post_signed(&body("viewed")).await.json().await.unwrap();
    let id = stored["id"].as_str().unwrap();

    // Signed in on A, served by B.
    let (status, detail) = b
        .call("/api/callbacks/detail", &cookie, &[("id", id)])
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["viewed_at"], Value::Null);

    // Viewed on B, seen as viewed on A.
    let (status, _) = b
        .call("/api/callbacks/mark-viewed", &cookie, &[("id", id)])
        .await;
    assert_eq!(status, 200);
    let (_, detail) = a
        .call("/api/callbacks/detail", &cookie, &[("id", id)])
        .await;
    assert!(detail["viewed_at"].is_string(), "{detail}");
    let (_, fresh) = a.call("/api/callbacks/poll", &cookie, &[]).await;
    assert_eq!(fresh["unviewed_count"], 0);

    // Signed out on B: the session is gone on A too.
    let (status, _) = b.call("/api/auth/logout", &cookie, &[]).await;
    assert_eq!(status, 200);
    let (status, _) = a
        .call("/api/callbacks/detail", &cookie, &[("id", id)])
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn concurrent_retries_spread_over_both_nodes_store_one_row_with_every_delivery_counted() {
    let (database, a, b) = two_nodes().await;
    let nodes = Arc::new([a, b]);
    const CALLBACKS: usize = 8;
    const RETRIERS: usize = 64;
    let mut tasks = Vec::new();
    for retrier in 0..RETRIERS {
        let nodes = nodes.clone();
        tasks.push(tokio::spawn(async move {
            let node = &nodes[retrier % 2];
            let job = format!("retried-{}", retrier % CALLBACKS);
            let response = node.post_signed(&body(&job)).await;
            assert_eq!(response.status(), 200);
            let answer: Value = response.json().await.unwrap();
            answer["id"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    // Every retry of a callback was answered with the same stored id.
    for callback in 0..CALLBACKS {
        let mine: Vec<&String> = ids.iter().skip(callback).step_by(CALLBACKS).collect();
        assert!(mine.iter().all(|id| *id == mine[0]), "{mine:?}");
    }
    let db = support::any_pool(&database.url).await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT callback_id, delivery_count FROM llm_callbacks ORDER BY callback_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), CALLBACKS, "{rows:?}");
    for (callback_id, count) in rows {
        assert_eq!(count, (RETRIERS / CALLBACKS) as i64, "{callback_id}");
    }
    let accepted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE outcome IN ('accepted', 'duplicate')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(accepted, RETRIERS as i64);
}

#[tokio::test]
async fn a_slow_body_on_node_a_committed_after_a_quick_one_on_node_b_is_still_polled() {
    let (_database, a, b) = two_nodes().await;
    let cookie = b.login_admin().await;
    let (_, fresh) = b.call("/api/callbacks/poll", &cookie, &[]).await;
    let cursor = fresh["next_cursor"].as_str().unwrap().to_owned();

    let slow = SlowSender::start(a.process.addr, "slow-on-a").await;
    assert_eq!(b.post_signed(&body("quick-on-b")).await.status(), 200);
    let page = b.poll(&cookie, &cursor).await;
    assert_eq!(callback_ids(&page), ["job:quick-on-b:workflow.completed"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();

    slow.finish().await;
    let page = b.poll(&cookie, &cursor).await;
    assert_eq!(
        callback_ids(&page),
        ["job:slow-on-a:workflow.completed"],
        "the callback committed last on node A was skipped by node B's poll"
    );
}

/// The case sequences get wrong: a transaction takes a feed position and
/// commits after a later position has committed. Here the first
/// transaction is held open by hand; node B's callback must not become
/// visible past it, so a poll in between never moves beyond the held one.
#[tokio::test]
async fn a_feed_position_held_by_an_open_transaction_is_never_skipped() {
    let (database, a, b) = two_nodes().await;
    let cookie = b.login_admin().await;
    let (_, fresh) = b.call("/api/callbacks/poll", &cookie, &[]).await;
    let cursor = fresh["next_cursor"].as_str().unwrap().to_owned();

    let mut held = sqlx::PgConnection::connect(&database.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut held).await.unwrap();
    sqlx::query(
        "INSERT INTO llm_callbacks (id, callback_id, signature_valid, payload, payload_preview,
                                    status, created_at, updated_at)
         VALUES (gen_random_uuid(), 'held-by-hand', true, '{}', '{}', 'completed', now(), now())",
    )
    .execute(&mut held)
    .await
    .unwrap();

    let quick = tokio::spawn(async move {
        let response = b.post_signed(&body("quick-on-b")).await;
        (b, response.status())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Meanwhile node A's poll moves nowhere (nothing before the held
    // position is missing, nothing after it may be shown yet).
    let page = a.poll(&cookie, &cursor).await;
    assert_eq!(callback_ids(&page), Vec::<String>::new());
    assert_eq!(page["next_cursor"], cursor.as_str());

    sqlx::query("COMMIT").execute(&mut held).await.unwrap();
    let (b, status) = quick.await.unwrap();
    assert_eq!(status, 200);
    let page = b.poll(&cookie, &cursor).await;
    assert_eq!(
        callback_ids(&page),
        ["held-by-hand", "job:quick-on-b:workflow.completed"]
    );
}

#[tokio::test]
async fn sign_in_limits_hold_across_nodes() {
    let (_database, a, b) = two_nodes().await;
    let nodes = Arc::new([a, b]);
    // 40 guesses at once, spread over both nodes: the limit per account
    // from one address is 10 in 15 minutes, so at most 10 passwords are
    // checked (401); the others are refused before any check (429).
    let mut guesses = Vec::new();
    for guess in 0..40 {
        let nodes = nodes.clone();
        guesses.push(tokio::spawn(async move {
            nodes[guess % 2]
                .login(ADMIN_EMAIL, &format!("wrong password {guess}"))
                .await
                .status()
                .as_u16()
        }));
    }
    let mut checked = 0;
    for guess in guesses {
        match guess.await.unwrap() {
            401 => checked += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(checked, 10, "passwords checked across both nodes");
    for node in nodes.iter() {
        let response = node.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(response.status(), 429);
    }
}

#[tokio::test]
async fn the_stream_keeps_up_when_the_notification_connection_drops() {
    let (database, a, b) = two_nodes().await;
    let cookie = b.login_admin().await;
    let mut stream = EventStream::open(&b.client, &b.process.base, &cookie, None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // End every node's LISTEN connection, as a network blip or a restarted
    // pooler would.
    let mut admin = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND query LIKE 'LISTEN%') AS ended",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(ended, 2, "one listening connection per node");

    assert_eq!(a.post_signed(&body("after-the-drop")).await.status(), 200);
    let event = stream.next_callback_within(Duration::from_secs(3)).await.1;
    assert_eq!(
        event["callback_id"],
        "job:after-the-drop:workflow.completed"
    );

    // And it listens again: the next one arrives within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.post_signed(&body("listening-again")).await.status(), 200);
    let sent = Instant::now();
    let event = stream.next_callback_within(Duration::from_secs(3)).await.1;
    assert_eq!(
        event["callback_id"],
        "job:listening-again:workflow.completed"
    );
    assert!(sent.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_node_keeps_accepting_after_its_database_connections_are_cut() {
    let (database, a, b) = two_nodes().await;
    assert_eq!(a.post_signed(&body("before-the-cut")).await.status(), 200);
    let cookie = b.login_admin().await;

    // Cut every connection the nodes hold (the writer's, the pool's, the
    // listener's), as a database restart or failover would.
    let mut admin = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()) AS cut",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(cut >= 4, "writers and listeners of both nodes: {cut}");

    for node in [&a, &b] {
        let response = node.post_signed(&body("after-the-cut")).await;
        assert_eq!(response.status(), 200);
    }
    let (status, fresh) = b.call("/api/callbacks/poll", &cookie, &[]).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(
        fresh["unviewed_count"], 2,
        "one row for the callback sent to both nodes"
    );
}
