//! The live feed over real HTTP: commit order, no backlog storm, the
//! Server-Sent Events stream and its resumption.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::TestServer;
use support::live::{EventStream, SlowSender};

async fn poll(server: &TestServer, cookie: &str, after: Option<&str>) -> Value {
    let mut fields = vec![("limit", "100")];
    if let Some(after) = after {
        fields.push(("after", after));
    }
    let response = server
        .call("/api/callbacks/poll", Some(cookie), &fields)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn job_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["callback_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_callback_committed_after_a_quicker_one_is_still_polled() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let first = poll(&server, &cookie, None).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    let slow = SlowSender::start(server.addr, "slow-a").await;
    assert_eq!(
        server
            .post_signed(r#"{"job_id":"quick-b","event":"workflow.completed"}"#)
            .await
            .status(),
        200
    );
    let after_b = poll(&server, &cookie, Some(&cursor)).await;
    assert_eq!(job_ids(&after_b), ["job:quick-b:workflow.completed"]);
    let cursor = after_b["next_cursor"].as_str().unwrap().to_owned();

    slow.finish().await;
    let after_a = poll(&server, &cookie, Some(&cursor)).await;
    assert_eq!(
        job_ids(&after_a),
        ["job:slow-a:workflow.completed"],
        "the callback that started first but committed last was skipped"
    );
}

#[tokio::test]
async fn a_fresh_client_gets_a_count_and_the_newest_not_a_backlog() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    for n in 0..300 {
        server
            .post_signed(&format!(
                r#"{{"job_id":"old-{n:03}","event":"workflow.completed"}}"#
            ))
            .await;
    }
    let fresh = server
        .call("/api/callbacks/poll", Some(&cookie), &[])
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(fresh["unviewed_count"], 300);
    let ids = job_ids(&fresh);
    assert_eq!(ids.len(), 20, "the default page of the newest");
    assert_eq!(ids.first().unwrap(), "job:old-280:workflow.completed");
    assert_eq!(ids.last().unwrap(), "job:old-299:workflow.completed");
    let head = fresh["next_cursor"].as_str().unwrap().to_owned();

    // With the head, nothing old comes back...
    let next = poll(&server, &cookie, Some(&head)).await;
    assert_eq!(job_ids(&next), Vec::<String>::new());
    assert_eq!(next["next_cursor"], head.as_str());
    assert!(next.get("unviewed_count").is_none());
    // ...only what arrives later.
    server
        .post_signed(r#"{"job_id":"new","event":"workflow.completed"}"#)
        .await;
    let next = poll(&server, &cookie, Some(&head)).await;
    assert_eq!(job_ids(&next), ["job:new:workflow.completed"]);
}

#[tokio::test]
async fn feed_cursors_are_checked_and_one_beyond_the_head_counts_as_the_head() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    for bad in ["garbage", "1732000000000000.0192", "feed--1"] {
        let response = server
            .call("/api/callbacks/poll", Some(&cookie), &[("after", bad)])
            .await;
        assert_eq!(response.status(), 400, "{bad}");
    }
    // A cursor from the future (forged, or kept from before a restore) must
    // not silence the feed until the feed catches up with it.
    let page = poll(&server, &cookie, Some("feed-999999")).await;
    assert_eq!(page["next_cursor"], "feed-0");
    server
        .post_signed(r#"{"job_id":"after-forged","event":"workflow.completed"}"#)
        .await;
    let page = poll(&server, &cookie, Some("feed-0")).await;
    assert_eq!(job_ids(&page), ["job:after-forged:workflow.completed"]);
}

// --- the stream ---------------------------------------------------------------

#[tokio::test]
async fn the_stream_needs_a_session_and_a_well_formed_last_event_id() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(server.url("/api/callbacks/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let cookie = server.login_admin().await;
    let response = server
        .client
        .get(server.url("/api/callbacks/stream"))
        .header("cookie", &cookie)
        .header("last-event-id", "not-a-cursor")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn the_stream_pushes_new_callbacks_in_commit_order() {
    let server = TestServer::start().await;
    server
        .post_signed(r#"{"job_id":"before","event":"workflow.completed"}"#)
        .await;
    let cookie = server.login_admin().await;
    let mut stream = EventStream::open(&server.client, &server.base, &cookie, None).await;

    let slow = SlowSender::start(server.addr, "slow-a").await;
    server
        .post_signed(r#"{"job_id":"quick-b","event":"workflow.completed"}"#)
        .await;
    let (first_id, first) = stream.next_callback().await;
    assert_eq!(first["callback_id"], "job:quick-b:workflow.completed");
    slow.finish().await;
    let (second_id, second) = stream.next_callback().await;
    assert_eq!(second["callback_id"], "job:slow-a:workflow.completed");
    assert_ne!(first_id, second_id);
}

#[tokio::test]
async fn the_stream_resumes_after_last_event_id_without_gaps_or_repeats() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let mut stream = EventStream::open(&server.client, &server.base, &cookie, None).await;
    server
        .post_signed(r#"{"job_id":"one","event":"workflow.completed"}"#)
        .await;
    let (last_id, _) = stream.next_callback().await;
    drop(stream);
    // Two arrive while the client is away.
    for job in ["two", "three"] {
        server
            .post_signed(&format!(
                r#"{{"job_id":"{job}","event":"workflow.completed"}}"#
            ))
            .await;
    }
    let mut stream = EventStream::open(&server.client, &server.base, &cookie, Some(&last_id)).await;
    let (_, two) = stream.next_callback().await;
    let (_, three) = stream.next_callback().await;
    assert_eq!(two["callback_id"], "job:two:workflow.completed");
    assert_eq!(three["callback_id"], "job:three:workflow.completed");
    server
        .post_signed(r#"{"job_id":"four","event":"workflow.completed"}"#)
        .await;
    let (_, four) = stream.next_callback().await;
    assert_eq!(four["callback_id"], "job:four:workflow.completed");
}

#[tokio::test]
async fn the_stream_skips_what_this_user_viewed_and_ends_with_the_session() {
    let server = TestServer::start().await;
    let cookie = server.login_admin().await;
    let mut stream = EventStream::open(&server.client, &server.base, &cookie, Some("feed-0")).await;
    let viewed: Value = server
        .post_signed(r#"{"job_id":"viewed","event":"workflow.completed"}"#)
        .await
        .json()
        .await
        .unwrap();
    // Viewed before the stream reads it (the stream may also have sent it
    // already; then the next event must still be the later callback).
    server
        .call(
            "/api/callbacks/mark-viewed",
            Some(&cookie),
            &[("id", viewed["id"].as_str().unwrap())],
        )
        .await;
    server
        .post_signed(r#"{"job_id":"later","event":"workflow.completed"}"#)
        .await;
    let (_, mut event) = stream.next_callback().await;
    if event["callback_id"] == "job:viewed:workflow.completed" {
        event = stream.next_callback().await.1;
    }
    assert_eq!(event["callback_id"], "job:later:workflow.completed");

    let response = server.call("/api/auth/logout", Some(&cookie), &[]).await;
    assert_eq!(response.status(), 200);
    assert!(
        stream.ends_within(Duration::from_secs(10)).await,
        "the stream outlived its session"
    );
}
