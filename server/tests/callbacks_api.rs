//! The admin API over callbacks (server functions at fixed endpoints),
//! over real HTTP with real sessions.

mod support;

use inbox_core::accounts::{PasswordHasherPool, Role};
use inbox_core::delivery::derive_delivery_id;
use inbox_core::fields::extract_fields;
use inbox_core::store::NewCallback;
use serde_json::{Value, json};
use support::TestServer;
use uuid::Uuid;

async fn send(server: &TestServer, job: &str, event: &str, workflow: &str, extra: Value) -> String {
    let mut body = json!({ "job_id": job, "event": event, "workflow_name": workflow });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    let response = server.post_signed(&body.to_string()).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    answer["id"].as_str().unwrap().to_owned()
}

async fn call(
    server: &TestServer,
    endpoint: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let response = server.call(endpoint, Some(cookie), fields).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn second_admin(server: &TestServer) -> String {
    let hash = PasswordHasherPool::default()
        .hash("second admin password")
        .await
        .unwrap();
    server
        .store()
        .await
        .create_user("second@example.com", &hash, Role::Admin, 0)
        .await
        .unwrap();
    server
        .login("second@example.com", "second admin password")
        .await
        .unwrap()
}

#[tokio::test]
async fn poll_returns_unviewed_callbacks_oldest_first_and_keeps_the_cursor_when_idle() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let first = send(&server, "j1", "workflow.completed", "wf", json!({})).await;
    let second = send(&server, "j2", "workflow.failed", "wf", json!({})).await;

    let (status, page) = call(&server, "/api/callbacks/poll", &cookie, &[("after", "")]).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), vec![first.clone(), second.clone()]);
    let item = &page["items"][0];
    for field in [
        "id",
        "callback_id",
        "workflow_name",
        "event_type",
        "created_at",
        "signature_valid",
    ] {
        assert!(
            item.get(field).is_some(),
            "poll items carry {field}: {item}"
        );
    }
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();

    let (_, idle) = call(
        &server,
        "/api/callbacks/poll",
        &cookie,
        &[("after", &cursor)],
    )
    .await;
    assert_eq!(ids(&idle), Vec::<String>::new());
    assert_eq!(
        idle["next_cursor"],
        cursor.as_str(),
        "an empty answer keeps the cursor"
    );

    let third = send(&server, "j3", "workflow.completed", "wf", json!({})).await;
    let (_, later) = call(
        &server,
        "/api/callbacks/poll",
        &cookie,
        &[("after", &cursor)],
    )
    .await;
    assert_eq!(ids(&later), vec![third]);
}

#[tokio::test]
async fn poll_pages_through_the_feed_once_each_even_when_rows_share_a_timestamp() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let store = server.store().await;
    let same_instant = 1_763_700_000_000_000;
    let mut expected = Vec::new();
    for n in 0..7 {
        let body = format!(r#"{{"job_id":"tie-{n}","event":"workflow.completed"}}"#);
        let payload: serde_json::Map<String, Value> = serde_json::from_str(&body).unwrap();
        let id = Uuid::now_v7();
        expected.push(id.to_string());
        store
            .insert_callback(NewCallback {
                id,
                source: "llm-callback".to_owned(),
                callback_id: derive_delivery_id(None, &payload, None, body.as_bytes()),
                signature_valid: true,
                signature_scheme: None,
                verified_at_us: None,
                fields: extract_fields(&payload, None, &body),
                payload: body,
                received_at_us: same_instant,
            })
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = "feed-0".to_owned();
    loop {
        let (status, page) = call(
            &server,
            "/api/callbacks/poll",
            &cookie,
            &[("after", &cursor), ("limit", "2")],
        )
        .await;
        assert_eq!(status, 200);
        let batch = ids(&page);
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 2);
        seen.extend(batch);
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen, expected, "every row once, in commit order");
}

