//! Sources over real HTTP on loopback, against a real database: each
//! scheme's verification, the mapping of each preset, unknown names, the
//! admin API and `source` / `group` in every read.

mod support;

use std::time::{Duration, Instant};

use inbox_core::accounts::Role;
use inbox_core::signature::{WebhookSecret, sign_hex, sign_standard};
use inbox_core::source::scheme::{sign_github, sign_stripe};
use serde_json::{Value, json};
use sqlx::Row;
use support::{TestServer, now_unix};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"))
}

/// Creates a source through the admin API; returns its answer (with the
/// secret shown once).
async fn create_source(
    server: &TestServer,
    admin: &str,
    name: &str,
    preset: &str,
    extra: &[(&str, &str)],
) -> Value {
    let mut fields = vec![("name", name), ("preset", preset)];
    fields.extend_from_slice(extra);
    let response = server
        .call("/api/admin/sources/create", Some(admin), &fields)
        .await;
    assert_eq!(response.status(), 200, "create {name}");
    json_of(response).await
}

fn secret_of(created: &Value) -> WebhookSecret {
    WebhookSecret::parse(created["secret"].as_str().expect("secret shown once")).unwrap()
}

async fn post(
    server: &TestServer,
    name: &str,
    headers: &[(&str, String)],
    body: &str,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(server.url(&format!("/api/webhooks/{name}")))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (header, value) in headers {
        request = request.header(*header, value);
    }
    request.send().await.expect("request sent")
}

/// Rows of one source: (callback_id, event_type, external_job_id, delivery_count).
async fn rows_of(
    server: &TestServer,
    source: &str,
) -> Vec<(String, Option<String>, Option<String>, i64)> {
    let db = server.db().await;
    sqlx::query(
        "SELECT callback_id, event_type, external_job_id, delivery_count FROM llm_callbacks
          WHERE source = $1 ORDER BY feed_seq",
    )
    .bind(source)
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
    .collect()
}

/// Writes the request head declaring a 1 MiB body and a few bytes of it,
/// then waits for an answer without sending the rest: only a server that
/// answers before reading the body replies.
async fn status_before_the_body(server: &TestServer, path: &str, headers: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n{headers}\r\n{{\"a\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered before the body arrived")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..read]).to_string();
    text.split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test]
async fn each_scheme_accepts_its_signature_and_refuses_wrong_stale_and_missing_ones() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let body = r#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"id":"d_1","object":{"id":"pi_1"}},"status":"succeeded","model":"m","repository":{"full_name":"octo/demo"},"session_id":"s1","hook_event_name":"Stop","job_id":"j1","event":"workflow.completed"}"#;
    let now = now_unix();
    let wrong = WebhookSecret::parse("whsec_d3JvbmctYnV0LWxvbmctZW5vdWdoLXNlY3JldA==").unwrap();

    // (source, preset, how its sender signs with a secret at a time)
    type Headers = Vec<(&'static str, String)>;
    type Signer<'a> = Box<dyn Fn(&WebhookSecret, i64) -> Headers + 'a>;
    let cases: Vec<(&str, &str, Signer)> = vec![
        (
            "hex-src",
            "generic",
            Box::new(|secret, _| vec![("x-webhook-signature", sign_hex(secret, body.as_bytes()))]),
        ),
        (
            "std-src",
            "openai",
            Box::new(|secret, at| {
                vec![
                    ("webhook-id", "msg_1".to_owned()),
                    ("webhook-timestamp", at.to_string()),
                    (
                        "webhook-signature",
                        sign_standard(secret, "msg_1", at, body.as_bytes()),
                    ),
                ]
            }),
        ),
        (
            "gh-src",
            "github",
            Box::new(|secret, _| {
                vec![
                    ("x-hub-signature-256", sign_github(secret, body.as_bytes())),
                    ("x-github-event", "workflow_run".to_owned()),
                    ("x-github-delivery", "d-1".to_owned()),
                ]
            }),
        ),
        (
            "stripe-src",
            "stripe",
            Box::new(|secret, at| {
                vec![("stripe-signature", sign_stripe(secret, at, body.as_bytes()))]
            }),
        ),
        (
            "cc-src",
            "claude-code",
            Box::new(|secret, _| vec![("authorization", format!("Bearer {}", secret.reveal()))]),
        ),
    ];
    for (name, preset, sign) in &cases {
        let created = create_source(&server, &admin, name, preset, &[]).await;
        let secret = secret_of(&created);
        let good = post(&server, name, &sign(&secret, now), body).await;
        assert!(good.status().is_success(), "{name}: {}", good.status());
        let wrong_answer = post(&server, name, &sign(&wrong, now), body).await;
        assert_eq!(wrong_answer.status(), 401, "{name}: a wrong secret");
        let missing = post(&server, name, &[], body).await;
        assert_eq!(missing.status(), 401, "{name}: no signature header");
        if matches!(*preset, "openai" | "stripe") {
            let stale = post(&server, name, &sign(&secret, now - 3_600), body).await;
            assert_eq!(stale.status(), 401, "{name}: a stale timestamp");
        }
        // Without the scheme's header the answer comes before the body.
        let path = format!("/api/webhooks/{name}");
        assert_eq!(
            status_before_the_body(&server, &path, "").await,
            401,
            "{name}"
        );
        assert_eq!(rows_of(&server, name).await.len(), 1, "{name}: one stored");
    }
}

