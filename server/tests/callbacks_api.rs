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