#[tokio::test]
async fn poll_and_history_cap_the_limit_at_100() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    for n in 0..105 {
        send(
            &server,
            &format!("cap-{n}"),
            "workflow.completed",
            "wf",
            json!({}),
        )
        .await;
    }
    let (_, page) = call(
        &server,
        "/api/callbacks/poll",
        &cookie,
        &[("limit", "5000")],
    )
    .await;
    assert_eq!(ids(&page).len(), 100);
    let (_, page) = call(&server, "/api/callbacks/poll", &cookie, &[]).await;
    assert_eq!(ids(&page).len(), 20, "the default page is 20");
    let (_, history) = call(
        &server,
        "/api/callbacks/history",
        &cookie,
        &[("limit", "1000")],
    )
    .await;
    assert_eq!(ids(&history).len(), 100);
}

#[tokio::test]
async fn viewed_state_is_per_admin() {
    let server = TestServer::start().await;
    let alice = server.login_admin().await;
    let bob = second_admin(&server).await;
    let id = send(&server, "shared", "workflow.completed", "wf", json!({})).await;

    let (status, _) = call(
        &server,
        "/api/callbacks/mark-viewed",
        &alice,
        &[("id", &id)],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &server,
        "/api/callbacks/mark-viewed",
        &alice,
        &[("id", &id)],
    )
    .await;
    assert_eq!(status, 200, "marking twice is fine");

    let (_, alice_poll) = call(&server, "/api/callbacks/poll", &alice, &[]).await;
    assert!(ids(&alice_poll).is_empty());
    let (_, bob_poll) = call(&server, "/api/callbacks/poll", &bob, &[]).await;
    assert_eq!(ids(&bob_poll), vec![id.clone()]);

    let (_, alice_detail) = call(&server, "/api/callbacks/detail", &alice, &[("id", &id)]).await;
    assert!(alice_detail["viewed_at"].is_string());
    assert_eq!(alice_detail["viewers"][0]["email"], "admin@example.com");
    let (_, bob_detail) = call(&server, "/api/callbacks/detail", &bob, &[("id", &id)]).await;
    assert!(bob_detail["viewed_at"].is_null());

    let (_, alice_history) = call(&server, "/api/callbacks/history", &alice, &[]).await;
    assert_eq!(alice_history["items"][0]["viewed"], true);
    assert_eq!(alice_history["unread_count"], 0);
    let (_, bob_history) = call(&server, "/api/callbacks/history", &bob, &[]).await;
    assert_eq!(bob_history["items"][0]["viewed"], false);
    assert_eq!(bob_history["unread_count"], 1);

    let (status, _) = call(&server, "/api/callbacks/mark-all-viewed", &bob, &[]).await;
    assert_eq!(status, 200);
    let (_, bob_history) = call(&server, "/api/callbacks/history", &bob, &[]).await;
    assert_eq!(bob_history["unread_count"], 0);
}

#[tokio::test]
async fn detail_returns_the_payload_verbatim_including_hostile_text() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let hostile = "</script><img src=x onerror=alert(1)>";
    let id = send(
        &server,
        "evil",
        "workflow.failed",
        "wf",
        json!({ "error_message": hostile, "nested": {"z": 1, "a": [true, null]} }),
    )
    .await;
    let (status, detail) = call(&server, "/api/callbacks/detail", &cookie, &[("id", &id)]).await;
    assert_eq!(status, 200);
    assert_eq!(detail["payload"]["error_message"], hostile);
    assert_eq!(detail["error_message"], hostile);
    assert_eq!(detail["delivery_count"], 1);
    assert_eq!(detail["signature_valid"], true);
    assert_eq!(detail["signature_scheme"], "hmac_sha256_hex");
    let keys: Vec<&String> = detail["payload"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "job_id",
            "event",
            "workflow_name",
            "error_message",
            "nested"
        ],
        "sender's key order kept"
    );
}