#[tokio::test]
async fn unknown_and_disabled_sources_get_404_before_the_body_and_one_audit_outcome() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let created = create_source(&server, &admin, "github", "github", &[]).await;
    let secret = secret_of(&created);
    let body = r#"{"repository":{"full_name":"octo/demo"}}"#;
    let signed = vec![
        ("x-hub-signature-256", sign_github(&secret, body.as_bytes())),
        ("x-github-delivery", "g-1".to_owned()),
    ];
    assert_eq!(post(&server, "github", &signed, body).await.status(), 200);
    let disabled = server
        .call(
            "/api/admin/sources/update",
            Some(&admin),
            &[("name", "github"), ("enabled", "false")],
        )
        .await;
    assert_eq!(disabled.status(), 200);
    let answer = post(&server, "github", &signed, body).await;
    assert_eq!(answer.status(), 404);
    assert_eq!(json_of(answer).await, json!({ "error": "unknown source" }));
    for name in [
        "nope",
        "Bad%20Name",
        "a-very-long-name-that-is-not-a-source-at-all-0123456789",
    ] {
        let path = format!("/api/webhooks/{name}");
        assert_eq!(
            status_before_the_body(&server, &path, "").await,
            404,
            "{name}"
        );
    }
    // Many names, one kind of row and one metric series: strangers cannot
    // add values.
    for n in 0..30 {
        let answer = post(&server, &format!("made-up-{n}"), &[], "{}").await;
        assert_eq!(answer.status(), 404);
    }
    // The counts reach the database with the server writer's next commit.
    let db = server.db().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows: Vec<(String, Option<String>, i64)> = sqlx::query(
            "SELECT outcome, source, count FROM webhook_deliveries WHERE outcome = 'unknown_source'",
        )
        .fetch_all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
        if rows.iter().map(|row| row.2).sum::<i64>() >= 34 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        rows.len() <= 2,
        "aggregated per address and minute: {rows:?}"
    );
    assert!(rows.iter().all(|row| row.1.as_deref() == Some("unknown")));
    assert_eq!(rows.iter().map(|row| row.2).sum::<i64>(), 1 + 3 + 30);
    let metrics = server.metrics_text().await;
    let unknown_series: Vec<&str> = metrics
        .lines()
        .filter(|line| line.contains("outcome=\"unknown_source\""))
        .collect();
    assert_eq!(unknown_series.len(), 1, "{unknown_series:?}");
    assert!(unknown_series[0].contains("source=\"unknown\""));
    assert!(
        !metrics.contains("made-up"),
        "a stranger's name reached the metrics"
    );
}