#[tokio::test]
async fn unknown_ids_are_404_and_bad_arguments_400() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let unknown = Uuid::now_v7().to_string();
    for endpoint in ["/api/callbacks/detail", "/api/callbacks/mark-viewed"] {
        let (status, body) = call(&server, endpoint, &cookie, &[("id", &unknown)]).await;
        assert_eq!(status, 404, "{endpoint}");
        assert!(body["error"].as_str().unwrap().contains(&unknown));
        let (status, _) = call(&server, endpoint, &cookie, &[("id", "not-a-uuid")]).await;
        assert_eq!(status, 400, "{endpoint}");
        let (status, _) = call(&server, endpoint, &cookie, &[]).await;
        assert_eq!(status, 400, "{endpoint} without id");
    }
    let (status, body) = call(
        &server,
        "/api/callbacks/poll",
        &cookie,
        &[("after", "garbage")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("cursor"));
    let (status, _) = call(
        &server,
        "/api/callbacks/history",
        &cookie,
        &[("viewed", "perhaps")],
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &server,
        "/api/callbacks/history",
        &cookie,
        &[("from", "last tuesday")],
    )
    .await;
    assert_eq!(status, 400);
}

/// Form fields, and the ids expected back (newest first).
type FilterCase<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a String>);

#[tokio::test]
async fn history_filters_narrow_the_list() {
    let server = TestServer::start_with(&["--signature-mode", "flag"]).await;
    let cookie = server.login_admin().await;
    let ok = send(
        &server,
        "job_alpha",
        "workflow.completed",
        "summarize",
        json!({}),
    )
    .await;
    let failed = send(
        &server,
        "job_beta",
        "workflow.failed",
        "summarize",
        json!({ "error_message": "context length exceeded" }),
    )
    .await;
    let step = send(
        &server,
        "job_gamma",
        "llm.step.completed",
        "translate",
        json!({ "step_id": "s1" }),
    )
    .await;
    let unsigned = server
        .client
        .post(server.url("/api/webhooks/llm-callback"))
        .body(r#"{"job_id":"job_delta","event":"workflow.completed","workflow_name":"translate"}"#)
        .send()
        .await
        .unwrap();
    let unsigned: Value = unsigned.json().await.unwrap();
    let unsigned = unsigned["id"].as_str().unwrap().to_owned();
    call(
        &server,
        "/api/callbacks/mark-viewed",
        &cookie,
        &[("id", &ok)],
    )
    .await;

    let cases: Vec<FilterCase> = vec![
        (vec![], vec![&unsigned, &step, &failed, &ok]),
        (vec![("event_type", "workflow.failed")], vec![&failed]),
        (vec![("workflow_name", "translate")], vec![&unsigned, &step]),
        (vec![("signature_valid", "false")], vec![&unsigned]),
        (
            vec![("signature_valid", "true"), ("viewed", "false")],
            vec![&step, &failed],
        ),
        (vec![("viewed", "true")], vec![&ok]),
        (vec![("q", "beta")], vec![&failed]),
        (vec![("q", "LENGTH exceeded")], vec![&failed]),
        (vec![("q", "%")], vec![]),
        (
            vec![("from", "2000-01-01"), ("to", "2999-12-31")],
            vec![&unsigned, &step, &failed, &ok],
        ),
        (vec![("to", "2000-01-01")], vec![]),
        (
            vec![("event_type", ""), ("workflow_name", ""), ("q", "")],
            vec![&unsigned, &step, &failed, &ok],
        ),
    ];
    for (fields, expected) in cases {
        let (status, page) = call(&server, "/api/callbacks/history", &cookie, &fields).await;
        assert_eq!(status, 200, "{fields:?}");
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids(&page), expected, "{fields:?}");
    }
    let (_, page) = call(&server, "/api/callbacks/history", &cookie, &[("q", "beta")]).await;
    let item = &page["items"][0];
    for field in [
        "id",
        "callback_id",
        "external_job_id",
        "event_type",
        "workflow_name",
        "created_at",
        "payload_preview",
        "signature_valid",
        "viewed",
    ] {
        assert!(item.get(field).is_some(), "history items carry {field}");
    }
}

#[tokio::test]
async fn history_pages_both_ways_with_keyset_cursors() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let mut sent = Vec::new();
    for n in 0..45 {
        sent.push(
            send(
                &server,
                &format!("page-{n:02}"),
                "workflow.completed",
                "wf",
                json!({}),
            )
            .await,
        );
    }
    sent.reverse(); // newest first
    let (_, first) = call(&server, "/api/callbacks/history", &cookie, &[]).await;
    assert_eq!(ids(&first), sent[0..20]);
    assert!(
        first["prev_cursor"].is_null(),
        "nothing is newer than the first page"
    );
    let older = first["next_cursor"].as_str().unwrap().to_owned();

    let (_, second) = call(
        &server,
        "/api/callbacks/history",
        &cookie,
        &[("before", &older)],
    )
    .await;
    assert_eq!(ids(&second), sent[20..40]);
    let (_, third) = call(
        &server,
        "/api/callbacks/history",
        &cookie,
        &[("before", second["next_cursor"].as_str().unwrap())],
    )
    .await;
    assert_eq!(ids(&third), sent[40..45]);
    assert!(
        third["next_cursor"].is_null(),
        "nothing is older than the last page"
    );

    let (_, back) = call(
        &server,
        "/api/callbacks/history",
        &cookie,
        &[("after", third["prev_cursor"].as_str().unwrap())],
    )
    .await;
    assert_eq!(
        ids(&back),
        sent[20..40],
        "going back shows the same page again"
    );
    let (_, front) = call(
        &server,
        "/api/callbacks/history",
        &cookie,
        &[("after", back["prev_cursor"].as_str().unwrap())],
    )
    .await;
    assert_eq!(ids(&front), sent[0..20]);
    assert!(front["prev_cursor"].is_null());

    let (status, _) = call(
        &server,
        "/api/callbacks/history",
        &cookie,
        &[("before", &older), ("after", &older)],
    )
    .await;
    assert_eq!(status, 400);
}

// --- mark all viewed ------------------------------------------------------------

async fn viewer(server: &TestServer, email: &str) -> String {
    let hash = PasswordHasherPool::default()
        .hash("viewer password 123")
        .await
        .unwrap();
    server
        .store()
        .await
        .create_user(email, &hash, Role::Viewer, 0)
        .await
        .unwrap();
    server.login(email, "viewer password 123").await.unwrap()
}

/// Rows of `llm_callback_views` (one per callback opened, or marked the old way).
async fn view_rows(server: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM llm_callback_views")
        .fetch_one(&server.db().await)
        .await
        .unwrap()
}