#[tokio::test]
async fn delivery_ids_are_unique_per_source() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let first = secret_of(&create_source(&server, &admin, "first", "openai", &[]).await);
    let second = secret_of(&create_source(&server, &admin, "second", "openai", &[]).await);
    let body = r#"{"type":"response.completed","data":{"id":"resp_1"}}"#;
    let now = now_unix();
    let standard = |secret: &WebhookSecret| {
        vec![
            ("webhook-id", "msg_same".to_owned()),
            ("webhook-timestamp", now.to_string()),
            (
                "webhook-signature",
                sign_standard(secret, "msg_same", now, body.as_bytes()),
            ),
        ]
    };
    let a = json_of(post(&server, "first", &standard(&first), body).await).await;
    let again = json_of(post(&server, "first", &standard(&first), body).await).await;
    assert_eq!(a["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], a["id"]);
    let b = json_of(post(&server, "second", &standard(&second), body).await).await;
    assert_eq!(
        b["duplicate"], false,
        "the same id at another source is another callback"
    );
    assert_ne!(b["id"], a["id"]);
    let first_rows = rows_of(&server, "first").await;
    assert_eq!(first_rows.len(), 1);
    assert_eq!(first_rows[0].3, 2, "the retry was counted");
    assert_eq!(first_rows[0].1.as_deref(), Some("response.completed"));
    assert_eq!(first_rows[0].2.as_deref(), Some("resp_1"));
    assert_eq!(rows_of(&server, "second").await.len(), 1);
}

#[tokio::test]
async fn claude_code_sessions_are_stored_with_their_events_and_an_empty_answer() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let token = secret_of(&create_source(&server, &admin, "claude-code", "claude-code", &[]).await);
    let base = json!({
        "session_id": "sess-42",
        "transcript_path": "/home/dev/.claude/projects/demo/sess-42.jsonl",
        "cwd": "/home/dev/demo",
    });
    let events = [
        json!({"hook_event_name": "SessionStart", "source": "startup"}),
        json!({"hook_event_name": "UserPromptSubmit", "prompt": "Fix the failing test"}),
        json!({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "cargo test"}}),
        json!({"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "cargo test"}, "tool_response": {"stdout": "ok", "exit_code": 0}}),
        json!({"hook_event_name": "Notification", "message": "Claude needs your permission to use Bash"}),
        json!({"hook_event_name": "Stop", "stop_hook_active": false}),
        json!({"hook_event_name": "SessionEnd", "reason": "exit"}),
    ];
    for event in &events {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(event.as_object().unwrap().clone());
        let body = body.to_string();
        let answer = post(
            &server,
            "claude-code",
            &[("authorization", format!("Bearer {}", token.reveal()))],
            &body,
        )
        .await;
        assert_eq!(answer.status(), 204, "{event}");
        assert!(answer.headers().contains_key("x-callback-inbox-id"));
        assert_eq!(
            answer.text().await.unwrap(),
            "",
            "nothing reaches the model"
        );
    }
    let rows = rows_of(&server, "claude-code").await;
    let stored: Vec<&str> = rows.iter().filter_map(|row| row.1.as_deref()).collect();
    assert_eq!(
        stored,
        [
            "SessionStart",
            "UserPromptSubmit",
            "PreToolUse",
            "PostToolUse",
            "Notification",
            "Stop",
            "SessionEnd"
        ]
    );
    assert!(rows.iter().all(|row| row.2.as_deref() == Some("sess-42")));
    // The audit log says what the sender got.
    let db = server.db().await;
    let statuses: Vec<i64> = sqlx::query_scalar(
        "SELECT CAST(http_status AS BIGINT) FROM webhook_deliveries WHERE source = 'claude-code'",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(statuses, vec![204; 7]);

    // The history filters by source and by group, and shows both.
    let history = json_of(
        server
            .call(
                "/api/callbacks/history",
                Some(&admin),
                &[("source", "claude-code"), ("group", "sess-42")],
            )
            .await,
    )
    .await;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 7);
    assert!(items.iter().all(|item| item["source"] == "claude-code"));
    assert!(items.iter().all(|item| item["group"] == "sess-42"));
    let none = json_of(
        server
            .call(
                "/api/callbacks/history",
                Some(&admin),
                &[("source", "llm-callback"), ("group", "sess-42")],
            )
            .await,
    )
    .await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn overrides_change_the_mapping_and_bad_rules_are_refused() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let created = create_source(
        &server,
        &admin,
        "custom",
        "generic",
        &[
            ("group_from", "json:/run/id"),
            ("id_from", "json:/run/id+json:/step"),
        ],
    )
    .await;
    assert_eq!(created["mapping"]["group_from"], "json:/run/id");
    let secret = secret_of(&created);
    let body = r#"{"run":{"id":"r-9"},"step":"embed","event":"run.completed"}"#;
    let signed = vec![("x-webhook-signature", sign_hex(&secret, body.as_bytes()))];
    assert_eq!(post(&server, "custom", &signed, body).await.status(), 200);
    let rows = rows_of(&server, "custom").await;
    assert_eq!(rows[0].2.as_deref(), Some("r-9"));
    assert_eq!(rows[0].1.as_deref(), Some("run.completed"));
    // The same run and step with another body is the same delivery.
    let retry = r#"{"run":{"id":"r-9"},"step":"embed","event":"run.completed","attempt":2}"#;
    let signed = vec![("x-webhook-signature", sign_hex(&secret, retry.as_bytes()))];
    let answer = json_of(post(&server, "custom", &signed, retry).await).await;
    assert_eq!(answer["duplicate"], true);

    let updated = json_of(
        server
            .call(
                "/api/admin/sources/update",
                Some(&admin),
                &[("name", "custom"), ("event_from", "header:X-Kind")],
            )
            .await,
    )
    .await;
    assert_eq!(updated["mapping"]["event_from"], "header:X-Kind");
    for (field, rule) in [
        ("group_from", "json:no-slash"),
        ("event_from", "sha256"),
        ("id_from", "cookie:x"),
    ] {
        let answer = server
            .call(
                "/api/admin/sources/update",
                Some(&admin),
                &[("name", "custom"), (field, rule)],
            )
            .await;
        assert_eq!(answer.status(), 400, "{field}={rule}");
    }
    for (name, preset) in [
        ("Bad Name", "generic"),
        ("ok-name", "nope"),
        ("custom", "generic"),
    ] {
        let answer = server
            .call(
                "/api/admin/sources/create",
                Some(&admin),
                &[("name", name), ("preset", preset)],
            )
            .await;
        assert_eq!(answer.status(), 400, "{name}/{preset}");
    }
}

#[tokio::test]
async fn secrets_stay_masked_and_a_rotated_secret_keeps_working_for_its_grace() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let created = create_source(&server, &admin, "rotating", "generic", &[]).await;
    let old = created["secret"].as_str().unwrap().to_owned();
    let rotated = json_of(
        server
            .call(
                "/api/admin/sources/rotate-secret",
                Some(&admin),
                &[("name", "rotating")],
            )
            .await,
    )
    .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert_eq!(rotated["label"], "rotating #2");
    let body = r#"{"event":"x.completed"}"#;
    for secret in [&old, &new] {
        let secret = WebhookSecret::parse(secret).unwrap();
        let signed = vec![("x-webhook-signature", sign_hex(&secret, body.as_bytes()))];
        assert_eq!(post(&server, "rotating", &signed, body).await.status(), 200);
    }
    let list = json_of(server.call("/api/admin/sources", Some(&admin), &[]).await).await;
    let text = list.to_string();
    assert!(
        !text.contains(&old) && !text.contains(&new),
        "a whole secret was listed"
    );
    let source = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["name"] == "rotating")
        .unwrap();
    let secrets = source["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2);
    assert!(
        secrets[0]["expires_at"].is_null(),
        "the new one does not expire"
    );
    assert!(secrets[1]["expires_at"].is_string(), "the old one expires");
    assert!(
        source["url"]
            .as_str()
            .unwrap()
            .ends_with("/api/webhooks/rotating"),
        "{source}"
    );
    assert!(
        source["example"]
            .as_str()
            .unwrap()
            .contains("$CALLBACK_INBOX_SECRET")
    );

    // Past its grace the old secret verifies nothing, with no change to the
    // database at that moment: its expiry is moved to a second from now
    // (and another rotation makes the nodes load it).
    let db = server.db().await;
    let soon_us = (now_unix() + 1) * 1_000_000;
    sqlx::query(&format!(
        "UPDATE source_secrets SET expires_at = {} WHERE label = 'rotating #1'",
        support::sql::time(server.backend(), 1)
    ))
    .bind(soon_us)
    .execute(&db)
    .await
    .unwrap();
    let third = server
        .call(
            "/api/admin/sources/rotate-secret",
            Some(&admin),
            &[("name", "rotating")],
        )
        .await;
    assert_eq!(third.status(), 200);
    let old_secret = WebhookSecret::parse(&old).unwrap();
    let signed = vec![(
        "x-webhook-signature",
        sign_hex(&old_secret, body.as_bytes()),
    )];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = post(&server, "rotating", &signed, body).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "the expired secret still verifies"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn viewers_get_403_from_every_source_function() {
    let server = TestServer::start().await;
    let store = server.store().await;
    let hash = inbox_core::accounts::PasswordHasherPool::default()
        .hash("viewer password 123")
        .await
        .unwrap();
    store
        .create_user("viewer@example.com", &hash, Role::Viewer, 0)
        .await
        .unwrap();
    let viewer = server
        .login("viewer@example.com", "viewer password 123")
        .await
        .unwrap();
    for (path, fields) in [
        ("/api/admin/sources", &[][..]),
        (
            "/api/admin/sources/create",
            &[("name", "x"), ("preset", "generic")][..],
        ),
        ("/api/admin/sources/update", &[("name", "llm-callback")][..]),
        (
            "/api/admin/sources/rotate-secret",
            &[("name", "llm-callback")][..],
        ),
        (
            "/api/admin/sources/reveal-secret",
            &[("name", "llm-callback"), ("label", "x")][..],
        ),
    ] {
        let response = server.call(path, Some(&viewer), fields).await;
        assert_eq!(response.status(), 403, "{path}");
        let anonymous = server.call(path, None, fields).await;
        assert_eq!(anonymous.status(), 401, "{path}");
    }
}

#[tokio::test]
async fn source_and_group_reach_every_read() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let secret = secret_of(&create_source(&server, &admin, "replicate", "replicate", &[]).await);
    let body =
        r#"{"id":"pred_7","model":"stability/sdxl","status":"succeeded","output":["x.png"]}"#;
    let now = now_unix();
    let headers = vec![
        ("webhook-id", "msg_r1".to_owned()),
        ("webhook-timestamp", now.to_string()),
        (
            "webhook-signature",
            sign_standard(&secret, "msg_r1", now, body.as_bytes()),
        ),
    ];
    let mut stream =
        support::live::EventStream::open(&server.client, &server.base, &admin, None).await;
    let stored = json_of(post(&server, "replicate", &headers, body).await).await;
    let id = stored["id"].as_str().unwrap().to_owned();
    let (_, pushed) = stream.next_callback().await;
    assert_eq!(pushed["id"], id.as_str());
    assert_eq!(pushed["source"], "replicate", "{pushed}");
    assert_eq!(
        server
            .post_signed(r#"{"job_id":"j","event":"workflow.completed"}"#)
            .await
            .status(),
        200
    );

    let poll = json_of(server.call("/api/callbacks/poll", Some(&admin), &[]).await).await;
    let sources: Vec<&str> = poll["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"replicate") && sources.contains(&"llm-callback"),
        "{poll}"
    );

    let detail = json_of(
        server
            .call("/api/callbacks/detail", Some(&admin), &[("id", &id)])
            .await,
    )
    .await;
    assert_eq!(detail["source"], "replicate");
    assert_eq!(detail["group"], "pred_7");
    assert_eq!(detail["workflow_name"], "stability/sdxl");
    assert_eq!(detail["status"], "completed");

    let export = server
        .client
        .get(server.url("/api/callbacks/export?format=ndjson&source=replicate"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let records: Vec<Value> = export
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{export}");
    assert_eq!(records[0]["source"], "replicate");
    assert_eq!(records[0]["group"], "pred_7");

    // The audit row of an accepted callback commits with it.
    let deliveries = json_of(
        server
            .call(
                "/api/deliveries/list",
                Some(&admin),
                &[("source", "replicate")],
            )
            .await,
    )
    .await;
    let items = deliveries["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{deliveries}");
    assert_eq!(items[0]["source"], "replicate");
    let summary = json_of(
        server
            .call("/api/deliveries/summary", Some(&admin), &[("window", "1h")])
            .await,
    )
    .await;
    assert_eq!(summary["by_source"]["replicate"], 1, "{summary}");
    assert_eq!(summary["by_source"]["llm-callback"], 1, "{summary}");
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("outcome=\"accepted\",source=\"replicate\"")
            || metrics.contains("source=\"replicate\",outcome=\"accepted\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_source_created_on_one_node_is_served_by_another_within_a_second() {
    let first = TestServer::start().await;
    let second = TestServer::start_on(first.database.clone(), &[]).await;
    let admin = first.login_admin().await;
    let created = create_source(&first, &admin, "shared", "generic", &[]).await;
    let secret = secret_of(&created);
    let body = r#"{"event":"x.completed"}"#;
    let signed = vec![("x-webhook-signature", sign_hex(&secret, body.as_bytes()))];
    let started = Instant::now();
    loop {
        let status = post(&second, "shared", &signed, body).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 404);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the other node never saw the new source"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A disable made on the first node stops the second too, even when the
    // change's clock reads earlier than the last one stored (a node whose
    // clock is behind): the time every node polls still moves.
    let db = first.db().await;
    sqlx::query(&format!(
        "UPDATE sources SET updated_at = {} WHERE name = 'llm-callback'",
        support::sql::time(first.backend(), 1)
    ))
    .bind((now_unix() + 3_600) * 1_000_000)
    .execute(&db)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while post(&second, "shared", &signed, body).await.status() != 200 {
        assert!(
            Instant::now() < deadline,
            "the clock change was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let disabled = first
        .call(
            "/api/admin/sources/update",
            Some(&admin),
            &[("name", "shared"), ("enabled", "false")],
        )
        .await;
    assert_eq!(disabled.status(), 200);
    let started = Instant::now();
    while post(&second, "shared", &signed, body).await.status() != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the other node still accepts a disabled source"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_named_source_takes_cross_site_requests_and_unknown_is_reserved() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let secret = secret_of(&create_source(&server, &admin, "site-hook", "generic", &[]).await);
    let body = r#"{"event":"x.completed"}"#;
    // Senders are machines: a browser-like Origin must not get a CSRF 403.
    let answer = post(
        &server,
        "site-hook",
        &[
            ("x-webhook-signature", sign_hex(&secret, body.as_bytes())),
            ("origin", "https://sender.example".to_owned()),
            ("sec-fetch-site", "cross-site".to_owned()),
        ],
        body,
    )
    .await;
    assert_eq!(answer.status(), 200);
    let reserved = server
        .call(
            "/api/admin/sources/create",
            Some(&admin),
            &[("name", "unknown"), ("preset", "generic")],
        )
        .await;
    assert_eq!(reserved.status(), 400);
}

#[tokio::test]
async fn a_token_in_a_named_header_is_checked_before_the_body() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    let token = "gitlab-token-0123456789abcdef";
    create_source(
        &server,
        &admin,
        "gitlab",
        "claude-code",
        &[("secret", token), ("token_header", "X-Gitlab-Token")],
    )
    .await;
    let body = r#"{"session_id":"g","hook_event_name":"Stop"}"#;
    let good = post(
        &server,
        "gitlab",
        &[("x-gitlab-token", token.to_owned())],
        body,
    )
    .await;
    assert_eq!(good.status(), 204);
    // The default header does not count for this source.
    let bearer = post(
        &server,
        "gitlab",
        &[("authorization", format!("Bearer {token}"))],
        body,
    )
    .await;
    assert_eq!(bearer.status(), 401);
    // A wrong token of the same length: refused without reading the body.
    let wrong: String = token.chars().rev().collect();
    let status = status_before_the_body(
        &server,
        "/api/webhooks/gitlab",
        &format!("X-Gitlab-Token: {wrong}\r\n"),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_rotation_can_take_the_secret_the_provider_issued() {
    let server = TestServer::start().await;
    let admin = server.login_admin().await;
    create_source(&server, &admin, "stripe", "stripe", &[]).await;
    let issued = "whsec_issued_by_the_provider_0123456789";
    let rotated = json_of(
        server
            .call(
                "/api/admin/sources/rotate-secret",
                Some(&admin),
                &[("name", "stripe"), ("secret", issued)],
            )
            .await,
    )
    .await;
    assert_eq!(rotated["secret"], issued);
    let secret = WebhookSecret::literal(issued).unwrap();
    let body = r#"{"id":"evt_9","type":"charge.succeeded","data":{"object":{"id":"ch_9"}}}"#;
    let signed = vec![(
        "stripe-signature",
        sign_stripe(&secret, now_unix(), body.as_bytes()),
    )];
    assert_eq!(post(&server, "stripe", &signed, body).await.status(), 200);
    let short = server
        .call(
            "/api/admin/sources/rotate-secret",
            Some(&admin),
            &[("name", "stripe"), ("secret", "short")],
        )
        .await;
    assert_eq!(short.status(), 400, "a guessable secret is refused");
}

#[tokio::test]
async fn a_named_source_has_the_body_limit_and_its_flag_mode_stores_unsigned_apart() {
    let server = TestServer::start_with(&["--max-body-bytes", "4096"]).await;
    let admin = server.login_admin().await;
    let secret = secret_of(&create_source(&server, &admin, "limited", "github", &[]).await);
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000));
    let signed = vec![
        ("x-hub-signature-256", sign_github(&secret, big.as_bytes())),
        ("x-github-delivery", "big".to_owned()),
    ];
    assert_eq!(post(&server, "limited", &signed, &big).await.status(), 413);

    let flagged = server
        .call(
            "/api/admin/sources/update",
            Some(&admin),
            &[("name", "limited"), ("mode", "flag")],
        )
        .await;
    assert_eq!(json_of(flagged).await["mode"], "flag");
    let body = r#"{"repository":{"full_name":"octo/demo"}}"#;
    let forged = vec![
        ("x-hub-signature-256", format!("sha256={}", "0".repeat(64))),
        ("x-github-delivery", "d-7".to_owned()),
    ];
    let genuine = vec![
        ("x-hub-signature-256", sign_github(&secret, body.as_bytes())),
        ("x-github-delivery", "d-7".to_owned()),
    ];
    let deadline = Instant::now() + Duration::from_secs(3);
    // This node reloads at once; the loop only guards the assertion order.
    while post(&server, "limited", &forged, body).await.status() != 200 {
        assert!(Instant::now() < deadline, "flag mode never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let genuine_answer = json_of(post(&server, "limited", &genuine, body).await).await;
    assert_eq!(
        genuine_answer["duplicate"], false,
        "an unverified request cannot claim a genuine delivery id"
    );
    let db = server.db().await;
    let rows: Vec<(String, i64)> = sqlx::query(
        "SELECT callback_id, CASE WHEN signature_valid THEN 1 ELSE 0 END FROM llm_callbacks
          WHERE source = 'limited' ORDER BY feed_seq",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].0.starts_with("unverified"), "{rows:?}");
    assert_eq!(rows[0].1, 0);
    assert_eq!(rows[1].1, 1);
}

#[tokio::test]
async fn no_whole_secret_reaches_the_log() {
    let server = support::ServerProcess::start(&[]).await;
    let client = reqwest::Client::new();
    let login = client
        .post(server.url("/api/auth/login"))
        .form(&[
            ("email", support::ADMIN_EMAIL),
            ("password", support::ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let cookie = support::session_cookie(&login).expect("signed in");
    let call = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let request = client
            .post(server.url(path))
            .header("cookie", cookie.clone())
            .form(&fields);
        async move { json_of(request.send().await.unwrap()).await }
    };
    let created = call(
        "/api/admin/sources/create",
        vec![("name", "cc".into()), ("preset", "claude-code".into())],
    )
    .await;
    let first = created["secret"].as_str().unwrap().to_owned();
    let rotated = call(
        "/api/admin/sources/rotate-secret",
        vec![("name", "cc".into())],
    )
    .await;
    let second = rotated["secret"].as_str().unwrap().to_owned();
    let revealed = client
        .post(server.url("/api/admin/sources/reveal-secret"))
        .header("cookie", cookie.clone())
        .form(&[("name", "cc"), ("label", "cc #2")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(revealed.contains(&second));
    for token in [&first, &second, &"not-the-token-0123456789".to_owned()] {
        client
            .post(server.url("/api/webhooks/cc"))
            .header("authorization", format!("Bearer {token}"))
            .body(r#"{"session_id":"s","hook_event_name":"Stop"}"#)
            .send()
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.output().contains("source secret revealed") {
        assert!(Instant::now() < deadline, "{}", server.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.output();
    assert!(
        log.contains("source=cc") || log.contains("source=\"cc\""),
        "{log}"
    );
    for secret in [&first, &second] {
        assert!(!log.contains(secret.as_str()), "a whole secret in the log");
    }
    assert!(
        !log.contains("not-the-token-0123456789"),
        "a guessed token in the log"
    );
}