/// Adds `rows` callbacks (an hour old) in one statement, numbered in the
/// feed after what is there, with the counters the triggers keep.
async fn seed_callbacks(server: &TestServer, rows: i64) {
    let db = server.db().await;
    let head: i64 = sqlx::query_scalar("SELECT seq FROM feed_head WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    let base_us = inbox_core::ingest::unix_micros(time::OffsetDateTime::now_utc()) - 3_600_000_000;
    let started = std::time::Instant::now();
    match server.backend() {
        support::TestBackend::Sqlite => {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
                 INSERT INTO llm_callbacks (id, callback_id, signature_valid, payload, payload_preview,
                     external_job_id, workflow_name, event_type, status, created_at, updated_at,
                     feed_seq)
                 SELECT randomblob(16), 'job:seed-' || i || ':workflow.completed', 1,
                        '{\"job_id\":\"seed-' || i || '\",\"event\":\"workflow.completed\"}',
                        'seed-' || i, 'seed-' || i, 'wf', 'workflow.completed', 'completed',
                        $2 + i, $2 + i, $3 + i
                 FROM n",
            )
            .bind(rows)
            .bind(base_us)
            .bind(head)
            .execute(&db)
            .await
            .unwrap();
        }
        support::TestBackend::Postgres => {
            // Per-row triggers would update the counter rows `rows` times in
            // one transaction: they are off meanwhile and set once below.
            let mut tx = db.begin().await.unwrap();
            for statement in [
                "ALTER TABLE llm_callbacks DISABLE TRIGGER USER".to_owned(),
                format!(
                    "INSERT INTO llm_callbacks (id, callback_id, signature_valid, payload,
                         payload_preview, external_job_id, workflow_name, event_type, status,
                         created_at, updated_at, feed_seq)
                     SELECT gen_random_uuid(), 'job:seed-' || i || ':workflow.completed', true,
                            '{{\"job_id\":\"seed-' || i || '\",\"event\":\"workflow.completed\"}}',
                            'seed-' || i, 'seed-' || i, 'wf', 'workflow.completed', 'completed',
                            timestamptz 'epoch' + ({base_us} + i) * interval '1 microsecond',
                            timestamptz 'epoch' + ({base_us} + i) * interval '1 microsecond',
                            {head} + i
                     FROM generate_series(1, {rows}) AS i"
                ),
                format!("UPDATE feed_head SET seq = seq + {rows} WHERE id = 1"),
                format!("UPDATE callback_count SET total = total + {rows} WHERE id = 1"),
                "ALTER TABLE llm_callbacks ENABLE TRIGGER USER".to_owned(),
            ] {
                sqlx::query(&statement).execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
            sqlx::query("VACUUM ANALYZE llm_callbacks")
                .execute(&db)
                .await
                .unwrap();
        }
    }
    println!(
        "seeded {rows} callbacks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Finding 7 of the review: "Mark all viewed" used to write a view row per
/// callback in one statement, holding SQLite's write lock meanwhile (at 1M
/// callbacks a sender got 3 answers in 30 s, one a 500). Now it writes one
/// mark: with 50,000 callbacks, a sender posting while two users click gets
/// only 2xx answers, the views table does not grow, and the count each
/// click returns matches what stays unviewed.
#[tokio::test]
async fn mark_all_viewed_with_many_callbacks_keeps_the_sender_answered() {
    const SEEDED: i64 = 50_000;
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let viewer = viewer(&server, "viewer@example.com").await;
    seed_callbacks(&server, SEEDED).await;

    let sending = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sender = {
        let (sending, sent) = (sending.clone(), sent.clone());
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let url = server.url("/api/webhooks/llm-callback");
        let secret = inbox_core::signature::WebhookSecret::parse(support::SECRET).unwrap();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while sending.load(std::sync::atomic::Ordering::Relaxed) || n < 40 {
                let body = format!(r#"{{"job_id":"live-{n}","event":"workflow.completed"}}"#);
                let started = std::time::Instant::now();
                let status = client
                    .post(&url)
                    .header(
                        "x-webhook-signature",
                        inbox_core::signature::sign_hex(&secret, body.as_bytes()),
                    )
                    .body(body)
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
                    .map_err(|err| err.to_string());
                answers.push((status, started.elapsed()));
                n += 1;
                sent.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            answers
        })
    };
    while sent.load(std::sync::atomic::Ordering::Relaxed) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let clicked = std::time::Instant::now();
    let (admin_click, viewer_click) = tokio::join!(
        call(&server, "/api/callbacks/mark-all-viewed", &admin, &[]),
        call(&server, "/api/callbacks/mark-all-viewed", &viewer, &[]),
    );
    let click_time = clicked.elapsed();
    sending.store(false, std::sync::atomic::Ordering::Relaxed);
    let answers = sender.await.unwrap();

    assert_eq!(admin_click.0, 200, "{admin_click:?}");
    assert_eq!(viewer_click.0, 200, "{viewer_click:?}");
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| !matches!(status, Ok(200..=299)))
        .collect();
    assert!(failed.is_empty(), "the sender got {failed:?}");
    let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();
    println!(
        "{} sender requests, slowest {slowest:?}; both clicks answered in {click_time:?}",
        answers.len()
    );
    assert_eq!(view_rows(&server).await, 0, "a view row per callback");

    // Everything up to the click is viewed, everything after is not.
    let total = SEEDED + answers.len() as i64;
    for (cookie, click) in [(&admin, &admin_click), (&viewer, &viewer_click)] {
        let marked = click.1.as_i64().unwrap();
        assert!(
            (SEEDED..=total).contains(&marked),
            "{marked} marked of {total}"
        );
        let (_, history) = call(&server, "/api/callbacks/history", cookie, &[]).await;
        assert_eq!(history["unread_count"], total - marked);
        let (_, poll) = call(&server, "/api/callbacks/poll", cookie, &[]).await;
        assert_eq!(poll["unviewed_count"], total - marked);
    }
}

/// What the click covers: every callback committed before it, whatever its
/// request's start, and nothing committed after it, for each reader of
/// "viewed": poll, the feed with a cursor, history's flag, filter and
/// unread count, detail, export. The click adds no row per callback.
#[tokio::test]
async fn mark_all_viewed_covers_what_was_committed_before_the_click_only() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let other = second_admin(&server).await;
    let old: Vec<String> = [
        send(&server, "before-1", "workflow.completed", "wf", json!({})).await,
        send(&server, "before-2", "workflow.completed", "wf", json!({})).await,
        send(&server, "before-3", "workflow.failed", "wf", json!({})).await,
    ]
    .into();
    let (status, _) = call(
        &server,
        "/api/callbacks/mark-viewed",
        &admin,
        &[("id", &old[0])],
    )
    .await;
    assert_eq!(status, 200);
    let (_, before) = call(&server, "/api/callbacks/poll", &admin, &[]).await;
    let cursor_before = before["next_cursor"].as_str().unwrap().to_owned();
    // A request that started before the click and commits after it.
    let slow = support::live::SlowSender::start(server.addr, "slow-one").await;

    let (status, marked) = call(&server, "/api/callbacks/mark-all-viewed", &admin, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(marked, 2, "two were unviewed");
    assert_eq!(view_rows(&server).await, 1, "only the one opened by hand");

    let (_, poll) = call(&server, "/api/callbacks/poll", &admin, &[]).await;
    assert_eq!(poll["unviewed_count"], 0);
    assert!(ids(&poll).is_empty());
    let (_, history) = call(&server, "/api/callbacks/history", &admin, &[]).await;
    assert_eq!(history["unread_count"], 0);
    assert!(
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["viewed"] == true),
        "{history}"
    );
    let (_, unviewed) = call(
        &server,
        "/api/callbacks/history",
        &admin,
        &[("viewed", "false")],
    )
    .await;
    assert!(ids(&unviewed).is_empty());
    let (_, viewed) = call(
        &server,
        "/api/callbacks/history",
        &admin,
        &[("viewed", "true")],
    )
    .await;
    assert_eq!(ids(&viewed).len(), 3);
    let (_, detail) = call(&server, "/api/callbacks/detail", &admin, &[("id", &old[2])]).await;
    assert!(detail["viewed_at"].is_string(), "{detail}");
    assert_eq!(detail["viewers"][0]["email"], support::ADMIN_EMAIL);

    // Committed after the click: unviewed everywhere.
    slow.finish().await;
    let later = send(&server, "after-1", "workflow.completed", "wf", json!({})).await;
    let (_, poll) = call(&server, "/api/callbacks/poll", &admin, &[]).await;
    assert_eq!(poll["unviewed_count"], 2);
    assert_eq!(ids(&poll).len(), 2);
    assert_eq!(ids(&poll)[1], later);
    let (_, feed) = call(
        &server,
        "/api/callbacks/poll",
        &admin,
        &[("after", &cursor_before)],
    )
    .await;
    assert_eq!(
        ids(&feed),
        ids(&poll),
        "the feed skips what the click covered"
    );
    let (_, history) = call(&server, "/api/callbacks/history", &admin, &[]).await;
    assert_eq!(history["unread_count"], 2);
    assert_eq!(history["items"][0]["id"], later.as_str());
    assert_eq!(history["items"][0]["viewed"], false);
    let (_, unviewed) = call(
        &server,
        "/api/callbacks/history",
        &admin,
        &[("viewed", "false")],
    )
    .await;
    assert_eq!(ids(&unviewed).len(), 2);
    assert_eq!(ids(&unviewed)[0], later);
    let (_, detail) = call(&server, "/api/callbacks/detail", &admin, &[("id", &later)]).await;
    assert!(detail["viewed_at"].is_null());
    let export = server
        .client
        .get(server.url("/api/callbacks/export?format=ndjson&viewed=false"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    let exported = export.text().await.unwrap();
    assert_eq!(exported.lines().count(), 2, "{exported}");
    assert!(exported.contains("slow-one") && exported.contains("after-1"));

    // The other admin's state is untouched.
    let (_, history) = call(&server, "/api/callbacks/history", &other, &[]).await;
    assert_eq!(history["unread_count"], 5);
}
